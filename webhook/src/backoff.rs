//! Exponential backoff with jitter: per object for failed reconciles, and
//! for the certificate manager's retries.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::Mutex;
use std::time::Duration;

/// Backoff parameters: `base * 2^(attempt-1)`, capped at `max`, then scaled
/// by a random factor in `[1 - jitter, 1]` so that many objects failing
/// together (an API server restart) do not retry in lockstep.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    /// Delay after the first failure.
    pub base: Duration,
    /// Largest delay.
    pub max: Duration,
    /// Fraction of the delay that is randomised, 0..=1.
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_secs(1),
            max: Duration::from_secs(300),
            jitter: 0.5,
        }
    }
}

impl Backoff {
    /// The delay after the `attempt`-th consecutive failure (1-based), with
    /// `random` in `[0, 1)` choosing the point in the jitter range.
    pub fn delay(&self, attempt: u32, random: f64) -> Duration {
        let exponent = attempt.saturating_sub(1).min(30);
        let full = self.base.saturating_mul(1 << exponent).min(self.max);
        let factor = 1.0 - self.jitter.clamp(0.0, 1.0) * random.clamp(0.0, 1.0);
        full.mul_f64(factor)
    }
}

/// A random number in `[0, 1)` from the standard library's randomly keyed hasher.
pub fn random_unit() -> f64 {
    let bits = std::collections::hash_map::RandomState::new().hash_one(std::time::Instant::now());
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// Consecutive failures per object.
#[derive(Debug)]
pub struct Failures<K> {
    attempts: Mutex<HashMap<K, u32>>,
}

impl<K> Default for Failures<K> {
    fn default() -> Self {
        Failures {
            attempts: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash> Failures<K> {
    /// Counts one more failure of `key` and returns how many in a row.
    pub fn fail(&self, key: K) -> u32 {
        let mut map = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(key).or_insert(0);
        *n = n.saturating_add(1);
        *n
    }

    /// Forgets the failures of `key` after a success.
    pub fn succeed(&self, key: &K) {
        self.attempts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap() {
        let b = Backoff {
            jitter: 0.0,
            ..Backoff::default()
        };
        let secs: Vec<u64> = (1..=11).map(|a| b.delay(a, 0.7).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(b.delay(u32::MAX, 0.0), Duration::from_secs(300));
    }

    #[test]
    fn jitter_shortens_by_at_most_its_fraction() {
        let b = Backoff::default();
        assert_eq!(b.delay(3, 0.0), Duration::from_secs(4));
        assert_eq!(b.delay(3, 0.5), Duration::from_secs(3));
        assert!(b.delay(3, 0.999_999) > Duration::from_secs(2));
    }

    #[test]
    fn random_units_are_in_range_and_vary() {
        let draws: Vec<f64> = (0..64).map(|_| random_unit()).collect();
        assert!(draws.iter().all(|r| (0.0..1.0).contains(r)));
        let first = draws[0];
        assert!(draws.iter().any(|r| *r != first), "{draws:?}");
    }

    #[test]
    fn failures_count_per_object_and_reset_on_success() {
        let f = Failures::default();
        assert_eq!(f.fail("a"), 1);
        assert_eq!(f.fail("a"), 2);
        assert_eq!(f.fail("b"), 1);
        f.succeed(&"a");
        assert_eq!(f.fail("a"), 1);
    }
}
