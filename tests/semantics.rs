//! Object semantics as kube-apiserver has them, through kube-rs: namespace deletion
//! cascades, ownerReference garbage collection, CRD deletion removes its objects,
//! consistent pagination, dry-run, generation and the status subresource, and streaming
//! lists (`sendInitialEvents`).

mod support;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;
use kube::runtime::{WatchStreamExt, watcher};
use phoenix_crds::LxcGuest;
use std::time::Duration;

fn cm(name: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        ..Default::default()
    }
}

async fn gone<K>(api: Api<K>, name: &str)
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    tokio::time::timeout(
        Duration::from_secs(20),
        await_condition(api, name, |obj: Option<&K>| obj.is_none()),
    )
    .await
    .unwrap_or_else(|_| panic!("{name} should be deleted"))
    .unwrap();
}

#[tokio::test]
async fn namespace_deletion_cascades_and_waits_for_finalizers() {
    let server = support::ApiServer::start();
    let client = support::client(&server).await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: ObjectMeta {
                    name: Some("doomed".into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "doomed");
    cms.create(&PostParams::default(), &cm("plain"))
        .await
        .unwrap();
    let mut held = cm("held");
    held.metadata.finalizers = Some(vec!["test/hold".into()]);
    cms.create(&PostParams::default(), &held).await.unwrap();
    namespaces
        .delete("doomed", &DeleteParams::default())
        .await
        .unwrap();
    gone(cms.clone(), "plain").await;
    let ns = namespaces.get("doomed").await.unwrap();
    assert_eq!(ns.status.unwrap().phase.as_deref(), Some("Terminating"));
    let err = cms
        .create(&PostParams::default(), &cm("late"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("being terminated"), "{err}");
    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Json::<()>(
            serde_json::from_value(
                serde_json::json!([{"op": "remove", "path": "/metadata/finalizers"}]),
            )
            .unwrap(),
        ),
    )
    .await
    .unwrap();
    gone(namespaces, "doomed").await;
}

#[tokio::test]
async fn owned_objects_are_garbage_collected() {
    let server = support::ApiServer::start();
    let client = support::client(&server).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let owner = cms
        .create(&PostParams::default(), &cm("owner"))
        .await
        .unwrap();
    let reference = OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: "owner".into(),
        uid: owner.metadata.uid.clone().unwrap(),
        controller: Some(true),
        ..Default::default()
    };
    let owned = Secret {
        metadata: ObjectMeta {
            name: Some("owned".into()),
            owner_references: Some(vec![reference]),
            ..Default::default()
        },
        ..Default::default()
    };
    secrets
        .create(&PostParams::default(), &owned)
        .await
        .unwrap();
    secrets
        .create(
            &PostParams::default(),
            &Secret {
                metadata: ObjectMeta {
                    name: Some("free".into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .unwrap();
    cms.delete("owner", &DeleteParams::default()).await.unwrap();
    gone(secrets.clone(), "owned").await;
    assert!(
        secrets.get("free").await.is_ok(),
        "objects without owners stay"
    );
}

#[tokio::test]
async fn deleting_a_crd_removes_its_objects_and_serving() {
    let server = support::ApiServer::start();
    let client = support::client(&server).await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = support::lxc_crd();
    crds.create(&PostParams::default(), &crd).await.unwrap();
    let guests: Api<LxcGuest> = Api::namespaced(client.clone(), "default");
    let example: LxcGuest = support::example("lxc-103.yaml");
    guests
        .create(&PostParams::default(), &example)
        .await
        .unwrap();
    crds.delete("lxcguests.phoenix.thinkheads.ai", &DeleteParams::default())
        .await
        .unwrap();
    gone(crds.clone(), "lxcguests.phoenix.thinkheads.ai").await;
    let err = guests.list(&ListParams::default()).await.unwrap_err();
    assert!(
        err.to_string().contains("404") || err.to_string().contains("could not find"),
        "{err}"
    );
    // Re-created, the kind starts empty.
    crds.create(&PostParams::default(), &crd).await.unwrap();
    assert!(
        guests
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn pages_dry_runs_generation_and_status() {
    let server = support::ApiServer::start();
    let client = support::client(&server).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    for i in 0..7 {
        cms.create(&PostParams::default(), &cm(&format!("page-{i}")))
            .await
            .unwrap();
    }
    let first = cms.list(&ListParams::default().limit(3)).await.unwrap();
    assert_eq!(first.items.len(), 3);
    assert_eq!(first.metadata.remaining_item_count, Some(4));
    let token = first.metadata.continue_.clone().unwrap();
    let second = cms
        .list(&ListParams::default().limit(3).continue_token(&token))
        .await
        .unwrap();
    let third = cms
        .list(
            &ListParams::default()
                .limit(3)
                .continue_token(&second.metadata.continue_.clone().unwrap()),
        )
        .await
        .unwrap();
    let names: Vec<String> = [first.items, second.items, third.items]
        .concat()
        .into_iter()
        .map(|c| c.metadata.name.unwrap())
        .collect();
    assert_eq!(
        names,
        (0..7).map(|i| format!("page-{i}")).collect::<Vec<_>>()
    );
    assert!(third.metadata.continue_.is_none());

    let dry = cms
        .create(
            &PostParams {
                dry_run: true,
                ..Default::default()
            },
            &cm("dry"),
        )
        .await
        .unwrap();
    assert_eq!(dry.metadata.name.as_deref(), Some("dry"));
    assert!(
        cms.get_opt("dry").await.unwrap().is_none(),
        "a dry run stores nothing"
    );

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &support::lxc_crd())
        .await
        .unwrap();
    let guests: Api<LxcGuest> = Api::namespaced(client.clone(), "default");
    let example: LxcGuest = support::example("lxc-801.yaml");
    let created = guests
        .create(&PostParams::default(), &example)
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    let labelled = guests
        .patch(
            "granite-embedding",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"labels": {"a": "b"}}})),
        )
        .await
        .unwrap();
    assert_eq!(
        labelled.metadata.generation,
        Some(1),
        "metadata changes leave generation alone"
    );
    let status = guests
        .patch_status(
            "granite-embedding",
            &PatchParams::default(),
            &Patch::Merge(
                serde_json::json!({"status": {"state": "running"}, "spec": {"cores": 64}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        (status.metadata.generation, status.spec.common.cores),
        (Some(1), 8),
        "/status ignores the spec"
    );
    let respec = guests
        .patch(
            "granite-embedding",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"cores": 4}, "status": {"state": "hacked"}})),
        )
        .await
        .unwrap();
    assert_eq!(respec.metadata.generation, Some(2));
    assert_eq!(
        respec.status.unwrap().guest.state.as_deref(),
        Some("running"),
        "the main resource ignores status"
    );
}

#[tokio::test]
async fn streaming_lists_send_initial_events_then_a_bookmark() {
    let server = support::ApiServer::start();
    let client = support::client(&server).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    for i in 0..5 {
        cms.create(&PostParams::default(), &cm(&format!("s-{i}")))
            .await
            .unwrap();
    }
    let mut stream = watcher(cms.clone(), watcher::Config::default().streaming_lists()).boxed();
    let mut initial = Vec::new();
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match event {
            watcher::Event::InitApply(c) => initial.push(c.metadata.name.unwrap()),
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(
        initial,
        (0..5).map(|i| format!("s-{i}")).collect::<Vec<_>>()
    );
    cms.create(&PostParams::default(), &cm("s-live"))
        .await
        .unwrap();
    let live = tokio::time::timeout(Duration::from_secs(10), stream.applied_objects().next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(live.metadata.name.as_deref(), Some("s-live"));
}

/// A delete racing other writers (a controller patching the object while it is being
/// marked for deletion) is redone from a fresh read, as kube-apiserver does, not answered
/// with 409; a delete with a stale resourceVersion precondition still is.
#[tokio::test(flavor = "multi_thread")]
async fn deletes_racing_writers_are_retried_but_preconditions_still_hold() {
    let server = support::ApiServer::start();
    let client = support::client(&server).await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    for i in 0..20 {
        let name = format!("raced-{i}");
        let mut object = cm(&name);
        object.metadata.finalizers = Some(vec!["example.com/hold".into()]);
        api.create(&PostParams::default(), &object).await.unwrap();
        let writer = {
            let (api, name) = (api.clone(), name.clone());
            tokio::spawn(async move {
                for n in 0..30 {
                    let patch = serde_json::json!({"data": {"n": n.to_string()}});
                    let _ = api
                        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await;
                }
            })
        };
        api.delete(&name, &DeleteParams::default())
            .await
            .unwrap_or_else(|e| panic!("delete of {name} while it is written: {e}"));
        writer.await.unwrap();
        let marked = api.get(&name).await.unwrap();
        assert!(marked.metadata.deletion_timestamp.is_some());
    }
    let stale = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            resource_version: Some("1".into()),
            uid: None,
        }),
        ..Default::default()
    };
    let refused = api.delete("raced-0", &stale).await.unwrap_err();
    assert!(
        matches!(refused, kube::Error::Api(ref s) if s.code == 409),
        "{refused:?}"
    );

    // A collection delete racing the same writers marks every object, skipping none.
    let names: Vec<String> = (0..10).map(|i| format!("batch-{i}")).collect();
    for name in &names {
        let mut object = cm(name);
        object.metadata.finalizers = Some(vec!["example.com/hold".into()]);
        object.metadata.labels = Some([("batch".to_string(), "yes".to_string())].into());
        api.create(&PostParams::default(), &object).await.unwrap();
    }
    let writers: Vec<_> = names
        .iter()
        .map(|name| {
            let (api, name) = (api.clone(), name.clone());
            tokio::spawn(async move {
                for n in 0..20 {
                    let patch = serde_json::json!({"data": {"n": n.to_string()}});
                    let _ = api
                        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await;
                }
            })
        })
        .collect();
    api.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("batch=yes"),
    )
    .await
    .unwrap();
    for writer in writers {
        writer.await.unwrap();
    }
    for name in &names {
        let object = api.get(name).await.unwrap();
        assert!(
            object.metadata.deletion_timestamp.is_some(),
            "{name} skipped"
        );
    }
}
