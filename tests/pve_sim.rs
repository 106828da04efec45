//! The PVE simulator driven by third-party and contract clients: the PyPI library
//! proxmoxer, unmodified, runs a user's create/clone/start/snapshot/rollback/stop/delete
//! script for a container and a VM with token and with ticket auth; the contract script
//! checks recorded PVE responses, schema-driven validation, PVE's error paths, faults and
//! the operation log.

mod support;

use std::path::PathBuf;
use std::process::Command;

/// The simulator in a directory of its own.
struct Sim {
    process: support::SimProcess,
    _dir: tempfile::TempDir,
}

impl Sim {
    fn start(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut args = vec!["--task-duration", "default=0"];
        args.extend_from_slice(extra);
        Self {
            process: support::SimProcess::start(dir.path(), &args),
            _dir: dir,
        }
    }

    fn run(&self, script: &str, args: &[&str]) -> String {
        let script = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap())
            .join("tests/pve")
            .join(script);
        let out = Command::new("python3")
            .arg(script)
            .arg(&self.process.credentials)
            .args(args)
            .output()
            .expect("python3 runs");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let summary = stdout.lines().last().unwrap_or_default().to_owned();
        assert!(summary.ends_with(" passed, 0 failed"), "{summary}");
        println!("{summary}");
        stdout
    }
}

/// `shared/` (the reference material): `PHOENIX_SHARED`, which the Makefile sets, or the
/// clone's sibling.
fn shared() -> std::path::PathBuf {
    std::env::var_os("PHOENIX_SHARED")
        .map(Into::into)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("../shared")
        })
}

#[test]
fn proxmoxer_drives_the_simulator_with_token_and_ticket() {
    Sim::start(&[]).run("proxmoxer_roundtrip.py", &["--auth", "both"]);
}

#[test]
fn the_simulator_keeps_pve_s_contract() {
    Sim::start(&[
        "--nodes",
        "2",
        "--task-duration",
        "vzclone=1",
        "--task-duration",
        "vzstop=1",
        "--task-duration",
        "agent=1",
    ])
    .run("sim_contract.py", &[]);
}

#[test]
fn the_bundled_schema_is_cut_from_the_official_apidoc() {
    let repo = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let apidoc = shared().join("reference/pve/apidoc.json");
    let out = Command::new("python3")
        .arg(repo.join("sim/tools/trim-apidoc.py"))
        .arg(&apidoc)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bundled = std::fs::read(repo.join("sim/schema/pve-api.json")).unwrap();
    assert!(
        out.stdout == bundled,
        "sim/schema/pve-api.json is stale: regenerate it with sim/tools/trim-apidoc.py"
    );
}

#[test]
fn the_state_file_keeps_the_cluster_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("cluster.json");
    let script = r#"
import json, sys, requests
c = json.load(open(sys.argv[1]))
s = requests.Session()
s.headers["Authorization"] = "PVEAPIToken=%s=%s" % (c["token_id"], c["token_secret"])
base = c["url"] + "/api2/json/nodes/phoenix/lxc"
if sys.argv[2] == "create":
    r = s.post(base, data={"vmid": 777, "ostemplate": "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"}, verify=False)
    assert r.status_code == 200, r.text
    s.get(base, verify=False)  # finishes the zero-length create task
print(sorted(g["vmid"] for g in s.get(base, verify=False).json()["data"]))
"#;
    let run = |sim: &Sim, action: &str| {
        let out = Command::new("python3")
            .args(["-c", script])
            .arg(&sim.process.credentials)
            .arg(action)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let state_arg = state.to_str().unwrap();
    let first = Sim::start(&["--state", state_arg]);
    assert_eq!(run(&first, "create").trim(), "[777]");
    drop(first);
    let second = Sim::start(&["--state", state_arg]);
    assert_eq!(
        run(&second, "list").trim(),
        "[777]",
        "the container survives the restart"
    );
}

#[test]
fn faults_are_deterministic_under_a_seed() {
    // Half the requests fail; the same seed fails the same ones.
    let script = r#"
import json, sys, requests
c = json.load(open(sys.argv[1]))
s = requests.Session()
s.headers["Authorization"] = "PVEAPIToken=%s=%s" % (c["token_id"], c["token_secret"])
s.put(c["admin_url"] + "/faults", json={"errorRate": 0.5}, verify=False)
print("".join("x" if s.get(c["url"] + "/api2/json/version", verify=False).status_code >= 500 else "." for _ in range(40)))
"#;
    let pattern = |seed: &str| {
        let sim = Sim::start(&["--seed", seed]);
        let out = Command::new("python3")
            .args(["-c", script])
            .arg(&sim.process.credentials)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let (first, again, other) = (pattern("7"), pattern("7"), pattern("8"));
    assert!(first.contains('x') && first.contains('.'), "{first}");
    assert_eq!(first, again, "the same seed injects the same faults");
    assert_ne!(first, other, "another seed, another sequence");
}
