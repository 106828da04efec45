//! The datacenter's IP aliases, `/cluster/firewall/aliases`, with the checks, messages and
//! habits of pve-firewall's `API2/Firewall/Aliases.pm` (`ClusterAliases`): kept by name in
//! lower case, each with its name as last given and its address as `parse_alias` reads it
//! back (a `/32` or `/128` dropped, host bits kept). PVE does not look at the rules or IP
//! sets naming an alias when it is renamed or removed: they then list the parser's
//! `errors`.

use super::cluster_firewall::{kept_comment, unmodified};
use super::{ApiResult, Call, PveError};
use crate::firewall::{Alias, ClusterFirewall, alias_cidr, list_with_digest};
use crate::state::Sim;
use serde_json::Value;

pub(super) fn call(sim: &mut Sim, call: &Call) -> ApiResult {
    let fw = &mut sim.cluster.firewall;
    let path = call
        .template
        .trim_start_matches("/cluster/firewall/aliases");
    match (call.method, path) {
        ("GET", "") => Ok(Value::Array(list(fw).0)),
        ("POST", "") => create(fw, call),
        ("GET", "/{name}") => read(fw, call),
        ("PUT", "/{name}") => update(fw, call),
        ("DELETE", "/{name}") => delete(fw, call),
        _ => Err(PveError {
            status: 501,
            message: format!("Method '{} {}' not implemented", call.method, call.template),
            errors: None,
        }),
    }
}

/// `GET aliases`: sorted by name in lower case, `{name, cidr, comment?, ipversion}`, with
/// the list's digest.
fn list(fw: &ClusterFirewall) -> (Vec<Value>, String) {
    let (items, digest) = list_with_digest(fw.aliases.values().map(Alias::json).collect());
    (items.into_iter().map(Value::Object).collect(), digest)
}

/// The alias as the API's `$data` has it and the file gives it back.
fn alias(name: String, call: &Call) -> Alias {
    Alias {
        name,
        cidr: alias_cidr(&call.text("cidr").unwrap_or_default()),
        comment: kept_comment(call.text("comment")),
    }
}

fn no_such_alias() -> PveError {
    PveError::param("name", "no such alias")
}

/// `POST aliases`: a name taken in any case is refused (named as given).
fn create(fw: &mut ClusterFirewall, call: &Call) -> ApiResult {
    let name = call.text("name").unwrap_or_default();
    let key = name.to_lowercase();
    if fw.aliases.contains_key(&key) {
        return Err(PveError::param(
            "name",
            format!("alias '{name}' already exists"),
        ));
    }
    fw.aliases.insert(key, alias(name, call));
    Ok(Value::Null)
}

/// `GET aliases/{name}`: found in any case; the alias without a digest.
fn read(fw: &ClusterFirewall, call: &Call) -> ApiResult {
    let key = call.text("name").unwrap_or_default().to_lowercase();
    let found = fw.aliases.get(&key).ok_or_else(no_such_alias)?;
    Ok(Value::Object(found.json()))
}

/// `PUT aliases/{name}`: `cidr` and `comment` replaced (no comment given clears it), the
/// name taking the case of `{name}`; `rename` moves it unless another alias has that name.
fn update(fw: &mut ClusterFirewall, call: &Call) -> ApiResult {
    unmodified(&list(fw).1, call)?;
    let name = call.text("name").unwrap_or_default();
    let key = name.to_lowercase();
    if !fw.aliases.contains_key(&key) {
        return Err(no_such_alias());
    }
    let rename = call.text("rename").filter(|r| !r.is_empty() && r != "0");
    match rename {
        Some(new) if new.to_lowercase() != key => {
            if fw.aliases.contains_key(&new.to_lowercase()) {
                return Err(PveError::param(
                    "name",
                    format!("alias '{new}' already exists"),
                ));
            }
            fw.aliases.remove(&key);
            fw.aliases.insert(new.to_lowercase(), alias(new, call));
        }
        _ => {
            fw.aliases.insert(key, alias(name, call));
        }
    }
    Ok(Value::Null)
}

/// `DELETE aliases/{name}`: an alias that is not there is no error.
fn delete(fw: &mut ClusterFirewall, call: &Call) -> ApiResult {
    unmodified(&list(fw).1, call)?;
    let key = call.text("name").unwrap_or_default().to_lowercase();
    fw.aliases.remove(&key);
    Ok(Value::Null)
}
