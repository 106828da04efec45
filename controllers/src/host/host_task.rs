//! A PVE task a host area started (a pool being created, network changes being applied),
//! remembered in status across passes: followed in the background, the host woken when it
//! stops, and its end taken by the next pass.

use super::HostPass;
use crate::error::Error;
use phoenix_clients::proxmox::{ErrorKind, TaskOutcome, Upid};

/// Where the remembered task stands.
#[derive(Debug)]
pub enum TaskState {
    /// None remembered.
    None,
    Running,
    /// Ended well; forgotten.
    Succeeded,
    /// Ended with an error (the step's failure); forgotten.
    Failed(Error),
}

/// Looks at the task `task` remembers for step `step`: a running one is followed, an ended
/// one forgotten (its failure is the step's). A task the node forgot counts as ended well:
/// the area's observation says what it left. `Err` only when the task could not be read.
pub async fn check(
    pass: &HostPass<'_>,
    task: &mut Option<String>,
    step: &str,
) -> Result<TaskState, Error> {
    let Some(raw) = task.clone() else {
        return Ok(TaskState::None);
    };
    let Some(upid) = Upid::parse(&raw) else {
        *task = None;
        return Ok(TaskState::None);
    };
    let client = &pass.pve.client;
    let outcome = match client.task(&upid).await {
        Ok(status) => status.outcome(),
        Err(e) if e.kind == ErrorKind::NotFound => TaskOutcome::Succeeded,
        Err(e) => return Err(Error::host_step(step, e)),
    };
    match outcome {
        TaskOutcome::Running => {
            follow(pass, upid);
            Ok(TaskState::Running)
        }
        TaskOutcome::Succeeded => {
            *task = None;
            Ok(TaskState::Succeeded)
        }
        TaskOutcome::Failed(exitstatus) => {
            *task = None;
            Err(Error::host_step(
                step,
                Error::TaskFailed {
                    upid: raw,
                    exitstatus,
                },
            ))
        }
    }
}

/// Remembers `upid` in `task` and follows it.
pub fn started(pass: &HostPass<'_>, task: &mut Option<String>, upid: Upid) {
    *task = Some(upid.raw.clone());
    follow(pass, upid);
}

fn follow(pass: &HostPass<'_>, upid: Upid) {
    let client = pass.pve.client.clone();
    pass.ctx
        .tasks
        .follow(client, upid, Vec::new(), pass.waker());
}
