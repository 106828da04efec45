//! The QEMU guest agent path of guest exec against the simulator: commands with their
//! output and exit codes, files written with their mode, and the agent's refusals.

use phoenix_clients::exec::ExecError;
use phoenix_clients::exec::agent::Agent;
use phoenix_clients::proxmox::{Config, GuestType, ProxmoxClient, TaskOutcome, Trust};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

async fn vm_with_agent() -> (phoenix_sim::Running, Agent) {
    let options = phoenix_sim::Options {
        durations: [("default".to_string(), Duration::ZERO)].into(),
        ..Default::default()
    };
    let sim = phoenix_sim::start(options).await.expect("simulator starts");
    let c = &sim.credentials;
    let client = ProxmoxClient::new(&Config {
        endpoint: c.url.clone(),
        token_id: c.token_id.clone(),
        token_secret: c.token_secret.clone(),
        trust: Trust::Fingerprint(c.fingerprint.clone()),
        timeout: WAIT,
    })
    .unwrap();
    let create = [
        ("vmid", "700"),
        ("name", "agent-vm"),
        ("agent", "1"),
        ("memory", "1024"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()));
    let upid = client
        .create("phoenix", GuestType::Qemu, &create.to_vec())
        .await
        .unwrap();
    finish(&client, &upid).await;
    let upid = client
        .power("phoenix", GuestType::Qemu, 700, "start")
        .await
        .unwrap();
    finish(&client, &upid).await;
    let agent = Agent {
        client,
        node: "phoenix".into(),
        vmid: 700,
    };
    (sim, agent)
}

async fn finish(client: &ProxmoxClient, upid: &phoenix_clients::proxmox::Upid) {
    for _ in 0..50 {
        if client.task(upid).await.unwrap().outcome() != TaskOutcome::Running {
            return;
        }
    }
    panic!("task {upid} never finished");
}

fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

#[tokio::test]
async fn the_agent_runs_commands_keeps_exit_codes_and_writes_files() {
    let (sim, agent) = vm_with_agent().await;
    // The agent answers a moment after boot; until then PVE says it is not running.
    let out = loop {
        match agent.exec(&argv(&["echo", "hello"]), WAIT).await {
            Ok(out) => break out,
            Err(ExecError::Refused(m)) if m.contains("not running") => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!((out.exit_code, out.output.as_str()), (0, "hello\n"));
    let missing = agent
        .exec(&argv(&["cat", "/etc/nothing"]), WAIT)
        .await
        .unwrap();
    assert_eq!(missing.exit_code, 1);
    assert!(missing.output.contains("No such file"));
    agent
        .push("/etc/motd", b"managed by phoenix\n", "0644", WAIT)
        .await
        .unwrap();
    let motd = agent
        .exec(&argv(&["cat", "/etc/motd"]), WAIT)
        .await
        .unwrap();
    assert_eq!(motd.output, "managed by phoenix\n");
    let inside = sim.server.sim().cluster.guests[&700].inside.clone();
    assert_eq!(inside.mode("/etc/motd"), Some(0o644));
    sim.stop();
}

#[tokio::test]
async fn a_file_pushed_through_the_agent_is_never_readable_beyond_its_mode() {
    let (sim, agent) = vm_with_agent().await;
    loop {
        match agent.exec(&argv(&["echo", "up"]), WAIT).await {
            Ok(_) => break,
            Err(ExecError::Refused(m)) if m.contains("not running") => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("{e}"),
        }
    }
    // Once over a new file, once over one that was world-readable.
    for _ in 0..2 {
        agent
            .push("/etc/ssl/private/key.pem", b"PRIVATE KEY\n", "0600", WAIT)
            .await
            .unwrap();
        let inside = sim.server.sim().cluster.guests[&700].inside.clone();
        let key = "/etc/ssl/private/key.pem";
        assert_eq!(inside.files[key], "PRIVATE KEY\n");
        assert_eq!(inside.mode(key), Some(0o600));
        assert_eq!(
            inside.written_with.get(key).map(|m| format!("{m:04o}")),
            Some("0600".into()),
            "the key was written into a file others could read: {:?}",
            inside.log
        );
        let left: Vec<&String> = inside.files.keys().filter(|f| *f != key).collect();
        assert!(left.is_empty(), "nothing left beside the file: {left:?}");
        sim.server
            .sim()
            .cluster
            .guests
            .get_mut(&700)
            .unwrap()
            .inside
            .modes
            .insert(key.into(), 0o644);
    }
    sim.stop();
}
