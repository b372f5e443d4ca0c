//! Progress reporting and cancellation, as the engine sees them.

use std::sync::atomic::{AtomicBool, Ordering};

/// Receives progress from a long operation and can ask it to stop.
///
/// Phases have stable snake_case names (`writing_transactions`, `restoring_accounts`, …) that
/// the service shows as `currentPhase`.
pub trait Progress: Send + Sync {
    /// A new phase starts; `total` is the amount of work in it (rows or bytes), 0 if unknown.
    fn phase(&self, _name: &str, _total: u64) {}
    /// `n` more units of the current phase are done.
    fn advance(&self, _n: u64) {}
    /// True when the operation should stop (it then fails with `Cancelled`, changing nothing).
    fn is_cancelled(&self) -> bool {
        false
    }
}

/// No reporting.
pub struct NoProgress;

impl Progress for NoProgress {}

/// A cancellation flag that can be shared with another thread.
#[derive(Default)]
pub struct CancelFlag(AtomicBool);

impl CancelFlag {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
