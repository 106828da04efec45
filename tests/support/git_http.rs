//! A git repository served over smart HTTP on loopback by Debian's own
//! `git http-backend` (the CGI program git ships), behind basic authentication: a small
//! gateway turns each request into the CGI call and its output into the answer.

use std::path::{Path, PathBuf};
use std::process::Command;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub struct GitServer {
    pub url: String,
    /// The working clone commits are made in and pushed from.
    work: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for GitServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.org")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.org")
        .output()
        .expect("git (make test installs it)");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

impl GitServer {
    /// Serves a bare repository `stacks.git` under `dir`, readable with `user:password`.
    pub async fn start(dir: &Path, user: &str, password: &str) -> Self {
        let root = dir.join("git");
        std::fs::create_dir_all(&root).unwrap();
        git(&root, &["init", "--bare", "-b", "main", "stacks.git"]);
        let work = dir.join("git-work");
        std::fs::create_dir_all(&work).unwrap();
        git(&work, &["init", "-b", "main"]);
        git(
            &work,
            &[
                "remote",
                "add",
                "origin",
                root.join("stacks.git").to_str().unwrap(),
            ],
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/stacks.git", listener.local_addr().unwrap());
        let expected = format!("Basic {}", base64(&format!("{user}:{password}")));
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (root, expected) = (root.clone(), expected.clone());
                tokio::spawn(async move { serve(stream, &root, &expected).await });
            }
        });
        Self { url, work, task }
    }

    /// Commits `content` as `path` on main and pushes it: the new commit.
    pub fn commit(&self, path: &str, content: &str) -> String {
        std::fs::write(self.work.join(path), content).unwrap();
        git(&self.work, &["add", path]);
        git(&self.work, &["commit", "-q", "-m", "stack"]);
        git(&self.work, &["push", "-q", "origin", "main"]);
        git(&self.work, &["rev-parse", "HEAD"])
    }
}

fn base64(text: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = text.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |a, (i, b)| a | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One request: authenticated, handed to `git http-backend`, its CGI answer returned.
async fn serve(mut stream: tokio::net::TcpStream, root: &Path, expected: &str) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let Ok(n) = stream.read(&mut chunk).await else {
            return;
        };
        if n == 0 {
            return;
        }
        buffer.extend_from_slice(&chunk[..n]);
        if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
    let mut lines = head.lines();
    let request: Vec<&str> = lines.next().unwrap_or_default().split(' ').collect();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let header = |k: &str| headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    if header("authorization").as_deref() != Some(expected) {
        let _ = stream
            .write_all(b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await;
        return;
    }
    let length: usize = header("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = buffer[head_end..].to_vec();
    while body.len() < length {
        let Ok(n) = stream.read(&mut chunk).await else {
            return;
        };
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let (method, target) = (
        request.first().copied().unwrap_or("GET"),
        request.get(1).copied().unwrap_or("/"),
    );
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut cgi = tokio::process::Command::new("git");
    cgi.arg("http-backend")
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REMOTE_USER", "git")
        .env("REQUEST_METHOD", method)
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("CONTENT_TYPE", header("content-type").unwrap_or_default())
        .env("CONTENT_LENGTH", body.len().to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let Ok(mut child) = cgi.spawn() else { return };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(&body).await;
    }
    let Ok(output) = child.wait_with_output().await else {
        return;
    };
    let out = output.stdout;
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| out.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
    let Some((at, gap)) = split else { return };
    let cgi_head = String::from_utf8_lossy(&out[..at]).to_string();
    let status = cgi_head
        .lines()
        .find_map(|l| l.strip_prefix("Status:"))
        .map_or("200 OK".to_owned(), |s| s.trim().to_owned());
    let mut answer = format!("HTTP/1.1 {status}\r\n");
    for line in cgi_head.lines().filter(|l| !l.starts_with("Status:")) {
        answer.push_str(line.trim_end());
        answer.push_str("\r\n");
    }
    let content = &out[at + gap..];
    answer.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        content.len()
    ));
    let _ = stream.write_all(answer.as_bytes()).await;
    let _ = stream.write_all(content).await;
}
