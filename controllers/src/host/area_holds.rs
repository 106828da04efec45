//! Backoff per area: an area whose pass failed is not run again until a pause has passed
//! (1 s, doubling, up to two minutes), whatever wakes the host meanwhile — a feature run
//! ending, a guest changing — so a failing step is retried with backoff, not at every wake.
//! The pause is per generation: a spec change runs every area at once.

use crate::error::Error;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const FIRST: Duration = Duration::from_secs(1);
const LONGEST: Duration = Duration::from_secs(120);

#[derive(Default)]
pub struct AreaHolds {
    holds: Mutex<HashMap<String, Hold>>,
}

struct Hold {
    until: Instant,
    failures: u32,
    /// The failure, told again while the area waits.
    category: &'static str,
    permanent: bool,
    message: String,
}

impl AreaHolds {
    /// Runs `area` (keyed `key`) unless it waits out a failure; records how it went.
    pub async fn guarded<F>(&self, key: String, area: F) -> Result<super::Area, Error>
    where
        F: Future<Output = Result<super::Area, Error>>,
    {
        if let Some(waiting) = self.waiting(&key) {
            return Err(waiting);
        }
        let outcome = area.await;
        let mut holds = self.lock();
        match &outcome {
            Ok(_) => {
                holds.remove(&key);
            }
            Err(e) => {
                // Holds of past generations and deleted hosts are forgotten once over.
                let now = Instant::now();
                holds.retain(|_, h| h.until + LONGEST > now);
                let failures = holds.get(&key).map_or(0, |h| h.failures) + 1;
                let pause = FIRST * 2u32.saturating_pow(failures.min(8) - 1);
                holds.insert(
                    key,
                    Hold {
                        until: now + pause.min(LONGEST),
                        failures,
                        category: e.category(),
                        permanent: e.is_permanent(),
                        message: e.to_string(),
                    },
                );
            }
        }
        outcome
    }

    /// When the first of the holds keyed under `prefix` ends, if any is in force.
    pub fn next_end(&self, prefix: &str) -> Option<Duration> {
        let now = Instant::now();
        self.lock()
            .iter()
            .filter(|(k, h)| k.starts_with(prefix) && h.until > now)
            .map(|(_, h)| h.until - now)
            .min()
    }

    fn waiting(&self, key: &str) -> Option<Error> {
        let holds = self.lock();
        let hold = holds.get(key).filter(|h| Instant::now() < h.until)?;
        Some(Error::Waiting {
            category: hold.category,
            permanent: hold.permanent,
            message: hold.message.clone(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Hold>> {
        self.holds.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::Area;

    fn failing() -> Result<Area, Error> {
        Err(Error::host_step(
            "create fastData/ISOs",
            phoenix_clients::exec::ExecError::Refused("out of space".into()),
        ))
    }

    #[tokio::test]
    async fn a_failed_area_waits_out_its_pause_and_says_why_meanwhile() {
        let holds = AreaHolds::default();
        let first = holds
            .guarded("h/1/storage".into(), async { failing() })
            .await;
        let ran = std::sync::atomic::AtomicBool::new(false);
        let second = holds
            .guarded("h/1/storage".into(), async {
                ran.store(true, std::sync::atomic::Ordering::SeqCst);
                failing()
            })
            .await;
        assert!(!ran.load(std::sync::atomic::Ordering::SeqCst), "held back");
        let (first, second) = (first.unwrap_err(), second.unwrap_err());
        assert_eq!(first.to_string(), second.to_string());
        assert_eq!(first.category(), second.category());
        assert!(holds.next_end("h/").is_some_and(|d| d <= FIRST));
        // Another generation is not held.
        let other = holds.guarded("h/2/storage".into(), async {
            Ok(Area::ready("R", String::new()))
        });
        assert!(other.await.is_ok());
    }
}
