//! Secrets at rest: the data directory holds every Secret (in the SQLite store), the
//! admin token and the serving key, so it is the owner's alone — 0700, and the database
//! with its WAL and shared-memory files 0600 — whatever the umask, and an existing
//! directory that was looser is tightened.

use phoenix_apiserver::store::Write;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// The permission bits, in octal as `stat` shows them.
fn mode(path: &Path) -> String {
    let mode = std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode();
    format!("{:04o}", mode & 0o7777)
}

/// Starts the server on `dir`, writes a Secret, and checks the modes while it runs (the
/// WAL and shared-memory files exist only while the store is open).
async fn start_write_and_check(dir: &Path) {
    let running = phoenix_apiserver::start(phoenix_apiserver::Config {
        limits: Default::default(),
        data_dir: dir.to_owned(),
        listen: "127.0.0.1:0".into(),
    })
    .await
    .expect("server starts");
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "pve", "namespace": "default"},
        "data": {"token": "c2VjcmV0"},
    });
    running
        .state
        .store
        .write(Write::Put {
            key: "/api/v1/secrets/default/pve".into(),
            value: secret,
            expect: None,
        })
        .await
        .expect("the Secret is stored");
    assert_eq!(mode(dir), "0700", "data directory");
    for file in ["phoenix.db", "phoenix.db-wal", "phoenix.db-shm"] {
        assert_eq!(mode(&dir.join(file)), "0600", "{file}");
    }
    for file in ["token", "server.key", "kubeconfig"] {
        assert_eq!(mode(&dir.join(file)), "0600", "{file}");
    }
    running.shutdown().await;
}

#[tokio::test]
async fn a_new_data_directory_is_0700_and_the_database_0600() {
    let parent = tempfile::tempdir().unwrap();
    // A permissive parent and umask must not leak into the data directory.
    std::fs::set_permissions(parent.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    start_write_and_check(&parent.path().join("data")).await;
}

#[tokio::test]
async fn an_existing_looser_data_directory_and_database_are_tightened() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("data");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    // A store made by an earlier version: world-readable files.
    {
        let running = phoenix_apiserver::start(phoenix_apiserver::Config {
            limits: Default::default(),
            data_dir: dir.clone(),
            listen: "127.0.0.1:0".into(),
        })
        .await
        .expect("server starts");
        running.shutdown().await;
    }
    for file in ["phoenix.db", "phoenix.db-wal", "phoenix.db-shm"] {
        let path = dir.join(file);
        if path.exists() {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    start_write_and_check(&dir).await;
}
