//! Where "now" comes from: the system clock, or a frozen time for tests and
//! demos (`--fixed-now`).

use jiff::Timestamp;

/// Where "now" comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    /// The system clock.
    System,
    /// A fixed time (`--fixed-now`).
    Fixed(Timestamp),
}

impl Clock {
    /// The current time according to this clock.
    pub fn now(self) -> Timestamp {
        match self {
            Clock::System => Timestamp::now(),
            Clock::Fixed(t) => t,
        }
    }
}
