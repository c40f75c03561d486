//! Reconnect delays: first retry immediate, then exponential with jitter,
//! capped; reset only after a connection stayed live for a stable period,
//! never on a mere TCP connect, so an accept-then-reject server cannot
//! turn the agent into a hot loop.

use super::error::ErrorClass;
use std::time::Duration;

/// A feed's reconnect backoff (`backoff = { … }` of a `[[feed]]`; the
/// configuration re-exports it, this engine owns it).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BackoffConfig {
    /// First delay after the immediate retry. Default 500ms.
    pub initial: Duration,
    /// Cap. Default 30s.
    pub max: Duration,
    /// Growth factor. Default 2.0.
    pub multiplier: f64,
    /// A connection live this long resets the backoff. Default 30s.
    pub stable_after: Duration,
    /// Wait while parked (auth rejected) before one retry. Default 15m.
    pub parked_retry: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
            multiplier: 2.0,
            stable_after: Duration::from_secs(30),
            parked_retry: Duration::from_secs(15 * 60),
        }
    }
}

/// Randomized delay range after the server said it is going away (1001, 1012).
pub const GOING_AWAY: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(5));
/// After 1013 "try again later" and rate limits without a stated wait, at least this.
pub const TRY_LATER_MIN: Duration = Duration::from_secs(5);

#[derive(Clone, Debug)]
pub struct Backoff {
    cfg: BackoffConfig,
    /// Failures since the last stable connection.
    failures: u32,
    rng: u64,
}

impl Backoff {
    pub fn new(cfg: BackoffConfig, seed: u64) -> Self {
        Backoff {
            cfg,
            failures: 0,
            rng: seed | 1,
        }
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// A connection ended after being live for `live_for` (zero if it never
    /// got there). Resets the count when it was stable.
    pub fn connection_ended(&mut self, live_for: Duration) {
        if live_for >= self.cfg.stable_after {
            self.failures = 0;
        }
    }

    /// Replaces the settings (reload) keeping the failure count.
    pub fn set_config(&mut self, cfg: BackoffConfig) {
        self.cfg = cfg;
    }

    /// Records one failure of the given class and returns how long to wait
    /// before the next attempt.
    pub fn next_delay(&mut self, class: ErrorClass) -> Duration {
        let n = self.failures;
        self.failures = self.failures.saturating_add(1);
        match class {
            ErrorClass::Auth | ErrorClass::MissingCredential | ErrorClass::Config => {
                self.cfg.parked_retry
            }
            ErrorClass::GoingAway => self.uniform(GOING_AWAY.0, GOING_AWAY.1),
            ErrorClass::RateLimited {
                retry_after: Some(d),
            } => d,
            ErrorClass::RateLimited { retry_after: None } => self
                .exponential(n.max(1))
                .max(TRY_LATER_MIN)
                .max(self.cfg.max / 2),
            ErrorClass::Stalled | ErrorClass::Network | ErrorClass::Protocol => {
                if n == 0 {
                    Duration::ZERO
                } else {
                    self.exponential(n)
                }
            }
        }
    }

    /// The n-th (n >= 1) exponential step with "equal jitter": half fixed,
    /// half random, so retries of many feeds do not line up.
    fn exponential(&mut self, n: u32) -> Duration {
        let base = self.cfg.initial.as_secs_f64()
            * self.cfg.multiplier.powi(n.saturating_sub(1).min(64) as i32);
        let capped = base.min(self.cfg.max.as_secs_f64());
        let half = capped / 2.0;
        Duration::from_secs_f64(half + half * self.unit())
    }

    fn uniform(&mut self, lo: Duration, hi: Duration) -> Duration {
        lo + (hi - lo).mul_f64(self.unit())
    }

    /// A number in [0, 1): xorshift64*, enough for jitter (not for secrets).
    fn unit(&mut self) -> f64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backoff() -> Backoff {
        Backoff::new(BackoffConfig::default(), 42)
    }

    #[test]
    fn first_retry_is_immediate_then_grows_within_jitter_bounds() {
        let mut b = backoff();
        assert_eq!(b.next_delay(ErrorClass::Network), Duration::ZERO);
        let mut prev_cap = Duration::ZERO;
        for n in 1..12u32 {
            let d = b.next_delay(ErrorClass::Network);
            let cap = Duration::from_millis(500)
                .mul_f64(2f64.powi(n as i32 - 1))
                .min(Duration::from_secs(30));
            assert!(
                d >= cap / 2 && d <= cap,
                "step {n}: {d:?} not in [{:?}, {cap:?}]",
                cap / 2
            );
            assert!(cap >= prev_cap);
            prev_cap = cap;
        }
        assert_eq!(prev_cap, Duration::from_secs(30));
    }

    #[test]
    fn short_connections_do_not_reset_the_count() {
        let mut b = backoff();
        for _ in 0..5 {
            b.next_delay(ErrorClass::Protocol);
            // accepted, then rejected at once: never stable
            b.connection_ended(Duration::from_millis(5));
        }
        assert_eq!(b.failures(), 5);
        assert!(b.next_delay(ErrorClass::Protocol) >= Duration::from_secs(2));
    }

    #[test]
    fn a_stable_connection_resets_to_immediate() {
        let mut b = backoff();
        for _ in 0..5 {
            b.next_delay(ErrorClass::Network);
        }
        b.connection_ended(Duration::from_secs(31));
        assert_eq!(b.next_delay(ErrorClass::Network), Duration::ZERO);
    }

    #[test]
    fn classes_choose_their_waits() {
        let mut b = backoff();
        assert_eq!(b.next_delay(ErrorClass::Auth), Duration::from_secs(900));
        for _ in 0..50 {
            let d = b.next_delay(ErrorClass::GoingAway);
            assert!(d >= GOING_AWAY.0 && d <= GOING_AWAY.1, "{d:?}");
        }
        assert_eq!(
            b.next_delay(ErrorClass::RateLimited {
                retry_after: Some(Duration::from_secs(7))
            }),
            Duration::from_secs(7)
        );
        assert!(
            b.next_delay(ErrorClass::RateLimited { retry_after: None }) >= Duration::from_secs(15)
        );
    }
}
