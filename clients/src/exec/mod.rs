//! Running commands and writing files inside guests.
//!
//! Containers are reached through their PVE node: `pct exec VMID -- …` and `pct push`,
//! run over SSH ([`ssh`]) or, when Phoenix runs on the node itself (or against the
//! simulator), as a local program. VMs are reached through the QEMU guest agent over the
//! PVE API ([`agent`]). Output is captured up to [`OUTPUT_LIMIT`] (the tail is kept: that
//! is where failures are), exit codes are kept, and every call has a timeout.

pub mod agent;
pub mod ssh;

use std::time::Duration;

/// Output kept per command; the rest of a longer output is dropped from the front.
pub const OUTPUT_LIMIT: usize = 64 * 1024;

/// What a command did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecOutput {
    pub exit_code: i32,
    /// stdout and stderr as they came, bounded to the last [`OUTPUT_LIMIT`] bytes.
    pub output: String,
}

impl ExecOutput {
    pub fn success(&self) -> bool {
        self.exit_code == 0
    }

    /// The last `n` lines of the output.
    pub fn tail(&self, n: usize) -> String {
        let lines: Vec<&str> = self.output.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExecError {
    /// The node could not be reached, or the connection broke: worth retrying.
    #[error("cannot reach {0}")]
    Unreachable(String),
    /// The node's SSH host key is not the pinned one: refused, never retried blindly.
    #[error("host key of {host} does not match the pinned known_hosts entry")]
    HostKeyMismatch { host: String },
    #[error("no pinned host key for {host} in known_hosts")]
    HostKeyUnknown { host: String },
    /// Our key was refused, or is unusable.
    #[error("authentication failed: {0}")]
    Auth(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The agent or `pct` refused (guest not running, agent not up, ...).
    #[error("{0}")]
    Refused(String),
}

impl ExecError {
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ExecError::Unreachable(_) | ExecError::Timeout(_) | ExecError::Refused(_)
        )
    }

    /// Stable label for conditions, events and metrics.
    pub fn category(&self) -> &'static str {
        match self {
            ExecError::Unreachable(_) => "GuestExecUnreachable",
            ExecError::HostKeyMismatch { .. } => "SshHostKeyMismatch",
            ExecError::HostKeyUnknown { .. } => "SshHostKeyUnknown",
            ExecError::Auth(_) => "SshAuthFailed",
            ExecError::Timeout(_) => "GuestExecTimeout",
            ExecError::Refused(_) => "GuestExecRefused",
        }
    }
}

/// `work`, given up (as [`ExecError::Timeout`]) when `timeout` passes.
pub async fn within<T>(
    timeout: Duration,
    work: impl std::future::Future<Output = Result<T, ExecError>>,
) -> Result<T, ExecError> {
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| ExecError::Timeout(timeout))?
}

/// Keeps the last [`OUTPUT_LIMIT`] bytes of `bytes` (cut at a character boundary).
pub fn bounded(bytes: &[u8]) -> String {
    let start = bytes.len().saturating_sub(OUTPUT_LIMIT);
    let text = String::from_utf8_lossy(&bytes[start..]);
    text.trim_start_matches('\u{FFFD}').to_owned()
}

/// Where `pct` runs: on the node over SSH, or here.
#[derive(Clone, Debug)]
pub enum NodeShell {
    Ssh(ssh::SshTarget),
    /// A local `pct` (Phoenix on the PVE host), or `phoenix sim pct …` in simulate mode:
    /// the program and its leading arguments.
    Local(Vec<String>),
}

/// `pct exec` / `pct push` into one container.
#[derive(Clone, Debug)]
pub struct Pct {
    pub shell: NodeShell,
    pub vmid: u32,
}

impl Pct {
    /// Runs `argv` in the container.
    pub async fn exec(&self, argv: &[String], timeout: Duration) -> Result<ExecOutput, ExecError> {
        let mut args = vec!["exec".to_owned(), self.vmid.to_string(), "--".into()];
        args.extend(argv.iter().cloned());
        self.pct(&args, None, timeout).await
    }

    /// Writes `content` to `path` in the container with `mode` (octal, e.g. `0644`).
    pub async fn push(
        &self,
        path: &str,
        content: &[u8],
        mode: &str,
        timeout: Duration,
    ) -> Result<(), ExecError> {
        let out = match &self.shell {
            NodeShell::Ssh(target) => {
                // The content goes over stdin into a file on the node that `pct push` reads.
                let script = format!(
                    "f=$(mktemp) && trap 'rm -f \"$f\"' EXIT && cat > \"$f\" && pct push {} \"$f\" {} --perms {}",
                    self.vmid,
                    quote(path),
                    quote(mode)
                );
                target.run(&script, Some(content), timeout).await?
            }
            NodeShell::Local(_) => {
                let file = tempfile::NamedTempFile::new()
                    .map_err(|e| ExecError::Refused(format!("temporary file: {e}")))?;
                std::fs::write(file.path(), content)
                    .map_err(|e| ExecError::Refused(format!("temporary file: {e}")))?;
                let args = [
                    "push".to_owned(),
                    self.vmid.to_string(),
                    file.path().display().to_string(),
                    path.to_owned(),
                    "--perms".into(),
                    mode.to_owned(),
                ];
                self.pct(&args, None, timeout).await?
            }
        };
        if out.success() {
            Ok(())
        } else {
            Err(ExecError::Refused(format!(
                "pct push {path} failed ({}): {}",
                out.exit_code,
                out.tail(3)
            )))
        }
    }

    async fn pct(
        &self,
        args: &[String],
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<ExecOutput, ExecError> {
        match &self.shell {
            NodeShell::Ssh(target) => {
                let line = std::iter::once("pct".to_owned())
                    .chain(args.iter().map(|a| quote(a)))
                    .collect::<Vec<_>>()
                    .join(" ");
                target.run(&line, stdin, timeout).await
            }
            NodeShell::Local(program) => run_local(program, args, timeout).await,
        }
    }
}

/// Runs `program args…` here, killing it when `timeout` passes.
pub async fn run_local(
    program: &[String],
    args: &[String],
    timeout: Duration,
) -> Result<ExecOutput, ExecError> {
    let (first, rest) = program
        .split_first()
        .ok_or_else(|| ExecError::Refused("no pct program configured".into()))?;
    let child = tokio::process::Command::new(first)
        .args(rest)
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = within(timeout, async {
        child
            .await
            .map_err(|e| ExecError::Unreachable(format!("{first}: {e}")))
    })
    .await?;
    let mut bytes = out.stdout;
    bytes.extend_from_slice(&out.stderr);
    Ok(ExecOutput {
        exit_code: out.status.code().unwrap_or(-1),
        output: bounded(&bytes),
    })
}

/// Quotes one word for the node's POSIX shell.
pub fn quote(word: &str) -> String {
    shlex::try_quote(word).map_or_else(|_| "''".into(), |q| q.into_owned())
}

/// The way into one guest.
#[derive(Clone, Debug)]
pub enum GuestShell {
    Pct(Pct),
    Agent(agent::Agent),
}

impl GuestShell {
    pub async fn exec(&self, argv: &[String], timeout: Duration) -> Result<ExecOutput, ExecError> {
        match self {
            GuestShell::Pct(pct) => pct.exec(argv, timeout).await,
            GuestShell::Agent(agent) => agent.exec(argv, timeout).await,
        }
    }

    /// Writes `path` with `mode`, creating its directory first: neither `pct push` nor the
    /// agent's `file-write` creates missing directories.
    pub async fn push(
        &self,
        path: &str,
        content: &[u8],
        mode: &str,
        timeout: Duration,
    ) -> Result<(), ExecError> {
        if let Some(parent) = std::path::Path::new(path).parent() {
            let mkdir = [
                "mkdir".to_owned(),
                "-p".into(),
                parent.display().to_string(),
            ];
            let out = self.exec(&mkdir, timeout).await?;
            if !out.success() {
                return Err(ExecError::Refused(format!(
                    "mkdir -p {}: {}",
                    parent.display(),
                    out.tail(3)
                )));
            }
        }
        match self {
            GuestShell::Pct(pct) => pct.push(path, content, mode, timeout).await,
            GuestShell::Agent(agent) => agent.push(path, content, mode, timeout).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_keeps_the_tail() {
        let long = "x".repeat(OUTPUT_LIMIT + 10) + "\nlast line";
        let out = bounded(long.as_bytes());
        assert_eq!(out.len(), OUTPUT_LIMIT);
        assert!(out.ends_with("last line"));
        let exec = ExecOutput {
            exit_code: 1,
            output: "a\nb\nc\n".into(),
        };
        assert_eq!(exec.tail(2), "b\nc");
    }

    #[test]
    fn words_are_quoted_for_the_shell() {
        assert_eq!(quote("plain"), "plain");
        for word in ["it's", "a b;rm -rf /", "$(reboot)", "\"quoted\"", ""] {
            let quoted = quote(word);
            assert_eq!(
                shlex::split(&quoted),
                Some(vec![word.to_owned()]),
                "{quoted}"
            );
        }
    }
}
