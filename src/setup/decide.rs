//! What `phoenix setup` must do, decided from what PVE and the Kubernetes Secret hold now:
//! a pure function, so that a second run provably changes nothing.

use phoenix_clients::proxmox::access::{AclEntry, Role, User};
use std::collections::BTreeSet;

/// What setup puts in place.
#[derive(Clone, Debug)]
pub struct Wanted {
    pub role: String,
    pub privileges: BTreeSet<String>,
    /// The second role, granted to the user on `/` only with `--manage-access`: its
    /// privileges (`Some`), or removed when there (`None`).
    pub access_role: String,
    pub access_privileges: Option<BTreeSet<String>>,
    pub user: String,
    /// The token's own id (`controller` in `phoenix@pve!controller`).
    pub token: String,
    /// An existing token whose secret the Secret does not hold may be replaced (whatever
    /// else uses it then stops working): only when asked.
    pub replace_token: bool,
}

impl Wanted {
    pub fn full_token_id(&self) -> String {
        format!("{}!{}", self.user, self.token)
    }
}

/// What the Secret the ProxmoxCluster refers to holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretHolds {
    Nothing,
    /// Another token's id, or no id.
    OtherToken,
    /// The wanted token's id, with a secret PVE accepted (`true`) or refused.
    Wanted {
        accepted: bool,
    },
}

/// What PVE has, and what the Secret holds.
pub struct Observed {
    pub roles: Vec<Role>,
    pub users: Vec<User>,
    pub acl: Vec<AclEntry>,
    pub secret: SecretHolds,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    CreateRole {
        role: String,
        privileges: BTreeSet<String>,
    },
    /// The role exists with other privileges: set them to the wanted ones.
    SetRole {
        role: String,
        privileges: BTreeSet<String>,
        added: Vec<String>,
        removed: Vec<String>,
    },
    CreateUser,
    /// The role on `/` for the user, propagated.
    Grant(String),
    /// The access role's grant taken back, and the role deleted (no `--manage-access`).
    Revoke(String),
    DeleteRole(String),
    CreateToken,
    /// The token exists but its secret is not known here (PVE shows it once): it is
    /// replaced by a new one.
    ReplaceToken,
    WriteSecret,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::CreateRole { role, .. } => write!(f, "create the role {role}"),
            Step::SetRole {
                role,
                added,
                removed,
                ..
            } => write!(
                f,
                "set the role {role}'s privileges (adding [{}], removing [{}])",
                added.join(", "),
                removed.join(", ")
            ),
            Step::CreateUser => f.write_str("create the user (no password: only its token acts)"),
            Step::Grant(role) => write!(f, "grant the role {role} to the user on / (propagated)"),
            Step::Revoke(role) => write!(
                f,
                "take back the role {role} from the user on / (no --manage-access)"
            ),
            Step::DeleteRole(role) => write!(f, "delete the role {role}"),
            Step::CreateToken => f.write_str("create the API token"),
            Step::ReplaceToken => f.write_str(
                "replace the API token (its secret is not in the Secret and PVE shows it only once)",
            ),
            Step::WriteSecret => f.write_str("write the token into the Secret"),
        }
    }
}

/// The steps from `observed` to `wanted`, in order; an error when PVE holds something
/// setup must not change (a built-in role of that name).
pub fn plan(wanted: &Wanted, observed: &Observed) -> Result<Vec<Step>, String> {
    let mut steps = role_steps(&wanted.role, &wanted.privileges, observed)?;
    let user = observed.users.iter().find(|u| u.userid == wanted.user);
    if user.is_none() {
        steps.push(Step::CreateUser);
    }
    let granted = |role: &str, propagated: bool| {
        observed.acl.iter().any(|e| {
            e.path == "/"
                && e.kind == "user"
                && e.ugid == wanted.user
                && e.roleid == role
                && (e.propagate || !propagated)
        })
    };
    if !granted(&wanted.role, true) {
        steps.push(Step::Grant(wanted.role.clone()));
    }
    let access = &wanted.access_role;
    match &wanted.access_privileges {
        Some(privileges) => {
            steps.extend(role_steps(access, privileges, observed)?);
            if !granted(access, true) {
                steps.push(Step::Grant(access.clone()));
            }
        }
        None => {
            if granted(access, false) {
                steps.push(Step::Revoke(access.clone()));
            }
            if observed
                .roles
                .iter()
                .any(|r| r.roleid == *access && !r.special)
            {
                steps.push(Step::DeleteRole(access.clone()));
            }
        }
    }
    let token = user.and_then(|u| u.tokens.iter().find(|t| t.tokenid == wanted.token));
    let usable = observed.secret == SecretHolds::Wanted { accepted: true };
    match token {
        None => steps.extend([Step::CreateToken, Step::WriteSecret]),
        // A separated token would have no privileges of its own: not the one setup makes.
        Some(t) if (t.privsep || !usable) && !wanted.replace_token => {
            return Err(format!(
                "the token {} exists in PVE but the Secret does not hold a working copy of its secret (PVE shows it only once); rerun with --replace-token to replace it (whatever else uses it stops working)",
                wanted.full_token_id()
            ));
        }
        Some(t) if t.privsep || !usable => steps.extend([Step::ReplaceToken, Step::WriteSecret]),
        Some(_) => {}
    }
    Ok(steps)
}

/// Creating `role` with `privileges`, or setting them; none when it holds them. A built-in
/// role of that name is never changed.
fn role_steps(
    role: &str,
    privileges: &BTreeSet<String>,
    observed: &Observed,
) -> Result<Vec<Step>, String> {
    let (role, privileges) = (role.to_owned(), privileges.clone());
    Ok(match observed.roles.iter().find(|r| r.roleid == role) {
        Some(r) if r.special => {
            return Err(format!(
                "{role} is a built-in PVE role; choose another name with --role"
            ));
        }
        Some(r) if r.privs != privileges => vec![Step::SetRole {
            added: privileges.difference(&r.privs).cloned().collect(),
            removed: r.privs.difference(&privileges).cloned().collect(),
            role,
            privileges,
        }],
        Some(_) => vec![],
        None => vec![Step::CreateRole { role, privileges }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use phoenix_clients::proxmox::access::Token;

    fn privileges(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|p| (*p).to_owned()).collect()
    }

    fn wanted() -> Wanted {
        Wanted {
            role: "Phoenix".into(),
            privileges: privileges(&["VM.Audit", "VM.Allocate"]),
            access_role: "PhoenixAccess".into(),
            access_privileges: None,
            user: "phoenix@pve".into(),
            token: "controller".into(),
            replace_token: true,
        }
    }

    fn role(privs: &[&str], special: bool) -> Role {
        Role {
            roleid: "Phoenix".into(),
            privs: privileges(privs),
            special,
        }
    }

    fn user(tokens: &[(&str, bool)]) -> User {
        User {
            userid: "phoenix@pve".into(),
            comment: None,
            email: None,
            enable: true,
            groups: BTreeSet::new(),
            tokens: tokens
                .iter()
                .map(|(id, privsep)| Token {
                    tokenid: (*id).into(),
                    privsep: *privsep,
                })
                .collect(),
        }
    }

    fn grant(role: &str) -> AclEntry {
        AclEntry {
            path: "/".into(),
            kind: "user".into(),
            ugid: "phoenix@pve".into(),
            roleid: role.into(),
            propagate: true,
        }
    }

    fn complete(secret: SecretHolds) -> Observed {
        Observed {
            roles: vec![role(&["VM.Allocate", "VM.Audit"], false)],
            users: vec![user(&[("controller", false)])],
            acl: vec![grant("Phoenix")],
            secret,
        }
    }

    #[test]
    fn plan_goes_from_what_is_there_to_the_wanted_access() {
        use Step::*;
        let nothing = Observed {
            roles: vec![],
            users: vec![],
            acl: vec![],
            secret: SecretHolds::Nothing,
        };
        let accepted = SecretHolds::Wanted { accepted: true };
        let mut drifted = complete(accepted);
        drifted.roles = vec![role(&["VM.Audit", "Sys.Console"], false)];
        let mut unpropagated = complete(accepted);
        unpropagated.acl[0].propagate = false;
        let mut separated = complete(accepted);
        separated.users = vec![user(&[("controller", true)])];
        let cases: Vec<(&str, Observed, Vec<Step>)> = vec![
            (
                "a fresh PVE",
                nothing,
                vec![
                    CreateRole {
                        role: "Phoenix".into(),
                        privileges: wanted().privileges,
                    },
                    CreateUser,
                    Grant("Phoenix".into()),
                    CreateToken,
                    WriteSecret,
                ],
            ),
            ("everything in place: nothing", complete(accepted), vec![]),
            (
                "the Secret lost: the token replaced",
                complete(SecretHolds::Nothing),
                vec![ReplaceToken, WriteSecret],
            ),
            (
                "the Secret's secret refused",
                complete(SecretHolds::Wanted { accepted: false }),
                vec![ReplaceToken, WriteSecret],
            ),
            (
                "the Secret names another token",
                complete(SecretHolds::OtherToken),
                vec![ReplaceToken, WriteSecret],
            ),
            (
                "privileges drifted",
                drifted,
                vec![SetRole {
                    role: "Phoenix".into(),
                    privileges: wanted().privileges,
                    added: vec!["VM.Allocate".into()],
                    removed: vec!["Sys.Console".into()],
                }],
            ),
            (
                "a grant without propagation",
                unpropagated,
                vec![Grant("Phoenix".into())],
            ),
            (
                "a separated token",
                separated,
                vec![ReplaceToken, WriteSecret],
            ),
        ];
        for (name, observed, steps) in cases {
            assert_eq!(plan(&wanted(), &observed).unwrap(), steps, "{name}");
        }
    }

    #[test]
    fn a_token_in_use_is_replaced_only_when_asked() {
        let keep = Wanted {
            replace_token: false,
            ..wanted()
        };
        let error = plan(&keep, &complete(SecretHolds::Nothing)).unwrap_err();
        assert!(error.contains("--replace-token"), "{error}");
        let fine = complete(SecretHolds::Wanted { accepted: true });
        assert_eq!(plan(&keep, &fine).unwrap(), vec![]);
    }

    #[test]
    fn the_access_role_is_granted_only_with_manage_access_and_taken_back_without() {
        use Step::*;
        let manage = Wanted {
            access_privileges: Some(privileges(&["User.Modify", "Permissions.Modify"])),
            ..wanted()
        };
        let plain = wanted();
        let accepted = SecretHolds::Wanted { accepted: true };
        let access_role = |privs: &[&str]| Role {
            roleid: "PhoenixAccess".into(),
            ..role(privs, false)
        };
        let managing = || {
            let mut observed = complete(accepted);
            let role = access_role(&["Permissions.Modify", "User.Modify"]);
            observed.roles.push(role);
            observed.acl.push(grant("PhoenixAccess"));
            observed
        };
        let mut drifted = complete(accepted);
        drifted.roles.push(access_role(&["User.Modify"]));
        drifted.acl.push(grant("PhoenixAccess"));
        let cases: Vec<(&str, &Wanted, Observed, Vec<Step>)> = vec![
            (
                "asked for on a set-up PVE",
                &manage,
                complete(accepted),
                vec![
                    CreateRole {
                        role: "PhoenixAccess".into(),
                        privileges: manage.access_privileges.clone().unwrap(),
                    },
                    Grant("PhoenixAccess".into()),
                ],
            ),
            ("asked for, in place: nothing", &manage, managing(), vec![]),
            (
                "asked for, a privilege taken away by hand",
                &manage,
                drifted,
                vec![SetRole {
                    role: "PhoenixAccess".into(),
                    privileges: manage.access_privileges.clone().unwrap(),
                    added: vec!["Permissions.Modify".into()],
                    removed: vec![],
                }],
            ),
            (
                "not asked for: taken back and removed",
                &plain,
                managing(),
                vec![
                    Revoke("PhoenixAccess".into()),
                    DeleteRole("PhoenixAccess".into()),
                ],
            ),
            (
                "not asked for, not there: nothing",
                &plain,
                complete(accepted),
                vec![],
            ),
        ];
        for (name, wanted, observed, steps) in cases {
            assert_eq!(plan(wanted, &observed).unwrap(), steps, "{name}");
        }
    }

    #[test]
    fn a_built_in_role_is_never_changed() {
        let mut observed = complete(SecretHolds::Nothing);
        observed.roles = vec![role(&["VM.Audit"], true)];
        let error = plan(&wanted(), &observed).unwrap_err();
        assert!(error.contains("built-in"), "{error}");
    }
}
