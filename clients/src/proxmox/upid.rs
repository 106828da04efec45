//! Task ids (UPIDs) and task status: a task is awaited by storing its UPID and reading its
//! status on later passes, never by blocking.

use serde::Deserialize;

/// `UPID:<node>:<pid>:<pstart>:<starttime>:<type>:<id>:<user>:`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upid {
    pub raw: String,
    pub node: String,
    pub kind: String,
    pub id: String,
}

impl Upid {
    pub fn parse(raw: &str) -> Option<Self> {
        let parts: Vec<&str> = raw.split(':').collect();
        (parts.len() == 9 && parts[0] == "UPID" && !parts[1].is_empty()).then(|| Self {
            raw: raw.to_owned(),
            node: parts[1].to_owned(),
            kind: parts[5].to_owned(),
            id: parts[6].to_owned(),
        })
    }
}

impl std::fmt::Display for Upid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.raw)
    }
}

/// `/nodes/{node}/tasks/{upid}/status`
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct TaskStatus {
    pub status: String,
    #[serde(default)]
    pub exitstatus: Option<String>,
}

/// Where a task stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaskOutcome {
    Running,
    /// `OK`, or `WARNINGS: n` (PVE's success with warnings).
    Succeeded,
    Failed(String),
}

impl TaskStatus {
    pub fn outcome(&self) -> TaskOutcome {
        if self.status != "stopped" {
            return TaskOutcome::Running;
        }
        match self.exitstatus.as_deref() {
            Some("OK") => TaskOutcome::Succeeded,
            Some(s) if s.starts_with("WARNINGS") => TaskOutcome::Succeeded,
            Some(error) => TaskOutcome::Failed(error.to_owned()),
            None => TaskOutcome::Failed("task stopped without an exit status".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upids_parse_like_pve_writes_them() {
        let upid =
            Upid::parse("UPID:pve2:003E968C:016E6414:63AD7D74:vzclone:999:root@pam!phoenix:")
                .unwrap();
        assert_eq!(
            (upid.node.as_str(), upid.kind.as_str(), upid.id.as_str()),
            ("pve2", "vzclone", "999")
        );
        assert!(Upid::parse("UPID:pve2:vzclone").is_none());
        assert!(Upid::parse("not a upid").is_none());
    }

    #[test]
    fn warnings_are_success() {
        let status = |s: &str, e: Option<&str>| {
            TaskStatus {
                status: s.into(),
                exitstatus: e.map(Into::into),
            }
            .outcome()
        };
        assert_eq!(status("running", None), TaskOutcome::Running);
        assert_eq!(status("stopped", Some("OK")), TaskOutcome::Succeeded);
        assert_eq!(
            status("stopped", Some("WARNINGS: 2")),
            TaskOutcome::Succeeded
        );
        assert_eq!(
            status("stopped", Some("CT is locked (backup)")),
            TaskOutcome::Failed("CT is locked (backup)".into())
        );
    }
}
