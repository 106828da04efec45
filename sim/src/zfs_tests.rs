//! A node's storage through the API and its shell, without a network: ZFS pools made
//! with `disks/zfs` (their detail, their refusals), datasets with `zfs create|set|list`,
//! NFS exports with `exportfs`, and the cluster's storage configuration (`/storage`).

use crate::api::PveError;
use crate::cluster::Cluster;
use crate::server::{Auth, Server};
use crate::test_server::{ROOT_TOKEN, server_with};
use http_body_util::BodyExt;
use serde_json::{Map, Value, json};
use std::sync::Arc;

fn server() -> Arc<Server> {
    Arc::new(server_with(Cluster::new(1), None))
}

fn api(server: &Server, method: &str, path: &str, body: Value) -> Result<Value, PveError> {
    let auth = Auth {
        authorization: ROOT_TOKEN,
        cookie: "",
        csrf: "",
    };
    let params: Map<String, Value> = body.as_object().cloned().unwrap_or_default();
    server.api(method, path, params, &auth)
}

fn ok(server: &Server, method: &str, path: &str, body: Value) -> Value {
    api(server, method, path, body).unwrap_or_else(|e| panic!("{method} {path}: {e:?}"))
}

/// A refusal's status and message.
fn refused(server: &Server, method: &str, path: &str, body: Value) -> (u16, String) {
    let e = api(server, method, path, body).expect_err("refused");
    (e.status, e.message)
}

async fn admin(server: &Arc<Server>, method: &str, path: &str, body: Value) -> Value {
    let body = serde_json::to_vec(&body).expect("JSON");
    let response = server.clone().admin_request(method, path, "", &body).await;
    assert_eq!(response.status().as_u16(), 200, "{method} {path}");
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    serde_json::from_slice(&bytes).expect("JSON")
}

async fn exec(server: &Arc<Server>, line: &str) -> (i64, String) {
    let answer = admin(
        server,
        "POST",
        "/nodes/phoenix/exec",
        json!({"command": ["sh", "-c", line]}),
    )
    .await;
    (
        answer["exitcode"].as_i64().expect("exitcode"),
        answer["output"].as_str().expect("output").to_owned(),
    )
}

const ZFS: &str = "/nodes/phoenix/disks/zfs";

fn names(list: &Value, key: &str) -> Vec<String> {
    list.as_array()
        .expect("list")
        .iter()
        .map(|i| i[key].as_str().expect("name").to_owned())
        .collect()
}

#[tokio::test]
async fn a_mirror_made_through_the_api_is_a_pool_a_dataset_and_a_storage() {
    let server = server();
    let upid = ok(
        &server,
        "POST",
        ZFS,
        json!({"name": "fastData2", "raidlevel": "mirror",
        "devices": "/dev/nvme1n1,/dev/nvme2n1", "compression": "lz4", "add_storage": 1}),
    );
    assert!(
        upid.as_str()
            .unwrap()
            .contains(":zfscreate:fastData2:root@pam!phoenix:"),
        "{upid}"
    );
    let pools = ok(&server, "GET", ZFS, json!({}));
    assert_eq!(names(&pools, "name"), ["fastData2", "rpool"]);
    assert_eq!(
        pools[0]["size"], 1_000_204_886_016u64,
        "a mirror is one side"
    );
    assert_eq!(pools[0]["health"], "ONLINE");
    let detail = ok(&server, "GET", &format!("{ZFS}/fastData2"), json!({}));
    assert_eq!(
        (detail["name"].as_str(), detail["state"].as_str()),
        (Some("fastData2"), Some("ONLINE"))
    );
    let top = &detail["children"][0];
    assert_eq!(
        top["name"], "fastData2",
        "the pool heads its config, as zpool status prints it"
    );
    let mirror = &top["children"][0];
    assert_eq!(
        (mirror["name"].as_str(), mirror["leaf"].as_i64()),
        (Some("mirror-0"), Some(0))
    );
    assert_eq!(
        names(&mirror["children"], "name"),
        [
            "/dev/disk/by-id/nvme-Samsung_SSD_980_PRO_1TB_S5GXNX0T100002B-part1",
            "/dev/disk/by-id/nvme-Samsung_SSD_980_PRO_1TB_S5GXNX0T100003C-part1"
        ]
    );
    let disks = ok(&server, "GET", "/nodes/phoenix/disks/list", json!({}));
    let used: Vec<&str> = disks
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["used"].as_str())
        .collect();
    assert_eq!(
        used,
        ["ZFS", "ZFS", "ZFS"],
        "nvme0n1 (rpool) and the mirror's two"
    );
    let unused = ok(
        &server,
        "GET",
        "/nodes/phoenix/disks/list",
        json!({"type": "unused"}),
    );
    assert_eq!(
        names(&unused, "devpath"),
        ["/dev/sda", "/dev/sdb", "/dev/sdc", "/dev/sdd", "/dev/sde"]
    );
    let storage = ok(&server, "GET", "/storage/fastData2", json!({}));
    assert_eq!(
        (
            &storage["type"],
            &storage["pool"],
            &storage["nodes"],
            &storage["content"]
        ),
        (
            &json!("zfspool"),
            &json!("fastData2"),
            &json!("phoenix"),
            &json!("rootdir,images")
        )
    );
    let listed = exec(
        &server,
        "zfs list -H -p -o name,compression,recordsize,mountpoint -t filesystem fastData2",
    )
    .await;
    assert_eq!(listed, (0, "fastData2\tlz4\t131072\t/fastData2\n".into()));
    let state = admin(&server, "GET", "/nodes/phoenix/zfs", Value::Null).await;
    assert_eq!(
        state["pools"]["fastData2"],
        json!({"raidlevel": "mirror", "health": "ONLINE",
        "devices": ["/dev/nvme1n1", "/dev/nvme2n1"]})
    );
    assert_eq!(
        state["datasets"]["fastData2"],
        json!({"compression": "lz4", "mountpoint": "/fastData2"})
    );
}

#[tokio::test]
async fn raidz2_groups_its_disks_under_raidz2_0_and_counts_parity_in_its_size() {
    let server = server();
    ok(
        &server,
        "POST",
        ZFS,
        json!({"name": "slowData2", "raidlevel": "raidz2",
        "devices": "/dev/sda /dev/sdb /dev/sdc /dev/sdd"}),
    );
    let detail = ok(&server, "GET", &format!("{ZFS}/slowData2"), json!({}));
    let raidz = &detail["children"][0]["children"][0];
    assert_eq!(raidz["name"], "raidz2-0");
    assert_eq!(raidz["children"].as_array().unwrap().len(), 4);
    assert_eq!(raidz["children"][3]["leaf"], 1);
    let pools = ok(&server, "GET", ZFS, json!({}));
    assert_eq!(pools[1]["name"], "slowData2");
    assert_eq!(pools[1]["size"], 16 * 1_000_204_886_016u64);
    assert!(
        api(&server, "GET", "/storage/slowData2", json!({})).is_err(),
        "no add_storage, no storage"
    );
}

#[tokio::test]
async fn refused_pools_change_nothing() {
    let server = server();
    let before = admin(&server, "GET", "/nodes/phoenix/zfs", Value::Null).await;
    let storages = ok(&server, "GET", "/storage", json!({}));
    let cases = [
        (
            json!({"name": "tank", "raidlevel": "single", "devices": "/dev/nvme0n1"}),
            "device '/dev/nvme0n1' is already in use",
        ),
        (
            json!({"name": "tank", "raidlevel": "single", "devices": "/dev/sdz"}),
            "not a valid block device",
        ),
        (
            json!({"name": "tank", "raidlevel": "raidz2", "devices": "/dev/sda,/dev/sdb,/dev/sdc"}),
            "raidz2 needs at least 4 disks",
        ),
        (
            json!({"name": "tank", "raidlevel": "raid10", "devices": "/dev/sda,/dev/sdb,/dev/sdc"}),
            "raid10 needs an even number of disks",
        ),
        (
            json!({"name": "tank", "raidlevel": "single", "devices": "/dev/sda,/dev/sdb"}),
            "please give only one disk for single disk mode",
        ),
        (
            json!({"name": "rpool", "raidlevel": "single", "devices": "/dev/sda"}),
            "pool 'rpool' already exists on node 'phoenix'",
        ),
        (
            json!({"name": "fastData", "raidlevel": "mirror", "devices": "/dev/sda,/dev/sdb", "add_storage": 1}),
            "Storage ID 'fastData' already exists on node phoenix",
        ),
    ];
    for (body, message) in cases {
        assert_eq!(
            refused(&server, "POST", ZFS, body.clone()),
            (500, message.to_owned()),
            "{body}"
        );
    }
    assert_eq!(
        admin(&server, "GET", "/nodes/phoenix/zfs", Value::Null).await,
        before
    );
    assert_eq!(ok(&server, "GET", "/storage", json!({})), storages);
    assert_eq!(
        admin(&server, "GET", "/tasks", Value::Null).await,
        json!([]),
        "no task started"
    );
    assert_eq!(
        refused(&server, "GET", &format!("{ZFS}/nope"), json!({})),
        (
            500,
            "command '/sbin/zpool status -P nope' failed: exit code 1".into()
        )
    );
}

#[tokio::test]
async fn datasets_are_made_and_listed_in_the_shell_with_inherited_values() {
    let server = server();
    ok(
        &server,
        "POST",
        ZFS,
        json!({"name": "fastData", "raidlevel": "single", "devices": "/dev/nvme1n1"}),
    );
    assert_eq!(
        exec(
            &server,
            "zfs create -p -o recordsize=1M fastData/media/films"
        )
        .await,
        (0, String::new())
    );
    assert_eq!(
        exec(&server, "zfs create -o mountpoint=/srv/iso fastData/ISOs")
            .await
            .0,
        0
    );
    assert_eq!(exec(&server, "zfs create fastData/ISOs/debian").await.0, 0);
    assert_eq!(
        exec(
            &server,
            "zfs set compression=zstd xattr=sa quota=100G fastData/media"
        )
        .await
        .0,
        0
    );
    let listed = exec(&server, "zfs list -H -p -o name,compression,recordsize,mountpoint,xattr,quota -t filesystem fastData -r").await;
    assert_eq!(
        listed.1,
        "fastData\ton\t131072\t/fastData\ton\t0\n\
         fastData/ISOs\ton\t131072\t/srv/iso\ton\t0\n\
         fastData/ISOs/debian\ton\t131072\t/srv/iso/debian\ton\t0\n\
         fastData/media\tzstd\t131072\t/fastData/media\tsa\t107374182400\n\
         fastData/media/films\tzstd\t1048576\t/fastData/media/films\tsa\t0\n"
    );
    assert_eq!(
        exec(&server, "zfs create nope/x").await,
        (1, "cannot create 'nope/x': no such pool 'nope'\n".into())
    );
    assert_eq!(
        exec(&server, "zfs create fastData/ISOs").await,
        (
            1,
            "cannot create 'fastData/ISOs': dataset already exists\n".into()
        )
    );
    // A scripted answer still wins, once.
    let answers = json!([{"matches": "zfs create", "exit": 1, "output": "cannot create 'fastData/x': out of space\n", "times": 1}]);
    admin(&server, "PUT", "/nodes/phoenix/answers", answers).await;
    assert_eq!(exec(&server, "zfs create fastData/x").await.0, 1);
    assert_eq!(exec(&server, "zfs create fastData/x").await.0, 0);
    let pools = exec(&server, "zpool list -H -o name,health").await;
    assert_eq!(pools.1, "fastData\tONLINE\nrpool\tONLINE\n");
}

#[tokio::test]
async fn exportfs_exports_dataset_paths_and_refuses_a_missing_one() {
    let server = server();
    ok(
        &server,
        "POST",
        ZFS,
        json!({"name": "fastData", "raidlevel": "single", "devices": "/dev/nvme1n1"}),
    );
    assert_eq!(exec(&server, "zfs create fastData/ISOs").await.0, 0);
    let exports = "/fastData/ISOs 10.0.0.0/24(rw,no_root_squash,no_subtree_check)\n";
    admin(
        &server,
        "PUT",
        "/nodes/phoenix/files",
        json!({"path": "/etc/exports.d/phoenix.exports", "content": exports}),
    )
    .await;
    assert_eq!(exec(&server, "exportfs -ra").await, (0, String::new()));
    assert_eq!(
        exec(&server, "exportfs -v").await.1,
        "/fastData/ISOs\t10.0.0.0/24(sync,wdelay,hide,no_subtree_check,sec=sys,rw,secure,no_root_squash,no_all_squash)\n"
    );
    let exported = json!([{"path": "/fastData/ISOs", "clients": ["10.0.0.0/24(rw,no_root_squash,no_subtree_check)"]}]);
    assert_eq!(
        admin(&server, "GET", "/nodes/phoenix/exports", Value::Null).await,
        exported
    );
    admin(
        &server,
        "PUT",
        "/nodes/phoenix/files",
        json!({"path": "/etc/exports", "content": "/srv/nfs *(ro)\n"}),
    )
    .await;
    assert_eq!(
        exec(&server, "exportfs -ra").await,
        (
            1,
            "exportfs: Failed to stat /srv/nfs: No such file or directory\n".into()
        )
    );
    assert_eq!(
        admin(&server, "GET", "/nodes/phoenix/exports", Value::Null).await,
        exported,
        "unchanged"
    );
}

#[test]
fn storages_are_created_updated_and_deleted_as_pve_checks_them() {
    let server = server();
    let made = ok(
        &server,
        "POST",
        "/storage",
        json!({"storage": "isos", "type": "dir", "path": "/fastData/ISOs",
        "content": "iso,vztmpl", "nodes": "phoenix"}),
    );
    assert_eq!(made, json!({"storage": "isos", "type": "dir"}));
    let listed = ok(&server, "GET", "/storage", json!({"type": "dir"}));
    assert_eq!(names(&listed, "storage"), ["local", "isos"]);
    assert_eq!(
        (&listed[1]["path"], &listed[1]["content"]),
        (&json!("/fastData/ISOs"), &json!("iso,vztmpl"))
    );
    let node_list = ok(&server, "GET", "/nodes/phoenix/storage", json!({}));
    assert!(names(&node_list, "storage").contains(&"isos".to_owned()));
    let resources = ok(
        &server,
        "GET",
        "/cluster/resources",
        json!({"type": "storage"}),
    );
    assert!(names(&resources, "storage").contains(&"isos".to_owned()));
    let cases = [
        (
            "POST",
            "/storage",
            json!({"storage": "isos", "type": "dir", "path": "/x"}),
            "create storage failed: storage ID 'isos' already defined",
        ),
        (
            "POST",
            "/storage",
            json!({"storage": "zz", "type": "zfspool"}),
            "missing value for required option 'pool'",
        ),
        (
            "POST",
            "/storage",
            json!({"storage": "nn", "type": "nfs", "server": "10.0.0.9"}),
            "missing value for required option 'export'",
        ),
        (
            "PUT",
            "/storage/fastData",
            json!({"pool": "other"}),
            "update storage failed: can't change value of fixed parameter 'pool'",
        ),
        (
            "PUT",
            "/storage/isos",
            json!({"sparse": 1}),
            "update storage failed: unexpected property 'sparse'",
        ),
        (
            "PUT",
            "/storage/isos",
            json!({"digest": "0000"}),
            "update storage failed: detected modified configuration - file changed by other user? Try again.",
        ),
        (
            "PUT",
            "/storage/isos",
            json!({"delete": "path"}),
            "update storage failed: unable to delete required option 'path'",
        ),
        (
            "DELETE",
            "/storage/gone",
            json!({}),
            "delete storage failed: storage 'gone' does not exist",
        ),
    ];
    let before = ok(&server, "GET", "/storage", json!({}));
    for (method, path, body, message) in cases {
        assert_eq!(
            refused(&server, method, path, body.clone()),
            (500, message.to_owned()),
            "{method} {body}"
        );
    }
    assert_eq!(
        ok(&server, "GET", "/storage", json!({})),
        before,
        "refusals change nothing"
    );
    let digest = listed[1]["digest"].clone();
    ok(
        &server,
        "PUT",
        "/storage/isos",
        json!({"digest": digest, "nodes": "elsewhere", "delete": "content"}),
    );
    let isos = ok(&server, "GET", "/storage/isos", json!({}));
    assert_eq!(
        (&isos["nodes"], &isos["content"]),
        (&json!("elsewhere"), &json!("images,rootdir"))
    );
    let node_list = ok(&server, "GET", "/nodes/phoenix/storage", json!({}));
    assert!(
        !names(&node_list, "storage").contains(&"isos".to_owned()),
        "restricted to another node"
    );
    ok(&server, "DELETE", "/storage/isos", json!({}));
    assert!(api(&server, "GET", "/storage/isos", json!({})).is_err());
}
