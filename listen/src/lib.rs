//! Accepting connections without spinning. `accept` fails when the process is out of file
//! descriptors (EMFILE, ENFILE) or memory; a listener that retries at once turns that into
//! a hot loop and a log flood. The API server and the controllers' listeners (the HTTP-01
//! responder, metrics) accept through [`accept_with_backoff`], and admit what they accepted
//! through a [`ConnectionCap`].

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A bound on the connections a listener holds open at once. Over it a new connection is
/// closed at once: queueing it would hold its descriptor and memory for a client that may
/// never go away. A burst of refusals is logged once.
pub struct ConnectionCap {
    permits: Arc<Semaphore>,
    max: usize,
    refusing: bool,
}

impl ConnectionCap {
    pub fn new(max: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max)),
            max,
            refusing: false,
        }
    }

    /// A place for the connection from `peer`, held until the permit is dropped; `None`:
    /// close it.
    pub fn admit(&mut self, peer: std::net::SocketAddr) -> Option<OwnedSemaphorePermit> {
        let permit = self.permits.clone().try_acquire_owned().ok();
        if permit.is_none() && !self.refusing {
            tracing::warn!(%peer, max = self.max, "too many connections; closing new ones until some end");
        }
        self.refusing = permit.is_none();
        permit
    }
}

/// The waits between failed accepts: 10 ms, doubling to 1 s, reset by a success.
#[derive(Debug, Default)]
pub struct Backoff {
    failures: u32,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(10);
    const MAX: Duration = Duration::from_secs(1);

    /// How long to wait after one more failure.
    pub fn failed(&mut self) -> Duration {
        let wait = Self::FIRST
            .saturating_mul(1 << self.failures.min(16))
            .min(Self::MAX);
        self.failures = self.failures.saturating_add(1);
        wait
    }

    /// The failures of the burst a success ends.
    pub fn succeeded(&mut self) -> u32 {
        std::mem::take(&mut self.failures)
    }
}

/// The next accepted connection. Accept fails when the process is out of descriptors
/// (EMFILE, ENFILE) or memory; retrying at once would spin and flood the log, so failures
/// back off and a burst of them is logged once when it starts and once when it ends.
pub async fn accept_with_backoff<T, F, Fut>(backoff: &mut Backoff, mut accept: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::io::Result<T>>,
{
    loop {
        match accept().await {
            Ok(conn) => {
                let failures = backoff.succeeded();
                if failures > 0 {
                    tracing::info!(failures, "accepting connections again");
                }
                return conn;
            }
            Err(e) => {
                let wait = backoff.failed();
                if backoff.failures == 1 {
                    tracing::warn!(error = %e, "accept failed; retrying with backoff until it succeeds");
                }
                tokio::time::sleep(wait).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_admits_up_to_its_bound_and_again_once_a_place_frees() {
        let peer = "127.0.0.1:1".parse().unwrap();
        let mut cap = ConnectionCap::new(2);
        let (a, _b) = (cap.admit(peer).unwrap(), cap.admit(peer).unwrap());
        assert!(cap.admit(peer).is_none());
        drop(a);
        assert!(cap.admit(peer).is_some());
    }
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// EMFILE (out of file descriptors) on every accept, as when the process is at its
    /// limit: the loop must wait between attempts, not spin.
    #[tokio::test]
    async fn failing_accepts_back_off_instead_of_spinning() {
        let attempts = AtomicUsize::new(0);
        let accept = || async {
            attempts.fetch_add(1, Ordering::Relaxed);
            tokio::task::yield_now().await;
            Err::<(), _>(std::io::Error::from_raw_os_error(24))
        };
        let mut backoff = Backoff::default();
        let ran = tokio::time::timeout(
            Duration::from_millis(400),
            accept_with_backoff(&mut backoff, accept),
        );
        assert!(ran.await.is_err(), "no connection was accepted");
        let attempts = attempts.load(Ordering::Relaxed);
        // 10 + 20 + 40 + 80 + 160 ms of backoff: six attempts, seven with slack.
        assert!(
            (3..=8).contains(&attempts),
            "{attempts} accept attempts in 400 ms"
        );
    }

    #[test]
    fn backoff_doubles_to_a_second_and_resets() {
        let mut b = Backoff::default();
        let waits: Vec<u64> = (0..9).map(|_| b.failed().as_millis() as u64).collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        assert_eq!(b.succeeded(), 9);
        assert_eq!(b.failed(), Duration::from_millis(10));
    }
}
