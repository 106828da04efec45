//! Docker Swarm as the `docker` of simulated VMs sees it: a VM that runs dockerd can
//! initialise a swarm, hand out its worker join token, and others join it by the
//! manager's address; workers leave, managers remove nodes. The answers and refusals are
//! Docker's own texts, so Phoenix's swarm logic meets what it would meet on real VMs.

use crate::cluster::{Cluster, now_ms};
use crate::inside::CommandRecord;
use crate::swarm::{Swarm, SwarmNode, Swarms, random_id};
use rand::rngs::StdRng;

const NOT_MANAGER: &str = "Error response from daemon: This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.";
const ALREADY: &str = "Error response from daemon: This node is already part of a swarm. Use \"docker swarm leave\" to leave this swarm and join another one.";

/// The swarm and node `vmid` is an active member of.
fn membership(swarms: &Swarms, vmid: u32) -> Option<(String, SwarmNode)> {
    swarms.iter().find_map(|(id, s)| {
        s.nodes
            .iter()
            .find(|n| n.vmid == vmid && n.status == "ready")
            .map(|n| (id.clone(), n.clone()))
    })
}

/// Runs `argv` (`docker …`) in VM `vmid`: the exit code, the output, and how long the
/// command takes (a scripted answer's delay; its effect is immediate, its end is not).
/// Logged in the guest's command log like any other command.
pub fn run(
    cluster: &mut Cluster,
    rng: &mut StdRng,
    vmid: u32,
    argv: &[String],
) -> (i32, String, u64) {
    let started = now_ms() as u64;
    let line = argv.join(" ");
    let scripted = cluster
        .guests
        .get_mut(&vmid)
        .and_then(|g| crate::inside::take_answer(&mut g.inside, &line));
    let (code, output) = match &scripted {
        Some(a) if a.exit.is_some() || a.output.is_some() => {
            (a.exit.unwrap_or(0), a.output.clone().unwrap_or_default())
        }
        _ => answer(cluster, rng, vmid, argv),
    };
    let delay = scripted.map_or(0, |a| a.delay_ms);
    if let Some(guest) = cluster.guests.get_mut(&vmid) {
        guest.inside.log.push(CommandRecord {
            command: argv.join(" "),
            exit: Some(code),
            started_ms: started,
            finished_ms: Some(started + delay),
        });
    }
    (code, output, delay)
}

fn answer(cluster: &mut Cluster, rng: &mut StdRng, vmid: u32, argv: &[String]) -> (i32, String) {
    let Some(guest) = cluster.guests.get(&vmid) else {
        return (127, "docker: not found\n".into());
    };
    let dockerd = ["docker", "docker.service"].iter().any(|u| {
        guest
            .inside
            .services
            .get(*u)
            .is_some_and(|s| s == "running")
    });
    if !dockerd {
        return (
            1,
            "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?\n".into(),
        );
    }
    let hostname = guest.name();
    let words: Vec<&str> = argv.iter().skip(1).map(String::as_str).collect();
    let member = membership(&cluster.swarms, vmid);
    match &words[..] {
        ["info", "--format", format] => {
            let (state, id) = member
                .as_ref()
                .map_or(("inactive", ""), |(_, n)| ("active", n.id.as_str()));
            let text = format
                .replace("{{.Swarm.LocalNodeState}}", state)
                .replace("{{.Swarm.NodeID}}", id);
            (0, format!("{text}\n"))
        }
        ["info"] => {
            let state = if member.is_some() {
                "active"
            } else {
                "inactive"
            };
            (0, format!("Server Version: 27.3.1\nSwarm: {state}\n"))
        }
        ["swarm", "init", rest @ ..] => {
            if member.is_some() {
                return (1, format!("{ALREADY}\n"));
            }
            let address = flag(rest, "--advertise-addr").unwrap_or_default();
            let id = random_id(rng, 25);
            let swarm = Swarm {
                manager_address: address.to_owned(),
                worker_token: format!("SWMTKN-1-{}-{}", random_id(rng, 50), random_id(rng, 25)),
                nodes: vec![SwarmNode {
                    id: id.clone(),
                    vmid,
                    hostname,
                    role: "manager".into(),
                    status: "ready".into(),
                    labels: Default::default(),
                }],
                services: Default::default(),
            };
            cluster.swarms.insert(random_id(rng, 25), swarm);
            (
                0,
                format!("Swarm initialized: current node ({id}) is now a manager.\n"),
            )
        }
        ["swarm", "join-token", "-q", "worker"] => match manager_of(cluster, &member) {
            Some(swarm) => (0, format!("{}\n", swarm.worker_token)),
            None => (1, format!("{NOT_MANAGER}\n")),
        },
        ["swarm", "join", rest @ ..] => {
            if member.is_some() {
                return (1, format!("{ALREADY}\n"));
            }
            let token = flag(rest, "--token").unwrap_or_default();
            let target = rest.last().copied().unwrap_or_default();
            let host = target.split(':').next().unwrap_or_default();
            let Some(swarm) = cluster
                .swarms
                .values_mut()
                .find(|s| s.manager_address == host)
            else {
                return (
                    1,
                    "Error response from daemon: Timeout was reached before node joined. The attempt to join the swarm will continue in the background. Use the \"docker info\" command to see the current swarm status of your node.\n".into(),
                );
            };
            if swarm.worker_token != token {
                return (
                    1,
                    "Error response from daemon: rpc error: code = InvalidArgument desc = A valid join token is necessary to join this cluster\n".into(),
                );
            }
            swarm.nodes.push(SwarmNode {
                id: random_id(rng, 25),
                vmid,
                hostname,
                role: "worker".into(),
                status: "ready".into(),
                labels: Default::default(),
            });
            (0, "This node joined a swarm as a worker.\n".into())
        }
        ["swarm", "leave", rest @ ..] => {
            let Some((swarm_id, node)) = member else {
                return (
                    1,
                    "Error response from daemon: This node is not part of a swarm\n".into(),
                );
            };
            if node.role == "manager" && !rest.contains(&"--force") {
                return (
                    1,
                    "Error response from daemon: You are attempting to leave the swarm on a node that is participating as a manager. Use `--force` to ignore this message.\n".into(),
                );
            }
            if let Some(swarm) = cluster.swarms.get_mut(&swarm_id) {
                for n in swarm.nodes.iter_mut().filter(|n| n.id == node.id) {
                    n.status = "down".into();
                }
                if node.role == "manager" {
                    cluster.swarms.remove(&swarm_id);
                }
            }
            cluster.observe_portainer();
            (0, "Node left the swarm.\n".into())
        }
        ["node", "ls", ..] => match manager_of(cluster, &member) {
            Some(swarm) => (
                0,
                swarm
                    .nodes
                    .iter()
                    .map(|n| format!("{} {} {}\n", n.id, n.hostname, n.status))
                    .collect(),
            ),
            None => (1, format!("{NOT_MANAGER}\n")),
        },
        ["node", "rm", rest @ ..] => {
            let force = rest.contains(&"--force");
            let Some(id) = rest.iter().find(|w| !w.starts_with('-')).copied() else {
                return (
                    1,
                    "\"docker node rm\" requires at least 1 argument.\n".into(),
                );
            };
            let Some((swarm_id, _)) = member.as_ref().filter(|(_, n)| n.role == "manager") else {
                return (1, format!("{NOT_MANAGER}\n"));
            };
            let Some(swarm) = cluster.swarms.get_mut(swarm_id) else {
                return (1, format!("{NOT_MANAGER}\n"));
            };
            match swarm.nodes.iter().position(|n| n.id == id) {
                None => (
                    1,
                    format!("Error response from daemon: node {id} not found\n"),
                ),
                Some(i) if swarm.nodes[i].status == "ready" && !force => (
                    1,
                    format!(
                        "Error response from daemon: rpc error: code = FailedPrecondition desc = node {id} is not down and can't be removed\n"
                    ),
                ),
                Some(i) => {
                    swarm.nodes.remove(i);
                    (0, format!("{id}\n"))
                }
            }
        }
        ["stack", rest @ ..] => stack_command(cluster, rng, vmid, &member, rest),
        ["node", "update", rest @ ..] => node_update(cluster, rng, &member, rest),
        _ => (0, String::new()),
    }
}

/// `docker stack deploy|rm|services|ps` on a manager.
fn stack_command(
    cluster: &mut Cluster,
    rng: &mut StdRng,
    vmid: u32,
    member: &Option<(String, SwarmNode)>,
    words: &[&str],
) -> (i32, String) {
    let Some((swarm_id, _)) = member.as_ref().filter(|(_, n)| n.role == "manager") else {
        return (1, format!("{NOT_MANAGER}\n"));
    };
    let name = words
        .last()
        .copied()
        .filter(|w| !w.starts_with('-') && words.len() > 1);
    let Some(name) = name else {
        let verb = words.first().copied().unwrap_or("deploy");
        return (
            1,
            format!("\"docker stack {verb}\" requires exactly 1 argument.\n"),
        );
    };
    let missing = cluster.portainer.settings.missing_images.clone();
    let files = cluster
        .guests
        .get(&vmid)
        .map(|g| g.inside.files.clone())
        .unwrap_or_default();
    let Some(swarm) = cluster.swarms.get_mut(swarm_id) else {
        return (1, format!("{NOT_MANAGER}\n"));
    };
    let nothing = || (1, format!("Nothing found in stack: {name}\n"));
    let lines = |l: Vec<String>| l.iter().map(|l| format!("{l}\n")).collect::<String>();
    let result = match words[0] {
        "deploy" | "up" => {
            let file = flag(words, "-c")
                .or_else(|| flag(words, "--compose-file"))
                .or_else(|| words.iter().find_map(|w| w.strip_prefix("--compose-file=")));
            let Some(file) = file else {
                return (
                    1,
                    "Please specify only one compose file (with --compose-file).\n".into(),
                );
            };
            let Some(text) = files.get(file) else {
                return (1, format!("open {file}: no such file or directory\n"));
            };
            match crate::compose::parse(text, &Default::default()) {
                Ok(specs) => {
                    let prune = words.contains(&"--prune");
                    (
                        0,
                        lines(crate::stack::deploy(
                            swarm, rng, name, &specs, prune, &missing,
                        )),
                    )
                }
                Err(e) => (1, format!("{e}\n")),
            }
        }
        "rm" | "remove" | "down" => match crate::stack::remove(swarm, name) {
            Some(l) => (0, lines(l)),
            None => (0, format!("Nothing found in stack: {name}\n")),
        },
        "services" => match crate::stack::services_lines(swarm, name) {
            l if l.is_empty() => nothing(),
            l => (0, lines(l)),
        },
        "ps" => match crate::stack::ps_lines(swarm, name) {
            l if l.is_empty() && !swarm.has_stack(name) => nothing(),
            l => (0, lines(l)),
        },
        other => (
            1,
            format!("unknown command \"{other}\" for \"docker stack\"\n"),
        ),
    };
    cluster.observe_portainer();
    result
}

/// `docker node update --label-add k=v|--label-rm k NODE` on a manager.
fn node_update(
    cluster: &mut Cluster,
    rng: &mut StdRng,
    member: &Option<(String, SwarmNode)>,
    words: &[&str],
) -> (i32, String) {
    let Some((swarm_id, _)) = member.as_ref().filter(|(_, n)| n.role == "manager") else {
        return (1, format!("{NOT_MANAGER}\n"));
    };
    let missing = cluster.portainer.settings.missing_images.clone();
    let Some(swarm) = cluster.swarms.get_mut(swarm_id) else {
        return (1, format!("{NOT_MANAGER}\n"));
    };
    let Some(target) = words.last().copied().filter(|w| !w.starts_with('-')) else {
        return (
            1,
            "\"docker node update\" requires exactly 1 argument.\n".into(),
        );
    };
    let Some(node) = swarm
        .nodes
        .iter_mut()
        .find(|n| n.id == target || n.hostname == target)
    else {
        return (
            1,
            format!("Error response from daemon: node {target} not found\n"),
        );
    };
    if let Some(label) = flag(words, "--label-add") {
        let (k, v) = label.split_once('=').unwrap_or((label, ""));
        node.labels.insert(k.to_owned(), v.to_owned());
    }
    if let Some(key) = flag(words, "--label-rm") {
        node.labels.remove(key);
    }
    let id = node.id.clone();
    crate::stack::reschedule(swarm, rng, &missing);
    cluster.observe_portainer();
    (0, format!("{id}\n"))
}

/// The swarm `member` manages, if it is a manager.
fn manager_of<'a>(cluster: &'a Cluster, member: &Option<(String, SwarmNode)>) -> Option<&'a Swarm> {
    let (id, node) = member.as_ref()?;
    (node.role == "manager")
        .then(|| cluster.swarms.get(id))
        .flatten()
}

fn flag<'a>(words: &[&'a str], name: &str) -> Option<&'a str> {
    words
        .iter()
        .position(|w| *w == name)
        .and_then(|i| words.get(i + 1))
        .copied()
}
