//! `spec.access` decided: whether it may be applied at all (the trust boundary, what the
//! schema cannot check), the changes from what PVE holds to it, and what to remember of
//! it. Phoenix adds and updates groups, users and ACL entries; it removes only ACL entries
//! it added itself, and never a user or a group.

use crate::conditions::reason;
use crate::error::Error;
use crate::privileges;
use phoenix_clients::proxmox::access::{AclEntry, Grantee, Group, User, UserFields};
use phoenix_crds::cluster_access::{AccessAcl, ClusterAccess, ClusterAccessStatus};
use std::collections::BTreeSet;

/// PVE's superuser: its rights are not Phoenix's to change.
pub const ROOT: &str = "root@pam";

/// What PVE holds.
pub struct Observed {
    pub groups: Vec<Group>,
    pub users: Vec<User>,
    pub acl: Vec<AclEntry>,
}

impl Observed {
    fn group(&self, id: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.groupid == id)
    }

    fn user(&self, id: &str) -> Option<&User> {
        self.users.iter().find(|u| u.userid == id)
    }

    /// The entry for `grant`'s path, role and grantee, whatever its propagation.
    fn entry(&self, grant: &Grant) -> Option<&AclEntry> {
        self.acl
            .iter()
            .find(|e| Grant::of_entry(e).as_ref() == Some(grant))
    }
}

/// An ACL entry's identity: PVE keeps one entry per path, role and grantee.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Grant {
    pub path: String,
    pub role: String,
    pub grantee: Grantee,
    pub who: String,
}

impl Grant {
    /// `None` unless exactly one of group and user is set.
    pub fn of(acl: &AccessAcl) -> Option<Self> {
        let (grantee, who) = match (&acl.group, &acl.user) {
            (Some(group), None) => (Grantee::Group, group),
            (None, Some(user)) => (Grantee::User, user),
            _ => return None,
        };
        Some(Grant {
            path: acl.path.clone(),
            role: acl.role.clone(),
            grantee,
            who: who.clone(),
        })
    }

    /// Tokens' entries are never Phoenix's: `None`.
    fn of_entry(entry: &AclEntry) -> Option<Self> {
        let grantee = match entry.kind.as_str() {
            "user" => Grantee::User,
            "group" => Grantee::Group,
            _ => return None,
        };
        Some(Grant {
            path: entry.path.clone(),
            role: entry.roleid.clone(),
            grantee,
            who: entry.ugid.clone(),
        })
    }
}

impl std::fmt::Display for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let grantee = match self.grantee {
            Grantee::User => "user",
            Grantee::Group => "group",
        };
        write!(
            f,
            "{} on {} for {grantee} {}",
            self.role, self.path, self.who
        )
    }
}

/// One change to PVE's access control.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    CreateGroup {
        id: String,
        comment: String,
    },
    UpdateGroup {
        id: String,
        comment: String,
    },
    CreateUser {
        id: String,
        fields: UserFields,
    },
    /// Only the fields that differ.
    UpdateUser {
        id: String,
        fields: UserFields,
    },
    /// Adds the entry, or replaces it when its propagation differs.
    Grant {
        grant: Grant,
        propagate: bool,
    },
    /// Removes an entry Phoenix added that left the spec.
    Revoke(Grant),
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::CreateGroup { id, .. } => write!(f, "create group {id}"),
            Change::UpdateGroup { id, .. } => write!(f, "update group {id}'s comment"),
            Change::CreateUser { id, .. } => write!(f, "create user {id}"),
            Change::UpdateUser { id, fields } => {
                let set = [
                    ("comment", fields.comment.is_some()),
                    ("email", fields.email.is_some()),
                    ("enabled", fields.enable.is_some()),
                    ("groups", fields.groups.is_some()),
                ];
                let names: Vec<&str> = set.iter().filter(|(_, s)| *s).map(|(n, _)| *n).collect();
                write!(f, "update user {id}'s {}", names.join(", "))
            }
            Change::Grant { grant, .. } => write!(f, "grant {grant}"),
            Change::Revoke(grant) => write!(f, "revoke {grant}"),
        }
    }
}

/// Refuses (`AccessRefused`) a spec that names Phoenix's own user (`own_user`, the token's),
/// its roles, root@pam, or a group either of them is in: Phoenix must not change its own
/// rights or root's.
pub fn refuse_trust(
    spec: &ClusterAccess,
    own_user: &str,
    observed: &Observed,
) -> Result<(), Error> {
    let protected_users = [own_user, ROOT];
    let protected_roles = [privileges::ROLE, privileges::ACCESS_ROLE];
    let protected_groups: BTreeSet<&str> = observed
        .users
        .iter()
        .filter(|u| protected_users.contains(&u.userid.as_str()))
        .flat_map(|u| u.groups.iter().map(String::as_str))
        .collect();
    let refuse = |field: String, what: &str| {
        Err(Error::spec(
            reason::ACCESS_REFUSED,
            format!(
                "{field} names {what}: Phoenix does not change its own rights or root@pam's; nothing was written"
            ),
        ))
    };
    for (i, user) in spec.users.iter().enumerate() {
        if protected_users.contains(&user.id.as_str()) {
            return refuse(format!("spec.access.users[{i}]"), &user.id);
        }
    }
    for (i, acl) in spec.acls.iter().enumerate() {
        let field = format!("spec.access.acls[{i}]");
        if let Some(user) = acl.user.as_deref().filter(|u| protected_users.contains(u)) {
            return refuse(field, user);
        }
        if protected_roles.contains(&acl.role.as_str()) {
            return refuse(field, &format!("Phoenix's role {}", acl.role));
        }
        if let Some(group) = acl
            .group
            .as_deref()
            .filter(|g| protected_groups.contains(g))
        {
            return refuse(
                field,
                &format!("group {group}, which {own_user} or {ROOT} is in"),
            );
        }
    }
    Ok(())
}

/// What the schema cannot check: one grantee per ACL entry, no id twice, and every group or
/// user named either in the spec or in PVE.
pub fn check(spec: &ClusterAccess, observed: &Observed) -> Result<(), Error> {
    let invalid = |m: String| Err(Error::spec(reason::INVALID_ACCESS, m));
    let groups: BTreeSet<&str> = spec.groups.iter().map(|g| g.id.as_str()).collect();
    let users: BTreeSet<&str> = spec.users.iter().map(|u| u.id.as_str()).collect();
    if groups.len() != spec.groups.len() {
        return invalid("spec.access.groups: a group id is listed twice".into());
    }
    if users.len() != spec.users.len() {
        return invalid("spec.access.users: a user id is listed twice".into());
    }
    let group_known = |g: &str| groups.contains(g) || observed.group(g).is_some();
    let missing_group = |field: String, g: &str| {
        Err(Error::spec(
            reason::GROUP_NOT_FOUND,
            format!("{field}: group {g} is neither in spec.access.groups nor in PVE"),
        ))
    };
    for (i, user) in spec.users.iter().enumerate() {
        if let Some(g) = user.groups.iter().find(|g| !group_known(g)) {
            return missing_group(format!("spec.access.users[{i}].groups"), g);
        }
    }
    for (i, acl) in spec.acls.iter().enumerate() {
        let field = format!("spec.access.acls[{i}]");
        let Some(grant) = Grant::of(acl) else {
            return invalid(format!("{field}: set exactly one of group, user"));
        };
        match grant.grantee {
            Grantee::Group if !group_known(&grant.who) => {
                return missing_group(format!("{field}.group"), &grant.who);
            }
            Grantee::User
                if !users.contains(grant.who.as_str()) && observed.user(&grant.who).is_none() =>
            {
                return Err(Error::spec(
                    reason::USER_NOT_FOUND,
                    format!(
                        "{field}.user: user {} is neither in spec.access.users nor in PVE",
                        grant.who
                    ),
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// The changes from `observed` to `spec`, given the ACL entries Phoenix added before
/// (`remembered`): groups, then users (their groups exist by then), then ACL entries.
pub fn plan(
    spec: &ClusterAccess,
    observed: &Observed,
    remembered: &ClusterAccessStatus,
) -> Vec<Change> {
    let mut changes = Vec::new();
    for group in &spec.groups {
        let comment = group.comment.clone();
        match observed.group(&group.id) {
            None => changes.push(Change::CreateGroup {
                id: group.id.clone(),
                comment: comment.unwrap_or_default(),
            }),
            Some(live) => {
                if let Some(comment) = comment.filter(|c| differs(&live.comment, c)) {
                    changes.push(Change::UpdateGroup {
                        id: group.id.clone(),
                        comment,
                    });
                }
            }
        }
    }
    for user in &spec.users {
        let groups: BTreeSet<String> = user.groups.iter().cloned().collect();
        match observed.user(&user.id) {
            None => changes.push(Change::CreateUser {
                id: user.id.clone(),
                fields: UserFields {
                    comment: user.comment.clone(),
                    email: user.email.clone(),
                    enable: Some(user.enabled),
                    groups: Some(groups).filter(|g| !g.is_empty()),
                },
            }),
            Some(live) => {
                let fields = UserFields {
                    comment: user.comment.clone().filter(|c| differs(&live.comment, c)),
                    email: user.email.clone().filter(|e| differs(&live.email, e)),
                    enable: Some(user.enabled).filter(|e| *e != live.enable),
                    groups: Some(groups).filter(|g| *g != live.groups),
                };
                if fields != UserFields::default() {
                    changes.push(Change::UpdateUser {
                        id: user.id.clone(),
                        fields,
                    });
                }
            }
        }
    }
    let wanted: Vec<(Grant, bool)> = spec
        .acls
        .iter()
        .filter_map(|a| Some((Grant::of(a)?, a.propagate)))
        .collect();
    for (grant, propagate) in &wanted {
        if observed
            .entry(grant)
            .is_none_or(|e| e.propagate != *propagate)
        {
            changes.push(Change::Grant {
                grant: grant.clone(),
                propagate: *propagate,
            });
        }
    }
    for grant in remembered.acls.iter().filter_map(Grant::of) {
        let in_spec = wanted.iter().any(|(g, _)| *g == grant);
        if !in_spec && observed.entry(&grant).is_some() {
            changes.push(Change::Revoke(grant));
        }
    }
    changes
}

/// PVE keeps an empty comment or email as none.
fn differs(live: &Option<String>, wanted: &str) -> bool {
    live.as_deref().unwrap_or_default() != wanted
}

/// What to remember after `done` (the changes made, all or the first few of a plan): the
/// ACL entries Phoenix added and has not revoked (dropped once they left the spec and PVE
/// no longer has them), and the groups and users of the spec or remembered that exist.
pub fn remember(
    spec: &ClusterAccess,
    observed: &Observed,
    before: &ClusterAccessStatus,
    done: &[Change],
) -> ClusterAccessStatus {
    let in_spec = |grant: &Grant| {
        spec.acls
            .iter()
            .any(|a| Grant::of(a).as_ref() == Some(grant))
    };
    let mut acls: Vec<AccessAcl> = before
        .acls
        .iter()
        .filter(|a| {
            Grant::of(a).is_some_and(|g| {
                !done.contains(&Change::Revoke(g.clone()))
                    && (in_spec(&g) || observed.entry(&g).is_some())
            })
        })
        .cloned()
        .collect();
    for change in done {
        if let Change::Grant { grant, propagate } = change {
            acls.retain(|a| Grant::of(a).as_ref() != Some(grant));
            acls.push(acl_of(grant, *propagate));
        }
    }
    acls.sort();
    let created = |id: &str| {
        done.iter().any(|c| match c {
            Change::CreateGroup { id: made, .. } | Change::CreateUser { id: made, .. } => {
                made == id
            }
            _ => false,
        })
    };
    let groups = spec.groups.iter().map(|g| &g.id).chain(&before.groups);
    let users = spec.users.iter().map(|u| &u.id).chain(&before.users);
    ClusterAccessStatus {
        groups: existing(groups, |g| observed.group(g).is_some() || created(g)),
        users: existing(users, |u| observed.user(u).is_some() || created(u)),
        acls,
    }
}

fn existing<'a>(
    ids: impl Iterator<Item = &'a String>,
    exists: impl Fn(&str) -> bool,
) -> Vec<String> {
    let ids: BTreeSet<&String> = ids.filter(|id| exists(id)).collect();
    ids.into_iter().cloned().collect()
}

fn acl_of(grant: &Grant, propagate: bool) -> AccessAcl {
    let (group, user) = match grant.grantee {
        Grantee::Group => (Some(grant.who.clone()), None),
        Grantee::User => (None, Some(grant.who.clone())),
    };
    AccessAcl {
        path: grant.path.clone(),
        role: grant.role.clone(),
        group,
        user,
        propagate,
    }
}

/// The groups and users remembered that left the spec: they stay in PVE.
pub fn left(spec: &ClusterAccess, status: &ClusterAccessStatus) -> Vec<String> {
    let groups = status
        .groups
        .iter()
        .filter(|g| !spec.groups.iter().any(|s| s.id == **g))
        .map(|g| format!("group {g}"));
    let users = status
        .users
        .iter()
        .filter(|u| !spec.users.iter().any(|s| s.id == **u))
        .map(|u| format!("user {u}"));
    groups.chain(users).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use phoenix_crds::cluster_access::{AccessGroup, AccessUser};

    fn group(id: &str, comment: Option<&str>) -> Group {
        Group {
            groupid: id.into(),
            comment: comment.map(Into::into),
        }
    }

    fn user(id: &str, groups: &[&str]) -> User {
        User {
            userid: id.into(),
            comment: None,
            email: None,
            enable: true,
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            tokens: Vec::new(),
        }
    }

    fn entry(path: &str, kind: &str, ugid: &str, role: &str, propagate: bool) -> AclEntry {
        AclEntry {
            path: path.into(),
            kind: kind.into(),
            ugid: ugid.into(),
            roleid: role.into(),
            propagate,
        }
    }

    fn acl(path: &str, role: &str, group: Option<&str>, user: Option<&str>) -> AccessAcl {
        AccessAcl {
            path: path.into(),
            role: role.into(),
            group: group.map(Into::into),
            user: user.map(Into::into),
            propagate: true,
        }
    }

    /// The example's access: a group, a user in it, the group's ACL entry.
    fn spec() -> ClusterAccess {
        ClusterAccess {
            groups: vec![AccessGroup {
                id: "homelab-admins".into(),
                comment: Some("homelab admins".into()),
            }],
            users: vec![AccessUser {
                id: "alice@pve".into(),
                groups: vec!["homelab-admins".into()],
                comment: None,
                email: Some("alice@example.org".into()),
                enabled: true,
            }],
            acls: vec![acl("/vms", "PVEVMAdmin", Some("homelab-admins"), None)],
        }
    }

    /// PVE as the example leaves it, with Phoenix's own user and root.
    fn applied() -> Observed {
        let mut alice = user("alice@pve", &["homelab-admins"]);
        alice.email = Some("alice@example.org".into());
        Observed {
            groups: vec![group("homelab-admins", Some("homelab admins"))],
            users: vec![alice, user("phoenix@pve", &[]), user(ROOT, &[])],
            acl: vec![
                entry("/", "user", "phoenix@pve", "Phoenix", true),
                entry("/vms", "group", "homelab-admins", "PVEVMAdmin", true),
            ],
        }
    }

    fn fresh() -> Observed {
        Observed {
            groups: vec![],
            users: vec![user("phoenix@pve", &[]), user(ROOT, &[])],
            acl: vec![entry("/", "user", "phoenix@pve", "Phoenix", true)],
        }
    }

    fn grant(path: &str, role: &str, grantee: Grantee, who: &str) -> Grant {
        Grant {
            path: path.into(),
            role: role.into(),
            grantee,
            who: who.into(),
        }
    }

    /// A change to the example's spec, for table tests.
    type Edit<'a> = &'a dyn Fn(&mut ClusterAccess);

    fn ours(acls: &[AccessAcl]) -> ClusterAccessStatus {
        ClusterAccessStatus {
            groups: vec!["homelab-admins".into()],
            users: vec!["alice@pve".into()],
            acls: acls.to_vec(),
        }
    }

    #[test]
    fn plan_goes_from_pve_to_the_spec_and_removes_only_entries_phoenix_added() {
        let vms = || grant("/vms", "PVEVMAdmin", Grantee::Group, "homelab-admins");
        let granted = ours(&[acl("/vms", "PVEVMAdmin", Some("homelab-admins"), None)]);
        let mut drifted = applied();
        drifted.users[0].groups.insert("by-hand".into());
        drifted.users[0].enable = false;
        drifted.groups[0].comment = None;
        drifted.acl[1].propagate = false;
        let mut by_hand = applied();
        by_hand.acl.push(entry(
            "/storage/fastData",
            "user",
            "alice@pve",
            "PVEDatastoreUser",
            true,
        ));
        let mut left_spec = spec();
        left_spec.acls.clear();
        let mut gone = applied();
        gone.acl.pop();
        let cases: Vec<(
            &str,
            ClusterAccess,
            Observed,
            ClusterAccessStatus,
            Vec<Change>,
        )> = vec![
            (
                "a fresh PVE: everything created, groups first",
                spec(),
                fresh(),
                ClusterAccessStatus::default(),
                vec![
                    Change::CreateGroup {
                        id: "homelab-admins".into(),
                        comment: "homelab admins".into(),
                    },
                    Change::CreateUser {
                        id: "alice@pve".into(),
                        fields: UserFields {
                            comment: None,
                            email: Some("alice@example.org".into()),
                            enable: Some(true),
                            groups: Some(["homelab-admins".to_owned()].into()),
                        },
                    },
                    Change::Grant {
                        grant: vms(),
                        propagate: true,
                    },
                ],
            ),
            (
                "in place: nothing",
                spec(),
                applied(),
                granted.clone(),
                vec![],
            ),
            (
                "changed by hand: only what differs",
                spec(),
                drifted,
                granted.clone(),
                vec![
                    Change::UpdateGroup {
                        id: "homelab-admins".into(),
                        comment: "homelab admins".into(),
                    },
                    Change::UpdateUser {
                        id: "alice@pve".into(),
                        fields: UserFields {
                            enable: Some(true),
                            groups: Some(["homelab-admins".to_owned()].into()),
                            ..UserFields::default()
                        },
                    },
                    Change::Grant {
                        grant: vms(),
                        propagate: true,
                    },
                ],
            ),
            (
                "an entry added by hand stays",
                spec(),
                by_hand,
                granted.clone(),
                vec![],
            ),
            (
                "Phoenix's entry left the spec: revoked",
                left_spec.clone(),
                applied(),
                granted.clone(),
                vec![Change::Revoke(vms())],
            ),
            (
                "an entry Phoenix did not add left the spec: kept",
                left_spec,
                applied(),
                ours(&[]),
                vec![],
            ),
            (
                "Phoenix's entry removed by hand: granted again",
                spec(),
                gone,
                granted,
                vec![Change::Grant {
                    grant: vms(),
                    propagate: true,
                }],
            ),
        ];
        for (name, spec, observed, remembered, want) in cases {
            assert_eq!(plan(&spec, &observed, &remembered), want, "{name}");
        }
    }

    #[test]
    fn an_absent_comment_or_email_is_left_and_an_empty_one_is_none() {
        let mut spec = spec();
        spec.users[0].email = None;
        spec.users[0].comment = Some(String::new());
        let mut observed = applied();
        observed.users[0].email = Some("set-by-hand@example.org".into());
        assert_eq!(plan(&spec, &observed, &ours(&[])), vec![]);
    }

    #[test]
    fn entries_naming_phoenix_its_roles_root_or_their_groups_are_refused() {
        let refused = |change: &dyn Fn(&mut ClusterAccess)| {
            let mut spec = spec();
            change(&mut spec);
            let mut observed = applied();
            observed.users[1].groups.insert("operators".into());
            refuse_trust(&spec, "phoenix@pve", &observed).map_err(|e| e.category())
        };
        assert_eq!(refused(&|_| {}), Ok(()));
        let user_named = |id: &'static str| move |s: &mut ClusterAccess| s.users[0].id = id.into();
        let acl_user = |s: &mut ClusterAccess| {
            s.acls[0] = acl("/", "Administrator", None, Some("phoenix@pve"));
        };
        let acl_role =
            |role: &'static str| move |s: &mut ClusterAccess| s.acls[0].role = role.into();
        let acl_group = |s: &mut ClusterAccess| s.acls[0].group = Some("operators".into());
        let cases: [(&str, Edit); 6] = [
            ("Phoenix's user", &user_named("phoenix@pve")),
            ("root", &user_named("root@pam")),
            ("an ACL for Phoenix's user", &acl_user),
            ("Phoenix's role", &acl_role("Phoenix")),
            ("Phoenix's access role", &acl_role("PhoenixAccess")),
            ("a group Phoenix is in", &acl_group),
        ];
        for (name, change) in cases {
            assert_eq!(refused(change), Err(reason::ACCESS_REFUSED), "{name}");
        }
    }

    #[test]
    fn what_the_schema_cannot_say_is_checked() {
        let checked = |change: &dyn Fn(&mut ClusterAccess), observed: &Observed| {
            let mut spec = spec();
            change(&mut spec);
            check(&spec, observed).map_err(|e| e.category())
        };
        let both = |s: &mut ClusterAccess| s.acls[0].user = Some("alice@pve".into());
        let neither = |s: &mut ClusterAccess| s.acls[0].group = None;
        let twice = |s: &mut ClusterAccess| s.users.push(s.users[0].clone());
        let unknown = |s: &mut ClusterAccess| s.users[0].groups.push("nowhere".into());
        let existing = |s: &mut ClusterAccess| s.users[0].groups.push("theirs".into());
        let acl_user =
            |s: &mut ClusterAccess| s.acls[0] = acl("/", "PVEAuditor", None, Some("bob@pve"));
        let mut theirs = fresh();
        theirs.groups.push(group("theirs", None));
        let cases: [(&str, Edit, &Observed, Result<(), &str>); 7] = [
            ("the example", &|_| {}, &fresh(), Ok(())),
            (
                "both grantees",
                &both,
                &fresh(),
                Err(reason::INVALID_ACCESS),
            ),
            (
                "no grantee",
                &neither,
                &fresh(),
                Err(reason::INVALID_ACCESS),
            ),
            (
                "a user twice",
                &twice,
                &fresh(),
                Err(reason::INVALID_ACCESS),
            ),
            (
                "a group nowhere",
                &unknown,
                &fresh(),
                Err(reason::GROUP_NOT_FOUND),
            ),
            ("a group only in PVE", &existing, &theirs, Ok(())),
            (
                "an ACL's user nowhere",
                &acl_user,
                &fresh(),
                Err(reason::USER_NOT_FOUND),
            ),
        ];
        for (name, change, observed, want) in cases {
            assert_eq!(checked(change, observed), want, "{name}");
        }
    }

    #[test]
    fn remembered_are_the_entries_phoenix_added_and_what_exists() {
        let vms = acl("/vms", "PVEVMAdmin", Some("homelab-admins"), None);
        let all = plan(&spec(), &fresh(), &ClusterAccessStatus::default());
        let after = remember(&spec(), &fresh(), &ClusterAccessStatus::default(), &all);
        assert_eq!(after, ours(std::slice::from_ref(&vms)), "a full pass");
        let partial = remember(
            &spec(),
            &fresh(),
            &ClusterAccessStatus::default(),
            &all[..1],
        );
        assert_eq!(
            (
                partial.groups.len(),
                partial.users.len(),
                partial.acls.len()
            ),
            (1, 0, 0),
            "a pass that failed after the group"
        );
        let mut left_spec = spec();
        left_spec.acls.clear();
        left_spec.users.clear();
        let revoked = plan(&left_spec, &applied(), &after);
        let after = remember(&left_spec, &applied(), &after, &revoked);
        assert!(after.acls.is_empty(), "the revoked entry is forgotten");
        assert_eq!(
            after.users,
            ["alice@pve"],
            "the user that left is remembered"
        );
        assert_eq!(left(&left_spec, &after), ["user alice@pve"]);
        let mut deleted = applied();
        deleted.users.remove(0);
        let after = remember(&left_spec, &deleted, &after, &[]);
        assert!(after.users.is_empty(), "forgotten once deleted by hand");
    }
}
