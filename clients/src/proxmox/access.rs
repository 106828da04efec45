//! PVE's access control: a password login (ticket), the roles, users, ACL entries and
//! API tokens `phoenix setup` reads and creates, and the groups, users and ACL entries a
//! ProxmoxCluster's `spec.access` keeps. Secrets (the password, a ticket, a new
//! token's value) are passed through, never kept beyond the client or printed.

use super::{Auth, Config, ErrorKind, ProxmoxClient, ProxmoxError};
use reqwest::Method;
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// A role and its privileges, as `GET /access/roles` lists them (`privs` comma-separated).
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Role {
    pub roleid: String,
    #[serde(default, deserialize_with = "comma_list")]
    pub privs: BTreeSet<String>,
    /// Built in (cannot be changed).
    #[serde(default, deserialize_with = "flag")]
    pub special: bool,
}

/// A user with its groups and tokens, as `GET /access/users?full=1` lists them.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct User {
    pub userid: String,
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    /// PVE lists it always; a user it does not say of is enabled (its default).
    #[serde(default = "enabled", deserialize_with = "flag")]
    pub enable: bool,
    #[serde(default, deserialize_with = "comma_list")]
    pub groups: BTreeSet<String>,
    #[serde(default)]
    pub tokens: Vec<Token>,
}

fn enabled() -> bool {
    true
}

/// A group, as `GET /access/groups` lists it.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Group {
    pub groupid: String,
    #[serde(default)]
    pub comment: Option<String>,
}

/// Whom an ACL entry grants a role to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Grantee {
    User,
    Group,
}

impl Grantee {
    /// The parameter of `PUT /access/acl` naming it.
    fn param(self) -> &'static str {
        match self {
            Grantee::User => "users",
            Grantee::Group => "groups",
        }
    }
}

/// The fields of a user `POST`/`PUT /access/users` set; `None` leaves one as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserFields {
    pub comment: Option<String>,
    pub email: Option<String>,
    pub enable: Option<bool>,
    /// The groups the user is in, all of them (PVE replaces the list).
    pub groups: Option<BTreeSet<String>>,
}

impl UserFields {
    fn params(&self) -> Vec<(String, String)> {
        let mut params = Vec::new();
        let mut put = |k: &str, v: String| params.push((k.to_owned(), v));
        if let Some(comment) = &self.comment {
            put("comment", comment.clone());
        }
        if let Some(email) = &self.email {
            put("email", email.clone());
        }
        if let Some(enable) = self.enable {
            put("enable", u8::from(enable).to_string());
        }
        if let Some(groups) = &self.groups {
            put("groups", joined(groups));
        }
        params
    }
}

/// An API token's settings (never its secret: PVE shows that once, on creation).
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Token {
    pub tokenid: String,
    #[serde(default, deserialize_with = "flag")]
    pub privsep: bool,
}

/// One ACL entry: `roleid` granted to `ugid` (a user, group or token) on `path`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct AclEntry {
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub ugid: String,
    pub roleid: String,
    #[serde(default, deserialize_with = "flag")]
    pub propagate: bool,
}

/// A token just created: its full id and its secret (shown by PVE only this once).
pub struct NewToken {
    pub full_id: String,
    pub secret: String,
}

impl std::fmt::Debug for NewToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewToken")
            .field("full_id", &self.full_id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl ProxmoxClient {
    /// A client logged in as `user` with `password` (`POST /access/ticket`): its requests
    /// carry the ticket as PVE's cookie and, for writes, the CSRF token. A wrong password
    /// is PVE's 401 "authentication failure" (no detail, by design).
    pub async fn login(config: &Config, user: &str, password: &str) -> Result<Self, ProxmoxError> {
        let mut client = Self::new(config)?;
        client.auth = Auth::None;
        let params = [
            ("username".to_owned(), user.to_owned()),
            ("password".to_owned(), password.to_owned()),
        ];
        let answer = client.call(Method::POST, "/access/ticket", &params).await?;
        let (Some(ticket), Some(csrf)) = (
            answer["ticket"].as_str(),
            answer["CSRFPreventionToken"].as_str(),
        ) else {
            return Err(unexpected("/access/ticket", "no ticket in the answer"));
        };
        client.auth = Auth::Ticket {
            cookie: format!("PVEAuthCookie={}", cookie_escape(ticket)),
            csrf: csrf.to_owned(),
        };
        Ok(client)
    }

    pub async fn roles(&self) -> Result<Vec<Role>, ProxmoxError> {
        self.typed(Method::GET, "/access/roles", &[]).await
    }

    /// Creates `roleid` with exactly `privs`.
    pub async fn create_role(
        &self,
        roleid: &str,
        privs: &BTreeSet<String>,
    ) -> Result<(), ProxmoxError> {
        let params = [
            ("roleid".to_owned(), roleid.to_owned()),
            ("privs".to_owned(), joined(privs)),
        ];
        self.call(Method::POST, "/access/roles", &params).await?;
        Ok(())
    }

    /// Replaces the privileges of `roleid` with `privs`.
    pub async fn set_role(
        &self,
        roleid: &str,
        privs: &BTreeSet<String>,
    ) -> Result<(), ProxmoxError> {
        let params = [("privs".to_owned(), joined(privs))];
        self.call(Method::PUT, &format!("/access/roles/{roleid}"), &params)
            .await?;
        Ok(())
    }

    /// Every user, with their tokens.
    pub async fn users(&self) -> Result<Vec<User>, ProxmoxError> {
        let params = [("full".to_owned(), "1".to_owned())];
        self.typed(Method::GET, "/access/users", &params).await
    }

    /// Creates `userid` without a password: it cannot log in, only its tokens act.
    pub async fn create_user(&self, userid: &str, comment: &str) -> Result<(), ProxmoxError> {
        let params = [
            ("userid".to_owned(), userid.to_owned()),
            ("comment".to_owned(), comment.to_owned()),
        ];
        self.call(Method::POST, "/access/users", &params).await?;
        Ok(())
    }

    /// Creates `userid` with `fields` and no password: whoever it is logs in through
    /// another realm or a password set by hand; Phoenix never sets one.
    pub async fn create_user_with(
        &self,
        userid: &str,
        fields: &UserFields,
    ) -> Result<(), ProxmoxError> {
        let mut params = vec![("userid".to_owned(), userid.to_owned())];
        params.extend(fields.params());
        self.call(Method::POST, "/access/users", &params).await?;
        Ok(())
    }

    pub async fn update_user(&self, userid: &str, fields: &UserFields) -> Result<(), ProxmoxError> {
        let path = format!("/access/users/{userid}");
        self.call(Method::PUT, &path, &fields.params()).await?;
        Ok(())
    }

    pub async fn groups(&self) -> Result<Vec<Group>, ProxmoxError> {
        self.typed(Method::GET, "/access/groups", &[]).await
    }

    pub async fn create_group(&self, groupid: &str, comment: &str) -> Result<(), ProxmoxError> {
        let params = [
            ("groupid".to_owned(), groupid.to_owned()),
            ("comment".to_owned(), comment.to_owned()),
        ];
        self.call(Method::POST, "/access/groups", &params).await?;
        Ok(())
    }

    pub async fn update_group(&self, groupid: &str, comment: &str) -> Result<(), ProxmoxError> {
        let params = [("comment".to_owned(), comment.to_owned())];
        let path = format!("/access/groups/{groupid}");
        self.call(Method::PUT, &path, &params).await?;
        Ok(())
    }

    pub async fn delete_role(&self, roleid: &str) -> Result<(), ProxmoxError> {
        self.call(Method::DELETE, &format!("/access/roles/{roleid}"), &[])
            .await?;
        Ok(())
    }

    pub async fn acl(&self) -> Result<Vec<AclEntry>, ProxmoxError> {
        self.typed(Method::GET, "/access/acl", &[]).await
    }

    /// Grants `roleid` to user `userid` on `path` and below.
    pub async fn grant(&self, path: &str, roleid: &str, userid: &str) -> Result<(), ProxmoxError> {
        self.set_acl(path, roleid, Grantee::User, userid, Some(true))
            .await
    }

    /// Grants `roleid` to `who` on `path` (below it too when `propagate`), replacing an
    /// entry for the same path, role and grantee; `None`: removes that entry.
    pub async fn set_acl(
        &self,
        path: &str,
        roleid: &str,
        grantee: Grantee,
        who: &str,
        propagate: Option<bool>,
    ) -> Result<(), ProxmoxError> {
        let mut params = vec![
            ("path".to_owned(), path.to_owned()),
            ("roles".to_owned(), roleid.to_owned()),
            (grantee.param().to_owned(), who.to_owned()),
        ];
        params.push(match propagate {
            Some(propagate) => ("propagate".to_owned(), u8::from(propagate).to_string()),
            None => ("delete".to_owned(), "1".to_owned()),
        });
        self.call(Method::PUT, "/access/acl", &params).await?;
        Ok(())
    }

    /// Creates token `tokenid` of `userid`; `privsep: false` gives it its user's
    /// privileges. Its secret is in the answer only.
    pub async fn create_token(
        &self,
        userid: &str,
        tokenid: &str,
        privsep: bool,
        comment: &str,
    ) -> Result<NewToken, ProxmoxError> {
        let path = format!("/access/users/{userid}/token/{tokenid}");
        let params = [
            ("privsep".to_owned(), u8::from(privsep).to_string()),
            ("comment".to_owned(), comment.to_owned()),
        ];
        let answer = self.call(Method::POST, &path, &params).await?;
        match (answer["full-tokenid"].as_str(), answer["value"].as_str()) {
            (Some(full_id), Some(secret)) => Ok(NewToken {
                full_id: full_id.to_owned(),
                secret: secret.to_owned(),
            }),
            _ => Err(unexpected(&path, "no token id and value in the answer")),
        }
    }

    pub async fn delete_token(&self, userid: &str, tokenid: &str) -> Result<(), ProxmoxError> {
        let path = format!("/access/users/{userid}/token/{tokenid}");
        self.call(Method::DELETE, &path, &[]).await?;
        Ok(())
    }

    /// The caller's privileges per path (`GET /access/permissions`).
    pub async fn permissions(
        &self,
    ) -> Result<BTreeMap<String, BTreeMap<String, Value>>, ProxmoxError> {
        self.typed(Method::GET, "/access/permissions", &[]).await
    }
}

fn joined(privs: &BTreeSet<String>) -> String {
    privs.iter().cloned().collect::<Vec<_>>().join(",")
}

/// PVE unescapes the cookie's value; a ticket holds `:`, `=`, `/` and `+`.
fn cookie_escape(ticket: &str) -> String {
    ticket
        .replace(':', "%3A")
        .replace('=', "%3D")
        .replace('/', "%2F")
        .replace('+', "%2B")
}

fn unexpected(path: &str, what: &str) -> ProxmoxError {
    ProxmoxError {
        kind: ErrorKind::Refused,
        status: Some(200),
        message: format!("unexpected answer from {path}: {what}"),
        errors: BTreeMap::new(),
    }
}

/// PVE's booleans arrive as 0/1, "0"/"1" or true/false depending on the endpoint.
fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Bool(b) => b,
        Value::Number(n) => n.as_i64() == Some(1),
        Value::String(s) => s == "1",
        _ => false,
    })
}

fn comma_list<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeSet<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect(),
        Value::Object(map) => map.keys().cloned().collect(),
        _ => BTreeSet::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_users_and_acl_read_as_pve_lists_them() {
        let roles: Vec<Role> = serde_json::from_value(serde_json::json!([
            {"roleid": "PVEAuditor", "privs": "Datastore.Audit,Sys.Audit,VM.Audit", "special": 1},
            {"roleid": "Mine", "privs": "VM.Audit"}
        ]))
        .unwrap();
        assert!(roles[0].special && roles[0].privs.contains("Sys.Audit"));
        assert_eq!(roles[1].privs.len(), 1);
        let users: Vec<User> = serde_json::from_value(serde_json::json!([
            {"userid": "phoenix@pve", "enable": 1, "tokens": [{"tokenid": "controller", "privsep": "0"}]},
            {"userid": "alice@pve", "enable": 0, "groups": "admins,ops", "email": "a@example.org"},
            {"userid": "bob@pve"}
        ]))
        .unwrap();
        assert!(!users[0].tokens[0].privsep);
        assert!(!users[1].enable && users[1].groups.len() == 2);
        assert!(users[2].enable && users[2].groups.is_empty());
        let acl: Vec<AclEntry> = serde_json::from_value(serde_json::json!([
            {"path": "/", "type": "user", "ugid": "phoenix@pve", "roleid": "Mine", "propagate": 1}
        ]))
        .unwrap();
        assert!(acl[0].propagate && acl[0].kind == "user");
    }

    #[test]
    fn a_ticket_is_escaped_for_the_cookie() {
        assert_eq!(
            cookie_escape("PVE:root@pam:6745A1B2::ab+c/d=="),
            "PVE%3Aroot@pam%3A6745A1B2%3A%3Aab%2Bc%2Fd%3D%3D"
        );
    }

    #[test]
    fn a_new_token_prints_no_secret() {
        let token = NewToken {
            full_id: "phoenix@pve!controller".into(),
            secret: "0b5c3a7e-2f4d".into(),
        };
        assert!(!format!("{token:?}").contains("0b5c"));
    }
}
