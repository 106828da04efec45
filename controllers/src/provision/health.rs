//! Health checks: `exec` inside the guest; `http` and `tcp` run inside the guest too (with
//! curl and bash), or from the controller when `fromController` is set ([`super::direct`]). Each check runs at
//! its own interval — never faster, failing or not — and the guest is unhealthy once a
//! check has failed `failureThreshold` times in a row; the condition names that check.

use super::direct::Reach;
use crate::conditions::reason;
use phoenix_clients::exec::GuestShell;
use phoenix_crds::common::{HealthCheck, Scheme};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct HealthState {
    /// By guest key, then check name.
    checks: Mutex<HashMap<String, HashMap<String, CheckState>>>,
}

#[derive(Clone, Debug)]
struct CheckState {
    due: Instant,
    failures: u32,
    last_error: Option<String>,
}

/// The Healthy condition to report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub healthy: bool,
    pub reason: &'static str,
    pub message: String,
}

/// The argv that runs `check` inside the guest, and whether its output is an HTTP status.
pub fn in_guest_command(check: &HealthCheck) -> (Vec<String>, bool) {
    let timeout = check.timeout_seconds.to_string();
    if let Some(exec) = &check.exec {
        return (exec.command.clone(), false);
    }
    if let Some(http) = &check.http {
        let scheme = match http.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        let host = http.host.as_deref().unwrap_or("127.0.0.1");
        let mut argv: Vec<String> = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}"]
            .map(String::from)
            .to_vec();
        argv.extend(["--max-time".into(), timeout]);
        if http.scheme == Scheme::Https {
            // The guest's own certificate may name only its public name; this checks
            // the service answers, the Certificate controller checks the certificate.
            argv.push("-k".into());
        }
        argv.push(format!("{scheme}://{host}:{}{}", http.port, http.path));
        return (argv, true);
    }
    let tcp = check.tcp.as_ref();
    let host = tcp.and_then(|t| t.host.as_deref()).unwrap_or("127.0.0.1");
    let port = tcp.map_or(0, |t| t.port);
    // Host and port as arguments, never spliced into the script.
    let argv = vec![
        "timeout".into(),
        timeout,
        "bash".into(),
        "-c".into(),
        "exec 3<>\"/dev/tcp/$1/$2\"".into(),
        "check".into(),
        host.to_owned(),
        port.to_string(),
    ];
    (argv, false)
}

impl HealthState {
    /// Runs the checks of `key` that are due; the verdict on all of them either way. The
    /// condition is computed from this state on every pass, never carried over from the
    /// status the pass began with: a pass woken on a cached object older than the last
    /// write would otherwise drop `Healthy` until the next check is due.
    pub async fn run_due(
        &self,
        key: &str,
        checks: &[HealthCheck],
        shell: &GuestShell,
        direct: (&Reach, &[String]),
    ) -> Verdict {
        self.keep_only(key, checks);
        let now = Instant::now();
        let due: Vec<&HealthCheck> = checks
            .iter()
            .filter(|c| self.state(key, &c.name).is_none_or(|s| s.due <= now))
            .collect();
        for check in due {
            let result = run(check, shell, direct).await;
            let mut all = self.checks.lock().unwrap_or_else(|e| e.into_inner());
            let state = all
                .entry(key.to_owned())
                .or_default()
                .entry(check.name.clone())
                .or_insert(CheckState {
                    due: now,
                    failures: 0,
                    last_error: None,
                });
            state.due = now + Duration::from_secs(check.interval_seconds.into());
            match result {
                Ok(()) => {
                    state.failures = 0;
                    state.last_error = None;
                }
                Err(e) => {
                    state.failures += 1;
                    state.last_error = Some(e);
                }
            }
        }
        self.verdict(key, checks)
    }

    fn state(&self, key: &str, check: &str) -> Option<CheckState> {
        let all = self.checks.lock().unwrap_or_else(|e| e.into_inner());
        all.get(key)?.get(check).cloned()
    }

    fn verdict(&self, key: &str, checks: &[HealthCheck]) -> Verdict {
        for check in checks {
            let Some(state) = self.state(key, &check.name) else {
                continue;
            };
            if state.failures >= check.failure_threshold {
                return Verdict {
                    healthy: false,
                    reason: reason::CHECK_FAILED,
                    message: format!(
                        "check {} failed {} times in a row: {}",
                        check.name,
                        state.failures,
                        state.last_error.unwrap_or_default()
                    ),
                };
            }
        }
        let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
        Verdict {
            healthy: true,
            reason: reason::CHECKS_PASSING,
            message: format!("passing: {}", names.join(", ")),
        }
    }

    /// How long until the next check of `key` is due.
    pub fn due_in(&self, key: &str) -> Option<Duration> {
        let all = self.checks.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        all.get(key)?
            .values()
            .map(|s| s.due.saturating_duration_since(now))
            .min()
    }

    /// Drops the state of checks the spec no longer has (their schedule would otherwise
    /// stay due for ever).
    fn keep_only(&self, key: &str, checks: &[HealthCheck]) {
        let mut all = self.checks.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(states) = all.get_mut(key) {
            states.retain(|name, _| checks.iter().any(|c| &c.name == name));
        }
    }

    /// Forgets a guest (deleted, or without checks now).
    pub fn forget(&self, key: &str) {
        self.checks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

async fn run(
    check: &HealthCheck,
    shell: &GuestShell,
    (reach, guest_ips): (&Reach, &[String]),
) -> Result<(), String> {
    if check.from_controller && check.exec.is_none() {
        return super::direct::check(reach, check, guest_ips).await;
    }
    let (argv, http_status) = in_guest_command(check);
    let timeout = Duration::from_secs(u64::from(check.timeout_seconds) + 5);
    let out = shell
        .exec(&argv, timeout)
        .await
        .map_err(|e| e.to_string())?;
    if http_status {
        let expected = check.http.as_ref().map_or(200, |h| h.expect_status);
        let got = out.output.trim();
        return if got == expected.to_string() {
            Ok(())
        } else {
            Err(format!("HTTP status {got:?}, expected {expected}"))
        };
    }
    if out.success() {
        Ok(())
    } else {
        Err(format!("exit {}: {}", out.exit_code, out.tail(2)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use phoenix_crds::common::{HttpCheck, TcpCheck};

    fn check(http: Option<HttpCheck>, tcp: Option<TcpCheck>) -> HealthCheck {
        HealthCheck {
            name: "c".into(),
            http,
            tcp,
            exec: None,
            from_controller: false,
            interval_seconds: 30,
            timeout_seconds: 5,
            failure_threshold: 3,
        }
    }

    #[test]
    fn http_and_tcp_checks_run_inside_the_guest_on_loopback() {
        let https = HttpCheck {
            port: 8000,
            path: "/health".into(),
            scheme: Scheme::Https,
            host: None,
            expect_status: 200,
        };
        let (argv, status) = in_guest_command(&check(Some(https), None));
        assert!(status);
        assert_eq!(argv.last().unwrap(), "https://127.0.0.1:8000/health");
        assert!(argv.contains(&"-k".to_string()));
        let (argv, status) = in_guest_command(&check(
            None,
            Some(TcpCheck {
                port: 443,
                host: None,
            }),
        ));
        assert!(!status);
        assert_eq!(
            argv[4..],
            ["exec 3<>\"/dev/tcp/$1/$2\"", "check", "127.0.0.1", "443"]
        );
    }
}
