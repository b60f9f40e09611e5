//! Shared-memory layouts: every type here is `#[repr(C)]`, holds offsets and never pointers, and has
//! its size and alignment pinned by `const` assertions so two builds cannot disagree silently.
//!
//! The byte-by-byte map of a segment is in `docs/design.md`.

use crate::sync::futex::Futex;
use crate::sync::{AtomicU32, AtomicU64};

/// A value alone on its own 128-byte block (two 64-byte lines: adjacent-line prefetch on x86 pulls
/// pairs of lines, so 128 keeps hot words of different writers apart).
#[repr(C, align(128))]
#[derive(Debug)]
pub(crate) struct CachePadded<T>(pub(crate) T);

impl<T> core::ops::Deref for CachePadded<T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Slot stamp states, in the two low bits of a slot's stamp word.
///
/// A stamp is `pos << 2 | state`: `pos << 2 | FREE` means "free for the producer of `pos`",
/// `pos << 2 | FULL` means "holds the message of `pos` for its consumer", and `pos << 2 | TOMB` means
/// "position `pos` was abandoned by a dead producer; its consumer skips it". Releasing the slot after
/// a read stores `(pos + capacity) << 2 | FREE`. Two bits of state keep "full for `pos`" distinct from
/// "free for `pos + 1`" even at capacity 1, which a plain Vyukov sequence number cannot.
pub(crate) const STAMP_FREE: u64 = 0;
pub(crate) const STAMP_FULL: u64 = 1;
pub(crate) const STAMP_TOMB: u64 = 2;
/// Which side of a ring an operation, a claim or a waiter is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// Producers: claim at `tail`, publish, wait on `space`.
    Put,
    /// Consumers: claim at `head`, release, wait on `items`.
    Get,
}

impl Side {
    /// The side whose [`bit`](Self::bit) is the low bit of `note`.
    #[inline(always)]
    pub(crate) const fn of_bit(note: u32) -> Side {
        if note & 1 != 0 {
            Side::Put
        } else {
            Side::Get
        }
    }

    /// The other side.
    #[inline(always)]
    pub(crate) const fn other(self) -> Side {
        match self {
            Side::Put => Side::Get,
            Side::Get => Side::Put,
        }
    }

    /// The bit a waiter's note carries for this side (1: put).
    #[inline(always)]
    pub(crate) const fn bit(self) -> u32 {
        matches!(self, Side::Put) as u32
    }
}

/// Builds and reads slot stamps: the one place that knows the packing above.
pub(crate) struct Stamp;

impl Stamp {
    /// Free for the producer of `pos`.
    #[inline(always)]
    pub(crate) const fn free(pos: u64) -> u64 {
        pos << 2 | STAMP_FREE
    }
    /// Holds the message of `pos` for its consumer.
    #[inline(always)]
    pub(crate) const fn full(pos: u64) -> u64 {
        pos << 2 | STAMP_FULL
    }
    /// A tombstone at `pos`: consumers step over it.
    #[inline(always)]
    pub(crate) const fn tomb(pos: u64) -> u64 {
        pos << 2 | STAMP_TOMB
    }
    /// The position a stamp names.
    #[inline(always)]
    pub(crate) const fn pos(stamp: u64) -> u64 {
        stamp >> 2
    }
    /// The state bits of a stamp (`STAMP_FREE`, `STAMP_FULL`, `STAMP_TOMB`, or 3: never made).
    #[inline(always)]
    pub(crate) const fn state(stamp: u64) -> u64 {
        stamp & 3
    }
}

/// Positions must stay below this so that `pos << 2` cannot overflow (2^61 messages: never reached).
pub(crate) const MAX_POS: u64 = 1 << 61;
/// Bit 63 of the tail word: set once by `close()`. A producer's claim CAS compares the whole word, so
/// no claim can succeed after the bit is set, and a consumer that sees it knows the final tail.
pub(crate) const CLOSED_BIT: u64 = 1 << 63;

/// One direction of the sleep/wake protocol: the futex word is an epoch counter bumped on every
/// notification; `waiters` counts sleepers registered on it. Both live in shared memory.
///
/// `waiters` must never read lower than the number of live sleepers (a notifier would skip the
/// wake-up). A process killed while registered leaves it too high, which costs spurious
/// `futex_wake` calls until a survivor takes the dead registration back (`Ring::repair_waiters`,
/// exact by construction of `ClaimRecord::waiting`).
#[derive(Debug)]
#[repr(C)]
pub(crate) struct WaitCell {
    /// Epoch counter; sleepers wait on it with the value they read after registering.
    pub(crate) epoch: Futex,
    /// Number of registered sleepers (a hint, see the type docs).
    pub(crate) waiters: AtomicU32,
}

/// The control block of one ring, at the start of its object region. Each hot word has its own
/// 128-byte block: producers write `tail`, consumers write `head`, and the two wait cells are touched
/// only on the slow path.
#[derive(Debug)]
#[repr(C)]
pub(crate) struct RingHeader {
    /// Next position to claim for a put; bit 63 is [`CLOSED_BIT`].
    pub(crate) tail: CachePadded<AtomicU64>,
    /// Next position to claim for a get.
    pub(crate) head: CachePadded<AtomicU64>,
    /// Getters sleep here; bumped after a publish when getters are registered.
    pub(crate) items: CachePadded<WaitCell>,
    /// Putters sleep here; bumped after a slot is released when putters are registered.
    pub(crate) space: CachePadded<WaitCell>,
    /// Counters for `stats()`: slots turned into tombstones, messages lost with a dead consumer.
    pub(crate) counters: CachePadded<RingCounters>,
}

impl RingHeader {
    /// The wait cell of putters (`Side::Put`: `space`) or of getters (`items`).
    #[inline]
    pub(crate) fn wait_cell(&self, side: Side) -> &WaitCell {
        if side == Side::Put {
            &self.space
        } else {
            &self.items
        }
    }
}

/// A read-mostly line: diagnostics counters, written only on recovery paths, the closed flag, and
/// the in-flight count of threads without a participant record (written only when the table is
/// full).
#[derive(Debug)]
#[repr(C)]
pub(crate) struct RingCounters {
    pub(crate) tombstones: AtomicU64,
    pub(crate) lost: AtomicU64,
    /// 1 once `close()` set [`CLOSED_BIT`] in `tail` (stored after it). Consumers that find no
    /// message read this line, which stays in their cache, instead of `tail`, which every put
    /// writes: polling `tail` would pull the producers' hottest line on every empty check.
    pub(crate) closed: AtomicU32,
    /// Who has put to this ring: [`PRODUCER_SEEN`] once a producer registered in its participant
    /// record, [`PRODUCER_UNATTRIBUTED`] once a thread without a record put (then no get can tell
    /// that every producer is gone, and none reports `Disconnected`). Set once, never cleared.
    pub(crate) producers: AtomicU32,
    /// Claims in flight by threads without a participant record (the table was full). While it is
    /// not 0, `Ring::recover` acts on nothing: a dead process's stale record may name a position
    /// such a thread claimed, and recovering it would tombstone (or release) a live claim. Raised
    /// before the claim CAS, lowered once the claim is settled; a thread killed in between leaves
    /// it raised, which turns recovery off for this ring (safe, never wrong).
    pub(crate) unattributed: AtomicU32,
}

/// [`RingCounters::producers`] bit: some thread registered as a producer of this ring.
pub(crate) const PRODUCER_SEEN: u32 = 1;
/// `ParticipantRecord::pid` while a thread takes the record over (never a real pid: Linux pids
/// stay below 2^22). Readers treat it as alive, so nobody judges the record by fields that its
/// new owner is still writing; the taker stores its own pid (Release) when it is done.
pub(crate) const PID_TAKING: u32 = u32::MAX;

/// [`RingCounters::producers`] bit: some thread put without a participant record.
pub(crate) const PRODUCER_UNATTRIBUTED: u32 = 2;

crate::sync::native_only! {
    const _: () = {
        assert!(core::mem::size_of::<RingHeader>() == 5 * 128);
        assert!(core::mem::align_of::<RingHeader>() == 128);
        assert!(core::mem::size_of::<WaitCell>() == 8);
    };
}

crate::sync::loom_only! {
    impl RingHeader {
        /// A fresh header on the heap, for the model checker.
        pub(crate) fn new_heap() -> Self {
            let cell = || {
                CachePadded(WaitCell {
                    epoch: Futex::new(0),
                    waiters: AtomicU32::new(0),
                })
            };
            Self {
                tail: CachePadded(AtomicU64::new(0)),
                head: CachePadded(AtomicU64::new(0)),
                items: cell(),
                space: cell(),
                counters: CachePadded(RingCounters {
                    tombstones: AtomicU64::new(0),
                    lost: AtomicU64::new(0),
                    closed: AtomicU32::new(0),
                    producers: AtomicU32::new(0),
                    unattributed: AtomicU32::new(0),
                }),
            }
        }
    }
}

/// Where a thread records what it is about to claim, so that a slot left claimed by a process that
/// died can be attributed to it (`Ring::recover` reads these through the segment's liveness
/// source). Three Relaxed stores before each claim CAS and one after the claim is settled, all to a
/// line only this thread writes; the claim CAS's Release publishes them.
#[derive(Debug)]
#[repr(C)]
pub(crate) struct ClaimRecord {
    /// Directory index + 1 of the queue being put to (0: none).
    pub(crate) put_obj: AtomicU32,
    /// Directory index + 1 of the queue being read from (0: none).
    pub(crate) get_obj: AtomicU32,
    /// First position of the put claim being attempted or held.
    pub(crate) put_pos: AtomicU64,
    /// Number of positions of that put claim.
    pub(crate) put_len: AtomicU64,
    /// First position of the get claim being attempted or held.
    pub(crate) get_pos: AtomicU64,
    /// Number of positions of that get claim.
    pub(crate) get_len: AtomicU64,
    /// The wait cell this thread is registered on while it sleeps, in the low 32 bits:
    /// `obj << 1 | 1` for a queue's `space` (a putter), `obj << 1` for its `items` (a getter); 0
    /// when not waiting. Set after the thread raises the cell's `waiters` count and cleared
    /// before it lowers it, so a dead owner's nonzero note stands for exactly one registration it
    /// never took back, which `Ring::repair_waiters` (or a taker of the record) takes back for
    /// it. The high 32 bits count the record's owners (bumped by every taker): a repairer that
    /// judged one owner dead compares the whole word, so it can never take back the same note
    /// written by the record's next owner.
    pub(crate) waiting: AtomicU64,
}

impl ClaimRecord {
    /// The words of one side of the record: `(obj, first position, length)` of the put claim
    /// (`Side::Put`) or of the get claim.
    #[inline]
    pub(crate) fn side(&self, side: Side) -> (&AtomicU32, &AtomicU64, &AtomicU64) {
        if side == Side::Put {
            (&self.put_obj, &self.put_pos, &self.put_len)
        } else {
            (&self.get_obj, &self.get_pos, &self.get_len)
        }
    }
}

crate::sync::native_only! {
    pub(crate) use segment_layout::*;
}

// The segment's own layout (header, directory, participant records): native only, since the loom
// build has no segments.
crate::sync::native_only! {
mod segment_layout {
    use super::*;

    /// First 8 bytes of every shmq segment.
    pub(crate) const MAGIC: [u8; 8] = *b"SHMQSEG\0";
    /// Bumped on every incompatible change of anything in this file.
    pub(crate) const LAYOUT_VERSION: u32 = 9;
    /// `state` before initialisation finished (a zero-filled new file reads as this).
    #[allow(dead_code)]
    pub(crate) const STATE_INIT: u32 = 0;
    /// `state` once every byte of the segment is initialised; stored last, with Release.
    pub(crate) const STATE_READY: u32 = 1;
    /// [`SegmentHeader::flags`] bit: the creator keeps the name after it exits.
    pub(crate) const HEADER_KEEP: u32 = 1;

    /// Maximum length of an object name inside a segment.
    pub(crate) const OBJ_NAME_MAX: usize = 64;
    /// Bytes of a type name kept for error messages.
    pub(crate) const TYPE_NAME_MAX: usize = 96;

    /// Segment header, at offset 0 of the mapping.
    #[derive(Debug)]
    #[repr(C)]
    pub(crate) struct SegmentHeader {
        /// [`MAGIC`].
        pub(crate) magic: [u8; 8],
        /// [`LAYOUT_VERSION`].
        pub(crate) version: u32,
        /// [`STATE_INIT`] or [`STATE_READY`].
        pub(crate) state: AtomicU32,
        /// [`layout_hash`] of the creating build.
        pub(crate) layout_hash: u64,
        /// Bytes of the segment committed so far: the creator's size, raised (Release) by every
        /// growth of the heap after its pages are reserved in the file. Never lowered; the file
        /// is at least this long.
        pub(crate) total_size: AtomicU64,
        /// Offset of the directory (an array of [`DirEntry`]).
        pub(crate) dir_offset: u64,
        /// Number of directory entries.
        pub(crate) dir_count: u32,
        /// Number of participant records.
        pub(crate) participants_count: u32,
        /// Offset of the participant table (an array of [`ParticipantRecord`]).
        pub(crate) participants_offset: u64,
        /// pid of the creator.
        pub(crate) creator_pid: u32,
        /// [`HEADER_KEEP`] while the creator asks for the name to outlive it (`keep(true)` /
        /// `set_keep(true)`): such a segment is never reclaimed by a later `create`.
        pub(crate) flags: AtomicU32,
        /// Start time (clock ticks since boot, `/proc/PID/stat` field 22) of the creator.
        pub(crate) creator_start: u64,
        /// PID namespace of the creator (see `os::pid_namespace`; 0: unknown).
        pub(crate) creator_pidns: u64,
        /// Membership epoch: bumped (and woken) each time a thread takes a participant record,
        /// so a sleeper that watches the processes holding records learns of a new one (see
        /// `mapping::watch`).
        pub(crate) members: Futex,
        /// Departure epoch: bumped (and woken) each time a participant record is released (its
        /// thread exited or its mapping went away), so a sleeper looks for a disconnect.
        pub(crate) leaves: Futex,
        /// How far the segment may grow (`SegmentBuilder::max_size`); every process reserves
        /// this much address space for its mapping.
        pub(crate) max_size: u64,
        /// Offset of the shared heap's control block ([`crate::heap::HeapHeader`]).
        pub(crate) heap_offset: u64,
        /// Recovery counters (see `mapping::recovery`): participant records taken over from
        /// dead owners.
        pub(crate) records_reused: AtomicU64,
        /// Locks (a `Lock`'s, an `RLock`'s or a `Condition`'s, the heap's) taken over from
        /// an owner that died holding them.
        pub(crate) locks_taken_over: AtomicU64,
        /// Slots that dead consumers held (a message, counted lost in its queue, or a tombstone
        /// they were stepping over) released by recovery.
        pub(crate) slots_released: AtomicU64,
    }

    /// One named object in the directory.
    #[derive(Debug, Clone, Copy)]
    #[repr(C)]
    pub(crate) struct DirEntry {
        /// Object name bytes, `name_len` of them, zero padded.
        pub(crate) name: [u8; OBJ_NAME_MAX],
        pub(crate) name_len: u32,
        /// `ObjectKind as u32`.
        pub(crate) kind: u32,
        /// `size_of` of the element type (0 for byte queues).
        pub(crate) elem_size: u64,
        /// `align_of` of the element type (1 for byte queues).
        pub(crate) elem_align: u64,
        /// FNV-1a hash of the element type name.
        pub(crate) type_hash: u64,
        /// Element type name (truncated), for error messages.
        pub(crate) type_name: [u8; TYPE_NAME_MAX],
        pub(crate) type_name_len: u32,
        pub(crate) _pad: u32,
        /// Offset of the object's region in the mapping.
        pub(crate) offset: u64,
        /// Length of the object's region.
        pub(crate) len: u64,
        /// Kind-specific parameter: capacity of a queue.
        pub(crate) param0: u64,
        /// Kind-specific parameter: maximum message length of a byte queue.
        pub(crate) param1: u64,
        /// Kind-specific parameter: bytes a byte queue's slot holds in place (0: `param1`, all
        /// of them; longer messages of a queue with a smaller value go through the heap).
        pub(crate) param2: u64,
        pub(crate) _reserved: [u64; 2],
    }

    /// One participant: a thread of a process that opened the segment.
    #[derive(Debug)]
    #[repr(C, align(128))]
    pub(crate) struct ParticipantRecord {
        /// pid of the owner; 0 when the record is free; [`PID_TAKING`] while a thread takes it
        /// (CAS 0 or a dead owner's pid → `PID_TAKING`, then a Release store of its pid).
        pub(crate) pid: AtomicU32,
        /// Kernel thread id of the owner.
        pub(crate) tid: AtomicU32,
        /// Start time of the owning process (see `SegmentHeader::creator_start`).
        pub(crate) start_time: AtomicU64,
        /// What this thread is claiming or holds.
        pub(crate) claim: ClaimRecord,
        /// Queues this thread has put to: bit `obj % 64` for directory index + 1 = `obj` (two
        /// queues may share a bit, which can only make a producer look alive, never dead).
        pub(crate) producer_of: AtomicU64,
        /// PID namespace of the owner (`os::pid_namespace`). 0 while a new owner is between its
        /// `pid` CAS and its store of this word, or when its namespace is unknown: either way the
        /// record is never judged dead (its pid means nothing without its namespace).
        pub(crate) pidns: AtomicU64,
        /// The link of an unbounded queue this thread works on (`obj << 40 | link + 1`; 0:
        /// none), announced before it touches it: no link is freed while a live record names it
        /// (see `crate::chain`).
        pub(crate) hazard: AtomicU64,
    }

    const _: () = {
        use core::mem::{align_of, size_of};
        assert!(size_of::<SegmentHeader>() == 128);
        assert!(size_of::<DirEntry>() == 256);
        assert!(size_of::<ParticipantRecord>() == 128);
        assert!(align_of::<ParticipantRecord>() == 128);
        assert!(size_of::<ClaimRecord>() == 48);
    };

    /// A hash over the sizes and offsets every build must agree on; stored in the header and
    /// compared on open, so a build with a different layout is refused rather than misread.
    pub(crate) const fn layout_hash() -> u64 {
        use core::mem::{offset_of, size_of};
        let parts: [u64; 28] = [
            size_of::<SegmentHeader>() as u64,
            size_of::<DirEntry>() as u64,
            size_of::<ParticipantRecord>() as u64,
            size_of::<RingHeader>() as u64,
            offset_of!(RingHeader, head) as u64,
            offset_of!(RingHeader, items) as u64,
            offset_of!(RingHeader, space) as u64,
            offset_of!(DirEntry, offset) as u64,
            offset_of!(DirEntry, param0) as u64,
            offset_of!(SegmentHeader, state) as u64,
            offset_of!(SegmentHeader, participants_offset) as u64,
            STAMP_FULL
                | (STAMP_TOMB << 8)
                | (core::mem::offset_of!(RingCounters, closed) as u64) << 16,
            offset_of!(RingCounters, producers) as u64,
            offset_of!(ParticipantRecord, producer_of) as u64,
            offset_of!(SegmentHeader, flags) as u64,
            offset_of!(RingCounters, unattributed) as u64,
            offset_of!(ParticipantRecord, pidns) as u64,
            offset_of!(SegmentHeader, creator_pidns) as u64,
            offset_of!(ClaimRecord, waiting) as u64,
            offset_of!(SegmentHeader, members) as u64,
            offset_of!(SegmentHeader, leaves) as u64,
            offset_of!(SegmentHeader, max_size) as u64,
            offset_of!(SegmentHeader, heap_offset) as u64,
            offset_of!(DirEntry, param2) as u64,
            crate::heap::LAYOUT_TAG,
            offset_of!(ParticipantRecord, hazard) as u64,
            crate::chain::CHAIN_REGION,
            offset_of!(SegmentHeader, records_reused) as u64
                | (offset_of!(SegmentHeader, locks_taken_over) as u64) << 16
                | (offset_of!(SegmentHeader, slots_released) as u64) << 32,
        ];
        let mut h = FNV_OFFSET;
        let mut i = 0;
        while i < parts.len() {
            h = fnv1a_step(h, parts[i]);
            i += 1;
        }
        h
    }

    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

    const fn fnv1a_step(mut h: u64, v: u64) -> u64 {
        let bytes = v.to_le_bytes();
        let mut i = 0;
        while i < 8 {
            h ^= bytes[i] as u64;
            h = h.wrapping_mul(FNV_PRIME);
            i += 1;
        }
        h
    }

    /// FNV-1a of a byte string (type names).
    pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
        let mut h = FNV_OFFSET;
        for &b in bytes {
            h ^= b as u64;
            h = h.wrapping_mul(FNV_PRIME);
        }
        h
    }
}
}

/// Rounds `v` up to a multiple of `a` (a power of two); `None` on overflow.
pub(crate) const fn align_up(v: u64, a: u64) -> Option<u64> {
    match v.checked_add(a - 1) {
        Some(x) => Some(x & !(a - 1)),
        None => None,
    }
}

/// Where the stamp, the length word and the payload sit in one slot, and the slot stride.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SlotLayout {
    /// Bytes from one slot to the next.
    pub(crate) stride: u64,
    /// Offset of the payload in a slot.
    pub(crate) payload_off: u64,
    /// Payload bytes available in a slot.
    pub(crate) payload_len: u64,
    /// Alignment of every slot (and so of the slot array).
    pub(crate) align: u64,
}

/// A cache line, as slot padding counts it.
const LINE: u64 = 64;

/// Bytes at the start of a byte-message payload that hold its length (a `u32`, then padding).
pub(crate) const BYTES_LEN_WORD: u64 = 8;

impl SlotLayout {
    /// Slot of a `Pod` element of `size` bytes and alignment `align`: stamp at 0, payload at
    /// `max(8, align)`, stride a multiple of `max(8, align)`; a slot of 65 to 256 bytes is
    /// padded to whole cache lines of 64 bytes. Unpadded, a 72-byte slot (a 64-byte value and its
    /// stamp) shares a line with each neighbour, and a consumer right behind a producer moves
    /// both lines per message: padded, in-process 64-byte messages went from about 100 to 67 ns
    /// (docs/benchmarks.md). Larger slots share only their end lines, and 8-byte values would pay
    /// 4x the memory.
    pub(crate) const fn for_pod(size: u64, align: u64) -> Option<Self> {
        let a = if align > 8 { align } else { 8 };
        let unit = match a.checked_add(size) {
            Some(n) if n > LINE && n <= 4 * LINE && a < LINE => LINE,
            Some(_) => a,
            None => return None,
        };
        let stride = match align_up(a + size, unit) {
            Some(s) => s,
            None => return None,
        };
        Some(Self {
            stride,
            payload_off: a,
            payload_len: size,
            align: a,
        })
    }

    /// Slot of a byte message of at most `max` bytes: stamp at 0, then a payload of
    /// `len: u32` + 4 bytes of padding + `max` bytes (so the message bytes start at slot offset 16).
    pub(crate) const fn for_bytes(max: u64) -> Option<Self> {
        let payload = match max.checked_add(BYTES_LEN_WORD) {
            Some(p) => p,
            None => return None,
        };
        let stride = match align_up(8 + payload, 8) {
            Some(s) => s,
            None => return None,
        };
        Some(Self {
            stride,
            payload_off: 8,
            payload_len: payload,
            align: 8,
        })
    }
}

crate::sync::native_only! {
    /// Bytes of one participant record in the table.
    pub(crate) const RECORD_SIZE: u64 = core::mem::size_of::<ParticipantRecord>() as u64;
    /// Bytes of the segment header.
    pub(crate) const HEADER_SIZE: u64 = core::mem::size_of::<SegmentHeader>() as u64;
    /// Bytes of one directory entry.
    pub(crate) const ENTRY_SIZE: u64 = core::mem::size_of::<DirEntry>() as u64;
}

#[cfg(all(test, not(shmq_loom)))]
mod tests {
    use super::SlotLayout;

    #[test]
    fn pod_slots_of_one_to_four_lines_are_padded_to_whole_lines() {
        let stride = |size, align| SlotLayout::for_pod(size, align).unwrap().stride;
        // Up to a line: the value's alignment only.
        assert_eq!(stride(8, 8), 16);
        assert_eq!(stride(56, 8), 64);
        assert_eq!(stride(4, 4), 16);
        // 65 to 256 bytes: whole lines.
        assert_eq!(stride(57, 8), 128);
        assert_eq!(stride(64, 8), 128);
        assert_eq!(stride(248, 8), 256);
        // Larger: not padded.
        assert_eq!(stride(249, 8), 264);
        assert_eq!(stride(1024, 8), 1032);
        // An alignment of a line or more rules alone.
        assert_eq!(stride(100, 128), 256);
        assert_eq!(stride(64, 64), 128);
        assert!(SlotLayout::for_pod(u64::MAX - 4, 8).is_none());
        // The payload always fits its slot.
        for size in 1..600 {
            let l = SlotLayout::for_pod(size, 8).unwrap();
            assert!(l.payload_off + l.payload_len <= l.stride);
            assert_eq!(l.stride % 8, 0);
        }
    }
}
