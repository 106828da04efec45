//! `make bench`: the PVE simulator's throughput for status reads, so that it never becomes
//! the bottleneck of controller benchmarks. In-process simulator, 16 concurrent clients
//! over HTTPS keep-alive connections on 127.0.0.1.

use std::time::{Duration, Instant};

const CLIENTS: usize = 16;
const REQUESTS_PER_CLIENT: usize = 500;

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let options = phoenix_sim::Options {
        durations: [("default".to_string(), Duration::ZERO)].into(),
        ..Default::default()
    };
    let sim = phoenix_sim::start(options)
        .await
        .expect("the simulator starts");
    let creds = sim.credentials.clone();
    // The bench talks to its own simulator on loopback; its certificate is self-signed.
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let auth = format!("PVEAPIToken={}={}", creds.token_id, creds.token_secret);
    let create = client
        .post(format!("{}/api2/json/nodes/phoenix/lxc", creds.url))
        .header("Authorization", &auth)
        .form(&[
            ("vmid", "801"),
            (
                "ostemplate",
                "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
            ),
            ("rootfs", "local-zfs:8"),
        ])
        .send()
        .await
        .unwrap();
    assert!(create.status().is_success());
    let started = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (client, auth, url) = (
                client.clone(),
                auth.clone(),
                format!(
                    "{}/api2/json/nodes/phoenix/lxc/801/status/current",
                    creds.url
                ),
            );
            tokio::spawn(async move {
                for _ in 0..REQUESTS_PER_CLIENT {
                    let r = client
                        .get(&url)
                        .header("Authorization", &auth)
                        .send()
                        .await
                        .unwrap();
                    assert!(r.status().is_success());
                    r.bytes().await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let total = CLIENTS * REQUESTS_PER_CLIENT;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "PVE simulator benchmark ({} build, 2 cores)",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    println!(
        "  status reads:       {:>8.0} requests/s   ({total} GET status/current, {CLIENTS} clients)",
        total as f64 / seconds
    );
    sim.stop();
}
