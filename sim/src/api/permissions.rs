//! Who may call what. Every method's `permissions` from PVE's schema, evaluated as PVE's
//! `check_api2_permissions` and `exec_api2_perm_check` (`PVE/RPCEnvironment.pm`) do; the
//! checks PVE's handlers make inside (creating a guest, cloning one, reading another's
//! task); and the lists PVE filters to what the caller may see.

use super::{Call, PveError};
use crate::access::{Access, normalize_path};
use crate::state::Sim;
use serde_json::{Map, Value};

/// PVE's `raise_perm_exc`: 403 `Permission check failed` with the detail in brackets.
pub(super) fn denied(detail: Option<&str>) -> PveError {
    PveError {
        status: 403,
        message: match detail {
            Some(d) => format!("Permission check failed ({d})"),
            None => "Permission check failed".into(),
        },
        errors: None,
    }
}

/// The schema's `permissions` of the called method, for the caller.
pub(super) fn check_call(sim: &Sim, call: &Call) -> Result<(), PveError> {
    let authid = call.user.as_str();
    if authid == "root@pam" {
        return Ok(());
    }
    let perms = crate::schema::permissions(call.template, call.method);
    if perms.as_object().is_none_or(Map::is_empty) {
        return Err(denied(Some("user != root@pam")));
    }
    if matches!(perms["user"].as_str(), Some("all" | "world")) {
        return Ok(());
    }
    if perms["check"].is_array() {
        let access = &sim.cluster.access;
        return eval(access, authid, &perms["check"], &call.params, false).map(|_| ());
    }
    Err(denied(None))
}

/// One check: `Ok(false)` when it fails and `noerr` is set (as PVE's `$noerr`), else the
/// error PVE raises. `and` runs its parts without `noerr`, as PVE does.
fn eval(
    access: &Access,
    authid: &str,
    check: &Value,
    params: &Map<String, Value>,
    noerr: bool,
) -> Result<bool, PveError> {
    let items = check.as_array().map(Vec::as_slice).unwrap_or_default();
    let fail = |detail: Option<String>| refused(noerr, detail.as_deref());
    match items.first().and_then(Value::as_str).unwrap_or_default() {
        "and" => {
            for sub in &items[1..] {
                eval(access, authid, sub, params, false)?;
            }
            Ok(true)
        }
        "or" => {
            for sub in &items[1..] {
                if eval(access, authid, sub, params, true)? {
                    return Ok(true);
                }
            }
            fail(None)
        }
        "perm" => perm(access, authid, items, params, noerr),
        "userid-param" => userid_param(access, authid, items, params, noerr),
        "userid-group" => userid_group(access, authid, items, params, noerr),
        "perm-modify" => {
            let path = fill(items.get(1).and_then(Value::as_str).unwrap_or(""), params);
            match normalize_path(&path) {
                Some(path) => result(perm_modify(access, authid, &path), noerr),
                None => Ok(false),
            }
        }
        // PVE dies on a test it does not know; none in the schema is unknown.
        other => Err(PveError::server(format!(
            "unknown permission test '{other}'"
        ))),
    }
}

fn result(outcome: Result<(), String>, noerr: bool) -> Result<bool, PveError> {
    match outcome {
        Ok(()) => Ok(true),
        Err(detail) => refused(noerr, Some(&detail)),
    }
}

/// A failed check: `false` where PVE asks without an error (`noerr`), its 403 otherwise.
fn refused(noerr: bool, detail: Option<&str>) -> Result<bool, PveError> {
    if noerr {
        Ok(false)
    } else {
        Err(denied(detail))
    }
}

fn strings(v: Option<&Value>) -> Vec<&str> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// `["perm", PATH, [PRIVS], "any", 1, "require_param", NAME]`.
fn perm(
    access: &Access,
    authid: &str,
    items: &[Value],
    params: &Map<String, Value>,
    noerr: bool,
) -> Result<bool, PveError> {
    let option = |name: &str| {
        items
            .iter()
            .skip(3)
            .position(|v| v == name)
            .and_then(|i| items.get(i + 4))
    };
    if let Some(required) = option("require_param").and_then(Value::as_str)
        && !params.contains_key(required)
    {
        return refused(noerr, None);
    }
    let any = option("any").is_some_and(|v| v == 1 || v == "1");
    let path = fill(items.get(1).and_then(Value::as_str).unwrap_or(""), params);
    let path = normalize_path(&path).unwrap_or(path);
    let privs = strings(items.get(2));
    result(access.check(authid, &path, &privs, any), noerr)
}

/// `["userid-param", "self" | "Realm.AllocateUser"]`.
fn userid_param(
    access: &Access,
    authid: &str,
    items: &[Value],
    params: &Map<String, Value>,
    noerr: bool,
) -> Result<bool, PveError> {
    let userid = text(params, "userid");
    match items.get(1).and_then(Value::as_str) {
        Some("self") => {
            if !user_exists(access, &userid, noerr)? {
                return Ok(false);
            }
            if authid == userid {
                return Ok(true);
            }
            refused(noerr, None)
        }
        _ => {
            let realm = userid.rsplit_once('@').map_or("", |(_, r)| r);
            let path = format!("/access/realm/{realm}");
            result(
                access.check(authid, &path, &["Realm.AllocateUser"], false),
                noerr,
            )
        }
    }
}

/// `["userid-group", [PRIVS], "groups_param", "create" | "update"]`: the privileges on
/// `/access/groups`, or on every group named and on a group the user is in.
fn userid_group(
    access: &Access,
    authid: &str,
    items: &[Value],
    params: &Map<String, Value>,
    noerr: bool,
) -> Result<bool, PveError> {
    let privs = strings(items.get(1));
    let groups_param = items.get(3).and_then(Value::as_str);
    let userid = text(params, "userid");
    let check_existing = groups_param != Some("create");
    if check_existing && !user_exists(access, &userid, noerr)? {
        return Ok(false);
    }
    if access.check(authid, "/access/groups", &privs, true).is_ok() {
        return Ok(true);
    }
    let allowed: Vec<&String> = access
        .groups
        .keys()
        .filter(|g| {
            access
                .check(authid, &format!("/access/groups/{g}"), &privs, true)
                .is_ok()
        })
        .collect();
    if groups_param.is_some() {
        let named = split_list(&text(params, "groups"));
        if named.is_empty() {
            return Err(denied(Some(&format!(
                "/access/groups, {}",
                privs.join("|")
            ))));
        }
        if let Some(g) = named.iter().find(|g| !allowed.iter().any(|a| a == g)) {
            let detail = format!("/access/groups/{g}, {}", privs.join("|"));
            return Err(denied(Some(&detail)));
        }
    }
    if check_existing {
        let member = access
            .users
            .get(&userid)
            .is_some_and(|u| allowed.iter().any(|g| u.groups.contains(*g)));
        if !member {
            return refused(noerr, None);
        }
    }
    Ok(true)
}

/// PVE's `check_perm_modify`: `Permissions.Modify`, or the allocation privilege of the
/// kind of object the path names.
pub(super) fn perm_modify(access: &Access, authid: &str, path: &str) -> Result<(), String> {
    let mut privs = vec!["Permissions.Modify"];
    if path.starts_with("/storage/") {
        privs.push("Datastore.Allocate");
    } else if path.starts_with("/vms/") {
        privs.push("VM.Allocate");
    } else if path.starts_with("/pool/") {
        privs.push("Pool.Allocate");
    }
    access.check(authid, path, &privs, true)
}

fn user_exists(access: &Access, userid: &str, noerr: bool) -> Result<bool, PveError> {
    match access.users.contains_key(userid) {
        true => Ok(true),
        false if noerr => Ok(false),
        false => Err(PveError::server(format!("no such user ('{userid}')"))),
    }
}

fn text(params: &Map<String, Value>, name: &str) -> String {
    match params.get(name) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// PVE's `split_list`: commas, semicolons, NULs and white space.
pub fn split_list(text: &str) -> Vec<String> {
    text.split(|c: char| c == ',' || c == ';' || c == '\0' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// PVE's `template_replace`: `{name}` from the request's parameters.
fn fill(template: &str, params: &Map<String, Value>) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        out.push_str(&rest[..open]);
        out.push_str(&text(params, &rest[open + 1..open + close]));
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}

/// A check a handler makes itself (PVE's `$rpcenv->check`), for any caller but root@pam.
pub(super) fn require(sim: &Sim, call: &Call, path: &str, privs: &[&str]) -> Result<(), PveError> {
    if call.user == "root@pam" {
        return Ok(());
    }
    result(
        sim.cluster.access.check(&call.user, path, privs, false),
        false,
    )
    .map(|_| ())
}

/// What creating a guest needs beyond the schema's `user: all`: `VM.Allocate` on the
/// guest (or its pool: PVE's `check_vm_perm`), `Datastore.AllocateSpace` on each storage a
/// disk is made on, and for a privileged container `Sys.Modify` on `/`. The template's own
/// storage is not checked (simplified).
pub(super) fn create_guest(
    sim: &Sim,
    call: &Call,
    storages: &[String],
    privileged_ct: bool,
) -> Result<(), PveError> {
    let vmid = call.text("vmid").unwrap_or_default();
    let in_pool = call.text("pool").is_some_and(|pool| {
        call.user == "root@pam"
            || sim
                .cluster
                .access
                .check(
                    &call.user,
                    &format!("/pool/{pool}"),
                    &["VM.Allocate"],
                    false,
                )
                .is_ok()
    });
    if !in_pool {
        require(sim, call, &format!("/vms/{vmid}"), &["VM.Allocate"])?;
    }
    if privileged_ct {
        require(sim, call, "/", &["Sys.Modify"])?;
    }
    for storage in storages {
        require(
            sim,
            call,
            &format!("/storage/{storage}"),
            &["Datastore.AllocateSpace"],
        )?;
    }
    Ok(())
}

/// A task's status and log: its owner (a user sees its tokens' tasks too), or
/// `Sys.Audit` on the node.
pub(super) fn task(sim: &Sim, call: &Call) -> Result<(), PveError> {
    let upid = call.text("upid").unwrap_or_default();
    let Some(task) = sim.cluster.tasks.get(&upid) else {
        return Ok(());
    };
    let owner_user = task.user.split('!').next().unwrap_or_default();
    if task.user == call.user || owner_user == call.user {
        return Ok(());
    }
    require(
        sim,
        call,
        &format!("/nodes/{}", call.node()),
        &["Sys.Audit"],
    )
}

/// A list as PVE returns it to this caller: guests it has `VM.Audit` on, storages it has
/// `Datastore.Audit` or `Datastore.AllocateSpace` on, pools it has `Pool.Audit` on.
pub(super) fn visible(sim: &Sim, call: &Call, list: Value) -> Value {
    if call.user == "root@pam" {
        return list;
    }
    let access = &sim.cluster.access;
    let may = |path: String, privs: &[&str]| access.check(&call.user, &path, privs, true).is_ok();
    let shown = |item: &Value| {
        let id = |k: &str| match &item[k] {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        if let Some(vmid) = id("vmid") {
            may(format!("/vms/{vmid}"), &["VM.Audit"])
        } else if let Some(storage) = id("storage") {
            let privs = ["Datastore.Audit", "Datastore.AllocateSpace"];
            may(format!("/storage/{storage}"), &privs)
        } else if let Some(pool) = id("poolid").or_else(|| id("pool")) {
            may(format!("/pool/{pool}"), &["Pool.Audit"])
        } else {
            true
        }
    };
    match list {
        Value::Array(items) => Value::Array(items.into_iter().filter(|i| shown(i)).collect()),
        other => other,
    }
}
