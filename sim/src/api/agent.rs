//! The QEMU guest agent of a simulated VM: it answers only while the VM runs (and a moment
//! after boot), keeps a file map and a command log, and runs commands with configurable
//! answers (`commands` the admin endpoint can script).

use super::{ApiResult, Call, PveError, looked_up};
use crate::cluster::{Guest, now_ms};
use crate::inside::{Run, Step};
use crate::state::Sim;
use base64::Engine;
use serde_json::{Value, json};

pub(super) fn call(sim: &mut Sim, call: &Call, guest: &Guest, command: &str) -> ApiResult {
    let vmid = guest.vmid;
    let configured = guest
        .config
        .get("agent")
        .is_some_and(|a| a.starts_with('1') || a.contains("enabled=1"));
    if !configured {
        return Err(PveError::server("No QEMU guest agent configured"));
    }
    if !guest.running {
        return Err(PveError::server(format!("VM {vmid} is not running")));
    }
    if sim.faults.agent_down.contains(&vmid)
        || now_ms() < guest.started_at_ms + sim.agent_boot().as_millis()
    {
        return Err(PveError::server("QEMU guest agent is not running"));
    }
    if (call.method, command) == ("POST", "exec") {
        let argv = exec_argv(call)?;
        if argv.first().is_some_and(|a| a == "docker") {
            let (code, output, delay_ms) =
                crate::docker::run(&mut sim.cluster, &mut sim.rng, vmid, &argv);
            return Ok(finished(sim, vmid, (code, output), delay_ms));
        }
    }
    let g = looked_up(sim, vmid);
    match (call.method, command) {
        ("POST", "ping") => Ok(json!({"result": {}})),
        ("GET", "network-get-interfaces") => {
            let mut result = vec![
                json!({"name": "lo", "hardware-address": "00:00:00:00:00:00",
                "ip-addresses": [{"ip-address": "127.0.0.1", "ip-address-type": "ipv4", "prefix": 8}]}),
            ];
            for (name, mac, addr, prefix) in g.addresses() {
                result.push(json!({"name": name, "hardware-address": mac.to_lowercase(),
                    "ip-addresses": [{"ip-address": addr, "ip-address-type": "ipv4", "prefix": prefix}]}));
            }
            Ok(json!({"result": result}))
        }
        ("POST", "exec") => {
            let argv = exec_argv(call)?;
            // The agent runs the command to its end at once: delays and `flock` waits are
            // not simulated here (the call holds the simulator).
            let argv = crate::inside::flock_target(&argv)
                .map_or(argv.clone(), |(_, command)| command.to_vec());
            let result = match Run::new(&g.inside, &argv) {
                Ok(mut run) => loop {
                    match run.step(&mut g.inside, now_ms() as u64) {
                        Step::Exited(code) => break (code, run.output),
                        Step::Wait(_) | Step::Continue => {}
                    }
                },
                Err(message) => (127, message),
            };
            Ok(finished(sim, vmid, result, 0))
        }
        ("GET", "exec-status") => {
            let pid: usize = call.text("pid").and_then(|p| p.parse().ok()).unwrap_or(0);
            let Some((code, output)) = pid.checked_sub(1).and_then(|i| g.agent_results.get(i))
            else {
                return Err(PveError::server(format!(
                    "Agent error: Invalid parameter 'pid' ({pid})"
                )));
            };
            let done = g.agent_done_ms.get(pid - 1).copied().unwrap_or(0);
            if now_ms() < done {
                return Ok(json!({"exited": 0}));
            }
            Ok(json!({"exited": 1, "exitcode": code, "out-data": output}))
        }
        ("POST", "file-write") => {
            let file = call.text("file").unwrap_or_default();
            let content = call.text("content").unwrap_or_default();
            let decoded = if call.text("encode").as_deref() == Some("0") {
                base64::engine::general_purpose::STANDARD
                    .decode(&content)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .unwrap_or(content)
            } else {
                content
            };
            // guest-file-open with mode "w": a new file gets 0666 under the umask, an
            // existing one is truncated and keeps its mode.
            g.inside.write(&file, decoded, crate::inside::DEFAULT_MODE);
            Ok(Value::Null)
        }
        _ => Err(PveError {
            status: 501,
            message: format!("Method '{} agent/{command}' not implemented", call.method),
            errors: None,
        }),
    }
}

/// The argv of `agent/exec`: PVE's handler wants an array (a JSON array, or the form key
/// repeated).
fn exec_argv(call: &Call) -> Result<Vec<String>, PveError> {
    match call.params.get("command") {
        Some(Value::Array(parts)) => Ok(parts
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()),
        Some(_) => Err(PveError::server("Not an ARRAY reference")),
        None => Err(PveError::param(
            "command",
            "property is missing and it is not optional",
        )),
    }
}

/// Keeps the result of a command for `exec-status` (running for `delay_ms` more) and
/// answers its pid.
fn finished(sim: &mut Sim, vmid: u32, result: (i32, String), delay_ms: u64) -> Value {
    let g = looked_up(sim, vmid);
    g.agent_results.push(result);
    g.agent_done_ms.resize(g.agent_results.len() - 1, 0);
    g.agent_done_ms.push(now_ms() + u128::from(delay_ms));
    json!({"pid": g.agent_results.len()})
}
