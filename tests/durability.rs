//! Durability: 1,000 writes from concurrent clients, SIGKILL at a random moment, restart
//! on the same data directory: every acknowledged write is there, resource versions keep
//! increasing, and a watch resumes from a revision seen before the crash.

mod support;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta, PostParams, WatchEvent, WatchParams};
use rand::Rng;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn cm(name: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("written".to_string(), name.to_string())])),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_sigkill() {
    const WRITES: usize = 1000;
    const WRITERS: usize = 8;
    let kill_after = rand::rng().random_range(100..900);
    println!("killing after {kill_after} acknowledged writes");
    let server = support::ApiServer::start();
    let port = server.url().rsplit(':').next().unwrap().to_owned();
    let api: Api<ConfigMap> = Api::namespaced(support::client(&server).await, "default");
    let acked: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
    let (killed_tx, killed_rx) = tokio::sync::watch::channel(false);
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (api, acked, mut killed) = (api.clone(), acked.clone(), killed_rx.clone());
        writers.push(tokio::spawn(async move {
            for i in (w..WRITES).step_by(WRITERS) {
                if *killed.borrow_and_update() {
                    return;
                }
                let name = format!("w-{i:04}");
                if let Ok(created) = api.create(&PostParams::default(), &cm(&name)).await {
                    let rv = created.metadata.resource_version.unwrap().parse().unwrap();
                    acked.lock().unwrap().push((name, rv));
                }
            }
        }));
    }
    // Kill once enough writes are acknowledged, while the writers are still busy.
    loop {
        if acked.lock().unwrap().len() >= kill_after {
            break;
        }
        tokio::task::yield_now().await;
    }
    let temp = server.kill();
    let _ = killed_tx.send(true);
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= kill_after);

    let restarted = support::ApiServer::start_in_at(
        temp.as_ref().unwrap().path(),
        &format!("127.0.0.1:{port}"),
    );
    let api: Api<ConfigMap> = Api::namespaced(support::client(&restarted).await, "default");
    let list = api.list(&Default::default()).await.unwrap();
    let stored: BTreeMap<String, u64> = list
        .items
        .iter()
        .map(|c| {
            (
                c.metadata.name.clone().unwrap(),
                c.metadata
                    .resource_version
                    .clone()
                    .unwrap()
                    .parse()
                    .unwrap(),
            )
        })
        .collect();
    for (name, rv) in &acked {
        assert_eq!(
            stored.get(name),
            Some(rv),
            "acknowledged write {name} (rv {rv}) survives the crash"
        );
    }
    let max_acked = acked.iter().map(|(_, rv)| *rv).max().unwrap();
    let list_rv: u64 = list.metadata.resource_version.unwrap().parse().unwrap();
    assert!(list_rv >= max_acked);

    // A watch from a revision seen before the crash resumes with what came after it.
    let resume_from = acked[acked.len() / 2].1;
    let mut watch = api
        .watch(
            &WatchParams::default().timeout(10),
            &resume_from.to_string(),
        )
        .await
        .unwrap()
        .boxed();
    let after = api
        .create(&PostParams::default(), &cm("after-restart"))
        .await
        .unwrap();
    let after_rv: u64 = after.metadata.resource_version.unwrap().parse().unwrap();
    assert!(
        after_rv > list_rv,
        "resource versions keep increasing across the restart"
    );
    let mut seen = Vec::new();
    while let Some(event) = tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .unwrap()
    {
        if let WatchEvent::Added(c) = event.unwrap() {
            let rv: u64 = c.metadata.resource_version.unwrap().parse().unwrap();
            seen.push(rv);
            if rv == after_rv {
                break;
            }
        }
    }
    let expected: Vec<u64> = stored
        .values()
        .copied()
        .filter(|rv| *rv > resume_from)
        .chain([after_rv])
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(
        seen, expected,
        "every change after the resume point, in order"
    );
}
