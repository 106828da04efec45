//! Stacks deployed with `docker stack deploy` on the swarm manager through its guest agent
//! — how Portainer itself is brought up, since it cannot deploy itself. The compose file
//! and its revision live under `/var/lib/phoenix/stacks/<stack>/` on the manager; Docker
//! says which services run.

use super::decide::{Live, LiveState};
use crate::conditions::reason;
use crate::error::Error;
use phoenix_clients::exec::{ExecOutput, GuestShell};
use phoenix_clients::portainer::ServiceState;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(120);

fn dir(stack: &str) -> String {
    format!("/var/lib/phoenix/stacks/{stack}")
}

async fn run(shell: &GuestShell, words: &[&str]) -> Result<ExecOutput, Error> {
    crate::guest_exec::run(shell, words, TIMEOUT).await
}

/// The stack on the swarm (`None`: Docker knows no such stack) and its services.
pub async fn observe(
    shell: &GuestShell,
    stack: &str,
) -> Result<Option<(Live, Vec<ServiceState>)>, Error> {
    let json = "{{json .}}";
    let services = run(
        shell,
        &["docker", "stack", "services", "--format", json, stack],
    )
    .await?;
    if !services.success() || services.output.trim().is_empty() {
        if services
            .output
            .to_lowercase()
            .contains("nothing found in stack")
            || services.success()
        {
            return Ok(None);
        }
        return Err(Error::swarm_command(
            reason::DEPLOY_FAILED,
            "docker stack services",
            &services,
        ));
    }
    let tasks = run(
        shell,
        &[
            "docker",
            "stack",
            "ps",
            "--format",
            json,
            "--no-trunc",
            stack,
        ],
    )
    .await?;
    let path = format!("{}/revision", dir(stack));
    let revision = run(shell, &["cat", &path]).await?;
    let live = Live {
        revision: revision.output.trim().to_owned(),
        state: LiveState::Active,
    };
    Ok(Some((live, summarize(&services.output, &tasks.output))))
}

/// Writes the file and its revision (readable by root only: env values may be in it),
/// then deploys; Docker's refusal is the error, with its last lines.
pub async fn deploy(
    shell: &GuestShell,
    stack: &str,
    content: &str,
    revision: &str,
) -> Result<(), Error> {
    let dir = dir(stack);
    let file = format!("{dir}/docker-compose.yml");
    shell
        .push(&file, content.as_bytes(), "0600", TIMEOUT)
        .await?;
    let deploy = [
        "docker",
        "stack",
        "deploy",
        "--compose-file",
        &file,
        "--with-registry-auth",
        "--prune",
        "--detach=true",
        stack,
    ];
    let out = run(shell, &deploy).await?;
    if !out.success() {
        return Err(Error::swarm_command(
            reason::DEPLOY_FAILED,
            "docker stack deploy",
            &out,
        ));
    }
    // Written after the deploy: a revision on disk always names what was deployed.
    let path = format!("{dir}/revision");
    shell
        .push(&path, revision.as_bytes(), "0600", TIMEOUT)
        .await?;
    Ok(())
}

pub async fn remove(shell: &GuestShell, stack: &str) -> Result<(), Error> {
    let out = run(shell, &["docker", "stack", "rm", stack]).await?;
    if !out.success() {
        return Err(Error::swarm_command(
            reason::DEPLOY_FAILED,
            "docker stack rm",
            &out,
        ));
    }
    Ok(())
}

/// `docker stack services` and `docker stack ps` (one JSON object per line) as service
/// states: replicas from `Replicas` (`1/2`), the error of a task that should run.
pub fn summarize(services: &str, tasks: &str) -> Vec<ServiceState> {
    let lines = |text: &str| -> Vec<Value> {
        text.lines()
            .filter_map(|l| serde_json::from_str(l.trim()).ok())
            .collect()
    };
    let mut errors: BTreeMap<String, String> = BTreeMap::new();
    for task in lines(tasks) {
        // Docker shuts a rejected task down (desired `Shutdown`) and tries a new one.
        let error = text(&task, "Error");
        if !text(&task, "CurrentState").starts_with("Running") && !error.is_empty() {
            let service = text(&task, "Name")
                .split('.')
                .next()
                .unwrap_or_default()
                .to_owned();
            errors.entry(service).or_insert(error);
        }
    }
    let mut states: Vec<ServiceState> = lines(services)
        .iter()
        .map(|s| {
            let name = text(s, "Name");
            let replicas = text(s, "Replicas");
            let (running, desired) = replicas.split_once('/').unwrap_or(("0", "0"));
            let number = |n: &str| {
                n.trim()
                    .split(' ')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0)
            };
            ServiceState {
                error: errors.get(&name).cloned(),
                running: number(running),
                desired: number(desired),
                name,
            }
        })
        .collect();
    states.sort_by(|a, b| a.name.cmp(&b.name));
    states
}

fn text(value: &Value, key: &str) -> String {
    value[key].as_str().unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_s_lines_become_service_states() {
        let services = r#"{"ID":"a1","Image":"portainer/agent:2.21.4","Mode":"global","Name":"portainer_agent","Ports":"","Replicas":"2/2"}
{"ID":"b2","Image":"portainer/portainer-ce:2.21.4","Mode":"replicated","Name":"portainer_portainer","Ports":"*:9443->9443/tcp","Replicas":"0/1"}
"#;
        let tasks = r#"{"CurrentState":"Running 5 seconds ago","DesiredState":"Running","Error":"","ID":"t1","Image":"portainer/agent:2.21.4","Name":"portainer_agent.abc","Node":"portainer","Ports":""}
{"CurrentState":"Rejected 3 seconds ago","DesiredState":"Shutdown","Error":"No such image: portainer/portainer-ce:2.21.4","ID":"t2","Image":"portainer/portainer-ce:2.21.4","Name":"portainer_portainer.1","Node":"portainer","Ports":""}
not json
"#;
        let states = summarize(services, tasks);
        assert_eq!(states.len(), 2);
        assert_eq!(
            (
                states[0].running,
                states[0].desired,
                states[0].error.as_deref()
            ),
            (2, 2, None)
        );
        assert_eq!(
            (
                states[1].running,
                states[1].desired,
                states[1].error.as_deref()
            ),
            (0, 1, Some("No such image: portainer/portainer-ce:2.21.4"))
        );
        // Docker writes `1/1 (max 2 per node)` for capped services.
        let capped = summarize(r#"{"Name":"s","Replicas":"1/1 (max 2 per node)"}"#, "");
        assert_eq!((capped[0].running, capped[0].desired), (1, 1));
    }
}
