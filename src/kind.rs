//! What a directory entry says an object is: its kind and, for typed objects, the element type's
//! signature (shown in [`OpenError`](crate::OpenError)s when a lookup finds something else), and
//! the table of what the segment layer knows of each kind ([`KindDef`]).

use crate::layout::{align_up, SlotLayout};
use crate::ring::mem::ring_region_size;
use std::fmt;

/// A type signature as stored in a segment's directory: size, alignment and type name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeSig {
    /// `size_of` the element type (0 for byte queues).
    pub size: u64,
    /// `align_of` the element type.
    pub align: u64,
    /// The type name (possibly truncated).
    pub name: String,
}

impl fmt::Display for TypeSig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (size {}, align {})",
            self.name, self.size, self.align
        )
    }
}

/// The kind of a named object in a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ObjectKind {
    /// [`Queue`](crate::Queue).
    Queue,
    /// [`BytesQueue`](crate::BytesQueue).
    BytesQueue,
    /// [`JoinableQueue`](crate::JoinableQueue).
    JoinableQueue,
    /// [`Value`](crate::Value).
    Value,
    /// [`Array`](crate::Array).
    Array,
    /// [`List`](crate::List).
    List,
    /// [`Lock`](crate::Lock).
    Lock,
    /// [`Event`](crate::Event).
    Event,
    /// [`Semaphore`](crate::Semaphore).
    Semaphore,
    /// [`Barrier`](crate::Barrier).
    Barrier,
    /// [`Versioned`](crate::Versioned).
    Versioned,
    /// [`RLock`](crate::RLock).
    RLock,
    /// [`Condition`](crate::Condition).
    Condition,
    /// An unbounded [`Queue`](crate::Queue) (`SegmentBuilder::unbounded_queue`).
    UnboundedQueue,
    /// An unbounded [`BytesQueue`](crate::BytesQueue) (`SegmentBuilder::unbounded_bytes_queue`).
    UnboundedBytesQueue,
    /// A [`BytesDict`](crate::BytesDict) or [`Dict`](crate::Dict).
    Dict,
    /// A [`BytesList`](crate::BytesList) or [`SharedVec`](crate::SharedVec).
    BytesList,
}

impl ObjectKind {
    /// Whether this kind is a chain of links in the heap (an unbounded queue).
    pub(crate) fn is_chain(self) -> bool {
        matches!(
            self,
            ObjectKind::UnboundedQueue | ObjectKind::UnboundedBytesQueue
        )
    }
}

/// What a kind needs from an object's parameters: the element type's size and alignment (0 and 1
/// for untyped kinds), the two kind-specific parameters of its directory entry, and, at creation,
/// the initial bytes (a `Versioned` value).
pub(crate) struct Params<'a> {
    pub(crate) size: u64,
    pub(crate) align: u64,
    /// Queues: capacity. Value: initial bits. Array: length. List: capacity. Semaphore: initial
    /// count. Barrier: parties. Lock: scope (0 thread, 1 process).
    pub(crate) param0: u64,
    /// Bytes queue: max message length. Semaphore: bound.
    pub(crate) param1: u64,
    /// Bytes queue: bytes a slot holds in place (0: all of `param1`; see [`bytes_inline`]).
    pub(crate) param2: u64,
    pub(crate) init: &'a [u8],
}

/// Bytes a byte queue's slot holds in place: `param1` (the maximum message length) when
/// `param2` is 0, else `param2`, and then longer messages go through the segment's heap.
pub(crate) fn bytes_inline(p: &Params<'_>) -> u64 {
    if p.param2 == 0 {
        p.param1
    } else {
        p.param2
    }
}

/// Smallest in-place size of a byte queue whose long messages go through the heap: the slot
/// must hold a heap reference (message length and block offset).
pub(crate) const MIN_INLINE_WITH_HEAP: u64 = 16;

/// Everything the segment layer knows of one kind: its code in directory entries, its name in
/// messages, where its ring starts in its region (kinds built on one), how large its region is
/// for given parameters, which parameters it accepts, and what it writes into its (zeroed) region
/// at creation besides the ring. The segment code is written once over this table; adding a kind
/// is its state (`objects/`), its handle, and one row here.
pub(crate) struct KindDef {
    pub(crate) kind: ObjectKind,
    pub(crate) code: u32,
    pub(crate) name: &'static str,
    /// Offset of the ring in the region, for queue kinds.
    pub(crate) ring_at: Option<u64>,
    /// Region length and slot layout, with checked arithmetic (`None`: the parameters overflow).
    pub(crate) region: fn(&Params<'_>) -> Option<Region>,
    /// Range checks of the parameters: why they are refused.
    pub(crate) check: fn(&Params<'_>) -> Result<(), String>,
    /// Initial state besides the ring (all-zero is the initial state of what it leaves alone).
    /// Safety: `base` points to the kind's zeroed region, `region(p)` bytes long, 128-aligned,
    /// not yet visible to any other process.
    pub(crate) init: unsafe fn(base: *mut u8, p: &Params<'_>),
    /// For kinds with blocks in the heap: calls `each` with every heap block the object whose
    /// region is at `base` uses (asked by the heap's sweeps about the blocks marked as the
    /// object's, [`crate::heap::STRUCTURE_MARK`]); `false` if that cannot be told.
    pub(crate) blocks: Option<BlocksFn>,
}

/// How a kind lists the heap blocks an object uses ([`KindDef::blocks`]).
pub(crate) type BlocksFn =
    fn(seg: &crate::mapping::Inner, base: *mut u8, each: &mut dyn FnMut(u64)) -> bool;

/// A region's length and, for kinds with slots, their layout.
pub(crate) type Region = (u64, Option<SlotLayout>);

/// Size of the fixed state block of locks, events, semaphores, barriers, list headers and the
/// joinable accounting block; a value's cell sits in the second one.
pub(crate) const BLOCK: u64 = 128;

/// Bytes of one copy of a versioned value of `size` bytes: whole 8-byte words, 128-aligned.
pub(crate) fn versioned_copy_size(size: u64) -> Option<u64> {
    align_up(size.div_ceil(8).checked_mul(8)?, 128)
}

fn ring_region(at: u64, p: &Params<'_>, layout: SlotLayout) -> Option<Region> {
    Some((
        at.checked_add(ring_region_size(p.param0, layout)?)?,
        Some(layout),
    ))
}

fn fixed(len: u64) -> Option<Region> {
    Some((len, None))
}

fn any_params(_: &Params<'_>) -> Result<(), String> {
    Ok(())
}

fn capacity_at_least_one(p: &Params<'_>) -> Result<(), String> {
    if p.param0 == 0 {
        return Err("capacity must be at least 1".into());
    }
    Ok(())
}

unsafe fn zeroed(_: *mut u8, _: &Params<'_>) {}

/// The table (codes are part of the layout: never reuse one).
const KINDS: [KindDef; 17] = [
    KindDef {
        kind: ObjectKind::Queue,
        code: 1,
        name: "queue",
        ring_at: Some(0),
        region: |p| ring_region(0, p, SlotLayout::for_pod(p.size, p.align)?),
        check: capacity_at_least_one,
        init: zeroed,
        blocks: None,
    },
    KindDef {
        kind: ObjectKind::BytesQueue,
        code: 2,
        name: "bytes queue",
        ring_at: Some(0),
        region: |p| ring_region(0, p, SlotLayout::for_bytes(bytes_inline(p))?),
        check: |p| {
            capacity_at_least_one(p)?;
            let inline = bytes_inline(p);
            if inline > u32::MAX as u64 - 1 {
                return Err(format!(
                    "a slot of {inline} bytes is above {}",
                    u32::MAX - 1
                ));
            }
            if p.param2 != 0 && (p.param2 < MIN_INLINE_WITH_HEAP || p.param2 >= p.param1) {
                return Err(format!(
                    "in-place size {} must be at least {MIN_INLINE_WITH_HEAP} and below the \
                     maximum message length {}",
                    p.param2, p.param1
                ));
            }
            Ok(())
        },
        init: zeroed,
        blocks: None,
    },
    KindDef {
        kind: ObjectKind::JoinableQueue,
        code: 3,
        name: "joinable queue",
        ring_at: Some(BLOCK),
        region: |p| ring_region(BLOCK, p, SlotLayout::for_pod(p.size, p.align)?),
        check: capacity_at_least_one,
        init: zeroed,
        blocks: None,
    },
    KindDef {
        kind: ObjectKind::Value,
        code: 4,
        name: "value",
        ring_at: None,
        region: |_| fixed(2 * BLOCK),
        check: any_params,
        init: |base, p| {
            // SAFETY: a value region is 2 * BLOCK bytes (region); the cell is the u64 at BLOCK.
            unsafe { &*base.add(BLOCK as usize).cast::<crate::sync::AtomicU64>() }
                .store(p.param0, crate::sync::Ordering::Relaxed);
        },
        blocks: None,
    },
    KindDef {
        kind: ObjectKind::Array,
        code: 5,
        name: "array",
        ring_at: None,
        region: |p| fixed(BLOCK.checked_add(p.param0.checked_mul(8)?)?),
        check: any_params,
        init: zeroed,
        blocks: None,
    },
    KindDef {
        kind: ObjectKind::List,
        code: 6,
        name: "list",
        ring_at: None,
        region: |p| {
            let layout = SlotLayout::for_pod(p.size, p.align)?;
            Some((
                BLOCK.checked_add(p.param0.checked_mul(layout.stride)?)?,
                Some(layout),
            ))
        },
        check: capacity_at_least_one,
        init: zeroed,
        blocks: None,
    },
    KindDef {
        kind: ObjectKind::Lock,
        code: 7,
        name: "lock",
        ring_at: None,
        region: |_| fixed(BLOCK),
        // param0: whose death frees it, 0 its thread's, 1 its process's.
        check: |p| match p.param0 {
            0 | 1 => Ok(()),
            s => Err(format!(
                "lock scope {s} is neither 0 (thread) nor 1 (process)"
            )),
        },
        init: zeroed,
        blocks: None,
    },
    KindDef {
        kind: ObjectKind::Event,
        code: 8,
        name: "event",
        ring_at: None,
        region: |_| fixed(BLOCK),
        check: any_params,
        init: zeroed,
        blocks: None,
    },
    KindDef {
        kind: ObjectKind::Semaphore,
        code: 9,
        name: "semaphore",
        ring_at: None,
        region: |_| fixed(BLOCK),
        check: |p| {
            if p.param1 > u32::MAX as u64 || p.param0 > p.param1 {
                return Err(format!(
                    "initial count {} must be at most the bound {} (at most {})",
                    p.param0,
                    p.param1,
                    u32::MAX
                ));
            }
            Ok(())
        },
        init: |base, p| {
            // SAFETY: a semaphore region starts with its u32 count (the futex word).
            unsafe { &*base.cast::<crate::sync::AtomicU32>() }
                .store(p.param0 as u32, crate::sync::Ordering::Relaxed);
        },
        blocks: None,
    },
    KindDef {
        kind: ObjectKind::Barrier,
        code: 10,
        name: "barrier",
        ring_at: None,
        region: |_| fixed(BLOCK),
        check: |p| {
            if p.param0 == 0 || p.param0 > u32::MAX as u64 {
                return Err(format!("parties must be 1..={}", u32::MAX));
            }
            Ok(())
        },
        init: zeroed,
        blocks: None,
    },
    KindDef {
        kind: ObjectKind::Versioned,
        code: 11,
        name: "versioned value",
        ring_at: None,
        region: |p| {
            let copy = versioned_copy_size(p.size)?;
            fixed((2 * BLOCK).checked_add(copy.checked_mul(2)?)?)
        },
        check: any_params,
        init: |base, p| {
            // Version 0: copy 0 (at 2 * BLOCK) holds the initial value.
            for (i, chunk) in p.init.chunks(8).enumerate() {
                let mut bytes = [0u8; 8];
                bytes[..chunk.len()].copy_from_slice(chunk);
                // SAFETY: the region is 2 * BLOCK + 2 copies of whole words of the value
                // (region), so word i of copy 0 is inside it and 8-aligned.
                unsafe {
                    &*base
                        .add((2 * BLOCK) as usize + 8 * i)
                        .cast::<crate::sync::AtomicU64>()
                }
                .store(u64::from_le_bytes(bytes), crate::sync::Ordering::Relaxed);
            }
        },
        blocks: None,
    },
    KindDef {
        kind: ObjectKind::RLock,
        code: 12,
        name: "reentrant lock",
        ring_at: None,
        // The lock's block, then the block holding the owner's recursion count.
        region: |_| fixed(2 * BLOCK),
        check: any_params,
        init: zeroed,
        blocks: None,
    },
    KindDef {
        kind: ObjectKind::Condition,
        code: 13,
        name: "condition",
        ring_at: None,
        // Its RLock's two blocks, then the condition's sequence and waiter count.
        region: |_| fixed(3 * BLOCK),
        check: any_params,
        init: zeroed,
        blocks: None,
    },
    KindDef {
        kind: ObjectKind::UnboundedQueue,
        code: 14,
        name: "unbounded queue",
        ring_at: None,
        // The chain's header and link table; the links (their slots of this layout) live in the
        // heap.
        region: |p| {
            Some((
                crate::chain::CHAIN_REGION,
                Some(SlotLayout::for_pod(p.size, p.align)?),
            ))
        },
        check: any_params,
        init: zeroed,
        blocks: Some(crate::chain::region_blocks),
    },
    KindDef {
        kind: ObjectKind::UnboundedBytesQueue,
        code: 15,
        name: "unbounded bytes queue",
        ring_at: None,
        region: |p| {
            Some((
                crate::chain::CHAIN_REGION,
                Some(SlotLayout::for_bytes(bytes_inline(p))?),
            ))
        },
        check: |p| {
            if p.param2 < MIN_INLINE_WITH_HEAP || p.param2 >= p.param1 || p.param2 > 1 << 20 {
                return Err(format!(
                    "in-place size {} must be at least {MIN_INLINE_WITH_HEAP}, at most 1 MiB and \
                     below the maximum message length {}",
                    p.param2, p.param1
                ));
            }
            Ok(())
        },
        init: zeroed,
        blocks: Some(crate::chain::region_blocks),
    },
    KindDef {
        kind: ObjectKind::Dict,
        code: 16,
        name: "dictionary",
        ring_at: None,
        // The dictionary's lock and words; its table and entries live in the heap.
        region: |_| fixed(crate::objects::dict::DICT_REGION),
        check: any_params,
        init: zeroed,
        blocks: Some(crate::objects::handles::dict_region_blocks),
    },
    KindDef {
        kind: ObjectKind::BytesList,
        code: 17,
        name: "growable list",
        ring_at: None,
        // The list's lock and array word; its array and items live in the heap.
        region: |_| fixed(crate::objects::bytes_list::SEQ_REGION),
        check: any_params,
        init: zeroed,
        blocks: Some(crate::objects::handles::bytes_list_region_blocks),
    },
];

impl ObjectKind {
    /// This kind's row of the table.
    pub(crate) fn def(self) -> &'static KindDef {
        KINDS
            .iter()
            .find(|k| k.kind == self)
            .expect("every kind has a row")
    }
    pub(crate) fn code(self) -> u32 {
        self.def().code
    }
    pub(crate) fn from_code(c: u32) -> Option<Self> {
        KINDS.iter().find(|k| k.code == c).map(|k| k.kind)
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.def().name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_one_row_and_its_code_round_trips() {
        for (i, k) in KINDS.iter().enumerate() {
            assert_eq!(k.kind.def().code, k.code, "{} found another row", k.name);
            assert_eq!(ObjectKind::from_code(k.code), Some(k.kind));
            assert!(
                KINDS[..i]
                    .iter()
                    .all(|o| o.code != k.code && o.name != k.name),
                "code or name of {} used twice",
                k.name
            );
        }
        assert_eq!(ObjectKind::from_code(0), None);
        assert_eq!(ObjectKind::from_code(18), None);
    }
}
