//! Whose a guest is: Phoenix's guests carry the tag `phoenix` and the owning object's uid in
//! their description. The guest controllers write the marker; everything that acts inside a
//! guest (certificate installs, swarm steps) checks it, live, before acting.

use std::collections::BTreeMap;

/// The tag on every guest Phoenix manages.
pub const OWNER_TAG: &str = "phoenix";

/// The description that marks a guest as the object `uid`'s.
pub fn owner_marker(uid: &str) -> String {
    format!("Managed by Phoenix (owner uid {uid}); changes made here are reverted.")
}

/// The owner uid in a description written by [`owner_marker`].
pub fn marker_uid(description: &str) -> Option<&str> {
    let rest = description.split("(owner uid ").nth(1)?;
    rest.split(')').next().filter(|uid| !uid.is_empty())
}

/// Whose a guest is, by the marker in its description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ownership {
    Ours,
    /// No marker: created by hand or by another tool.
    Unmarked,
    /// Another Phoenix object's (its uid).
    Other(String),
}

/// Whose the guest with PVE config `config` is, as seen by the object `uid`.
pub fn ownership(config: &BTreeMap<String, String>, uid: &str) -> Ownership {
    let description = config.get("description").map_or("", String::as_str);
    match marker_uid(description) {
        Some(owner) if !uid.is_empty() && owner == uid => Ownership::Ours,
        Some(owner) => Ownership::Other(owner.to_owned()),
        None => Ownership::Unmarked,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ownership_reads_the_marker() {
        let mut config = BTreeMap::new();
        assert_eq!(ownership(&config, "u1"), Ownership::Unmarked);
        config.insert("description".into(), owner_marker("u1"));
        assert_eq!(ownership(&config, "u1"), Ownership::Ours);
        assert_eq!(ownership(&config, "u2"), Ownership::Other("u1".into()));
        assert_eq!(ownership(&config, ""), Ownership::Other("u1".into()));
        config.insert("description".into(), "hand made".into());
        assert_eq!(ownership(&config, "u1"), Ownership::Unmarked);
    }
}
