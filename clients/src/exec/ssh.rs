//! SSH to a PVE node with `russh`: public-key auth with the key from a Secret, and the
//! node's host key checked against pinned `known_hosts` lines — an unknown or changed key
//! is refused, never learned.

use super::{ExecError, ExecOutput, bounded};
use russh::client;
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg};
use std::sync::Arc;
use std::time::Duration;

/// One node, as SSH sees it.
#[derive(Clone)]
pub struct SshTarget {
    /// Where to connect (the node's address, or a loopback stand-in in tests).
    pub connect_to: (String, u16),
    /// The name and port the host key is pinned under in `known_hosts` (the node's).
    pub host: String,
    pub port: u16,
    pub user: String,
    key: Arc<PrivateKey>,
    known_hosts: Arc<str>,
}

impl std::fmt::Debug for SshTarget {
    // The private key is a secret: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshTarget")
            .field("connect_to", &self.connect_to)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl SshTarget {
    /// `private_key` is an OpenSSH private key (unencrypted); `known_hosts` holds the
    /// node's pinned host keys.
    pub fn new(
        host: &str,
        port: u16,
        user: &str,
        private_key: &str,
        known_hosts: &str,
    ) -> Result<Self, ExecError> {
        // The parser's error text never contains the key, but say no more than needed.
        let key = russh::keys::decode_secret_key(private_key, None)
            .map_err(|_| ExecError::Auth("the private key in the Secret cannot be read (an unencrypted OpenSSH key is expected)".into()))?;
        Ok(Self {
            connect_to: (host.to_owned(), port),
            host: host.to_owned(),
            port,
            user: user.to_owned(),
            key: Arc::new(key),
            known_hosts: known_hosts.into(),
        })
    }

    /// Connects to `address:port` instead, still checking the host key pinned for the
    /// node's name and port.
    pub fn connecting_to(mut self, address: &str, port: u16) -> Self {
        self.connect_to = (address.to_owned(), port);
        self
    }

    /// Runs `command` (a shell line) on the node, feeding `stdin` if given.
    pub async fn run(
        &self,
        command: &str,
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<ExecOutput, ExecError> {
        super::within(timeout, self.run_unbounded(command, stdin)).await
    }

    async fn run_unbounded(
        &self,
        command: &str,
        stdin: Option<&[u8]>,
    ) -> Result<ExecOutput, ExecError> {
        let session = self.connect().await?;
        let unreachable = |e: russh::Error| ExecError::Unreachable(format!("{}: {e}", self.host));
        let mut channel = session.channel_open_session().await.map_err(unreachable)?;
        channel.exec(true, command).await.map_err(unreachable)?;
        if let Some(data) = stdin {
            channel.data(data).await.map_err(unreachable)?;
        }
        channel.eof().await.map_err(unreachable)?;
        let (mut output, mut exit_code) = (Vec::new(), None);
        while let Some(message) = channel.wait().await {
            match message {
                russh::ChannelMsg::Data { data } => keep_tail(&mut output, &data),
                russh::ChannelMsg::ExtendedData { data, .. } => keep_tail(&mut output, &data),
                russh::ChannelMsg::ExitStatus { exit_status } => {
                    exit_code = Some(exit_status as i32)
                }
                russh::ChannelMsg::ExitSignal { .. } => exit_code = exit_code.or(Some(-1)),
                _ => {}
            }
        }
        let _ = session
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
        let exit_code = exit_code.ok_or_else(|| {
            ExecError::Unreachable(format!(
                "{}: the connection closed before the command exited",
                self.host
            ))
        })?;
        Ok(ExecOutput {
            exit_code,
            output: bounded(&output),
        })
    }

    async fn connect(&self) -> Result<client::Handle<HostKeyCheck>, ExecError> {
        let config = Arc::new(client::Config {
            inactivity_timeout: Some(Duration::from_secs(600)),
            ..Default::default()
        });
        let verdict = Arc::new(std::sync::Mutex::new(None));
        let check = HostKeyCheck {
            host: self.host.clone(),
            port: self.port,
            known_hosts: self.known_hosts.clone(),
            verdict: verdict.clone(),
        };
        let mut session = client::connect(
            config,
            (self.connect_to.0.as_str(), self.connect_to.1),
            check,
        )
        .await
        .map_err(|e| match verdict.lock().ok().and_then(|v| v.clone()) {
            Some(refusal) => refusal,
            None => ExecError::Unreachable(format!("{}: {e}", self.host)),
        })?;
        let hash = session
            .best_supported_rsa_hash()
            .await
            .map_err(|e| ExecError::Unreachable(format!("{}: {e}", self.host)))?
            .flatten();
        let auth = session
            .authenticate_publickey(
                &self.user,
                PrivateKeyWithHashAlg::new(self.key.clone(), hash),
            )
            .await
            .map_err(|e| ExecError::Unreachable(format!("{}: {e}", self.host)))?;
        if !auth.success() {
            return Err(ExecError::Auth(format!(
                "{}@{} refused the key",
                self.user, self.host
            )));
        }
        Ok(session)
    }
}

fn keep_tail(output: &mut Vec<u8>, data: &[u8]) {
    output.extend_from_slice(data);
    let excess = output.len().saturating_sub(super::OUTPUT_LIMIT);
    output.drain(..excess);
}

/// The host-key check: the key must be the one pinned for the host.
struct HostKeyCheck {
    host: String,
    port: u16,
    known_hosts: Arc<str>,
    /// Where the check leaves its refusal, for the error the caller sees.
    verdict: Arc<std::sync::Mutex<Option<ExecError>>>,
}

impl HostKeyCheck {
    fn check(&self, key: &russh::keys::PublicKey) -> Result<(), ExecError> {
        // russh reads known_hosts from a file (hashed entries included); the lines are
        // public, so a private temporary copy is harmless.
        let refuse_unknown = || ExecError::HostKeyUnknown {
            host: self.host.clone(),
        };
        let file = tempfile::NamedTempFile::new().map_err(|_| refuse_unknown())?;
        std::fs::write(file.path(), self.known_hosts.as_bytes()).map_err(|_| refuse_unknown())?;
        match russh::keys::check_known_hosts_path(&self.host, self.port, key, file.path()) {
            Ok(true) => Ok(()),
            Ok(false) => Err(refuse_unknown()),
            Err(_) => Err(ExecError::HostKeyMismatch {
                host: self.host.clone(),
            }),
        }
    }
}

impl client::Handler for HostKeyCheck {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &russh::keys::PublicKey,
    ) -> Result<bool, Self::Error> {
        match self.check(key) {
            Ok(()) => Ok(true),
            Err(refusal) => {
                if let Ok(mut v) = self.verdict.lock() {
                    *v = Some(refusal);
                }
                Ok(false)
            }
        }
    }
}
