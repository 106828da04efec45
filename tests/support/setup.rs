//! `phoenix setup` run against the simulator of a test's `phoenix up --simulate`.

use super::ApiServer;
use std::process::{Command, Output, Stdio};

/// `phoenix setup` against the simulator of `server`, the password on stdin or in a file.
pub fn setup(server: &ApiServer, extra: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_phoenix"))
        .arg("setup")
        .arg("--simulator")
        .arg(server.data_dir.join("sim.json"))
        .arg("--kubeconfig")
        .arg(&server.kubeconfig)
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("phoenix setup runs");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// What a run printed, stdout then stderr.
pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The simulator's credentials (`sim.json`: its URL, root@pam's password and token).
pub fn sim_credentials(server: &ApiServer) -> serde_json::Value {
    let text = std::fs::read_to_string(server.data_dir.join("sim.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}
