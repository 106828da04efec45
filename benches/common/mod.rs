//! Shared by the benchmarks (each uses part of it).

#![allow(dead_code)]

/// Resident set size of a process, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS")
}

/// What the resident set is made of: memory the process allocated (heap, stacks) and
/// pages of files it maps (its code, mostly).
pub fn rss_parts(pid: u32) -> String {
    let mib = |field| status_kib(pid, field) as f64 / 1024.0;
    format!(
        "{:.1} MiB allocated + {:.1} MiB code",
        mib("RssAnon"),
        mib("RssFile")
    )
}

fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Starts `phoenix ARGS` with `RUST_LOG=level`; returns the process and the first line it
/// prints (its announcement), once printed.
pub fn announced(args: &[&std::ffi::OsStr], level: &str) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_phoenix"))
        .args(args)
        .env("RUST_LOG", level)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("phoenix starts");
    let mut line = String::new();
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("piped stdout"));
    stdout
        .read_line(&mut line)
        .expect("phoenix announces itself");
    // Drained, not closed: a later line printed into a closed pipe would kill it.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    (child, line)
}

/// Starts `phoenix ARGS --data-dir DIR` with `RUST_LOG=level`; returns the process and the
/// kubeconfig path it announces on its first line.
pub fn launch(args: &[&str], dir: &std::path::Path, level: &str) -> (std::process::Child, String) {
    let mut all: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    all.extend([std::ffi::OsStr::new("--data-dir"), dir.as_os_str()]);
    let (child, line) = announced(&all, level);
    let kubeconfig = line
        .trim()
        .strip_prefix("export KUBECONFIG=")
        .expect("an export KUBECONFIG line")
        .to_owned();
    (child, kubeconfig)
}

/// A GET's whole answer as raw bytes, and how long it took (ms): what the server costs,
/// with no client-side decoding in the figure.
pub async fn timed_get(client: &kube::Client, path: &str) -> (bytes::Bytes, f64) {
    let started = std::time::Instant::now();
    let request = http::Request::get(path)
        .body(kube::client::Body::empty())
        .unwrap();
    let response = client.send(request).await.unwrap();
    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    (bytes, started.elapsed().as_secs_f64() * 1000.0)
}

/// `kubectl apply ARGS` against `kubeconfig`, `stdin` piped in; it must succeed.
pub fn kubectl_apply(kubeconfig: &str, args: &[&str], stdin: Option<&str>) {
    use std::io::Write;
    let mut child = std::process::Command::new("kubectl")
        .arg("apply")
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("kubectl");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
}

/// `METHOD /admin/PATH` of the simulator whose credentials these are: its JSON answer.
pub async fn admin(
    credentials: &serde_json::Value,
    method: reqwest::Method,
    path: &str,
) -> serde_json::Value {
    let http = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let authorization = format!(
        "PVEAPIToken={}={}",
        credentials["token_id"].as_str().unwrap(),
        credentials["token_secret"].as_str().unwrap()
    );
    let url = format!("{}/{path}", credentials["admin_url"].as_str().unwrap());
    let response = http
        .request(method, url)
        .header("Authorization", authorization)
        .send()
        .await
        .unwrap();
    response.json().await.unwrap_or(serde_json::Value::Null)
}

/// `Ready=True` among `conditions` (of any kind's status).
pub fn ready(
    conditions: Option<&[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition]>,
) -> bool {
    conditions
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}
