//! Counters a queue reports for monitoring and tests.

/// A snapshot of a queue's state, for monitoring and tests. Every field is read separately, so the
/// snapshot is not atomic as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueStats {
    /// Messages in the queue.
    pub len: usize,
    /// Slots.
    pub capacity: usize,
    /// Whether the queue is closed.
    pub closed: bool,
    /// Getters registered as sleeping on the futex (a hint: a killed process leaves it high).
    pub waiting_getters: u32,
    /// Putters registered as sleeping on the futex (a hint, as above).
    pub waiting_putters: u32,
    /// Positions abandoned by dead producers and skipped.
    pub tombstones: u64,
    /// Messages lost with a consumer that died holding them.
    pub lost: u64,
    /// Claims in flight by threads that work without a participant record (the table was full of
    /// live participants). While it is not 0, recovery on this queue waits: such a claim names no
    /// record, so a dead process's stale record naming the same position could pass for its
    /// claimant. A thread killed holding such a claim leaves it raised for good, and recovery on
    /// this queue stays off (size the table for the threads you run).
    pub unattributed_claims: u32,
    /// Live threads that have put to this queue (registered producers).
    ///
    /// This and `participants` ask `/proc` whether each record's process is alive, so `stats()`
    /// costs a few microseconds per participant: a diagnostic, not something to poll in a hot loop.
    pub producers: u32,
    /// Live participants of the segment (threads holding a participant record).
    pub participants: u32,
    /// Positions producers have claimed since the queue was made (tombstoned ones included): the
    /// difference of two snapshots over their interval is the put rate. For an unbounded queue,
    /// those of the links still alive (positions continue from link to link).
    pub puts: u64,
    /// Positions consumers have claimed since the queue was made (the get rate, as `puts`).
    pub gets: u64,
}

/// What [`Segment::stats`](crate::Segment::stats) reports: the segment's size and its shared
/// heap (where byte messages longer than their queue's slots live).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SegmentStats {
    /// Bytes of the segment now (its initial size plus its growth).
    pub size: u64,
    /// How far it may grow.
    pub max_size: u64,
    /// Bytes this process has mapped of it (it maps growth lazily, on first use).
    pub mapped: u64,
    /// Bytes the heap spans (allocated and free blocks).
    pub heap_bytes: u64,
    /// Bytes in allocated heap blocks, headers included.
    pub heap_in_use: u64,
    /// Allocated heap blocks (each one long message queued, or being put or read).
    pub heap_blocks: u64,
    /// Times the segment grew.
    pub growths: u64,
    /// Blocks given back because their holder died (or never delivered them).
    pub reclaimed: u64,
    /// Participant records taken over from dead processes.
    pub records_reused: u64,
    /// Locks (of a `Lock`, an `RLock` or a `Condition`, and the heap's) taken over from an owner
    /// that died holding them.
    pub locks_taken_over: u64,
    /// Slots that dead consumers held, released by recovery (each queue's `lost` counts the
    /// messages among them).
    pub slots_released: u64,
}
