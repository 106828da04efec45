//! PVE's access control as data: users (with their API tokens), groups, roles and ACL
//! entries, and how PVE evaluates them (`PVE::AccessControl::roles`,
//! `PVE::RPCEnvironment::permissions`, `check`, `check_any`). Saved with the cluster.
//!
//! Secrets are kept as SHA-256 digests only (a token's, a pve-realm password), so neither
//! the state file nor `Debug` output ever holds one in clear.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// PVE 9's privilege groups (`$privgroups` in `PVE/AccessControl.pm`): per category, the
/// privileges only root-like roles get, the admin's, the user's and the auditor's. Every
/// name in the schema's permission checks is among them (a test holds it to that).
const PRIVILEGE_GROUPS: &[(&str, [&[&str]; 4])] = &[
    (
        "VM",
        [
            &[],
            &[
                "VM.Config.Disk",
                "VM.Config.CPU",
                "VM.Config.Memory",
                "VM.Config.Network",
                "VM.Config.HWType",
                "VM.Config.Options",
                "VM.Allocate",
                "VM.Clone",
                "VM.GuestAgent.Unrestricted",
                "VM.Migrate",
                "VM.Replicate",
                "VM.Snapshot",
                "VM.Snapshot.Rollback",
            ],
            &[
                "VM.Config.CDROM",
                "VM.Config.Cloudinit",
                "VM.Console",
                "VM.Backup",
                "VM.GuestAgent.FileRead",
                "VM.GuestAgent.FileSystemMgmt",
                "VM.GuestAgent.FileWrite",
                "VM.PowerMgmt",
            ],
            &["VM.Audit", "VM.GuestAgent.Audit"],
        ],
    ),
    (
        "Sys",
        [
            &[
                "Sys.PowerMgmt",
                "Sys.Modify",
                "Sys.Incoming",
                "Sys.AccessNetwork",
            ],
            &["Sys.Console", "Sys.Syslog"],
            &[],
            &["Sys.Audit"],
        ],
    ),
    (
        "Datastore",
        [
            &[],
            &["Datastore.Allocate", "Datastore.AllocateTemplate"],
            &["Datastore.AllocateSpace"],
            &["Datastore.Audit"],
        ],
    ),
    (
        "SDN",
        [
            &[],
            &["SDN.Allocate", "SDN.Audit"],
            &["SDN.Use"],
            &["SDN.Audit"],
        ],
    ),
    (
        "User",
        [
            &["Realm.Allocate"],
            &["User.Modify", "Group.Allocate", "Realm.AllocateUser"],
            &[],
            &[],
        ],
    ),
    (
        "Pool",
        [&[], &["Pool.Allocate"], &["Pool.Audit"], &["Pool.Audit"]],
    ),
    (
        "Mapping",
        [
            &[],
            &["Mapping.Modify"],
            &["Mapping.Use"],
            &["Mapping.Audit"],
        ],
    ),
];

/// The one privilege outside the groups.
const PERMISSIONS_MODIFY: &str = "Permissions.Modify";

pub fn is_privilege(name: &str) -> bool {
    name == PERMISSIONS_MODIFY
        || PRIVILEGE_GROUPS
            .iter()
            .any(|(_, levels)| levels.iter().any(|l| l.contains(&name)))
}

pub fn all_privileges() -> BTreeSet<String> {
    let mut all: BTreeSet<String> = PRIVILEGE_GROUPS
        .iter()
        .flat_map(|(_, levels)| levels.iter().flat_map(|l| l.iter()))
        .map(|p| p.to_string())
        .collect();
    all.insert(PERMISSIONS_MODIFY.into());
    all
}

/// The built-in roles as PVE's `create_roles` derives them from the groups: `NoAccess`,
/// `Administrator` (everything), `PVE<Cat>Admin`, `PVEAdmin`, `PVE<Cat>User`, `PVEAuditor`,
/// `PVETemplateUser`.
pub fn builtin_roles() -> BTreeMap<String, BTreeSet<String>> {
    let mut roles: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    roles.insert("NoAccess".into(), BTreeSet::new());
    roles.insert("Administrator".into(), all_privileges());
    for (cat, [_, admin, user, audit]) in PRIVILEGE_GROUPS {
        for p in admin.iter().chain(user.iter()).chain(audit.iter()) {
            for role in [format!("PVE{cat}Admin"), "PVEAdmin".into()] {
                roles.entry(role).or_default().insert(p.to_string());
            }
        }
        if !user.is_empty() {
            for p in user.iter().chain(audit.iter()) {
                roles
                    .entry(format!("PVE{cat}User"))
                    .or_default()
                    .insert(p.to_string());
            }
        }
        for p in audit.iter() {
            roles
                .entry("PVEAuditor".into())
                .or_default()
                .insert(p.to_string());
        }
    }
    // Only Administrator, root@pam and PVEMappingAdmin may modify mappings (as PVE).
    if let Some(admin) = roles.get_mut("PVEAdmin") {
        admin.remove("Mapping.Modify");
    }
    roles.insert(
        "PVETemplateUser".into(),
        ["VM.Clone", "VM.Audit"].map(String::from).into(),
    );
    roles
}

pub fn is_builtin_role(role: &str) -> bool {
    builtin_roles().contains_key(role)
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct User {
    pub enable: bool,
    /// Seconds since the epoch; 0: never.
    #[serde(default)]
    pub expire: u64,
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub firstname: Option<String>,
    #[serde(default)]
    pub lastname: Option<String>,
    #[serde(default)]
    pub groups: BTreeSet<String>,
    /// SHA-256 of the password (pve realm, and root@pam's of this run).
    #[serde(default)]
    pub password_sha256: Option<String>,
    #[serde(default)]
    pub tokens: BTreeMap<String, Token>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Token {
    pub privsep: bool,
    #[serde(default)]
    pub expire: u64,
    #[serde(default)]
    pub comment: Option<String>,
    /// SHA-256 of the secret: what PVE's `priv/token.cfg` holds, never the secret itself.
    pub secret_sha256: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Group {
    #[serde(default)]
    pub comment: Option<String>,
}

/// Who an ACL entry is for.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum UgidKind {
    User,
    Group,
    Token,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct AclEntry {
    pub path: String,
    #[serde(rename = "type")]
    pub kind: UgidKind,
    pub ugid: String,
    pub roleid: String,
    pub propagate: bool,
}

/// The access control configuration (`user.cfg`, `priv/token.cfg`, `priv/shadow.cfg`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Access {
    pub users: BTreeMap<String, User>,
    pub groups: BTreeMap<String, Group>,
    /// Roles made through the API (the built-ins are derived, never stored).
    pub roles: BTreeMap<String, BTreeSet<String>>,
    pub acl: Vec<AclEntry>,
}

impl Default for Access {
    fn default() -> Self {
        let root = User {
            enable: true,
            ..Default::default()
        };
        Self {
            users: [("root@pam".to_string(), root)].into(),
            groups: BTreeMap::new(),
            roles: BTreeMap::new(),
            acl: Vec::new(),
        }
    }
}

pub fn sha256_hex(text: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, text.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Equality whose time does not depend on where the texts differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// `user@realm!token` → (`user@realm`, `token`).
pub fn split_tokenid(authid: &str) -> Option<(&str, &str)> {
    authid.split_once('!')
}

impl Access {
    /// root@pam with this run's password, and the simulator's own token (privilege
    /// separation off, as every test and `phoenix` itself expect it all-powerful).
    pub fn install_root(&mut self, password: &str, token_id: &str, token_secret: &str) {
        let root = self.users.entry("root@pam".into()).or_default();
        root.enable = true;
        root.expire = 0;
        root.password_sha256 = Some(sha256_hex(password));
        if let Some(("root@pam", token)) = split_tokenid(token_id) {
            root.tokens.insert(
                token.to_owned(),
                Token {
                    privsep: false,
                    expire: 0,
                    comment: None,
                    secret_sha256: sha256_hex(token_secret),
                },
            );
        }
    }

    /// PVE's `check_user_enabled`: exists, enabled, not expired.
    pub fn user_enabled(&self, userid: &str, now: u64) -> Result<&User, String> {
        let user = self
            .users
            .get(userid)
            .ok_or_else(|| format!("no such user ('{userid}')"))?;
        if !user.enable {
            return Err(format!("user '{userid}' is disabled"));
        }
        if user.expire != 0 && user.expire < now {
            return Err(format!("user '{userid}' access expired"));
        }
        Ok(user)
    }

    /// PVE's `verify_token`: the token's id when user, token and secret are good.
    pub fn verify_token(&self, tokenid: &str, secret: &str, now: u64) -> Result<String, String> {
        let (userid, name) =
            split_tokenid(tokenid).ok_or_else(|| format!("'{tokenid}' is not a valid token ID"))?;
        let user = self.user_enabled(userid, now)?;
        let token = user
            .tokens
            .get(name)
            .ok_or_else(|| format!("no such token '{name}' for user '{userid}'"))?;
        if token.expire != 0 && token.expire < now {
            return Err(format!("token '{name}' access expired"));
        }
        if !same(&token.secret_sha256, &sha256_hex(secret)) {
            return Err("invalid token value!".into());
        }
        Ok(tokenid.to_owned())
    }

    /// Whether `userid` may log in with `password` (enabled, and the password its own).
    pub fn password_ok(&self, userid: &str, password: &str, now: u64) -> bool {
        self.user_enabled(userid, now)
            .ok()
            .and_then(|u| u.password_sha256.as_deref())
            .is_some_and(|hash| same(hash, &sha256_hex(password)))
    }

    /// The privileges of a role, built-in or made.
    pub fn role(&self, roleid: &str) -> Option<BTreeSet<String>> {
        builtin_roles()
            .remove(roleid)
            .or_else(|| self.roles.get(roleid).cloned())
    }

    /// PVE's `roles`: walking from `/` down to `path`, the deepest level with entries for
    /// the principal decides (token entries, else user entries, else its groups'); an entry
    /// without propagation counts only at its own path. `NoAccess` beats the rest.
    pub fn roles_at(&self, authid: &str, path: &str) -> BTreeMap<String, bool> {
        let groups = self
            .users
            .get(authid)
            .map(|u| u.groups.clone())
            .unwrap_or_default();
        let levels = ancestry(path);
        let mut roles = BTreeMap::new();
        for (i, level) in levels.iter().enumerate() {
            let last = i + 1 == levels.len();
            let applies = |kind: UgidKind, ugid: &str| -> BTreeMap<String, bool> {
                self.acl
                    .iter()
                    .filter(|e| e.path == *level && e.kind == kind && e.ugid == ugid)
                    .filter(|e| last || e.propagate)
                    .map(|e| (e.roleid.clone(), e.propagate))
                    .collect()
            };
            let mut found = applies(UgidKind::Token, authid);
            if found.is_empty() {
                found = applies(UgidKind::User, authid);
            }
            if found.is_empty() {
                for group in &groups {
                    found.extend(applies(UgidKind::Group, group));
                }
            }
            if !found.is_empty() {
                roles = found;
            }
        }
        match roles.get("NoAccess") {
            Some(p) => [("NoAccess".to_string(), *p)].into(),
            None => roles,
        }
    }

    /// PVE's `permissions`: the privileges `authid` (a user or a token) has on `path`, each
    /// with whether it propagates. root@pam has all; a token without privilege separation
    /// has its user's; one with it, what its own ACLs give that its user also has.
    pub fn privileges(&self, authid: &str, path: &str) -> BTreeMap<String, bool> {
        if authid == "root@pam" {
            return all_privileges().into_iter().map(|p| (p, true)).collect();
        }
        let own = |id: &str| -> BTreeMap<String, bool> {
            let mut privs = BTreeMap::new();
            for (role, propagate) in self.roles_at(id, path) {
                for p in self.role(&role).unwrap_or_default() {
                    let entry = privs.entry(p).or_insert(false);
                    *entry = *entry || propagate;
                }
            }
            privs
        };
        let Some((userid, name)) = split_tokenid(authid) else {
            return own(authid);
        };
        let Some(token) = self.users.get(userid).and_then(|u| u.tokens.get(name)) else {
            return BTreeMap::new();
        };
        let user_privs = self.privileges(userid, path);
        if !token.privsep {
            return user_privs;
        }
        let mut privs = own(authid);
        if userid != "root@pam" {
            privs = privs
                .into_iter()
                .filter_map(|(p, prop)| Some((p.clone(), prop && *user_privs.get(&p)?)))
                .collect();
        }
        privs
    }

    /// PVE's `check` (all of `privs`) or `check_any`; the error is the detail of PVE's
    /// `Permission check failed (PATH, PRIV)` (`A|B` for any).
    pub fn check(&self, authid: &str, path: &str, privs: &[&str], any: bool) -> Result<(), String> {
        let have = self.privileges(authid, path);
        if any {
            if privs.iter().any(|p| have.contains_key(*p)) {
                return Ok(());
            }
            return Err(format!("{path}, {}", privs.join("|")));
        }
        match privs.iter().find(|p| !have.contains_key(**p)) {
            Some(missing) => Err(format!("{path}, {missing}")),
            None => Ok(()),
        }
    }

    /// The paths PVE reports in `GET /access/permissions` without `path`: the top levels
    /// and every path an ACL names.
    pub fn effective(&self, authid: &str) -> BTreeMap<String, BTreeMap<String, bool>> {
        let mut paths: BTreeSet<String> = [
            "/",
            "/access",
            "/access/groups",
            "/nodes",
            "/pool",
            "/sdn",
            "/storage",
            "/vms",
        ]
        .map(String::from)
        .into();
        paths.extend(self.acl.iter().map(|e| e.path.clone()));
        paths
            .into_iter()
            .map(|p| (self.privileges(authid, &p), p))
            .filter(|(privs, _)| !privs.is_empty())
            .map(|(privs, p)| (p, privs))
            .collect()
    }
}

/// `/vms/100` → `["/", "/vms", "/vms/100"]`.
fn ancestry(path: &str) -> Vec<String> {
    let mut levels = vec!["/".to_string()];
    let mut at = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        at.push('/');
        at.push_str(part);
        levels.push(at.clone());
    }
    levels
}

/// PVE's `normalize_path`: `None` when the path has characters PVE refuses.
pub fn normalize_path(path: &str) -> Option<String> {
    if path.is_empty() {
        return None;
    }
    let mut out = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        out.push('/');
        out.push_str(part);
    }
    if out.is_empty() {
        out.push('/');
    }
    out.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/'))
        .then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(
        access: &mut Access,
        path: &str,
        kind: UgidKind,
        ugid: &str,
        role: &str,
        propagate: bool,
    ) {
        access.acl.push(AclEntry {
            path: path.into(),
            kind,
            ugid: ugid.into(),
            roleid: role.into(),
            propagate,
        });
    }

    #[test]
    fn builtin_roles_are_pve_9s() {
        let roles = builtin_roles();
        assert!(roles["NoAccess"].is_empty());
        assert_eq!(roles["Administrator"], all_privileges());
        assert!(roles["PVEAuditor"].contains("VM.GuestAgent.Audit"));
        assert!(!roles["PVEAuditor"].contains("VM.Allocate"));
        assert!(roles["PVEVMAdmin"].contains("VM.Clone"));
        assert!(!roles["PVEAdmin"].contains("Mapping.Modify"));
        assert!(!is_privilege("VM.Monitor") && is_privilege("VM.GuestAgent.FileRead"));
    }

    #[test]
    fn the_deepest_entry_decides_and_propagation_reaches_below() {
        let mut a = Access::default();
        a.users.insert(
            "u@pve".into(),
            User {
                enable: true,
                ..Default::default()
            },
        );
        grant(&mut a, "/vms", UgidKind::User, "u@pve", "PVEAuditor", true);
        assert!(a.check("u@pve", "/vms/100", &["VM.Audit"], false).is_ok());
        grant(
            &mut a,
            "/vms/100",
            UgidKind::User,
            "u@pve",
            "NoAccess",
            false,
        );
        assert_eq!(
            a.check("u@pve", "/vms/100", &["VM.Audit"], false),
            Err("/vms/100, VM.Audit".into())
        );
        grant(
            &mut a,
            "/storage",
            UgidKind::User,
            "u@pve",
            "PVEDatastoreUser",
            false,
        );
        assert!(
            a.check("u@pve", "/storage/local", &["Datastore.Audit"], false)
                .is_err()
        );
        assert!(
            a.check("u@pve", "/storage", &["Datastore.Audit"], false)
                .is_ok()
        );
    }

    #[test]
    fn a_separated_token_has_what_both_it_and_its_user_have() {
        let mut a = Access::default();
        let token = Token {
            privsep: true,
            expire: 0,
            comment: None,
            secret_sha256: sha256_hex("s"),
        };
        let mut user = User {
            enable: true,
            ..Default::default()
        };
        user.tokens.insert("t".into(), token.clone());
        user.tokens.insert(
            "full".into(),
            Token {
                privsep: false,
                ..token
            },
        );
        a.users.insert("u@pve".into(), user);
        grant(&mut a, "/", UgidKind::User, "u@pve", "PVEAuditor", true);
        assert!(a.check("u@pve!t", "/vms/1", &["VM.Audit"], false).is_err());
        assert!(
            a.check("u@pve!full", "/vms/1", &["VM.Audit"], false)
                .is_ok()
        );
        grant(&mut a, "/", UgidKind::Token, "u@pve!t", "PVEVMAdmin", true);
        assert!(a.check("u@pve!t", "/vms/1", &["VM.Audit"], false).is_ok());
        assert!(
            a.check("u@pve!t", "/vms/1", &["VM.Allocate"], false)
                .is_err()
        );
        assert_eq!(a.verify_token("u@pve!t", "s", 0), Ok("u@pve!t".into()));
        assert!(a.verify_token("u@pve!t", "x", 0).is_err());
    }
}
