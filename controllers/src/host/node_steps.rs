//! Named steps on a host's node: a command or a file write, each failing with its step's
//! name (`HostStepFailed: host step check dnsmasq config failed: exit 1: …`).

use super::HostPass;
use crate::error::Error;
use crate::node_exec;
use phoenix_clients::exec::ExecOutput;
use std::time::Duration;

const STEP_TIMEOUT: Duration = Duration::from_secs(60);

pub fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| (*w).to_owned()).collect()
}

/// Runs step `name` on the node; a non-zero exit is the step's failure.
pub async fn step(
    pass: &HostPass<'_>,
    name: &str,
    command: Vec<String>,
) -> Result<ExecOutput, Error> {
    let ctx = pass.ctx;
    let out = node_exec::run(
        &ctx.kube,
        pass.pve,
        ctx.pve.redirect(),
        &pass.node,
        &command,
        STEP_TIMEOUT,
    )
    .await
    .map_err(|e| Error::host_step(name, e))?;
    if !out.success() {
        return Err(Error::host_step_exit(name, &out));
    }
    Ok(out)
}

pub async fn write(
    pass: &HostPass<'_>,
    name: &str,
    path: &str,
    content: &str,
    mode: u32,
) -> Result<(), Error> {
    let ctx = pass.ctx;
    node_exec::write_file(
        &ctx.kube,
        pass.pve,
        ctx.pve.redirect(),
        &pass.node,
        path,
        content,
        mode,
    )
    .await
    .map_err(|e| Error::host_step(name, e))
}
