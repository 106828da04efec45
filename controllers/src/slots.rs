//! Bounded slots — a node's PVE task budget, a container template's clone lock — taken
//! without waiting. A reconcile that finds none free joins the queue and returns (its
//! guest reports `Queued`); a released slot wakes the first in line and keeps itself for
//! it for a moment, so a newcomer cannot take it first and the queue stays fair.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long a slot stays promised to the object it woke.
const PROMISE: Duration = Duration::from_secs(10);

type Wake = Box<dyn FnOnce() + Send>;

pub struct Slots {
    semaphore: Arc<Semaphore>,
    queue: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    waiting: VecDeque<(String, Wake)>,
    /// Woken for a released slot and not back yet.
    promised: BTreeMap<String, Instant>,
}

/// A slot held; released (and the next in line woken) when dropped.
pub struct Slot {
    permit: Option<OwnedSemaphorePermit>,
    slots: Arc<Slots>,
}

impl Slots {
    pub fn new(size: usize) -> Arc<Self> {
        Arc::new(Self {
            semaphore: Arc::new(Semaphore::new(size.max(1))),
            queue: Mutex::default(),
        })
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A free slot for `key`; or `None`, `key` queued, and `wake` called when a slot is
    /// released for it. Slots promised to those woken are not free to others.
    pub fn take(self: &Arc<Self>, key: &str, wake: impl FnOnce() + Send + 'static) -> Option<Slot> {
        let mut queue = self.queue();
        queue.promised.retain(|_, at| at.elapsed() < PROMISE);
        let promised_to_me = queue.promised.remove(key).is_some();
        let reserved = queue.promised.len();
        let free = self.semaphore.available_permits() > reserved;
        let permit = if promised_to_me || free {
            self.semaphore.clone().try_acquire_owned().ok()
        } else {
            None
        };
        if let Some(permit) = permit {
            queue.waiting.retain(|(k, _)| k != key);
            return Some(Slot {
                permit: Some(permit),
                slots: self.clone(),
            });
        }
        let wake: Wake = Box::new(wake);
        match queue.waiting.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = wake,
            // Promised and still beaten to it: first in line again.
            None if promised_to_me => queue.waiting.push_front((key.to_owned(), wake)),
            None => queue.waiting.push_back((key.to_owned(), wake)),
        }
        None
    }

    /// A slot if one is free, queue aside: a task found running after a restart holds
    /// its slot in PVE already, so it is counted again rather than queued.
    pub fn take_running(self: &Arc<Self>) -> Option<Slot> {
        let permit = self.semaphore.clone().try_acquire_owned().ok()?;
        Some(Slot {
            permit: Some(permit),
            slots: self.clone(),
        })
    }

    /// How many wait in line.
    pub fn queued(&self) -> usize {
        self.queue().waiting.len()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        drop(self.permit.take());
        let next = {
            let mut queue = self.slots.queue();
            let next = queue.waiting.pop_front();
            if let Some((key, _)) = &next {
                queue.promised.insert(key.clone(), Instant::now());
            }
            next
        };
        if let Some((_, wake)) = next {
            wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn counter() -> (Arc<AtomicUsize>, impl Fn() -> Box<dyn FnOnce() + Send>) {
        let woken = Arc::new(AtomicUsize::new(0));
        let w = woken.clone();
        (woken, move || {
            let w = w.clone();
            Box::new(move || {
                w.fetch_add(1, Ordering::SeqCst);
            })
        })
    }

    #[test]
    fn a_full_budget_queues_and_a_release_wakes_the_first_in_line() {
        let slots = Slots::new(1);
        let (woken, wake) = counter();
        let held = slots.take("a", wake()).expect("free");
        assert!(slots.take("b", wake()).is_none());
        assert!(slots.take("c", wake()).is_none());
        assert!(
            slots.take("b", wake()).is_none(),
            "asking again keeps its place"
        );
        assert_eq!(slots.queued(), 2);
        drop(held);
        assert_eq!(woken.load(Ordering::SeqCst), 1, "only the first is woken");
        assert!(
            slots.take("d", wake()).is_none(),
            "promised to b, not to a newcomer"
        );
        let b = slots.take("b", wake()).expect("b's promised slot");
        assert_eq!(slots.queued(), 2, "c, then d");
        drop(b);
        assert!(slots.take("c", wake()).is_some());
    }

    #[test]
    fn a_task_found_running_takes_a_free_slot_without_queueing() {
        let slots = Slots::new(2);
        let _running = slots.take_running().expect("free");
        let (_, wake) = counter();
        let _other = slots.take("x", wake()).expect("one left");
        assert!(slots.take_running().is_none());
    }
}
