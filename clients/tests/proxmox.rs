//! The Proxmox client against the simulator (in-process, 127.0.0.1): pinned TLS, token
//! auth, a guest's life through tasks, and errors classified as the controllers need them.

use phoenix_clients::proxmox::{
    Config, ErrorKind, GuestType, ProxmoxClient, TaskOutcome, Trust, Upid,
};
use std::time::Duration;

async fn sim() -> phoenix_sim::Running {
    let options = phoenix_sim::Options {
        durations: [("default".to_string(), Duration::ZERO)].into(),
        ..Default::default()
    };
    phoenix_sim::start(options).await.expect("simulator starts")
}

fn config(sim: &phoenix_sim::Running, trust: Trust, secret: Option<&str>) -> Config {
    let c = &sim.credentials;
    Config {
        endpoint: c.url.clone(),
        token_id: c.token_id.clone(),
        token_secret: secret.unwrap_or(&c.token_secret).to_owned(),
        trust,
        timeout: Duration::from_secs(5),
    }
}

async fn finish(client: &ProxmoxClient, upid: &Upid) -> TaskOutcome {
    // Zero-length tasks finish on the simulator's next request; poll a bounded number of times.
    for _ in 0..50 {
        let outcome = client.task(upid).await.unwrap().outcome();
        if outcome != TaskOutcome::Running {
            return outcome;
        }
    }
    panic!("task {upid} never finished")
}

fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn pinned_tls_and_token_auth() {
    let sim = sim().await;
    let pinned = ProxmoxClient::new(&config(
        &sim,
        Trust::Fingerprint(sim.credentials.fingerprint.clone()),
        None,
    ))
    .unwrap();
    assert_eq!(pinned.version().await.unwrap().release, "9.1");
    let wrong_pin = "00".repeat(32);
    let err = ProxmoxClient::new(&config(&sim, Trust::Fingerprint(wrong_pin), None))
        .unwrap()
        .version()
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Tls, "{err}");
    let err = ProxmoxClient::new(&config(
        &sim,
        Trust::Fingerprint(sim.credentials.fingerprint.clone()),
        Some("wrong"),
    ))
    .unwrap()
    .nodes()
    .await
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unauthorized);
    assert!(
        !format!("{pinned:?}").contains(&sim.credentials.token_secret),
        "the token never shows in Debug"
    );
    sim.stop();
}

#[tokio::test]
async fn a_container_s_life_through_tasks_and_classified_errors() {
    let sim = sim().await;
    let client = ProxmoxClient::new(&config(
        &sim,
        Trust::Fingerprint(sim.credentials.fingerprint.clone()),
        None,
    ))
    .unwrap();
    let node = client.nodes().await.unwrap()[0].node.clone();
    assert!(
        client
            .storages(&node)
            .await
            .unwrap()
            .iter()
            .any(|s| s.storage == "local-zfs")
    );
    let vmid = client.next_id().await.unwrap();
    let create = params(&[
        ("vmid", &vmid.to_string()),
        (
            "ostemplate",
            "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
        ),
        ("hostname", "granite"),
        ("rootfs", "local-zfs:8"),
        ("net0", "name=eth0,bridge=vmbr0,ip=10.0.0.141/24"),
    ]);
    let upid = client.create(&node, GuestType::Lxc, &create).await.unwrap();
    assert_eq!(
        (upid.kind.as_str(), upid.id.as_str()),
        ("vzcreate", vmid.to_string().as_str())
    );
    assert_eq!(finish(&client, &upid).await, TaskOutcome::Succeeded);
    let again = client
        .create(&node, GuestType::Lxc, &create)
        .await
        .unwrap_err();
    assert_eq!(again.kind, ErrorKind::AlreadyExists, "{again}");

    let config = client.config(&node, GuestType::Lxc, vmid).await.unwrap();
    assert_eq!(config["hostname"], "granite");
    let digest = config["digest"].clone();
    client
        .update_config(
            &node,
            GuestType::Lxc,
            vmid,
            &params(&[("memory", "1024"), ("digest", &digest)]),
        )
        .await
        .unwrap();
    let stale = client
        .update_config(
            &node,
            GuestType::Lxc,
            vmid,
            &params(&[("memory", "2048"), ("digest", &digest)]),
        )
        .await
        .unwrap_err();
    assert_eq!(stale.kind, ErrorKind::Refused);
    assert!(
        stale.message.starts_with("detected modified configuration"),
        "{stale}"
    );

    let bad = client
        .update_config(&node, GuestType::Lxc, vmid, &params(&[("memory", "lots")]))
        .await
        .unwrap_err();
    assert_eq!(bad.kind, ErrorKind::Invalid);
    assert_eq!(
        bad.errors["memory"],
        "type check ('integer') failed - got 'lots'"
    );

    let start = client
        .power(&node, GuestType::Lxc, vmid, "start")
        .await
        .unwrap();
    assert_eq!(finish(&client, &start).await, TaskOutcome::Succeeded);
    assert_eq!(
        client
            .status(&node, GuestType::Lxc, vmid)
            .await
            .unwrap()
            .status,
        "running"
    );
    let interfaces = client.lxc_interfaces(&node, vmid).await.unwrap();
    assert!(interfaces.iter().any(|i| i["inet"] == "10.0.0.141/24"));

    let refused = client
        .destroy(&node, GuestType::Lxc, vmid, false)
        .await
        .unwrap_err();
    assert_eq!(refused.kind, ErrorKind::Refused);
    let destroy = client
        .destroy(&node, GuestType::Lxc, vmid, true)
        .await
        .unwrap();
    assert_eq!(finish(&client, &destroy).await, TaskOutcome::Succeeded);
    let gone = client
        .status(&node, GuestType::Lxc, vmid)
        .await
        .unwrap_err();
    assert_eq!(gone.kind, ErrorKind::NotFound, "{gone}");
    sim.stop();
}

#[tokio::test]
async fn locks_and_unreachable_servers_are_transient() {
    let sim = sim().await;
    let client = ProxmoxClient::new(&config(&sim, Trust::InsecureSkipVerify, None)).unwrap();
    let node = client.nodes().await.unwrap()[0].node.clone();
    let create = params(&[
        ("vmid", "900"),
        (
            "ostemplate",
            "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
        ),
        ("rootfs", "local-zfs:8"),
    ]);
    let upid = client.create(&node, GuestType::Lxc, &create).await.unwrap();
    finish(&client, &upid).await;
    sim.server.sim().faults.locked.insert(900, "backup".into());
    let locked = client
        .power(&node, GuestType::Lxc, 900, "start")
        .await
        .unwrap_err();
    assert_eq!(
        (locked.kind, locked.message.as_str()),
        (ErrorKind::Transient, "CT is locked (backup)")
    );
    // Nothing listens on loopback port 9 (discard): connection refused, worth a retry.
    let mut gone = config(&sim, Trust::InsecureSkipVerify, None);
    gone.endpoint = "https://127.0.0.1:9".into();
    sim.stop();
    let unreachable = ProxmoxClient::new(&gone)
        .unwrap()
        .version()
        .await
        .unwrap_err();
    assert_eq!(
        (unreachable.kind, unreachable.status),
        (ErrorKind::Transient, None),
        "{unreachable}"
    );
}
