//! The wall clock the simulated world keeps its times in.

use std::time::{SystemTime, UNIX_EPOCH};

pub fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
}

pub fn now_s() -> u64 {
    (now_ms() / 1000) as u64
}
