//! The QEMU guest agent through the PVE API: `agent/exec` starts a command and gives a
//! pid, `agent/exec-status` says whether it exited and with what, `agent/file-write`
//! writes a file (base64, so any bytes survive).

use super::{ExecError, ExecOutput, bounded};
use crate::proxmox::ProxmoxClient;
use base64::Engine;
use reqwest::Method;
use serde_json::Value;
use std::time::Duration;

/// How often a running command's status is read.
const POLL: Duration = Duration::from_millis(250);

#[derive(Clone, Debug)]
pub struct Agent {
    pub client: ProxmoxClient,
    pub node: String,
    pub vmid: u32,
}

impl Agent {
    fn path(&self, command: &str) -> String {
        format!("/nodes/{}/qemu/{}/agent/{command}", self.node, self.vmid)
    }

    pub async fn exec(&self, argv: &[String], timeout: Duration) -> Result<ExecOutput, ExecError> {
        super::within(timeout, self.exec_unbounded(argv)).await
    }

    async fn exec_unbounded(&self, argv: &[String]) -> Result<ExecOutput, ExecError> {
        // PVE takes the argv as the `command` key repeated.
        let params: Vec<(String, String)> = argv
            .iter()
            .map(|a| ("command".to_owned(), a.clone()))
            .collect();
        let started = self
            .client
            .call(Method::POST, &self.path("exec"), &params)
            .await
            .map_err(refused)?;
        let pid = started
            .get("pid")
            .and_then(Value::as_u64)
            .ok_or_else(|| ExecError::Refused(format!("agent exec gave no pid: {started}")))?;
        loop {
            let status = self
                .client
                .call(
                    Method::GET,
                    &self.path("exec-status"),
                    &[("pid".into(), pid.to_string())],
                )
                .await
                .map_err(refused)?;
            if status.get("exited").and_then(Value::as_u64) == Some(1) {
                let text = |key: &str| status.get(key).and_then(Value::as_str).unwrap_or("");
                let output = format!("{}{}", text("out-data"), text("err-data"));
                return Ok(ExecOutput {
                    exit_code: status.get("exitcode").and_then(Value::as_i64).unwrap_or(-1) as i32,
                    output: bounded(output.as_bytes()),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Writes `content` to `path` with `mode`, without a moment where the file has a
    /// looser mode than that: `file-write` has no mode (it would create the file 0644, or
    /// write into an existing file whatever its mode), so the content goes into a new
    /// file beside it that `install -m MODE /dev/null` made empty with its final mode
    /// (GNU install creates it 0600 and then sets MODE), which is renamed into place.
    pub async fn push(
        &self,
        path: &str,
        content: &[u8],
        mode: &str,
        timeout: Duration,
    ) -> Result<(), ExecError> {
        let partial = format!("{path}.phoenix-new");
        let install = [
            "install".to_owned(),
            "-m".into(),
            mode.to_owned(),
            "/dev/null".into(),
            partial.clone(),
        ];
        self.run_or_refuse(&install, timeout).await?;
        let written = self
            .write_then_rename(&partial, path, content, timeout)
            .await;
        if written.is_err() {
            let remove = ["rm".to_owned(), "-f".into(), partial];
            let _ = self.exec(&remove, timeout).await;
        }
        written
    }

    async fn write_then_rename(
        &self,
        partial: &str,
        path: &str,
        content: &[u8],
        timeout: Duration,
    ) -> Result<(), ExecError> {
        let params = [
            ("file".to_owned(), partial.to_owned()),
            (
                "content".to_owned(),
                base64::engine::general_purpose::STANDARD.encode(content),
            ),
            // 0: the content is base64 already (PVE would otherwise encode it again).
            ("encode".to_owned(), "0".to_owned()),
        ];
        self.client
            .call(Method::POST, &self.path("file-write"), &params)
            .await
            .map_err(refused)?;
        let rename = [
            "mv".to_owned(),
            "-f".into(),
            partial.to_owned(),
            path.to_owned(),
        ];
        self.run_or_refuse(&rename, timeout).await
    }

    /// Runs `argv`; a failure is a refusal with the command's last lines.
    async fn run_or_refuse(&self, argv: &[String], timeout: Duration) -> Result<(), ExecError> {
        let out = self.exec(argv, timeout).await?;
        if out.success() {
            Ok(())
        } else {
            Err(ExecError::Refused(format!(
                "{}: {}",
                argv.join(" "),
                out.tail(3)
            )))
        }
    }
}

fn refused(e: crate::proxmox::ProxmoxError) -> ExecError {
    if e.status.is_none() {
        ExecError::Unreachable(e.message)
    } else {
        ExecError::Refused(e.message)
    }
}
