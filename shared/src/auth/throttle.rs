//! The failed-login throttle's rules, as pure functions over the stored counters.
//!
//! Two counters, both consulted before a password is verified (CONTRACT.md, "Failed-login
//! throttle"). A lock keyed by username alone would let anyone lock anyone out, so:
//! - **per (username, client)**: every attempt is counted *before* the password is checked,
//!   as if it failed, by one compare-and-set; the attempt that reaches `max_failures` also
//!   sets the lock, so of any number of simultaneous attempts at most `max_failures` are
//!   ever verified. A success forgets the pair's count (and its lock).
//! - **per username, from all clients**: at most `name_max_failures` attempts are verified
//!   per window of `name_window_seconds` (from the first), each taken in advance by one
//!   atomic conditional count, so no burst from any number of addresses gets more; a
//!   success gives its attempt back, failures stay counted. A used-up window locks the name
//!   for everyone until it ends, against guessing spread over many addresses.
//!
//! A pair's locks start at `base_lock_seconds` and double with each further failure after
//! a lock ended, up to `max_lock_seconds`.

use std::net::IpAddr;

use crate::config::LoginThrottleConfig;
use crate::store::FailedLogins;

/// A pair's failures are forgotten this long after the last one (plus any lock).
pub const FAILED_LOGIN_MEMORY_SECONDS: u64 = 3600;

/// How long logins stay locked after `failures` consecutive failures of a pair: nothing
/// below the threshold, then the base lock, doubling with each further failure, capped.
pub fn lock_seconds(throttle: &LoginThrottleConfig, failures: u32) -> Option<u64> {
    let beyond = failures.checked_sub(throttle.max_failures)?;
    let factor = 1u64.checked_shl(beyond.min(32)).unwrap_or(u64::MAX);
    Some(throttle.base_lock_seconds.saturating_mul(factor).min(throttle.max_lock_seconds))
}

/// The client part of a pair's key, from API Gateway's `sourceIp` (never a header the
/// client sets). IPv6 clients are keyed by their /64, the block one subscriber gets, so a
/// guesser cannot mint a fresh pair per address; IPv4-mapped addresses count as IPv4.
/// Anything unparseable (or absent) shares one key, which fails safe: such callers
/// throttle each other.
pub fn client_key(source_ip: Option<&str>) -> String {
    match source_ip.and_then(|ip| ip.trim().parse::<IpAddr>().ok()) {
        Some(IpAddr::V4(v4)) => v4.to_string(),
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        None => UNKNOWN_CLIENT.to_string(),
    }
}

/// The client key of every caller whose address is absent or unparseable.
pub const UNKNOWN_CLIENT: &str = "unknown";

/// A record that has not expired yet; an expired one counts as none, whether or not
/// DynamoDB's TTL (which lags by up to days) has deleted it.
fn live(record: Option<&FailedLogins>, now_ms: u64) -> Option<&FailedLogins> {
    record.filter(|r| r.expires_at.saturating_mul(1000) > now_ms)
}

/// When the lock of `record` ends, if it is locked at `now_ms`.
pub fn locked_until(record: Option<&FailedLogins>, now_ms: u64) -> Option<u64> {
    live(record, now_ms)?.locked_until_ms.filter(|&until| until > now_ms)
}

/// What to do with one login attempt of a (username, client) pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Refused without verifying the password.
    Locked { until_ms: u64 },
    /// Verify the password once this record (the attempt counted as a failure, and the
    /// lock it brings if it is one too many) is stored in place of the one read.
    Admit(FailedLogins),
}

/// Counts an attempt of a pair in advance. `version` is the id of the write that will
/// store the result.
pub fn admit(throttle: &LoginThrottleConfig, current: Option<&FailedLogins>, now_ms: u64, version: &str) -> Admission {
    if let Some(until_ms) = locked_until(current, now_ms) {
        return Admission::Locked { until_ms };
    }
    let count = live(current, now_ms).map_or(0, |r| r.count).saturating_add(1);
    let locked_until_ms = lock_seconds(throttle, count).map(|s| now_ms + s * 1000);
    Admission::Admit(FailedLogins {
        count,
        locked_until_ms,
        expires_at: now_ms / 1000 + FAILED_LOGIN_MEMORY_SECONDS + throttle.max_lock_seconds,
        version: version.to_string(),
    })
}

/// The name-wide record a first failure starts: one failure, a window from now.
pub fn fresh_name_record(throttle: &LoginThrottleConfig, now_ms: u64, version: &str) -> FailedLogins {
    FailedLogins {
        count: 1,
        locked_until_ms: None,
        expires_at: now_ms / 1000 + throttle.name_window_seconds,
        version: version.to_string(),
    }
}

/// When the name's window ends, if its attempts are used up at `now_ms`.
pub fn name_full(throttle: &LoginThrottleConfig, record: Option<&FailedLogins>, now_ms: u64) -> Option<u64> {
    let record = live(record, now_ms)?;
    (record.count >= throttle.name_max_failures).then_some(record.expires_at * 1000)
}

/// `Retry-After` for a lock that ends at `until_ms`: whole seconds, at least one.
pub fn retry_after_seconds(until_ms: u64, now_ms: u64) -> u64 {
    until_ms.saturating_sub(now_ms).div_ceil(1000).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_763_800_000_000;

    fn record(count: u32, locked_until_ms: Option<u64>) -> FailedLogins {
        FailedLogins { count, locked_until_ms, expires_at: NOW / 1000 + 600, version: "v".into() }
    }

    fn admitted(a: Admission) -> FailedLogins {
        match a {
            Admission::Admit(next) => next,
            other => panic!("expected an admission, got {other:?}"),
        }
    }

    #[test]
    fn logins_lock_after_five_failures_doubling_up_to_fifteen_minutes() {
        let t = LoginThrottleConfig::default();
        assert_eq!((t.max_failures, t.base_lock_seconds, t.max_lock_seconds), (5, 30, 900));
        let locks: Vec<Option<u64>> = (0..=12).map(|n| lock_seconds(&t, n)).collect();
        assert_eq!(&locks[..5], &[None; 5]);
        assert_eq!(&locks[5..], &[30, 60, 120, 240, 480, 900, 900, 900].map(Some));
        assert_eq!(lock_seconds(&t, u32::MAX), Some(900), "no overflow");
    }

    #[test]
    fn the_fifth_attempt_is_verified_and_sets_the_lock_in_advance() {
        let t = LoginThrottleConfig::default();
        let first = admitted(admit(&t, None, NOW, "a"));
        assert_eq!((first.count, first.locked_until_ms, first.version.as_str()), (1, None, "a"));
        let fifth = admitted(admit(&t, Some(&record(4, None)), NOW, "b"));
        assert_eq!((fifth.count, fifth.locked_until_ms), (5, Some(NOW + 30_000)));
        assert_eq!(admit(&t, Some(&fifth), NOW + 1, "c"), Admission::Locked { until_ms: NOW + 30_000 });
        // Once the lock ends, one more attempt is verified, and it brings a doubled lock.
        let sixth = admitted(admit(&t, Some(&fifth), NOW + 30_000, "d"));
        assert_eq!((sixth.count, sixth.locked_until_ms), (6, Some(NOW + 30_000 + 60_000)));
    }

    #[test]
    fn an_expired_record_counts_as_none() {
        let t = LoginThrottleConfig::default();
        let stale = FailedLogins { expires_at: NOW / 1000 - 1, ..record(40, Some(NOW + 900_000)) };
        assert_eq!(locked_until(Some(&stale), NOW), None);
        assert_eq!(admitted(admit(&t, Some(&stale), NOW, "x")).count, 1);
    }

    #[test]
    fn the_name_is_full_at_its_ceiling_until_its_window_ends() {
        let t = LoginThrottleConfig::default();
        assert_eq!((t.name_max_failures, t.name_window_seconds), (50, 900));
        assert_eq!(name_full(&t, Some(&record(49, None)), NOW), None);
        assert_eq!(name_full(&t, Some(&record(50, None)), NOW), Some((NOW / 1000 + 600) * 1000));
        assert_eq!(name_full(&t, None, NOW), None);
        let stale = FailedLogins { expires_at: NOW / 1000 - 1, ..record(80, None) };
        assert_eq!(name_full(&t, Some(&stale), NOW), None);
        let fresh = fresh_name_record(&t, NOW, "v1");
        assert_eq!((fresh.count, fresh.expires_at), (1, NOW / 1000 + 900));
    }

    #[test]
    fn clients_are_keyed_by_address_ipv6_by_its_64() {
        assert_eq!(client_key(Some("203.0.113.7")), "203.0.113.7");
        assert_eq!(client_key(Some("::ffff:203.0.113.7")), "203.0.113.7");
        assert_eq!(client_key(Some("2001:db8:1:2:aaaa::1")), "2001:db8:1:2::/64");
        assert_eq!(client_key(Some("2001:db8:1:2:bbbb::9")), client_key(Some("2001:db8:1:2::1")));
        assert_ne!(client_key(Some("2001:db8:1:3::1")), client_key(Some("2001:db8:1:2::1")));
        for odd in [None, Some(""), Some("not-an-ip"), Some("203.0.113.7, 10.0.0.1")] {
            assert_eq!(client_key(odd), "unknown", "{odd:?}");
        }
    }

    #[test]
    fn retry_after_is_whole_seconds_and_never_zero() {
        assert_eq!(retry_after_seconds(NOW + 30_000, NOW), 30);
        assert_eq!(retry_after_seconds(NOW + 1, NOW), 1);
        assert_eq!(retry_after_seconds(NOW, NOW), 1);
    }
}
