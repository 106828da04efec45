//! Access control through the API, without a network: what `phoenix setup` does as root
//! (user, role, ACL, token), and what a token with too few privileges then gets.

use crate::api::PveError;
use crate::cluster::{Cluster, Guest, GuestKind};
use crate::server::{Auth, Server};
use crate::test_server::{ROOT_TOKEN, server_with};
use serde_json::{Map, Value, json};

fn server() -> Server {
    let mut cluster = Cluster::new(1);
    let config = [
        ("hostname", "granite"),
        ("rootfs", "local-zfs:subvol-100-disk-0,size=8G"),
        ("memory", "512"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .into();
    let guest = Guest::new(100, "phoenix", GuestKind::Lxc, config);
    cluster.guests.insert(100, guest);
    server_with(cluster, None)
}

fn params(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

fn call(
    server: &Server,
    authorization: &str,
    method: &str,
    path: &str,
    body: Value,
) -> Result<Value, PveError> {
    let auth = Auth {
        authorization,
        cookie: "",
        csrf: "",
    };
    server.api(method, path, params(body), &auth)
}

fn root(server: &Server, method: &str, path: &str, body: Value) -> Result<Value, PveError> {
    call(server, ROOT_TOKEN, method, path, body)
}

/// `phoenix@pve` and its token `controller` (privilege separation on): its header.
fn controller_token(server: &Server) -> String {
    root(
        server,
        "POST",
        "/access/users",
        json!({"userid": "phoenix@pve"}),
    )
    .unwrap();
    let created = root(
        server,
        "POST",
        "/access/users/phoenix@pve/token/controller",
        json!({}),
    )
    .unwrap();
    format!(
        "PVEAPIToken={}={}",
        created["full-tokenid"].as_str().unwrap(),
        created["value"].as_str().unwrap()
    )
}

fn grant(server: &Server, path: &str, role: &str) {
    for who in [
        ("users", "phoenix@pve"),
        ("tokens", "phoenix@pve!controller"),
    ] {
        let mut body = json!({"path": path, "roles": role, "propagate": "1"});
        body[who.0] = json!(who.1);
        root(server, "PUT", "/access/acl", body).unwrap();
    }
}

fn guests_seen(server: &Server, token: &str) -> usize {
    let resources = call(server, token, "GET", "/cluster/resources", json!({})).unwrap();
    let listed = call(server, token, "GET", "/nodes/phoenix/lxc", json!({})).unwrap();
    let in_resources = resources
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r.get("vmid").is_some())
        .count();
    assert_eq!(in_resources, listed.as_array().unwrap().len());
    in_resources
}

#[test]
fn a_token_shows_its_secret_once_and_never_keeps_it() {
    let server = server();
    let header = controller_token(&server);
    let secret = header.rsplit_once('=').unwrap().1.to_owned();
    assert_eq!(uuid::Uuid::parse_str(&secret).map(|_| ()), Ok(()));
    let read = root(
        &server,
        "GET",
        "/access/users/phoenix@pve/token/controller",
        json!({}),
    )
    .unwrap();
    assert_eq!(read, json!({"privsep": 1}));
    let again = root(
        &server,
        "POST",
        "/access/users/phoenix@pve/token/controller",
        json!({}),
    )
    .unwrap_err();
    assert_eq!(
        (again.status, again.errors.unwrap()["tokenid"].clone()),
        (400, json!("Token already exists."))
    );
    let sim = server.sim();
    let saved = serde_json::to_string(&sim.cluster).unwrap();
    let printed = format!("{:?}", sim.cluster.access);
    for text in [saved, printed] {
        assert!(!text.contains(&secret) && !text.contains("root-secret"));
        assert!(!text.contains("root-password"));
    }
}

#[test]
fn a_separated_token_without_acls_gets_403_and_sees_no_guests() {
    let server = server();
    let token = controller_token(&server);
    let denied = call(
        &server,
        &token,
        "GET",
        "/nodes/phoenix/lxc/100/config",
        json!({}),
    )
    .unwrap_err();
    assert_eq!(denied.status, 403);
    assert_eq!(
        denied.message,
        "Permission check failed (/vms/100, VM.Audit)"
    );
    assert_eq!(guests_seen(&server, &token), 0);
    // Granted to the user only: a separated token still has nothing.
    root(
        &server,
        "PUT",
        "/access/acl",
        json!({"path": "/vms", "roles": "PVEAuditor", "users": "phoenix@pve"}),
    )
    .unwrap();
    assert_eq!(guests_seen(&server, &token), 0);
    grant(&server, "/vms", "PVEAuditor");
    assert_eq!(guests_seen(&server, &token), 1);
    let config = call(
        &server,
        &token,
        "GET",
        "/nodes/phoenix/lxc/100/config",
        json!({}),
    );
    assert_eq!(config.unwrap()["hostname"], "granite");
}

#[test]
fn creating_and_cloning_need_pves_privileges() {
    let server = server();
    let token = controller_token(&server);
    grant(&server, "/vms", "PVEAuditor");
    let clone = call(
        &server,
        &token,
        "POST",
        "/nodes/phoenix/lxc/100/clone",
        json!({"newid": "101"}),
    )
    .unwrap_err();
    assert_eq!(
        (clone.status, clone.message.as_str()),
        (403, "Permission check failed (/vms/100, VM.Clone)")
    );
    let create = call(
        &server,
        &token,
        "POST",
        "/nodes/phoenix/lxc",
        json!({"vmid": "200", "ostemplate": "local:vztmpl/x.tar.zst", "rootfs": "local-zfs:8", "unprivileged": "1"}),
    )
    .unwrap_err();
    assert_eq!(
        create.message,
        "Permission check failed (/vms/200, VM.Allocate)"
    );
    grant(&server, "/vms", "PVEVMAdmin");
    let create = call(
        &server,
        &token,
        "POST",
        "/nodes/phoenix/lxc",
        json!({"vmid": "200", "ostemplate": "local:vztmpl/x.tar.zst", "rootfs": "local-zfs:8", "unprivileged": "1"}),
    )
    .unwrap_err();
    assert_eq!(
        create.message,
        "Permission check failed (/storage/local-zfs, Datastore.AllocateSpace)"
    );
}

#[test]
fn roles_refuse_unknown_privileges_and_builtins_stay_as_they_are() {
    let server = server();
    let unknown = root(
        &server,
        "POST",
        "/access/roles",
        json!({"roleid": "PhoenixController", "privs": "VM.Audit,VM.Monitor"}),
    )
    .unwrap_err();
    assert_eq!(
        unknown.errors.unwrap()["privs"],
        "invalid format - invalid privilege 'VM.Monitor'"
    );
    let privs = "VM.Audit,VM.Clone,VM.GuestAgent.Audit";
    root(
        &server,
        "POST",
        "/access/roles",
        json!({"roleid": "PhoenixController", "privs": privs}),
    )
    .unwrap();
    let role = root(&server, "GET", "/access/roles/PhoenixController", json!({})).unwrap();
    assert_eq!(
        role,
        json!({"VM.Audit": 1, "VM.Clone": 1, "VM.GuestAgent.Audit": 1})
    );
    root(
        &server,
        "PUT",
        "/access/roles/PhoenixController",
        json!({"privs": "VM.Allocate", "append": "1"}),
    )
    .unwrap();
    let role = root(&server, "GET", "/access/roles/PhoenixController", json!({})).unwrap();
    assert_eq!(role.as_object().unwrap().len(), 4);
    let twice = root(
        &server,
        "POST",
        "/access/roles",
        json!({"roleid": "PhoenixController"}),
    )
    .unwrap_err();
    assert_eq!(
        twice.message,
        "create role failed: role 'PhoenixController' already exists"
    );
    let builtin = root(
        &server,
        "PUT",
        "/access/roles/PVEAuditor",
        json!({"privs": "VM.Allocate"}),
    )
    .unwrap_err();
    assert_eq!(
        (builtin.status, builtin.message.as_str()),
        (500, "auto-generated role 'PVEAuditor' cannot be modified")
    );
    let deleted = root(&server, "DELETE", "/access/roles/Administrator", json!({})).unwrap_err();
    assert_eq!(
        deleted.message,
        "auto-generated role 'Administrator' cannot be deleted"
    );
}

#[test]
fn creating_the_same_user_twice_fails_as_pve_does() {
    let server = server();
    let body = json!({"userid": "phoenix@pve", "comment": "Phoenix"});
    root(&server, "POST", "/access/users", body.clone()).unwrap();
    let twice = root(&server, "POST", "/access/users", body).unwrap_err();
    assert_eq!(
        (twice.status, twice.message.as_str()),
        (500, "create user failed: user 'phoenix@pve' already exists")
    );
    let users = root(&server, "GET", "/access/users", json!({})).unwrap();
    let ids: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["userid"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["phoenix@pve", "root@pam"]);
}

#[test]
fn a_pve_user_logs_in_with_its_password_until_disabled() {
    let server = server();
    let body = json!({"userid": "ops@pve", "password": "ops-password"});
    root(&server, "POST", "/access/users", body).unwrap();
    let login = json!({"username": "ops@pve", "password": "ops-password"});
    let ticket = root(&server, "POST", "/access/ticket", login.clone()).unwrap();
    let cookie = format!("PVEAuthCookie={}", ticket["ticket"].as_str().unwrap());
    let auth = Auth {
        authorization: "",
        cookie: &cookie,
        csrf: "",
    };
    // Logged in, with no privileges: the permissions it has are none.
    let perms = server.api("GET", "/access/permissions", Map::new(), &auth);
    assert_eq!(perms, Ok(json!({})));
    let wrong = json!({"username": "ops@pve", "password": "nope-nope"});
    assert_eq!(
        root(&server, "POST", "/access/ticket", wrong)
            .unwrap_err()
            .status,
        401
    );
    let disable = json!({"enable": "0"});
    root(&server, "PUT", "/access/users/ops@pve", disable).unwrap();
    assert_eq!(
        server
            .api("GET", "/version", Map::new(), &auth)
            .unwrap_err()
            .status,
        401
    );
    assert_eq!(
        root(&server, "POST", "/access/ticket", login)
            .unwrap_err()
            .status,
        401
    );
}

#[test]
fn an_expired_token_or_a_wrong_secret_is_refused() {
    let server = server();
    let token = controller_token(&server);
    assert!(call(&server, &token, "GET", "/version", json!({})).is_ok());
    let wrong = format!("{}x", token.trim_end_matches(char::is_alphanumeric));
    assert_eq!(
        call(&server, &wrong, "GET", "/version", json!({}))
            .unwrap_err()
            .status,
        401
    );
    root(
        &server,
        "PUT",
        "/access/users/phoenix@pve/token/controller",
        json!({"expire": "1"}),
    )
    .unwrap();
    let expired = call(&server, &token, "GET", "/version", json!({})).unwrap_err();
    assert_eq!(
        (expired.status, expired.message.as_str()),
        (401, "Authentication failed!")
    );
}

#[test]
fn the_access_state_survives_a_restart() {
    let server = server();
    controller_token(&server);
    grant(&server, "/", "PVEAuditor");
    let saved = serde_json::to_vec(&server.sim().cluster).unwrap();
    let cluster: Cluster = serde_json::from_slice(&saved).unwrap();
    assert_eq!(cluster.access, server.sim().cluster.access);
    assert_eq!(cluster.access.acl.len(), 2);
}
