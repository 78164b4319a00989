//! The demand counter: how many items a subscriber has requested and not yet received.

use std::fmt;

use weft_sync::atomic::{AtomicU64, Ordering};

/// Outstanding demand of a subscription: `request(n)` adds, each delivery takes one.
///
/// Reactive Streams rule 3.17 says demand that reaches `Long.MAX_VALUE` is "effectively
/// unbounded"; here [`Demand::UNBOUNDED`] (`u64::MAX`) plays that part: additions
/// saturate at it, and once reached, taking never lowers it again.
///
/// It is lock-free and safe to share: any number of threads may
/// [`add`](Demand::add) while a publisher [`take`](Demand::take)s; a publisher never
/// takes more than was added in total (the loom model `demand_never_oversubscribes` in
/// `loom-tests/tests/reactive.rs` checks it).
///
/// ```
/// use weft_reactive::Demand;
///
/// let demand = Demand::new();
/// assert!(!demand.take()); // nothing requested: nothing may be delivered
/// demand.add(2);
/// assert!(demand.take() && demand.take());
/// assert!(!demand.take());
///
/// demand.add(Demand::UNBOUNDED);
/// demand.add(5); // saturates
/// assert!(demand.take());
/// assert_eq!(demand.get(), Demand::UNBOUNDED); // unbounded stays unbounded
/// ```
pub struct Demand {
    /// Requested minus delivered; `u64::MAX` means unbounded.
    value: AtomicU64,
}

impl Demand {
    /// Demand that never runs out (`u64::MAX`).
    pub const UNBOUNDED: u64 = u64::MAX;

    /// No demand.
    pub fn new() -> Self {
        Demand {
            value: AtomicU64::new(0),
        }
    }

    /// Adds `n` (saturating at [`UNBOUNDED`](Demand::UNBOUNDED)); returns the demand
    /// before the addition.
    ///
    /// ```
    /// let d = weft_reactive::Demand::new();
    /// assert_eq!(d.add(3), 0);
    /// assert_eq!(d.add(u64::MAX - 1), 3);
    /// assert_eq!(d.get(), weft_reactive::Demand::UNBOUNDED);
    /// ```
    pub fn add(&self, n: u64) -> u64 {
        // AcqRel: a publisher that takes a unit of demand (Acquire in `take`) sees what the
        // requester did before requesting; the requester sees earlier deliveries.
        match self
            .value
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                Some(cur.saturating_add(n))
            }) {
            Ok(prev) | Err(prev) => prev,
        }
    }

    /// Takes one unit of demand if there is any: `true` means one item may be delivered.
    ///
    /// ```
    /// let d = weft_reactive::Demand::new();
    /// d.add(1);
    /// assert!(d.take());
    /// assert!(!d.take());
    /// ```
    pub fn take(&self) -> bool {
        // Orderings as in `add`. The closure refuses at zero, so demand never wraps.
        self.value
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| match cur {
                0 => None,
                Demand::UNBOUNDED => Some(cur),
                n => Some(n - 1),
            })
            .is_ok()
    }

    /// The outstanding demand now.
    ///
    /// ```
    /// let d = weft_reactive::Demand::new();
    /// d.add(4);
    /// assert_eq!(d.get(), 4);
    /// ```
    pub fn get(&self) -> u64 {
        self.value.load(Ordering::Acquire)
    }
}

impl Default for Demand {
    fn default() -> Self {
        Demand::new()
    }
}

impl fmt::Debug for Demand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.get() {
            Demand::UNBOUNDED => f.write_str("Demand(unbounded)"),
            n => write!(f, "Demand({n})"),
        }
    }
}
