//! Feature scripts running in the background: a reconcile starts one and returns at once;
//! the run wakes its guest when it ends, and the next pass takes the result. After a
//! restart the map is empty: the next pass starts the script again, and the script's lock
//! and marker inside the guest make that wait for (or skip after) the run that went on.

use phoenix_clients::exec::{ExecError, ExecOutput};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

type Outcome = Result<ExecOutput, ExecError>;

#[derive(Default)]
pub struct Runs {
    runs: Mutex<HashMap<String, Option<Outcome>>>,
    /// Failed runs, held back until their pause is over (a status update of the failing
    /// guest must not start the script again at once).
    holds: Mutex<HashMap<String, Hold>>,
}

/// Why and until when a key's run is held back.
#[derive(Clone, Debug)]
pub struct Hold {
    pub until: Option<std::time::Instant>,
    pub failures: u32,
    pub output: ExecOutput,
    /// Set when the failure was rolled back: held until the spec changes (a new key).
    pub rolled_back: Option<String>,
}

/// The first pause after a failed run; it doubles with every failure, up to five minutes.
const FIRST_HOLD: std::time::Duration = std::time::Duration::from_secs(1);

/// Where the run of a key stands.
pub enum RunState {
    Idle,
    Running,
    Finished(Outcome),
}

impl Runs {
    /// The state of `key`'s run; a finished run's result is handed out once.
    pub fn poll(&self, key: &str) -> RunState {
        let mut runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        match runs.get(key) {
            None => RunState::Idle,
            Some(None) => RunState::Running,
            Some(Some(_)) => match runs.remove(key) {
                Some(Some(outcome)) => RunState::Finished(outcome),
                _ => RunState::Idle,
            },
        }
    }

    /// Records a failed run of `key`; the next run waits out a growing pause.
    pub fn failed(&self, key: &str, output: ExecOutput, rolled_back: Option<String>) {
        let mut holds = self.holds.lock().unwrap_or_else(|e| e.into_inner());
        let failures = holds.get(key).map_or(0, |h| h.failures) + 1;
        let pause = FIRST_HOLD * 2u32.saturating_pow(failures.min(9) - 1);
        let pause = pause.min(std::time::Duration::from_secs(300));
        let until = rolled_back
            .is_none()
            .then(|| std::time::Instant::now() + pause);
        holds.insert(
            key.to_owned(),
            Hold {
                until,
                failures,
                output,
                rolled_back,
            },
        );
    }

    /// The hold on `key`, while it lasts.
    pub fn held(&self, key: &str) -> Option<Hold> {
        let holds = self.holds.lock().unwrap_or_else(|e| e.into_inner());
        let hold = holds.get(key)?;
        hold.until
            .is_none_or(|until| std::time::Instant::now() < until)
            .then(|| hold.clone())
    }

    /// Forgets the failures of `key` (it succeeded).
    pub fn succeeded(&self, key: &str) {
        self.holds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    /// Runs `work` in the background under `key`, then calls `done`.
    pub fn start(
        self: &Arc<Self>,
        key: String,
        work: impl Future<Output = Outcome> + Send + 'static,
        done: impl FnOnce() + Send + 'static,
    ) {
        self.runs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.clone(), None);
        let runs = self.clone();
        tokio::spawn(async move {
            let outcome = work.await;
            runs.runs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key, Some(outcome));
            done();
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_result_is_handed_out_once_after_the_run_wakes_its_owner() {
        let runs = Arc::new(Runs::default());
        let (woken, wait) = tokio::sync::oneshot::channel();
        let out = ExecOutput {
            exit_code: 0,
            output: String::new(),
        };
        let (release, hold) = tokio::sync::oneshot::channel::<()>();
        runs.start(
            "g/base".into(),
            async move {
                let _ = hold.await;
                Ok(out)
            },
            move || {
                let _ = woken.send(());
            },
        );
        assert!(matches!(runs.poll("g/base"), RunState::Running));
        release.send(()).unwrap();
        wait.await.unwrap();
        assert!(matches!(runs.poll("g/base"), RunState::Finished(Ok(_))));
        assert!(matches!(runs.poll("g/base"), RunState::Idle));
    }
}
