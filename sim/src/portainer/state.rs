//! What Portainer keeps in its database (here: in the cluster, so the state file keeps
//! it), its settings and faults, and the wire shapes of its objects.

use crate::cluster::{Cluster, now_s};
pub use crate::portainer_db::*;
use serde_json::{Value, json};

/// Follows the swarms (see `Cluster::observe_portainer`).
pub fn observe(cluster: &mut Cluster) {
    cluster.observe_portainer();
}

pub fn endpoint_json(e: &Endpoint) -> Value {
    json!({
        "Id": e.id, "Name": e.name, "Type": 2, "URL": "tcp://tasks.agent:9001",
        "PublicURL": "", "GroupId": 1, "Status": 1,
        "TLSConfig": {"TLS": true, "TLSSkipVerify": true},
        "TagIds": [], "Snapshots": [], "ContainerEngine": "docker", "EdgeID": "", "EdgeKey": "",
    })
}

/// A stack as Portainer answers it: env values included, the git password blanked.
pub fn stack_json(s: &Stack) -> Value {
    let git = s.git.as_ref().map(|g| {
        json!({
            "URL": g.url, "ReferenceName": g.reference_name, "ConfigFilePath": g.config_file_path,
            "Authentication": g.username.as_ref().map(|u| json!({"Username": u, "Password": "", "GitCredentialID": 0})),
            "ConfigHash": g.config_hash, "TLSSkipVerify": false,
        })
    });
    let env: Vec<Value> = s
        .env
        .iter()
        .map(|p| json!({"name": p.name, "value": p.value.0}))
        .collect();
    json!({
        "Id": s.id, "Name": s.name, "Type": 1, "EndpointId": s.endpoint_id, "SwarmId": s.swarm_id,
        "EntryPoint": s.entry_point, "Env": env, "ResourceControl": null, "Status": s.status,
        "ProjectPath": format!("/data/compose/{}", s.id), "CreationDate": s.creation_date,
        "UpdateDate": s.update_date, "CreatedBy": s.created_by, "UpdatedBy": s.updated_by,
        "AdditionalFiles": null, "AutoUpdate": null, "Option": {"Prune": s.prune},
        "GitConfig": git, "FromAppTemplate": false, "Namespace": "",
        "DeploymentStatus": s.deployment_status,
    })
}

/// A `DeploymentStatus` entry.
pub fn deployment_status(status: u8, message: &str) -> Value {
    json!({"Status": status, "Message": message, "Time": now_s()})
}
