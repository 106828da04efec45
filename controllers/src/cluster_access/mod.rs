//! PVE's users, groups and ACL entries of a ProxmoxCluster (`spec.access`), performed:
//! observe (three reads), refuse what crosses the trust boundary or what the schema could
//! not check, then the planned changes in order. Decisions are in `decide.rs`.

pub mod decide;

use crate::conditions::reason;
use crate::error::Error;
use decide::{Change, Observed};
use phoenix_clients::proxmox::ProxmoxClient;
use phoenix_crds::cluster_access::{ClusterAccess, ClusterAccessStatus};

/// A pass that applied the spec: what changed (empty: nothing) and the condition's message.
pub struct Applied {
    pub changed: Vec<String>,
    pub message: String,
}

/// Brings PVE's access control to `spec`, acting as `own_user` (the token's user). Returns
/// what to remember (also after a failure part-way: the entries added before it are
/// Phoenix's) and what happened.
pub async fn reconcile(
    client: &ProxmoxClient,
    own_user: &str,
    spec: &ClusterAccess,
    remembered: &ClusterAccessStatus,
) -> (ClusterAccessStatus, Result<Applied, Error>) {
    let observed = match observe(client).await {
        Ok(observed) => observed,
        Err(e) => return (remembered.clone(), Err(e)),
    };
    let allowed = decide::refuse_trust(spec, own_user, &observed)
        .and_then(|()| decide::check(spec, &observed));
    if let Err(e) = allowed {
        return (remembered.clone(), Err(e));
    }
    let changes = decide::plan(spec, &observed, remembered);
    let mut done = 0;
    let mut failed = None;
    for change in &changes {
        if let Err(e) = act(client, change).await {
            failed = Some(not_permitted(e.into(), change));
            break;
        }
        done += 1;
    }
    let status = decide::remember(spec, &observed, remembered, &changes[..done]);
    let result = match failed {
        Some(e) => Err(e),
        None => Ok(Applied {
            changed: changes.iter().map(ToString::to_string).collect(),
            message: message(spec, &status),
        }),
    };
    (status, result)
}

async fn observe(client: &ProxmoxClient) -> Result<Observed, Error> {
    Ok(Observed {
        groups: client.groups().await?,
        users: client.users().await?,
        acl: client.acl().await?,
    })
}

async fn act(
    client: &ProxmoxClient,
    change: &Change,
) -> Result<(), phoenix_clients::proxmox::ProxmoxError> {
    match change {
        Change::CreateGroup { id, comment } => client.create_group(id, comment).await,
        Change::UpdateGroup { id, comment } => client.update_group(id, comment).await,
        Change::CreateUser { id, fields } => client.create_user_with(id, fields).await,
        Change::UpdateUser { id, fields } => client.update_user(id, fields).await,
        Change::Grant { grant, propagate } => {
            let (path, role, who) = (&grant.path, &grant.role, &grant.who);
            client
                .set_acl(path, role, grant.grantee, who, Some(*propagate))
                .await
        }
        Change::Revoke(grant) => {
            client
                .set_acl(&grant.path, &grant.role, grant.grantee, &grant.who, None)
                .await
        }
    }
}

/// PVE's 403: the token lacks the access privileges, which only the operator can grant.
fn not_permitted(error: Error, change: &Change) -> Error {
    match &error {
        Error::Proxmox(e) if e.status == Some(403) => Error::spec(
            reason::ACCESS_NOT_PERMITTED,
            format!(
                "PVE refused to {change} ({}): Phoenix's token may not manage users, groups and ACLs; run `phoenix setup --manage-access` to grant it the role {}",
                e.message,
                crate::privileges::ACCESS_ROLE
            ),
        ),
        _ => error,
    }
}

fn message(spec: &ClusterAccess, status: &ClusterAccessStatus) -> String {
    let mut message = format!(
        "{} group(s), {} user(s) and {} ACL entr(ies) as spec.access says",
        spec.groups.len(),
        spec.users.len(),
        spec.acls.len()
    );
    let left = decide::left(spec, status);
    if !left.is_empty() {
        message.push_str(&format!(
            "; {} left the spec and stay(s) in PVE (Phoenix never deletes users or groups)",
            left.join(", ")
        ));
    }
    message
}
