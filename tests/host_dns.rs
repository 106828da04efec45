//! ProxmoxHost on the simulated node, its DNS proven by Debian's real dnsmasq: the
//! generated config and record directory (the simulator keeps the node's files on disk)
//! answer every example guest and route; a guest created, re-addressed and deleted changes
//! the answer without dnsmasq restarting; a failing step names itself and the config it
//! failed on never goes live; drift is put back or reported as the spec says.

mod support;

use kube::api::{Api, DeleteParams, Patch, PatchParams};
use phoenix_crds::{LxcGuest, ProxmoxHost, TraefikService, VmGuest};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use support::dnsmasq::Dnsmasq;
use support::host::{self, MINUTES};
use support::{ApiServer, SimAdmin};

const CONFIG: &str = "/etc/dnsmasq.d/phoenix.conf";
const HOSTS: &str = "/etc/phoenix/dnsmasq/hosts";

/// The node's file `path` as the simulator keeps it on disk.
fn on_disk(server: &ApiServer, path: &str) -> PathBuf {
    server
        .data_dir
        .join("nodes/phoenix")
        .join(path.trim_start_matches('/'))
}

/// Debian's dnsmasq on loopback, running the config Phoenix generated for the node with
/// the two changes a loopback run needs: it listens where the harness says (not on the
/// node's 10.0.0.13), and its record directory is the simulated node's, on disk.
fn real_dnsmasq(server: &ApiServer, dir: &Path) -> Dnsmasq {
    let generated = std::fs::read_to_string(on_disk(server, CONFIG)).unwrap();
    let hosts = on_disk(server, HOSTS);
    let config: String = generated
        .lines()
        .filter(|l| !l.starts_with("listen-address=") && *l != "bind-interfaces")
        .map(|l| match l.strip_prefix("hostsdir=") {
            Some(_) => format!("hostsdir={}\n", hosts.display()),
            None => format!("{l}\n"),
        })
        .collect();
    assert!(
        config.contains("local=/internal.thinkheads.ai/"),
        "{config}"
    );
    let file = dir.join("dnsmasq.conf");
    std::fs::write(&file, config).unwrap();
    Dnsmasq::start(&file, &[])
}

fn ip(address: &str) -> Ipv4Addr {
    address.split('/').next().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_real_dnsmasq_answers_every_guest_and_route_and_follows_changes_without_restarting() {
    let dir = tempfile::tempdir().unwrap();
    let server = host::up_examples(dir.path());
    let client = support::client(&server).await;
    support::all_guests_ready(&client, 6, 3).await;
    let hosts: Api<ProxmoxHost> = Api::all(client.clone());
    support::wait_for(&hosts, "the host Ready", MINUTES, |hs| {
        hs.len() == 1 && host::is_ready(&hs[0])
    })
    .await;
    let listed = support::kubectl(&server, &["get", "proxmoxhosts"]);
    assert!(
        listed.contains("phoenix") && listed.matches("True").count() >= 3,
        "{listed}"
    );
    let sim = SimAdmin::of(&server);
    let node = sim
        .api(reqwest::Method::GET, "/nodes/phoenix/time", &[])
        .await;
    assert_eq!(node["timezone"], "America/New_York");

    // Every guest's hostname and FQDN, every route's host: as the objects say.
    let dnsmasq = real_dnsmasq(&server, dir.path());
    let pid = dnsmasq.pid();
    let lxcs: Api<LxcGuest> = Api::namespaced(client.clone(), "default");
    let vms: Api<VmGuest> = Api::namespaced(client.clone(), "default");
    let mut expected: Vec<(String, Ipv4Addr)> = Vec::new();
    for g in lxcs.list(&Default::default()).await.unwrap() {
        if g.spec.template {
            continue;
        }
        let address = ip(g.status.as_ref().unwrap().guest.ip.as_deref().unwrap());
        expected.push((g.spec.hostname.clone(), address));
        expected.push((
            format!("{}.internal.thinkheads.ai", g.spec.hostname),
            address,
        ));
    }
    for g in vms.list(&Default::default()).await.unwrap() {
        if g.spec.template {
            continue;
        }
        let address = ip(g.status.as_ref().unwrap().guest.ip.as_deref().unwrap());
        expected.push((format!("{}.internal.thinkheads.ai", g.spec.name), address));
    }
    let address_of = |name: &str| {
        expected
            .iter()
            .find(|(n, _)| n == &format!("{name}.internal.thinkheads.ai"))
            .map(|(_, a)| *a)
            .unwrap()
    };
    let routes: Api<TraefikService> = Api::namespaced(client.clone(), "default");
    let mut route_answers = Vec::new();
    for r in routes.list(&Default::default()).await.unwrap() {
        let via = if r.spec.public {
            "nginx-phoenix"
        } else {
            "traefik-internal"
        };
        route_answers.push((r.spec.host.clone(), address_of(via)));
    }
    assert_eq!(route_answers.len(), 3);
    // A route's host wins over a guest's FQDN of the same name (portainer's).
    let mut answers: std::collections::BTreeMap<String, Ipv4Addr> = expected.into_iter().collect();
    answers.extend(route_answers);
    answers.insert("phoenix.internal.thinkheads.ai".into(), ip("10.0.0.13"));
    for (name, address) in &answers {
        assert_eq!(dnsmasq.query_a(name), Ok(vec![*address]), "{name}");
    }
    assert!(
        dnsmasq.query_a("nothing.internal.thinkheads.ai").is_err(),
        "names of the domain are never forwarded"
    );

    // A guest created, re-addressed, deleted: its record follows, dnsmasq keeps running.
    support::kubectl_apply(&server, &support::guest_yaml("dns-probe", 950, ""));
    dnsmasq.wait_for_a(
        "dns-probe.internal.thinkheads.ai",
        Ok(vec![ip("10.0.0.200")]),
    );
    let moved = serde_json::json!({"spec": {"network": [{"ip": "10.0.0.201/24"}]}});
    lxcs.patch("dns-probe", &PatchParams::default(), &Patch::Merge(&moved))
        .await
        .unwrap();
    dnsmasq.wait_for_a("dns-probe", Ok(vec![ip("10.0.0.201")]));
    lxcs.delete("dns-probe", &DeleteParams::default())
        .await
        .unwrap();
    dnsmasq.wait_for_a(
        "dns-probe.internal.thinkheads.ai",
        Err(hickory_proto::op::ResponseCode::NXDomain),
    );
    assert_eq!(dnsmasq.pid(), pid, "dnsmasq was never restarted");

    // Steady state: the node only observed, never written, over three resyncs.
    let inside = sim.get("nodes/phoenix/inside").await;
    let before = inside["log"].as_array().unwrap().len();
    support::resync_rounds(&server, "ProxmoxHost", 1, 3).await;
    let inside = sim.get("nodes/phoenix/inside").await;
    let since: Vec<String> = inside["log"].as_array().unwrap()[before..]
        .iter()
        .map(|c| c["command"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        since.iter().all(|c| host::observation(c)),
        "only observations at steady state: {since:?}"
    );
    assert!(!since.is_empty(), "the node is looked at every resync");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_step_names_itself_never_activates_its_config_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let server = host::up_with_cluster(dir.path(), "2").await;
    let sim = SimAdmin::of(&server);
    // dnsmasq refuses the config twice, then takes it.
    sim.put(
        "nodes/phoenix/answers",
        serde_json::json!([{"matches": "dnsmasq --test", "exit": 1, "output": "dnsmasq: bad option at line 3 of phoenix.conf.candidate", "times": 2}]),
    )
    .await;
    let host = host::example_yaml();
    support::kubectl_apply(&server, &host);
    let client = support::client(&server).await;
    let hosts: Api<ProxmoxHost> = Api::all(client.clone());
    support::wait_for(&hosts, "the failed step named", MINUTES, |hs| {
        hs.first()
            .and_then(|h| host::condition(h, "Ready"))
            .is_some_and(|(status, reason, message)| {
                status == "False"
                    && reason == "HostStepFailed"
                    && message.contains("check dnsmasq config")
                    && message.contains("bad option at line 3")
            })
    })
    .await;
    let files = sim.get("nodes/phoenix/files").await;
    assert!(
        files.get(CONFIG).is_none(),
        "a config dnsmasq refused never went live: {files:#}"
    );
    support::wait_for(&hosts, "the host recovered", MINUTES, |hs| {
        hs.first().is_some_and(|h| host::is_ready(h))
    })
    .await;
    let events = host::events(&server);
    assert!(
        events.contains("HostStepFailed") && events.contains("DnsmasqRestarted"),
        "{events}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn drift_on_the_node_is_put_back_or_reported() {
    let dir = tempfile::tempdir().unwrap();
    let server = host::up_with_cluster(dir.path(), "1").await;
    let host = host::example_yaml();
    support::kubectl_apply(&server, &host);
    let client = support::client(&server).await;
    let hosts: Api<ProxmoxHost> = Api::all(client.clone());
    support::wait_for(&hosts, "the host Ready", MINUTES, |hs| {
        hs.first().is_some_and(|h| host::is_ready(h))
    })
    .await;
    let sim = SimAdmin::of(&server);
    let record = format!("{HOSTS}/static");
    let theirs = "10.0.0.66 phoenix.internal.thinkheads.ai\n";
    let edit =
        |content: &str| serde_json::json!({"path": record, "content": content, "mode": "0644"});
    let original = sim.get("nodes/phoenix/files").await[&record]
        .as_str()
        .unwrap()
        .to_owned();

    // Correct (the default): the record file and the time zone are put back.
    sim.put("nodes/phoenix/files", edit(theirs)).await;
    sim.api(
        reqwest::Method::PUT,
        "/nodes/phoenix/time",
        &[("timezone", "Europe/Paris")],
    )
    .await;
    let put_back = || async {
        let files = sim.get("nodes/phoenix/files").await;
        let zone = sim
            .api(reqwest::Method::GET, "/nodes/phoenix/time", &[])
            .await;
        files[&record] == original.as_str() && zone["timezone"] == "America/New_York"
    };
    support::until("the drift put back", put_back).await;
    let events = support::kubectl(
        &server,
        &["get", "events", "--field-selector", "reason=DriftCorrected"],
    );
    assert!(
        events.contains("dnsmasq") && events.contains("time zone"),
        "{events}"
    );

    // Report: left as it is, said in the Drifted condition.
    let report = serde_json::json!({"spec": {"driftPolicy": "Report"}});
    hosts
        .patch("phoenix", &PatchParams::default(), &Patch::Merge(&report))
        .await
        .unwrap();
    support::wait_for(&hosts, "the new generation converged", MINUTES, |hs| {
        hs.first().is_some_and(|h| {
            host::is_ready(h)
                && h.status.as_ref().unwrap().common.observed_generation == h.metadata.generation
        })
    })
    .await;
    sim.put("nodes/phoenix/files", edit(theirs)).await;
    support::wait_for(&hosts, "the drift reported", MINUTES, |hs| {
        hs.first()
            .and_then(|h| host::condition(h, "Drifted"))
            .is_some_and(|(status, _, message)| status == "True" && message.contains("dnsmasq"))
    })
    .await;
    assert_eq!(
        sim.get("nodes/phoenix/files").await[&record],
        theirs,
        "a reported drift is left in place"
    );
}
