//! `make bench`: the embedded API server's figures, printed. A real `phoenix apiserver`
//! process on 127.0.0.1, driven by kube-rs over HTTPS:
//! durable creates per second, LIST of 10,000 objects, write→watch-event latency with 50
//! watchers, and the server's RSS holding 10,000 objects.

mod common;

use common::{rss_kib, rss_parts, timed_get};
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const OBJECTS: usize = 10_000;
const WRITERS: usize = 32;
const WATCHERS: usize = 50;
const PINGS: usize = 200;

fn cm(name: String, value: String) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("value".to_string(), value)])),
        ..Default::default()
    }
}

fn micros_now() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, kubeconfig) = common::launch(
        &["apiserver", "--listen", "127.0.0.1:0"],
        dir.path(),
        "warn",
    );
    let kc = Kubeconfig::read_from(&kubeconfig).unwrap();
    let client = kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .unwrap(),
    )
    .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let rss_empty = rss_kib(server.id());

    // Durable creates, WRITERS at a time.
    let started = Instant::now();
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| {
            let api = api.clone();
            tokio::spawn(async move {
                for i in (w..OBJECTS).step_by(WRITERS) {
                    api.create(
                        &PostParams::default(),
                        &cm(format!("obj-{i:05}"), "x".repeat(200)),
                    )
                    .await
                    .expect("create");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let writes_per_second = OBJECTS as f64 / started.elapsed().as_secs_f64();

    // LIST of every object, as raw bytes (no client-side decoding in the figure).
    let mut list_ms = Vec::new();
    for _ in 0..5 {
        let (bytes, ms) = timed_get(&client, "/api/v1/namespaces/default/configmaps").await;
        assert!(bytes.len() > OBJECTS * 200);
        list_ms.push(ms);
    }
    list_ms.sort_by(f64::total_cmp);
    let rss_full = rss_kib(server.id());
    let parts_full = rss_parts(server.id());

    // Write → event latency with WATCHERS watchers on one object.
    api.create(
        &PostParams::default(),
        &cm("ping".into(), micros_now().to_string()),
    )
    .await
    .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<f64>();
    let mut ready = Vec::new();
    for _ in 0..WATCHERS {
        let (api, tx) = (api.clone(), tx.clone());
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        ready.push(ready_rx);
        tokio::spawn(async move {
            let params = WatchParams::default()
                .fields("metadata.name=ping")
                .timeout(120);
            let rv = api
                .get("ping")
                .await
                .unwrap()
                .metadata
                .resource_version
                .unwrap();
            let mut stream = api.watch(&params, &rv).await.unwrap().boxed();
            let _ = ready_tx.send(());
            while let Some(Ok(WatchEvent::Modified(c))) = stream.next().await {
                let sent: u128 = c.data.unwrap()["value"].parse().unwrap();
                let _ = tx.send((micros_now() - sent) as f64 / 1000.0);
            }
        });
    }
    for r in ready {
        r.await.unwrap();
    }
    let mut latencies = Vec::with_capacity(PINGS * WATCHERS);
    let mut write_ms = Vec::with_capacity(PINGS);
    for _ in 0..PINGS {
        let sent = micros_now();
        let patch = Patch::Merge(serde_json::json!({"data": {"value": sent.to_string()}}));
        api.patch("ping", &PatchParams::default(), &patch)
            .await
            .unwrap();
        write_ms.push((micros_now() - sent) as f64 / 1000.0);
        for _ in 0..WATCHERS {
            latencies.push(
                tokio::time::timeout(Duration::from_secs(10), rx.recv())
                    .await
                    .unwrap()
                    .unwrap(),
            );
        }
    }
    latencies.sort_by(f64::total_cmp);
    write_ms.sort_by(f64::total_cmp);
    let _ = server.kill();
    let _ = server.wait();

    println!(
        "apiserver benchmark ({} build, 2 cores, synchronous=FULL durable writes)",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    println!(
        "  creates:            {writes_per_second:>8.0} writes/s   ({OBJECTS} objects, {WRITERS} concurrent clients; goal >= 2000)"
    );
    println!(
        "  LIST {OBJECTS} objects:  {:>8.1} ms median  (min {:.1}; goal <= 100)",
        percentile(&list_ms, 0.5),
        list_ms[0]
    );
    println!(
        "  watch latency:      {:>8.2} ms p50, {:.2} ms p99   (write sent -> event received, {WATCHERS} watchers x {PINGS} writes; goal p99 <= 5)",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99)
    );
    println!(
        "    of which the durable write itself: {:.2} ms p50, {:.2} ms p99 (request, fsync, answer)",
        percentile(&write_ms, 0.5),
        percentile(&write_ms, 0.99)
    );
    println!(
        "  RSS:                {:>8.1} MiB with {OBJECTS} objects  ({:.1} MiB empty; goal <= 50); {parts_full}",
        rss_full as f64 / 1024.0,
        rss_empty as f64 / 1024.0
    );
}
