//! `/access`: users and their API tokens, groups, roles, ACLs, the caller's permissions
//! and passwords, with the shapes and messages of PVE's `PVE/API2/{User,Group,Role,ACL,
//! AccessControl}.pm`. Failures inside PVE's `lock_user_config` carry its prefix
//! (`create user failed: ...`).

use super::permissions::{denied, perm_modify, split_list};
use super::{ApiResult, Call, PveError};
use crate::access::{Access, AclEntry, Group, Token, UgidKind, User, normalize_path, sha256_hex};
use crate::state::Sim;
use regex::Regex;
use serde_json::{Map, Value, json};
use std::sync::LazyLock;

pub(super) fn dispatch(sim: &mut Sim, call: &Call) -> ApiResult {
    let now = crate::cluster::now_s();
    let access = &mut sim.cluster.access;
    let rest = call.template.trim_start_matches("/access");
    match (call.method, rest) {
        ("GET", "/users") => Ok(users(access, call)),
        ("POST", "/users") => locked("create user failed", create_user(access, call)),
        ("GET", "/users/{userid}") => user(access, &userid(call)).map(|u| user_json(u, true)),
        ("PUT", "/users/{userid}") => locked("update user failed", update_user(access, call)),
        ("DELETE", "/users/{userid}") => Ok(delete_user(access, &userid(call))),
        ("GET", "/users/{userid}/token") => tokens(access, call),
        ("GET", "/users/{userid}/token/{tokenid}") => {
            token(access, call).map(|t| token_json(t, None))
        }
        ("POST", "/users/{userid}/token/{tokenid}") => create_token(access, call),
        ("PUT", "/users/{userid}/token/{tokenid}") => update_token(access, call),
        ("DELETE", "/users/{userid}/token/{tokenid}") => {
            token(access, call)?;
            let name = call.text("tokenid").unwrap_or_default();
            if let Some(u) = access.users.get_mut(&userid(call)) {
                u.tokens.remove(&name);
            }
            Ok(Value::Null)
        }
        ("GET", "/groups") => Ok(groups(access)),
        ("POST", "/groups") => locked("create group failed", create_group(access, call)),
        ("PUT", "/groups/{groupid}") => locked("update group failed", update_group(access, call)),
        ("GET", "/roles") => Ok(roles(access)),
        ("POST", "/roles") => create_role(access, call),
        ("GET", "/roles/{roleid}") => read_role(access, call),
        ("PUT", "/roles/{roleid}") => update_role(access, call),
        ("DELETE", "/roles/{roleid}") => delete_role(access, call),
        ("GET", "/acl") => Ok(acl(access, call)),
        ("PUT", "/acl") => update_acl(access, call),
        ("GET", "/permissions") => permissions(access, call),
        ("PUT", "/password") => password(access, call, now),
        _ => Err(PveError {
            status: 501,
            message: format!("Method '{} {}' not implemented", call.method, call.template),
            errors: None,
        }),
    }
}

/// A failure inside PVE's `lock_user_config` is prefixed with what was being done.
fn locked(doing: &str, result: ApiResult) -> ApiResult {
    result.map_err(|e| match e.status {
        500 => PveError::server(format!("{doing}: {}", e.message)),
        _ => e,
    })
}

fn userid(call: &Call) -> String {
    call.text("userid").unwrap_or_default()
}

fn text(call: &Call, name: &str) -> Option<String> {
    call.text(name).filter(|t| !t.is_empty())
}

fn user<'a>(access: &'a Access, userid: &str) -> Result<&'a User, PveError> {
    access
        .users
        .get(userid)
        .ok_or_else(|| PveError::server(format!("no such user ('{userid}')")))
}

fn user_json(user: &User, full: bool) -> Value {
    let mut v = json!({"enable": user.enable as u8, "expire": user.expire});
    for (k, field) in [
        ("comment", &user.comment),
        ("email", &user.email),
        ("firstname", &user.firstname),
        ("lastname", &user.lastname),
    ] {
        if let Some(value) = field {
            v[k] = json!(value);
        }
    }
    if full {
        v["groups"] = json!(user.groups);
        let tokens: Map<String, Value> = user
            .tokens
            .iter()
            .map(|(name, t)| (name.clone(), token_json(t, None)))
            .collect();
        v["tokens"] = Value::Object(tokens);
    }
    v
}

fn token_json(token: &Token, name: Option<&str>) -> Value {
    let mut v = json!({"privsep": token.privsep as u8});
    if token.expire != 0 {
        v["expire"] = json!(token.expire);
    }
    if let Some(comment) = &token.comment {
        v["comment"] = json!(comment);
    }
    if let Some(name) = name {
        v["tokenid"] = json!(name);
    }
    v
}

/// Every user the caller may administer (`User.Modify` or `Sys.Audit` on
/// `/access/groups`), else itself.
fn users(access: &Access, call: &Call) -> Value {
    let privs = ["User.Modify", "Sys.Audit"];
    let all = access
        .check(&call.user, "/access/groups", &privs, true)
        .is_ok();
    let caller = call.user.split('!').next().unwrap_or_default();
    let full = call.flag("full");
    let enabled = call.params.get("enabled").map(|_| call.flag("enabled"));
    let list = access
        .users
        .iter()
        .filter(|(id, _)| all || *id == caller)
        .filter(|(_, u)| enabled.is_none_or(|e| e == u.enable))
        .map(|(id, u)| {
            let mut v = user_json(u, false);
            v["userid"] = json!(id);
            if let Some((_, realm)) = id.rsplit_once('@')
                && matches!(realm, "pam" | "pve")
            {
                v["realm-type"] = json!(realm);
            }
            if full {
                v["groups"] = json!(u.groups.iter().cloned().collect::<Vec<_>>().join(","));
                let tokens: Vec<Value> = u
                    .tokens
                    .iter()
                    .map(|(name, t)| token_json(t, Some(name)))
                    .collect();
                v["tokens"] = json!(tokens);
            }
            v
        })
        .collect();
    Value::Array(list)
}

/// `groups` of a create or update: each must exist.
fn named_groups(access: &Access, call: &Call) -> Result<Vec<String>, PveError> {
    let groups = split_list(&call.text("groups").unwrap_or_default());
    match groups.iter().find(|g| !access.groups.contains_key(*g)) {
        Some(g) => Err(PveError::server(format!("no such group '{g}'"))),
        None => Ok(groups),
    }
}

/// A password for a user of the `pam` or `pve` realm (PVE's `domain_set_password`).
fn set_password(user: &mut User, userid: &str, password: &str) -> Result<(), PveError> {
    let realm = userid.rsplit_once('@').map_or("", |(_, r)| r);
    if !matches!(realm, "pam" | "pve") {
        return Err(PveError::server(format!(
            "auth domain '{realm}' does not exist"
        )));
    }
    user.password_sha256 = Some(sha256_hex(password));
    Ok(())
}

fn create_user(access: &mut Access, call: &Call) -> ApiResult {
    let id = userid(call);
    if access.users.contains_key(&id) {
        return Err(PveError::server(format!("user '{id}' already exists")));
    }
    let mut user = User {
        enable: call.params.get("enable").is_none() || call.flag("enable"),
        expire: call
            .text("expire")
            .and_then(|e| e.parse().ok())
            .unwrap_or(0),
        groups: named_groups(access, call)?.into_iter().collect(),
        ..Default::default()
    };
    apply_fields(&mut user, call);
    if let Some(password) = call.text("password") {
        set_password(&mut user, &id, &password)?;
    }
    access.users.insert(id, user);
    Ok(Value::Null)
}

fn apply_fields(user: &mut User, call: &Call) {
    for (name, field) in [
        ("comment", &mut user.comment),
        ("email", &mut user.email),
        ("firstname", &mut user.firstname),
        ("lastname", &mut user.lastname),
    ] {
        if let Some(value) = call.text(name) {
            *field = Some(value).filter(|v| !v.is_empty());
        }
    }
}

fn update_user(access: &mut Access, call: &Call) -> ApiResult {
    let id = userid(call);
    user(access, &id)?;
    let groups = named_groups(access, call)?;
    let user = access.users.get_mut(&id).expect("checked above");
    if call.params.contains_key("enable") {
        user.enable = call.flag("enable");
    }
    if let Some(expire) = call.text("expire").and_then(|e| e.parse().ok()) {
        user.expire = expire;
    }
    if call.params.contains_key("groups") && !call.flag("append") {
        user.groups.clear();
    }
    user.groups.extend(groups);
    apply_fields(user, call);
    Ok(Value::Null)
}

/// As PVE, deleting a user that does not exist succeeds; the user's ACL entries go with it.
fn delete_user(access: &mut Access, id: &str) -> Value {
    access.users.remove(id);
    access
        .acl
        .retain(|e| !(e.kind == UgidKind::User && e.ugid == id));
    Value::Null
}

fn tokens(access: &Access, call: &Call) -> ApiResult {
    let user = user(access, &userid(call))?;
    Ok(Value::Array(
        user.tokens
            .iter()
            .map(|(name, t)| token_json(t, Some(name)))
            .collect(),
    ))
}

fn token<'a>(access: &'a Access, call: &Call) -> Result<&'a Token, PveError> {
    let (id, name) = (userid(call), call.text("tokenid").unwrap_or_default());
    user(access, &id)?
        .tokens
        .get(&name)
        .ok_or_else(|| PveError::server(format!("no such token '{name}' for user '{id}'")))
}

/// The secret is in this answer only; the state keeps its digest.
fn create_token(access: &mut Access, call: &Call) -> ApiResult {
    let (id, name) = (userid(call), call.text("tokenid").unwrap_or_default());
    let user = access
        .users
        .get_mut(&id)
        .ok_or_else(|| PveError::server(format!("no such user ('{id}')")))?;
    if user.tokens.contains_key(&name) {
        return Err(PveError::param("tokenid", "Token already exists."));
    }
    let secret = uuid::Uuid::new_v4().to_string();
    let token = Token {
        privsep: call.params.get("privsep").is_none() || call.flag("privsep"),
        expire: call
            .text("expire")
            .and_then(|e| e.parse().ok())
            .unwrap_or(0),
        comment: text(call, "comment"),
        secret_sha256: sha256_hex(&secret),
    };
    let info = token_json(&token, None);
    user.tokens.insert(name.clone(), token);
    Ok(json!({"full-tokenid": format!("{id}!{name}"), "info": info, "value": secret}))
}

fn update_token(access: &mut Access, call: &Call) -> ApiResult {
    token(access, call)?;
    let (id, name) = (userid(call), call.text("tokenid").unwrap_or_default());
    let deleted = split_list(&call.text("delete").unwrap_or_default());
    if let Some(k) = deleted.iter().find(|k| *k != "comment") {
        return Err(PveError::param("delete", format!("unknown option '{k}'")));
    }
    let token = access
        .users
        .get_mut(&id)
        .and_then(|u| u.tokens.get_mut(&name))
        .expect("checked above");
    if call.params.contains_key("privsep") {
        token.privsep = call.flag("privsep");
    }
    if let Some(expire) = call.text("expire").and_then(|e| e.parse().ok()) {
        token.expire = expire;
    }
    if call.params.contains_key("comment") {
        token.comment = text(call, "comment");
    }
    if !deleted.is_empty() {
        token.comment = None;
    }
    let mut answer = token_json(token, None);
    if call.flag("regenerate") {
        let secret = uuid::Uuid::new_v4().to_string();
        token.secret_sha256 = sha256_hex(&secret);
        answer["value"] = json!(secret);
        answer["full-tokenid"] = json!(format!("{id}!{name}"));
    }
    Ok(answer)
}

fn groups(access: &Access) -> Value {
    Value::Array(
        access
            .groups
            .iter()
            .map(|(id, g)| {
                let members: Vec<&String> = access
                    .users
                    .iter()
                    .filter(|(_, u)| u.groups.contains(id))
                    .map(|(u, _)| u)
                    .collect();
                let mut v = json!({"groupid": id, "users": members.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")});
                if let Some(c) = &g.comment {
                    v["comment"] = json!(c);
                }
                v
            })
            .collect(),
    )
}

fn create_group(access: &mut Access, call: &Call) -> ApiResult {
    let id = call.text("groupid").unwrap_or_default();
    if access.groups.contains_key(&id) {
        return Err(PveError::server(format!("group '{id}' already exists")));
    }
    let comment = text(call, "comment");
    access.groups.insert(id, Group { comment });
    Ok(Value::Null)
}

fn update_group(access: &mut Access, call: &Call) -> ApiResult {
    let id = call.text("groupid").unwrap_or_default();
    let group = access
        .groups
        .get_mut(&id)
        .ok_or_else(|| PveError::server(format!("group '{id}' does not exist")))?;
    if call.params.contains_key("comment") {
        group.comment = text(call, "comment");
    }
    Ok(Value::Null)
}

fn roles(access: &Access) -> Value {
    let mut all = crate::access::builtin_roles();
    let builtin: Vec<String> = all.keys().cloned().collect();
    all.extend(access.roles.clone());
    Value::Array(
        all.into_iter()
            .map(|(id, privs)| {
                let privs: Vec<String> = privs.into_iter().collect();
                json!({"roleid": id, "privs": privs.join(","), "special": builtin.contains(&id) as u8})
            })
            .collect(),
    )
}

fn roleid(call: &Call) -> String {
    call.text("roleid").unwrap_or_default()
}

fn create_role(access: &mut Access, call: &Call) -> ApiResult {
    let id = roleid(call);
    if id.to_ascii_lowercase().starts_with("pve") {
        return Err(PveError::param(
            "roleid",
            "cannot use role ID starting with the (case-insensitive) 'PVE' namespace",
        ));
    }
    if access.role(&id).is_some() {
        return Err(PveError::server(format!(
            "create role failed: role '{id}' already exists"
        )));
    }
    let privs = split_list(&call.text("privs").unwrap_or_default());
    access.roles.insert(id, privs.into_iter().collect());
    Ok(Value::Null)
}

fn read_role(access: &Access, call: &Call) -> ApiResult {
    let id = roleid(call);
    let privs = access
        .role(&id)
        .ok_or_else(|| PveError::server(format!("role '{id}' does not exist")))?;
    Ok(Value::Object(
        privs.into_iter().map(|p| (p, json!(1))).collect(),
    ))
}

fn update_role(access: &mut Access, call: &Call) -> ApiResult {
    let id = roleid(call);
    if crate::access::is_builtin_role(&id) {
        return Err(PveError::server(format!(
            "auto-generated role '{id}' cannot be modified"
        )));
    }
    let Some(privs) = access.roles.get_mut(&id) else {
        return Err(PveError::server(format!(
            "update role failed: role '{id}' does not exist"
        )));
    };
    if !call.flag("append") {
        privs.clear();
    }
    privs.extend(split_list(&call.text("privs").unwrap_or_default()));
    Ok(Value::Null)
}

fn delete_role(access: &mut Access, call: &Call) -> ApiResult {
    let id = roleid(call);
    if crate::access::is_builtin_role(&id) {
        return Err(PveError::server(format!(
            "auto-generated role '{id}' cannot be deleted"
        )));
    }
    if access.roles.remove(&id).is_none() {
        return Err(PveError::server(format!(
            "delete role failed: role '{id}' does not exist"
        )));
    }
    Ok(Value::Null)
}

/// The entries on paths where the caller may change permissions (all with `Sys.Audit` on
/// `/access`).
fn acl(access: &Access, call: &Call) -> Value {
    let audit = call.user == "root@pam"
        || access
            .check(&call.user, "/access", &["Sys.Audit"], false)
            .is_ok();
    Value::Array(
        access
            .acl
            .iter()
            .filter(|e| audit || perm_modify(access, &call.user, &e.path).is_ok())
            .map(|e| {
                json!({"path": e.path, "type": e.kind, "ugid": e.ugid, "roleid": e.roleid,
                       "propagate": e.propagate as u8})
            })
            .collect(),
    )
}

/// PVE's `check_path`: the ACL paths there are.
static ACL_PATH: LazyLock<Regex> = LazyLock::new(|| {
    let n = r"[[:alnum:]\.\-_]+";
    let a = r"[[:alnum:]]+";
    let sdn = ["dns", "fabrics", "ipams", "prefix-lists", "route-maps"]
        .map(|k| format!("|/sdn/{k}|/sdn/{k}/{a}"))
        .concat();
    Regex::new(&format!(
        r"^(/|/access|/access/groups|/access/groups/{n}|/access/realm|/access/realm/{n}|/nodes|/nodes/{n}|/pool|/pool/[A-Za-z0-9\.\-_]+(?:/[A-Za-z0-9\.\-_]+){{0,2}}|/sdn|/sdn/controllers|/sdn/controllers/[[:alnum:]_\-]+{sdn}|/sdn/zones|/sdn/zones/{n}|/sdn/zones/{n}/{n}|/sdn/zones/{n}/{n}/[1-9][0-9]{{0,3}}|/storage|/storage/{n}|/vms|/vms/[1-9][0-9]{{2,}}|/mapping|/mapping/{n}|/mapping/{n}/{n})$"
    ))
    .expect("static")
});

fn update_acl(access: &mut Access, call: &Call) -> ApiResult {
    let named = |k: &str| split_list(&call.text(k).unwrap_or_default());
    let (users, groups, tokens) = (named("users"), named("groups"), named("tokens"));
    if users.is_empty() && groups.is_empty() && tokens.is_empty() {
        let message = "either 'users', 'groups' or 'tokens' is required.";
        let errors = ["users", "groups", "tokens"]
            .map(|k| (k.to_string(), json!(message)))
            .into_iter()
            .collect();
        return Err(PveError::params(errors));
    }
    let raw = call.text("path").unwrap_or_default();
    let invalid = || PveError::param("path", format!("invalid ACL path '{raw}'"));
    let path = normalize_path(&raw).ok_or_else(invalid)?;
    let delete = call.flag("delete");
    if !delete && !ACL_PATH.is_match(&path) {
        return Err(invalid());
    }
    let propagate = call.params.get("propagate").is_none() || call.flag("propagate");
    let mut targets: Vec<(UgidKind, String)> = Vec::new();
    for role in named("roles") {
        let privs = access.role(&role).ok_or_else(|| {
            PveError::server(format!("ACL update failed: role '{role}' does not exist"))
        })?;
        limit_to_own(access, call, &path, &role, &privs, propagate && !delete)?;
        targets.clear();
        for g in &groups {
            if !access.groups.contains_key(g) {
                return Err(PveError::server(format!(
                    "ACL update failed: group '{g}' does not exist"
                )));
            }
            targets.push((UgidKind::Group, g.clone()));
        }
        for u in &users {
            if !access.users.contains_key(u) {
                return Err(PveError::server(format!(
                    "ACL update failed: user '{u}' does not exist"
                )));
            }
            targets.push((UgidKind::User, u.clone()));
        }
        for t in &tokens {
            token_exists(access, t)?;
            targets.push((UgidKind::Token, t.clone()));
        }
        for (kind, ugid) in &targets {
            set_entry(
                access,
                &path,
                *kind,
                ugid,
                &role,
                (!delete).then_some(propagate),
            );
        }
    }
    Ok(Value::Null)
}

fn token_exists(access: &Access, tokenid: &str) -> Result<(), PveError> {
    let fail = |m: String| PveError::server(format!("ACL update failed: {m}"));
    let (id, name) = crate::access::split_tokenid(tokenid).ok_or_else(|| {
        fail(format!(
            "'{tokenid}' is not a valid token ID - not able to split into user and token parts"
        ))
    })?;
    let user = access
        .users
        .get(id)
        .ok_or_else(|| fail(format!("no such user ('{id}')")))?;
    match user.tokens.contains_key(name) {
        true => Ok(()),
        false => Err(fail(format!("no such token '{name}' for user '{id}'"))),
    }
}

/// Without `Permissions.Modify` on the path a caller may hand out (or take back) only
/// privileges it has there itself, propagated when the entry propagates.
fn limit_to_own(
    access: &Access,
    call: &Call,
    path: &str,
    role: &str,
    privs: &std::collections::BTreeSet<String>,
    propagating: bool,
) -> Result<(), PveError> {
    let own = access.privileges(&call.user, path);
    if own.contains_key("Permissions.Modify") {
        return Ok(());
    }
    let verb = if call.flag("delete") { "remove" } else { "add" };
    for p in privs {
        let refuse = |m: String| Err(PveError::param("role", m));
        match own.get(p) {
            None => {
                return refuse(format!(
                    "Cannot {verb} role '{role}' - requires 'Permissions.Modify' or superset of privileges."
                ));
            }
            Some(false) if propagating => {
                return refuse(format!(
                    "Cannot {verb} role '{role}' with propagation - requires 'Permissions.Modify' or propagated superset of privileges."
                ));
            }
            _ => {}
        }
    }
    if role == "NoAccess" {
        return Err(PveError::param(
            "role",
            format!("Cannot {verb} role '{role}' - requires 'Permissions.Modify'"),
        ));
    }
    Ok(())
}

/// Adds or replaces one entry (`Some(propagate)`), or removes it (`None`).
fn set_entry(
    access: &mut Access,
    path: &str,
    kind: UgidKind,
    ugid: &str,
    role: &str,
    propagate: Option<bool>,
) {
    let same =
        |e: &AclEntry| e.path == path && e.kind == kind && e.ugid == ugid && e.roleid == role;
    access.acl.retain(|e| !same(e));
    if let Some(propagate) = propagate {
        access.acl.push(AclEntry {
            path: path.into(),
            kind,
            ugid: ugid.into(),
            roleid: role.into(),
            propagate,
        });
    }
}

/// The caller's own (or its tokens') privileges; another's with `Sys.Audit` on `/access`.
fn permissions(access: &Access, call: &Call) -> ApiResult {
    let who = call.text("userid").unwrap_or_else(|| call.user.clone());
    let owner = who.split('!').next().unwrap_or_default();
    if who != call.user && owner != call.user && call.user != "root@pam" {
        access
            .check(&call.user, "/access", &["Sys.Audit"], false)
            .map_err(|d| denied(Some(&d)))?;
    }
    let as_json = |privs: std::collections::BTreeMap<String, bool>| -> Value {
        Value::Object(
            privs
                .into_iter()
                .map(|(p, prop)| (p, json!(prop as u8)))
                .collect(),
        )
    };
    Ok(match call.text("path") {
        Some(path) => json!({ path.clone(): as_json(access.privileges(&who, &path)) }),
        None => Value::Object(
            access
                .effective(&who)
                .into_iter()
                .map(|(path, privs)| (path, as_json(privs)))
                .collect(),
        ),
    })
}

/// `PUT /access/password`: one's own, or (root, or with `Realm.AllocateUser` and
/// `User.Modify`: checked by the schema) another's; never root@pam's but by root.
fn password(access: &mut Access, call: &Call, now: u64) -> ApiResult {
    let id = userid(call);
    if call.user != "root@pam" {
        if call.user == id {
            access.user_enabled(&id, now).map_err(PveError::server)?;
        } else if id == "root@pam" || id.ends_with("@pam") {
            return Err(denied(None));
        }
    }
    let password = call.text("password").unwrap_or_default();
    let user = access
        .users
        .get_mut(&id)
        .ok_or_else(|| PveError::server(format!("no such user ('{id}')")))?;
    set_password(user, &id, &password)?;
    Ok(Value::Null)
}
