//! Shared by the benchmarks.

/// Resident set size of a process, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Starts `phoenix ARGS --data-dir DIR` with `RUST_LOG=level`; returns the process and the
/// kubeconfig path it announces on its first line.
pub fn launch(args: &[&str], dir: &std::path::Path, level: &str) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_phoenix"))
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env("RUST_LOG", level)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("phoenix starts");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("piped stdout"))
        .read_line(&mut line)
        .expect("phoenix announces its kubeconfig");
    let kubeconfig = line
        .trim()
        .strip_prefix("export KUBECONFIG=")
        .expect("an export KUBECONFIG line")
        .to_owned();
    (child, kubeconfig)
}
