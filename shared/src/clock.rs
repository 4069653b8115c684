//! The wall clock, read in one place: the use cases, the mailer and the rotation function
//! all ask it.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in epoch milliseconds (0 on a clock before 1970).
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}
