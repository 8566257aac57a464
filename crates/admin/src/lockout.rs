//! Failed log-in throttling per client address: each failure makes the next attempt wait a
//! little longer, and after [`Limits::max_failures`] failures within the window the address is
//! locked out for a while, right password or not. Pure state machine, time passed in; the
//! log-in, TOTP and password-change handlers share one instance.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Failures within `window_ms` that lock the address out.
    pub max_failures: u32,
    /// Failures older than this are forgotten.
    pub window_ms: i64,
    /// How long a locked-out address stays locked.
    pub lockout_ms: i64,
    /// Extra wait per earlier failure before an attempt is judged.
    pub delay_step_ms: u64,
    /// The longest such wait.
    pub max_delay_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_failures: 10,
            window_ms: 15 * 60 * 1000,
            lockout_ms: 15 * 60 * 1000,
            delay_step_ms: 100,
            max_delay_ms: 1000,
        }
    }
}

/// What the throttle says before an attempt is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Judge the attempt after waiting this long.
    Proceed(Duration),
    /// Refuse without judging; the lock lifts after this long.
    Locked(Duration),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Record {
    failures: u32,
    /// When the oldest counted failure happened (ms).
    first: i64,
    locked_until: Option<i64>,
}

/// Addresses tracked at most; beyond this, stale records are dropped first.
const MAX_TRACKED: usize = 10_000;

#[derive(Debug, Default)]
pub struct Throttle {
    limits: Limits,
    records: HashMap<IpAddr, Record>,
}

impl Throttle {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            records: HashMap::new(),
        }
    }

    pub fn check(&mut self, ip: IpAddr, now_ms: i64) -> Verdict {
        let Some(record) = self.current(ip, now_ms) else {
            return Verdict::Proceed(Duration::ZERO);
        };
        if let Some(until) = record.locked_until {
            return Verdict::Locked(Duration::from_millis((until - now_ms).max(0) as u64));
        }
        let delay = (record.failures as u64)
            .saturating_mul(self.limits.delay_step_ms)
            .min(self.limits.max_delay_ms);
        Verdict::Proceed(Duration::from_millis(delay))
    }

    /// Records a failed attempt; true when it locked the address out.
    pub fn fail(&mut self, ip: IpAddr, now_ms: i64) -> bool {
        let mut record = self.current(ip, now_ms).unwrap_or(Record {
            failures: 0,
            first: now_ms,
            locked_until: None,
        });
        record.failures = record.failures.saturating_add(1);
        let locked = record.locked_until.is_none() && record.failures >= self.limits.max_failures;
        if locked {
            record.locked_until = Some(now_ms + self.limits.lockout_ms);
        }
        if self.records.len() >= MAX_TRACKED && !self.records.contains_key(&ip) {
            self.prune(now_ms);
        }
        self.records.insert(ip, record);
        locked
    }

    /// A successful attempt forgets the address's failures.
    pub fn succeed(&mut self, ip: IpAddr) {
        self.records.remove(&ip);
    }

    /// The address's live record, dropping one that has run out.
    fn current(&mut self, ip: IpAddr, now_ms: i64) -> Option<Record> {
        let record = *self.records.get(&ip)?;
        let expired = match record.locked_until {
            Some(until) => now_ms >= until,
            None => now_ms - record.first >= self.limits.window_ms,
        };
        if expired {
            self.records.remove(&ip);
            return None;
        }
        Some(record)
    }

    fn prune(&mut self, now_ms: i64) {
        let limits = self.limits;
        self.records.retain(|_, r| match r.locked_until {
            Some(until) => now_ms < until,
            None => now_ms - r.first < limits.window_ms,
        });
        if self.records.len() >= MAX_TRACKED {
            // Still full of live records: keep the locked ones, forget the rest.
            self.records.retain(|_, r| r.locked_until.is_some());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ten_failures_lock_the_address() {
        let mut t = Throttle::new(Limits::default());
        let a = ip("192.0.2.1");
        let mut now = 1_000_000;
        for n in 0..9u64 {
            assert_eq!(
                t.check(a, now),
                Verdict::Proceed(Duration::from_millis(n * 100))
            );
            assert!(!t.fail(a, now));
            now += 1000;
        }
        assert_eq!(
            t.check(a, now),
            Verdict::Proceed(Duration::from_millis(900))
        );
        assert!(t.fail(a, now), "the tenth failure locks");
        assert_eq!(
            t.check(a, now + 1),
            Verdict::Locked(Duration::from_millis(15 * 60 * 1000 - 1))
        );
        // Other addresses are not affected.
        assert_eq!(
            t.check(ip("192.0.2.2"), now),
            Verdict::Proceed(Duration::ZERO)
        );
        // Further failures while locked do not extend the lock.
        assert!(!t.fail(a, now + 10));
        assert_eq!(
            t.check(a, now + 15 * 60 * 1000 - 1),
            Verdict::Locked(Duration::from_millis(1))
        );
        assert_eq!(
            t.check(a, now + 15 * 60 * 1000),
            Verdict::Proceed(Duration::ZERO),
            "the lock lifts and the count starts over"
        );
    }

    #[test]
    fn delay_is_capped() {
        let limits = Limits {
            max_failures: 100,
            ..Limits::default()
        };
        let mut t = Throttle::new(limits);
        let a = ip("2001:db8::1");
        for _ in 0..50 {
            t.fail(a, 0);
        }
        assert_eq!(t.check(a, 1), Verdict::Proceed(Duration::from_millis(1000)));
    }

    #[test]
    fn success_and_time_forget_failures() {
        let mut t = Throttle::new(Limits::default());
        let a = ip("198.51.100.7");
        t.fail(a, 0);
        t.fail(a, 0);
        assert_eq!(t.check(a, 1), Verdict::Proceed(Duration::from_millis(200)));
        t.succeed(a);
        assert_eq!(t.check(a, 1), Verdict::Proceed(Duration::ZERO));
        t.fail(a, 0);
        assert_eq!(
            t.check(a, 15 * 60 * 1000),
            Verdict::Proceed(Duration::ZERO),
            "failures older than the window are forgotten"
        );
    }

    #[test]
    fn tracking_is_bounded() {
        let mut t = Throttle::new(Limits::default());
        for i in 0..(MAX_TRACKED as u32 + 5) {
            t.fail(IpAddr::from(i.to_be_bytes()), 0);
        }
        assert!(t.records.len() <= MAX_TRACKED);
    }
}
