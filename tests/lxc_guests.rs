//! The LxcGuest slice end to end: `phoenix up --simulate`, the stock kubectl, and the
//! simulated PVE's operation log as the witness of every call the controllers make.

mod support;

use kube::api::{Api, DeleteParams, Patch, PatchParams};
use phoenix_crds::LxcGuest;
use reqwest::Method;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use support::{ApiServer, SimAdmin};

const FAST: [&str; 2] = ["--task-duration", "default=0.2"];

fn examples() -> String {
    format!("{}/examples", std::env::var("CARGO_MANIFEST_DIR").unwrap())
}

fn conditions(g: &LxcGuest) -> Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    g.status
        .as_ref()
        .map(|s| s.common.conditions.clone())
        .unwrap_or_default()
}

fn ready(g: &LxcGuest) -> bool {
    support::is_ready(&conditions(g))
}

fn ready_message(g: &LxcGuest) -> String {
    conditions(g)
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.message)
        .unwrap_or_default()
}

fn reason(g: &LxcGuest) -> String {
    support::ready_reason(&conditions(g))
}

/// Until `count` LxcGuests are Ready.
async fn all_ready(api: &Api<LxcGuest>, count: usize, timeout: Duration) {
    support::wait_for(api, &format!("{count} LxcGuests Ready"), timeout, |gs| {
        gs.len() == count && gs.iter().all(|g| ready(g))
    })
    .await;
}

fn spec_ip(g: &LxcGuest) -> Option<String> {
    let ip = &g.spec.network.first()?.ip;
    (ip != "dhcp").then(|| ip.split('/').next().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_examples_converge_in_order_and_then_make_no_calls_that_change_anything() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec![
        "--apply",
        &*Box::leak(examples().into_boxed_str()),
        "--resync-seconds",
        "1",
    ];
    args.extend(FAST);
    let server = ApiServer::up_simulated(dir.path(), &args);
    let client = support::client(&server).await;
    let api: Api<LxcGuest> = Api::namespaced(client.clone(), "default");
    // 801's vLLM feature waits for its Certificate, and the trusted CA for the root the
    // Certificate controller publishes: pebble stands in for Step-CA.
    all_ready(&api, 6, Duration::from_secs(120)).await;
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(client.clone(), "default");
    let tls = secrets
        .get("granite-embedding-tls")
        .await
        .unwrap()
        .data
        .unwrap();
    let tls_key = String::from_utf8(tls["tls.key"].0.clone()).unwrap();
    features_in_place(&server, &api, &tls_key).await;
    vms_in_place(&server, &client).await;
    every_kind_waitable(&server);

    for g in api.list(&Default::default()).await.unwrap() {
        let status = g.status.clone().unwrap().guest;
        assert_eq!(status.vmid, Some(g.spec.vmid));
        assert_eq!(status.node, g.spec.common.node);
        if g.spec.template {
            assert_eq!(status.state.as_deref(), Some("template"));
        } else {
            assert_eq!(status.state.as_deref(), Some("running"));
            match spec_ip(&g) {
                Some(ip) => assert_eq!(status.ip, Some(ip), "{}", g.metadata.name.unwrap()),
                None => assert!(status.ip.is_some()),
            }
        }
    }
    let table = support::kubectl(&server, &["get", "lxcguests"]);
    for expected in [
        "step-ca",
        "103",
        "10.0.0.10",
        "granite-embedding",
        "801",
        "True",
    ] {
        assert!(table.contains(expected), "{expected} in:\n{table}");
    }
    let story = support::kubectl(&server, &["describe", "lxc", "step-ca"]);
    for step in [
        "WaitingForDependencies",
        "Clone",
        "Configured",
        "Start",
        "Running",
    ] {
        assert!(story.contains(step), "{step} in:\n{story}");
    }

    // Ordering: 101 and 102 were cloned only once 103 (their dependency) was Ready.
    let step_ca = api.get("step-ca").await.unwrap();
    let ready_at = conditions(&step_ca)
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap()
        .last_transition_time
        .0;
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(client.clone(), "default");
    for dependent in ["nginx-phoenix", "traefik-internal"] {
        let clone = events
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .find(|e| {
                e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(dependent)
                    && e.reason.as_deref() == Some("Clone")
            })
            .unwrap_or_else(|| panic!("a Clone event for {dependent}"));
        let cloned_at = clone
            .event_time
            .map(|t| t.0)
            .or(clone.metadata.creation_timestamp.map(|t| t.0))
            .unwrap();
        // Event times have microseconds, condition times seconds.
        assert!(
            cloned_at >= ready_at,
            "{dependent} cloned at {cloned_at}, before 103 was Ready at {ready_at}"
        );
    }

    // Idempotency: several resync rounds, not one call that changes anything.
    let sim = SimAdmin::of(&server);
    sim.clear_oplog().await;
    support::resync_rounds(&server, "LxcGuest", 6, 3).await;
    assert!(support::metric(&server, "phoenix_reconciles_total{kind=\"VmGuest\"}").await > 0.0);
    assert_eq!(sim.mutating_calls().await, Vec::<serde_json::Value>::new());
    assert!(
        !sim.get("oplog").await.as_array().unwrap().is_empty(),
        "the resyncs did look at PVE"
    );

    let metrics = reqwest::get(&server.metrics)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for series in [
        "phoenix_reconciles_total{kind=\"LxcGuest\"}",
        "phoenix_pve_call_duration_seconds_count{method=\"POST\",outcome=\"ok\"}",
        "phoenix_pve_tasks_in_flight{node=\"phoenix\"} 0",
    ] {
        assert!(metrics.contains(series), "{series} in:\n{metrics}");
    }
    // 103's firewall as its spec says, plus the rule Phoenix derives for Step-CA's ACME
    // clients (the cluster names a Step-CA); a rule added by hand is undone at the next resync.
    let ca = sim.guest(103).await;
    assert_eq!(ca["firewall_options"]["policy_in"], "DROP");
    assert_eq!(ca["firewall_options"]["enable"], "1");
    let rules = ca["firewall_rules"].as_array().unwrap().clone();
    assert!(step_ca_rules(&rules), "{rules:?}");
    sim.api(
        Method::POST,
        "/nodes/phoenix/lxc/103/firewall/rules",
        &[
            ("type", "in"),
            ("action", "ACCEPT"),
            ("proto", "tcp"),
            ("dport", "22"),
        ],
    )
    .await;
    // Done when the rules are the spec's again (the rewrite passes through other lists)
    // and the event says so.
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let rules = sim.guest(103).await["firewall_rules"].clone();
            let rules = rules.as_array().unwrap();
            let story = support::kubectl(&server, &["describe", "lxc", "step-ca"]);
            if step_ca_rules(rules) && story.contains("firewall set: firewall rules (3 wanted)") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("the hand-made rule removed, with a DriftCorrected event");

    let health = reqwest::get(server.metrics.replace("/metrics", "/healthz"))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

/// Step-CA's guest rules: the spec's two, then the derived one for its ACME clients.
fn step_ca_rules(rules: &[serde_json::Value]) -> bool {
    rules.len() == 3
        && rules[0]["dport"] == "9000"
        && rules[1]["macro"] == "SSH"
        && rules[2]["source"] == "+phoenix-acme-clients"
}

/// Every kind with a controller as kstatus and `kubectl wait` read it: Ready, and
/// `observedGeneration` at each object's generation.
fn every_kind_waitable(server: &ApiServer) {
    let kinds = "proxmoxclusters,lxcguests,vmguests,certificates";
    let ready = [
        "wait",
        "--timeout=60s",
        "--for=condition=Ready",
        kinds,
        "--all",
        "-A",
    ];
    support::kubectl(server, &ready);
    let template = r#"{range .items[*]}{.kind}/{.metadata.name} {.metadata.namespace} {.metadata.generation}{"\n"}{end}"#;
    let jsonpath = format!("jsonpath={template}");
    let objects = support::kubectl(server, &["get", kinds, "-A", "-o", &jsonpath]);
    let mut kinds_seen = std::collections::BTreeSet::new();
    for line in objects.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let [object, namespace, generation] = fields[..] else {
            panic!("{line:?}");
        };
        kinds_seen.insert(object.split('/').next().unwrap().to_owned());
        let condition = format!("--for=jsonpath={{.status.observedGeneration}}={generation}");
        let mut args = vec!["wait", "--timeout=30s", &condition, object];
        if !namespace.is_empty() {
            args.extend(["-n", namespace]);
        }
        support::kubectl(server, &args);
    }
    assert_eq!(kinds_seen.len(), 4, "{objects}");
}

/// The examples' VMs: 9000 built from the cloud image, 1001 and 1002 cloned from it with
/// their agent addresses, docker configured for mTLS with their Certificates' pairs, and
/// the swarm formed (1001 manager, 1002 worker).
async fn vms_in_place(server: &ApiServer, client: &kube::Client) {
    let api: Api<phoenix_crds::VmGuest> = Api::namespaced(client.clone(), "default");
    support::wait_for(&api, "3 VmGuests Ready", Duration::from_secs(120), |vms| {
        vms.len() == 3
            && vms
                .iter()
                .all(|v| support::is_ready(&v.status.clone().unwrap_or_default().common.conditions))
    })
    .await;
    for (name, vmid, ip, role) in [
        ("portainer", 1001, "10.0.0.111", "manager"),
        ("drphoenix", 1002, "10.0.0.102", "worker"),
    ] {
        let status = api.get(name).await.unwrap().status.unwrap();
        assert_eq!(status.guest.vmid, Some(vmid));
        assert_eq!(status.guest.ip.as_deref(), Some(ip), "{name}");
        assert_eq!(status.agent.as_deref(), Some("running"));
        let swarm = status.swarm.unwrap();
        assert_eq!(
            (swarm.role.as_deref(), swarm.state.as_deref()),
            (Some(role), Some("active"))
        );
    }
    let sim = SimAdmin::of(server);
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(client.clone(), "default");
    let pair = secrets
        .get("drphoenix-docker-tls")
        .await
        .unwrap()
        .data
        .unwrap();
    let worker = sim.guest(1002).await;
    assert_eq!(
        worker["files"]["/etc/docker/tls/cert.pem"]
            .as_str()
            .unwrap(),
        String::from_utf8(pair["tls.crt"].0.clone()).unwrap()
    );
    assert!(
        worker["files"]["/etc/docker/daemon.json"]
            .as_str()
            .unwrap()
            .contains("\"tlsverify\": true")
    );
    // Clients are checked against Phoenix's own client CA, never the platform CA that
    // issued every guest's key.
    let system: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(client.clone(), "phoenix-system");
    let client_ca = system
        .get("phoenix-docker-client-ca")
        .await
        .unwrap()
        .data
        .unwrap();
    let client_ca = String::from_utf8(client_ca["tls.crt"].0.clone()).unwrap();
    assert_eq!(
        worker["files"]["/etc/docker/tls/ca.pem"].as_str().unwrap(),
        client_ca
    );
    assert_ne!(
        client_ca.trim(),
        String::from_utf8(pair["ca.crt"].0.clone()).unwrap().trim()
    );
    let swarms = sim.get("swarms").await;
    let nodes: Vec<&Value> = swarms
        .as_object()
        .unwrap()
        .values()
        .flat_map(|s| s["nodes"].as_array().unwrap())
        .collect();
    assert_eq!(nodes.len(), 2, "{swarms}");
    let template = api
        .get("ubuntu-2404-cloud-template")
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(template.template_generation, Some(1));
    let table = support::kubectl(server, &["get", "vmguests"]);
    for expected in [
        "portainer",
        "1001",
        "10.0.0.111",
        "manager",
        "drphoenix",
        "worker",
        "template",
    ] {
        assert!(table.contains(expected), "{expected} in:\n{table}");
    }
}

/// The examples' features: the vLLM unit of 801 from its spec, Ollama on 914, step-cli
/// and the trusted CA on 103/101/102, all recorded in status and Healthy, told in events;
/// the TLS private key pushed into 801 appears in no status and no event.
async fn features_in_place(server: &ApiServer, api: &Api<LxcGuest>, tls_key: &str) {
    let sim = SimAdmin::of(server);
    let granite = sim.guest(801).await;
    let unit = granite["files"]["/etc/systemd/system/vllm.service"]
        .as_str()
        .expect("the vLLM unit in 801");
    for part in [
        "vllm serve ibm-granite/granite-embedding-278m-multilingual",
        "--port 8000",
        "--gpu-memory-utilization 0.3",
        "--ssl-keyfile /etc/vllm/tls.key",
        "--task embed --max-model-len 512",
        "Environment=HF_HOME=/models/hf",
    ] {
        assert!(unit.contains(part), "{part} in:\n{unit}");
    }
    assert_eq!(granite["services"]["vllm.service"], "running");
    assert_eq!(granite["files"]["/etc/vllm/tls.key"], tls_key);
    let ollama = sim.guest(914).await;
    assert_eq!(ollama["services"]["ollama"], "running");
    assert!(
        ollama["files"]["/etc/systemd/system/ollama.service.d/phoenix.conf"]
            .as_str()
            .unwrap()
            .contains("OLLAMA_HOST=0.0.0.0:11434")
    );
    let expected = [
        ("step-ca", vec!["step-cli"]),
        ("nginx-phoenix", vec!["trusted-ca", "nginx-gateway"]),
        (
            "traefik-internal",
            vec!["step-cli", "trusted-ca", "traefik"],
        ),
        ("granite-embedding", vec!["nvidia", "trusted-ca", "vllm"]),
        ("ollama-gpu0", vec!["nvidia", "ollama"]),
        ("copy-base", vec!["base", "custom-hardening"]),
    ];
    for (name, features) in expected {
        let g = api.get(name).await.unwrap();
        let status = g.status.clone().unwrap();
        let applied: Vec<&str> = status
            .guest
            .features
            .iter()
            .map(|f| f.name.as_str())
            .collect();
        assert_eq!(applied, features, "{name}");
        let vmid = g.spec.vmid;
        for f in &status.guest.features {
            // The marker inside the guest holds the hash status records.
            let marker = format!("/var/lib/phoenix/features/{}.done", f.name);
            let inside = if g.spec.template {
                None
            } else {
                Some(sim.guest(vmid).await)
            };
            if let Some(inside) = inside {
                assert_eq!(
                    inside["files"][&marker].as_str().map(str::trim),
                    Some(f.hash.as_str())
                );
            }
        }
    }
    // Checks run on their own schedule beside Ready: every guest with checks reports them.
    support::wait_for(api, "the checks passing", Duration::from_secs(60), |gs| {
        gs.iter().all(|g| {
            g.spec.common.health_checks.is_empty()
                || conditions(g)
                    .iter()
                    .any(|c| c.type_ == "Healthy" && c.status == "True")
        })
    })
    .await;
    assert!(
        sim.guest(103).await["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "post-setup"),
        "103 has its post-setup snapshot"
    );
    let story = support::kubectl(server, &["describe", "lxc", "granite-embedding"]);
    assert!(story.contains("FeatureApplied"), "{story}");
    let everything = support::kubectl(server, &["get", "lxcguests,events", "-A", "-o", "yaml"]);
    let key_body = tls_key.lines().nth(1).unwrap();
    assert!(!everything.contains(key_body), "the TLS key leaked");
}

/// A GitOps tool applies a set in any order: a clone seen before the object that builds
/// its source waits (InProgress, not Stalled), and goes on when that object reports.
#[tokio::test(flavor = "multi_thread")]
async fn a_clone_applied_before_its_source_waits_for_it_and_then_converges() {
    let dir = tempfile::tempdir().unwrap();
    let server = ApiServer::up_simulated(dir.path(), &FAST);
    let client = support::client(&server).await;
    support::homelab_cluster(&server).await;
    let api: Api<LxcGuest> = Api::namespaced(client.clone(), "default");
    let clone = support::guest_yaml("early-clone", 571, "").replace(
        r#"{ostemplate: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"}"#,
        "{clone: {vmid: 570}}",
    );
    support::kubectl_apply(&server, &clone);
    support::wait_for(
        &api,
        "the clone waiting for its source",
        Duration::from_secs(30),
        |gs| gs.iter().any(|g| reason(g) == "CloneSourceNotFound"),
    )
    .await;
    let waiting = api.get("early-clone").await.unwrap();
    let stalled = conditions(&waiting)
        .iter()
        .any(|c| c.type_ == "Stalled" && c.status == "True");
    assert!(
        !stalled,
        "a missing source is waited for: {:?}",
        conditions(&waiting)
    );
    support::kubectl_apply(
        &server,
        &support::guest_yaml("late-source", 570, "  template: true\n"),
    );
    // Within the poll of an absent source (30 s): the source's first report wakes it.
    all_ready(&api, 2, Duration::from_secs(20)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn impossible_specs_end_in_a_condition_and_touch_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = ApiServer::up_simulated(dir.path(), &FAST);
    let client = support::client(&server).await;
    support::homelab_cluster(&server).await;
    let sim = SimAdmin::of(&server);
    support::foreign_guest(&sim, 555, "by-hand").await;
    sim.clear_oplog().await;

    let cases = [
        (
            "bad-template",
            support::guest_yaml("bad-template", 560, "")
                .replace("debian-12-standard_12.7-1_amd64", "nope"),
            "TemplateNotFound",
        ),
        ("taken", support::guest_yaml("taken", 555, ""), "VmidInUse"),
        (
            "taken-twice",
            support::guest_yaml("taken-twice", 555, ""),
            "VmidClaimed",
        ),
        (
            "wrong-node",
            support::guest_yaml("wrong-node", 561, "").replace("node: phoenix", "node: pve9"),
            "NodeNotInCluster",
        ),
        (
            "huge",
            support::guest_yaml("huge", 562, "").replace("memory: 512", "memory: 1048576"),
            "InsufficientMemory",
        ),
        (
            "not-a-template",
            support::guest_yaml("not-a-template", 563, "").replace(
                r#"{ostemplate: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"}"#,
                "{clone: {vmid: 555}}",
            ),
            "CloneSourceNotTemplate",
        ),
        (
            "cycle-a",
            support::guest_yaml(
                "cycle-a",
                564,
                "  dependsOn: [{kind: LxcGuest, name: cycle-b}]\n",
            ),
            "DependencyCycle",
        ),
        (
            "cycle-b",
            support::guest_yaml(
                "cycle-b",
                565,
                "  dependsOn: [{kind: LxcGuest, name: cycle-a}]\n",
            ),
            "DependencyCycle",
        ),
    ];
    let api: Api<LxcGuest> = Api::namespaced(client.clone(), "default");
    // The older claim holds a VMID: "taken" exists (and is refused) before its twin.
    support::kubectl_apply(&server, &cases[1].1);
    support::wait_for(&api, "taken refused", Duration::from_secs(30), |gs| {
        gs.iter().any(|g| reason(g) == "VmidInUse")
    })
    .await;
    for (_, yaml, _) in &cases {
        support::kubectl_apply(&server, yaml);
    }
    support::wait_for(
        &api,
        "every bad spec refused with its reason",
        Duration::from_secs(60),
        |gs| {
            cases.iter().all(|(name, _, want)| {
                gs.iter()
                    .any(|g| g.metadata.name.as_deref() == Some(name) && reason(g) == *want)
            })
        },
    )
    .await;
    for g in api.list(&Default::default()).await.unwrap() {
        // kstatus: a spec only a change can fix is Stalled (Flux reports it Failed).
        let stalled = conditions(&g)
            .iter()
            .any(|c| c.type_ == "Stalled" && c.status == "True");
        assert!(stalled, "{:?} is Stalled", g.metadata.name);
        let message = ready_message(&g);
        assert!(!message.is_empty());
    }
    let taken = api.get("taken-twice").await.unwrap();
    let message = ready_message(&taken);
    assert!(
        message.contains("default/taken"),
        "names the holder: {message}"
    );
    let cycle = api.get("cycle-a").await.unwrap();
    let message = ready_message(&cycle);
    assert!(message.contains("cycle-b"), "names the cycle: {message}");
    assert_eq!(
        sim.mutating_calls().await,
        Vec::<serde_json::Value>::new(),
        "no PVE write for a bad spec"
    );
    let events = support::kubectl(
        &server,
        &["get", "events", "--field-selector", "type=Warning"],
    );
    for (_, _, want) in &cases {
        assert!(events.contains(want), "a Warning event {want}:\n{events}");
    }
    assert_eq!(
        sim.guest(555).await["config"]["hostname"],
        "by-hand",
        "the hand-made guest is untouched"
    );
}

async fn sim_config(sim: &SimAdmin, vmid: u32, key: &str) -> serde_json::Value {
    sim.guest(vmid).await["config"][key].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn drift_restarts_adoption_and_deletion_follow_the_policies() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["--resync-seconds", "1"];
    args.extend(FAST);
    let server = ApiServer::up_simulated(dir.path(), &args);
    let client = support::client(&server).await;
    support::homelab_cluster(&server).await;
    let sim = SimAdmin::of(&server);
    support::foreign_guest(&sim, 590, "adoptee").await;
    support::kubectl_apply(&server, &support::guest_yaml("drifter", 570, ""));
    support::kubectl_apply(
        &server,
        &support::guest_yaml(
            "reporter",
            571,
            "  driftPolicy: Report\n  restartPolicy: Never\n",
        ),
    );
    support::kubectl_apply(
        &server,
        &support::guest_yaml("keeper", 572, "  deletionPolicy: Retain\n  tags: [kept]\n"),
    );
    support::kubectl_apply(
        &server,
        &support::guest_yaml("guarded", 573, "  protection: true\n"),
    );
    let adoptee = support::guest_yaml(
        "adoptee",
        590,
        "  adopt: true\n  adoptionPolicy: ApplyLiveChanges\n",
    )
    .replace("memory: 512", "memory: 768");
    support::kubectl_apply(&server, &adoptee.replace("10.0.0.90/24", "10.0.0.77/24"));
    let api: Api<LxcGuest> = Api::namespaced(client.clone(), "default");
    all_ready(&api, 5, Duration::from_secs(60)).await;

    // Adoption: marked and resized live, never stopped or restarted.
    assert!(
        sim_config(&sim, 590, "description")
            .await
            .as_str()
            .unwrap()
            .contains("Managed by Phoenix")
    );
    assert_eq!(sim_config(&sim, 590, "memory").await, "768");
    assert_eq!(sim.guest(590).await["running"], true);

    // Drift, corrected: memory raised in the "PVE UI" comes back at the next resync.
    sim.clear_oplog().await;
    sim.api(
        Method::PUT,
        "/nodes/phoenix/lxc/570/config",
        &[("memory", "4096")],
    )
    .await;
    support::wait_sim(&sim, "memory of 570 corrected", |s| {
        s["570"]["config"]["memory"] == "512"
    })
    .await;
    let story = support::kubectl(&server, &["describe", "lxc", "drifter"]);
    assert!(
        story.contains("DriftCorrected") && story.contains("memory 4096 → 512"),
        "{story}"
    );

    // Drift, reported: left as it is, with a condition and an event.
    sim.api(
        Method::PUT,
        "/nodes/phoenix/lxc/571/config",
        &[("memory", "4096")],
    )
    .await;
    support::wait_for(&api, "reporter Drifted", Duration::from_secs(30), |gs| {
        gs.iter().any(|g| {
            g.metadata.name.as_deref() == Some("reporter")
                && conditions(g).iter().any(|c| {
                    c.type_ == "Drifted" && c.status == "True" && c.message.contains("memory")
                })
        })
    })
    .await;
    assert_eq!(sim_config(&sim, 571, "memory").await, "4096");

    // A change that needs a restart, under restartPolicy: Never: applied, not restarted.
    api.patch(
        "reporter",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"spec": {"features": {"nesting": true}}})),
    )
    .await
    .unwrap();
    support::wait_for(
        &api,
        "reporter RestartRequired",
        Duration::from_secs(30),
        |gs| {
            gs.iter().any(|g| {
                g.metadata.name.as_deref() == Some("reporter")
                    && conditions(g)
                        .iter()
                        .any(|c| c.type_ == "RestartRequired" && c.status == "True")
            })
        },
    )
    .await;
    assert_eq!(sim_config(&sim, 571, "features").await, "nesting=1");
    let restarts: Vec<_> = sim
        .mutating_calls()
        .await
        .into_iter()
        .filter(|o| {
            let path = o["path"].as_str().unwrap();
            path.ends_with("/reboot") || path.ends_with("/stop") || path.ends_with("/shutdown")
        })
        .collect();
    assert!(restarts.is_empty(), "nothing restarted: {restarts:?}");

    // Deletion: Delete destroys; Retain releases; protection blocks with a reason.
    for name in ["drifter", "keeper", "guarded"] {
        api.delete(name, &DeleteParams::default()).await.unwrap();
    }
    support::wait_sim(&sim, "570 destroyed", |s| s.get("570").is_none()).await;
    support::wait_for(
        &api,
        "guarded blocked by protection",
        Duration::from_secs(30),
        |gs| {
            let names: Vec<_> = gs.iter().filter_map(|g| g.metadata.name.clone()).collect();
            !names.contains(&"drifter".to_string())
                && !names.contains(&"keeper".to_string())
                && gs.iter().any(|g: &Arc<LxcGuest>| {
                    g.metadata.name.as_deref() == Some("guarded")
                        && reason(g) == "DeletionProtected"
                })
        },
    )
    .await;
    let kept = sim.guest(572).await;
    assert_eq!(kept["running"], true, "Retain leaves the guest running");
    assert!(
        kept["config"]["description"].is_null(),
        "marker removed: {kept}"
    );
    assert_eq!(kept["config"]["tags"], "kept");
    assert!(
        sim.guest(573).await.is_object(),
        "a protected guest is not destroyed"
    );
    api.patch(
        "guarded",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"spec": {"deletionPolicy": "Retain"}})),
    )
    .await
    .unwrap();
    support::wait_for(&api, "guarded released", Duration::from_secs(30), |gs| {
        gs.iter()
            .all(|g| g.metadata.name.as_deref() != Some("guarded"))
    })
    .await;
}

/// Adoption never lowers safety: a protected container made by hand, named by an object
/// whose spec differs from it (memory, and no protection), is reported and left exactly as
/// it was — whatever the adoption policy — and deleting the object leaves it alone.
#[tokio::test(flavor = "multi_thread")]
async fn adoption_never_lowers_safety() {
    let dir = tempfile::tempdir().unwrap();
    let server = ApiServer::up_simulated(dir.path(), &FAST);
    let client = support::client(&server).await;
    support::homelab_cluster(&server).await;
    let sim = SimAdmin::of(&server);
    support::foreign_guest(&sim, 591, "guarded-by-hand").await;
    sim.api(
        Method::PUT,
        "/nodes/phoenix/lxc/591/config",
        &[("protection", "1")],
    )
    .await;
    let api: Api<LxcGuest> = Api::namespaced(client.clone(), "default");
    for (name, policy) in [("strict", "RequireMatch"), ("lenient", "ApplyLiveChanges")] {
        let extra = format!("  adopt: true\n  adoptionPolicy: {policy}\n");
        let yaml = support::guest_yaml(name, 591, &extra)
            .replace("memory: 512", "memory: 768")
            .replace("10.0.0.91/24", "10.0.0.77/24");
        sim.clear_oplog().await;
        support::kubectl_apply(&server, &yaml);
        support::wait_for(&api, "adoption refused", Duration::from_secs(60), |gs| {
            gs.iter().any(|g| {
                g.metadata.name.as_deref() == Some(name) && reason(g) == "AdoptionMismatch"
            })
        })
        .await;
        let message = ready_message(&api.get(name).await.unwrap());
        assert!(message.contains("protection"), "{message}");
        if policy == "RequireMatch" {
            assert!(message.contains("memory"), "{message}");
        }
        assert!(
            !message.contains("guarded-by-hand"),
            "no foreign value: {message}"
        );
        assert_eq!(sim_config(&sim, 591, "protection").await, "1");
        assert_eq!(sim_config(&sim, 591, "memory").await, "512");
        assert_eq!(sim.mutating_calls().await, Vec::<Value>::new());
        api.delete(name, &DeleteParams::default()).await.unwrap();
        support::wait_for(&api, "the object gone", Duration::from_secs(30), |gs| {
            gs.iter().all(|g| g.metadata.name.as_deref() != Some(name))
        })
        .await;
        assert_eq!(
            sim.mutating_calls().await,
            Vec::<Value>::new(),
            "left alone"
        );
        assert!(sim.guest(591).await.is_object(), "still there");
    }
}
