//! Looking at segments from outside: what `shmq ls`, `shmq stat` and `shmq watch` show, and the
//! removals of `shmq rm` and `shmq gc`.
//!
//! An inspection changes nothing in shared memory: it maps the segment without taking its shared
//! `flock` (so it does not count as a user of the segment, and `rm`/`gc` decisions of others are
//! not affected), takes no participant record and no lock, does not sweep the heap and does not
//! announce the links of unbounded queues. A process killed mid-inspection therefore leaves
//! nothing behind. The price is that every figure is a snapshot of words read one by one while
//! the segment works: a hint for an operator, never an input to a protocol. The figures come
//! from the same code the handles' `stats()` use ([`QueueStats`], the heap's counters, the
//! participant table's liveness verdicts); only the "dead or unknown" distinction is added,
//! since a report must tell "gone for sure" from "cannot tell" (docs/design.md, "Liveness":
//! every decision treats "cannot tell" as alive).
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let seg = shmq::Segment::builder("doc-inspect").queue::<u64>("jobs", 8).create_or_replace()?;
//! seg.queue::<u64>("jobs")?.put(7)?;
//! let report = shmq::inspect::inspect("doc-inspect", false)?;
//! let jobs = &report.objects[0];
//! assert_eq!(jobs.name, "jobs");
//! assert_eq!(jobs.queue.map(|q| q.len), Some(1));
//! # Ok(()) }
//! ```

use crate::error::OpenError;
use crate::kind::ObjectKind;
use crate::layout::{Side, HEADER_KEEP, MAGIC, OBJ_NAME_MAX, PID_TAKING, TYPE_NAME_MAX};
use crate::mapping::Inner;
use crate::os;
use crate::ring_handle::RingHandle;
use crate::segment::{check_name, Segment, WRITABLE_BY_OTHERS};
use crate::stats::QueueStats;
use crate::sync::Ordering;
use std::time::Duration;

/// Whether a process is alive, as far as `/proc` can prove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alive {
    /// Running (same pid and start time).
    Yes,
    /// Gone for sure: no such process in this PID namespace, a zombie, or its pid reused.
    No,
    /// Cannot be told (another or an unknown PID namespace, a /proc that does not show this
    /// process, an owner half-way through taking its record): treated as alive by every
    /// decision shmq makes.
    Unknown,
}

impl Alive {
    fn of(pid: u32, start: u64, pidns: u64) -> Self {
        match os::process_verdict(pid, start, pidns) {
            Some(true) => Alive::Yes,
            Some(false) => Alive::No,
            None => Alive::Unknown,
        }
    }

    /// The word used in reports: `yes`, `no` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Alive::Yes => "yes",
            Alive::No => "no",
            Alive::Unknown => "unknown",
        }
    }
}

/// A process named by a segment (its creator).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Process {
    /// Its pid, in the PID namespace it recorded.
    pub pid: u32,
    /// Whether it lives.
    pub alive: Alive,
}

/// One object of a segment's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ObjectReport {
    /// Its name.
    pub name: String,
    /// Its kind's name (as [`ObjectKind`] displays it), or `unknown kind N` for a code this
    /// version does not know.
    pub kind: String,
    /// The element type's name as the creator wrote it (possibly truncated); empty for untyped
    /// objects.
    pub type_name: String,
    /// `size_of` the element type (0 for byte messages).
    pub elem_size: u64,
    /// Slots of a bounded queue; `None` for unbounded queues and objects that are not queues.
    pub capacity: Option<u64>,
    /// A queue's figures (`None` for other objects, or a queue whose region fails its checks).
    pub queue: Option<QueueStats>,
    /// Why the object could not be read, if it could not (a region that fails its checks).
    pub error: Option<String>,
}

/// A claim a participant names: `len` positions from `pos` of queue `object`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimReport {
    /// The queue's name (`#N` if the record names no object of the directory).
    pub object: String,
    /// First position.
    pub pos: u64,
    /// Number of positions.
    pub len: u64,
    /// Whether the claim is still in flight: claimed and not yet published (a put) or released
    /// (a get). A dead participant's pending claim is what recovery tombstones or releases.
    pub pending: bool,
}

/// One record of the participant table (a thread that used the segment's queues, locks or
/// heap).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ParticipantReport {
    /// Index in the table.
    pub index: u32,
    /// Pid of the owning process.
    pub pid: u32,
    /// Its thread id.
    pub tid: u32,
    /// Whether the owning process lives.
    pub alive: Alive,
    /// The put claim it names, if any.
    pub put: Option<ClaimReport>,
    /// The get claim it names, if any.
    pub get: Option<ClaimReport>,
    /// Queues it has put to (registered producer), by name.
    pub producer_of: Vec<String>,
    /// The queue it sleeps on (`name` and `items` or `space`), if any.
    pub waiting_on: Option<String>,
}

/// The segment's heap, as its counters stand (no sweep: blocks of dead holders not yet given
/// back count as in use).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct HeapReport {
    /// Bytes the heap spans.
    pub bytes: u64,
    /// Bytes in allocated blocks.
    pub in_use: u64,
    /// Allocated blocks.
    pub blocks: u64,
    /// Times the segment grew.
    pub growths: u64,
    /// Blocks given back because their holder died.
    pub reclaimed: u64,
}

/// Everything [`inspect`] reads from one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SegmentReport {
    /// Its name in `/dev/shm`.
    pub name: String,
    /// Owning user id.
    pub uid: u32,
    /// Permission bits.
    pub mode: u32,
    /// Bytes of the segment now.
    pub size: u64,
    /// How far it may grow.
    pub max_size: u64,
    /// Its creator.
    pub creator: Process,
    /// Whether its name outlives its creator (`keep(true)`).
    pub keep: bool,
    /// Processes that map it or hold its shared `flock` (without privilege, other users'
    /// processes may be missing), this one excluded.
    pub attached: Vec<u32>,
    /// The directory, in order.
    pub objects: Vec<ObjectReport>,
    /// Records in use (pid not 0), in table order.
    pub participants: Vec<ParticipantReport>,
    /// Records in the table.
    pub participant_slots: u32,
    /// The shared heap.
    pub heap: HeapReport,
    /// What recovery did for dead peers so far (see [`RecoveryReport`]).
    pub recovery: RecoveryReport,
}

/// Every recovery action taken in a segment so far, as its shared counters say (each action is
/// also logged, target `shmq::recovery`, when the program installs a logger).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// Positions of dead producers tombstoned (and positions given up by panicking
    /// `put_with` closures), summed over the queues.
    pub tombstones: u64,
    /// Slots dead consumers held, released.
    pub slots_released: u64,
    /// Messages lost with them (and with panicking `get_with` closures), summed over the
    /// queues.
    pub lost: u64,
    /// Locks taken over from owners that died holding them.
    pub locks_taken_over: u64,
    /// Participant records taken over from dead processes.
    pub records_reused: u64,
    /// Heap blocks given back for holders that died.
    pub heap_blocks_reclaimed: u64,
}

/// Reads segment `name` without changing it (see the module docs). A segment that its group or
/// others may write is refused with [`OpenError::InsecureMode`] unless `allow_shared` (its
/// contents may be forged by anyone who can write it; nothing read from it is trusted anyway,
/// every offset being checked, so `allow_shared` risks wrong figures, not a fault).
///
/// Errors: [`OpenError::NotFound`], [`OpenError::PermissionDenied`] (another user's file),
/// [`OpenError::NotRegularFile`], [`OpenError::BadMagic`] (not a shmq segment),
/// [`OpenError::NotReady`] (still being built), [`OpenError::VersionMismatch`],
/// [`OpenError::LayoutMismatch`], [`OpenError::Corrupt`], [`OpenError::TooSmall`].
pub fn inspect(name: &str, allow_shared: bool) -> Result<SegmentReport, OpenError> {
    check_name(name, crate::SEGMENT_NAME_MAX).map_err(OpenError::InvalidName)?;
    let (file, info) = os::open_existing(name)?;
    if info.mode & WRITABLE_BY_OTHERS != 0 && !allow_shared {
        return Err(OpenError::InsecureMode { mode: info.mode });
    }
    // A file that does not start with the magic is not a segment, whatever its size (an
    // all-zero start is a segment whose creator has not written its header yet, or died first).
    match os::read_prefix::<8>(name) {
        Some(m) if m == MAGIC || m == [0; 8] => {}
        _ => return Err(OpenError::BadMagic),
    }
    // No shared flock: an inspector is not a user of the segment (its mapping keeps the memory
    // valid even if the name is removed meanwhile). No wait for READY: a segment being built is
    // reported as such.
    let seg = Segment::from_file(&file, info.size, name, Duration::ZERO)?;
    let inner = &seg.inner;
    let h = inner.header();
    let objects: Vec<ObjectReport> = (0..inner.dir_count())
        .map(|i| object_report(&seg, i))
        .collect();
    let names: Vec<&str> = objects.iter().map(|o| o.name.as_str()).collect();
    let heap = inner.heap().counters();
    let me = std::process::id();
    let mut attached = os::mappers(info.dev, info.ino);
    attached.extend(os::flock_holders(info.dev, info.ino));
    attached.sort_unstable();
    attached.dedup();
    attached.retain(|&p| p != me);
    let queues = || objects.iter().filter_map(|o| o.queue);
    let recovery = RecoveryReport {
        tombstones: queues().map(|q| q.tombstones).sum(),
        slots_released: h.slots_released.load(Ordering::Relaxed),
        lost: queues().map(|q| q.lost).sum(),
        locks_taken_over: h.locks_taken_over.load(Ordering::Relaxed),
        records_reused: h.records_reused.load(Ordering::Relaxed),
        heap_blocks_reclaimed: heap.reclaimed,
    };
    Ok(SegmentReport {
        recovery,
        name: name.to_string(),
        uid: os::entry_info(name).map_or(0, |e| e.uid),
        mode: info.mode,
        size: seg.size(),
        max_size: seg.max_size(),
        creator: Process {
            pid: h.creator_pid,
            alive: Alive::of(h.creator_pid, h.creator_start, h.creator_pidns),
        },
        keep: h.flags.load(Ordering::Relaxed) & HEADER_KEEP != 0,
        attached,
        participants: participants(inner, &names),
        participant_slots: inner.part_count(),
        objects,
        heap: HeapReport {
            bytes: heap.heap_bytes,
            in_use: heap.in_use,
            blocks: heap.blocks,
            growths: heap.growths,
            reclaimed: heap.reclaimed,
        },
    })
}

fn object_report(seg: &Segment, i: u32) -> ObjectReport {
    let inner = &seg.inner;
    let e = inner.entry(i);
    let name =
        String::from_utf8_lossy(&e.name[..(e.name_len as usize).min(OBJ_NAME_MAX)]).into_owned();
    let type_name =
        String::from_utf8_lossy(&e.type_name[..(e.type_name_len as usize).min(TYPE_NAME_MAX)])
            .into_owned();
    let kind = ObjectKind::from_code(e.kind);
    let mut report = ObjectReport {
        kind: kind.map_or_else(|| format!("unknown kind {}", e.kind), |k| k.to_string()),
        name,
        type_name,
        elem_size: e.elem_size,
        capacity: None,
        queue: None,
        error: None,
    };
    let Some(kind) = kind else {
        return report;
    };
    if kind.def().ring_at.is_none() && !kind.is_chain() {
        return report;
    }
    let rings = inner
        .checked(&report.name, kind, i, e)
        .and_then(|found| seg.rings(&report.name, &found));
    match rings {
        Ok(rings) => {
            let handle = RingHandle {
                rings,
                seg: inner.clone(),
                obj: i + 1,
            };
            report.capacity = handle.one().map(|r| r.capacity());
            report.queue = Some(handle.stats_with(false));
        }
        Err(err) => report.error = Some(err.to_string()),
    }
    report
}

fn participants(inner: &Inner, names: &[&str]) -> Vec<ParticipantReport> {
    let object = |obj: u32| {
        obj.checked_sub(1)
            .and_then(|i| names.get(i as usize))
            .map_or_else(|| format!("#{obj}"), |n| n.to_string())
    };
    (0..inner.part_count())
        .filter_map(|i| {
            let r = inner.record(i);
            // Acquire, as every reader of a record: the fields read below are its owner's.
            let pid = r.pid.load(Ordering::Acquire);
            if pid == 0 {
                return None;
            }
            let claim = |side: Side| {
                let (obj, pos, len) = r.claim.side(side);
                let obj = obj.load(Ordering::Relaxed);
                let (pos, len) = (pos.load(Ordering::Relaxed), len.load(Ordering::Relaxed));
                (obj != 0).then(|| ClaimReport {
                    object: object(obj),
                    pos,
                    len,
                    pending: inner
                        .ring_of_obj(obj)
                        .is_some_and(|ring| ring.claim_pending(pos, len, side)),
                })
            };
            let bits = r.producer_of.load(Ordering::Relaxed);
            let producer_of = (0..names.len() as u32)
                .filter(|&i| bits & (1u64 << ((i + 1) % 64)) != 0)
                .map(|i| object(i + 1))
                .collect();
            let note = r.claim.waiting.load(Ordering::Relaxed) & crate::ring::NOTE_MASK;
            let waiting_on = (note != 0).then(|| {
                let side = if note & 1 == 1 { "space" } else { "items" };
                format!("{} ({side})", object((note >> 1) as u32))
            });
            let alive = if pid == PID_TAKING {
                Alive::Unknown
            } else {
                Alive::of(
                    pid,
                    r.start_time.load(Ordering::Relaxed),
                    r.pidns.load(Ordering::Relaxed),
                )
            };
            Some(ParticipantReport {
                index: i,
                pid,
                tid: r.tid.load(Ordering::Relaxed),
                alive,
                put: claim(Side::Put),
                get: claim(Side::Get),
                producer_of,
                waiting_on,
            })
        })
        .collect()
}

/// What `/dev/shm` holds under one name that looks like a shmq segment (see [`list`]).
#[derive(Debug)]
#[non_exhaustive]
pub struct Listed {
    /// The name.
    pub name: String,
    /// Owning user id.
    pub uid: u32,
    /// Permission bits.
    pub mode: u32,
    /// File size in bytes.
    pub file_size: u64,
    /// The segment as [`inspect`] reads it, or why it could not (another user's segment:
    /// [`OpenError::PermissionDenied`]; group- or world-writable: [`OpenError::InsecureMode`];
    /// being built, or left half-built: [`OpenError::NotReady`]; ...).
    pub report: Result<SegmentReport, OpenError>,
}

/// Every shmq segment in `/dev/shm`, by name: regular files that start with the segment magic
/// (read with `pread`, so another user's segment counts if its mode lets this user read it),
/// and temporary files of segments being built (`NAME~init~PID~N`). Other files are left out.
pub fn list(allow_shared: bool) -> std::io::Result<Vec<Listed>> {
    Ok(os::shm_names()?
        .into_iter()
        .filter_map(|name| {
            let info = os::entry_info(&name).filter(|e| e.regular)?;
            let building = name.contains("~init~");
            let magic = os::read_prefix::<8>(&name);
            // A file this user cannot read: listed only if it is ours (then it can only be a
            // segment made unreadable on purpose) – another user's unreadable file says nothing.
            let shmq = magic == Some(MAGIC) || (building && magic == Some([0; 8]));
            if !shmq {
                return None;
            }
            let report = if building {
                Err(OpenError::NotReady)
            } else if !info.ours {
                Err(OpenError::PermissionDenied)
            } else {
                inspect(&name, allow_shared)
            };
            Some(Listed {
                name,
                uid: info.uid,
                mode: info.file.mode,
                file_size: info.file.size,
                report,
            })
        })
        .collect())
}

/// What [`remove`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removed {
    /// The name is gone.
    Removed,
    /// Left alone: processes map the segment (their pids, as far as this user can see them;
    /// empty if only a lock shows it in use). Processes that map it keep working on it either
    /// way; a forced removal only takes the name away.
    InUse(Vec<u32>),
}

/// Removes segment `name` from `/dev/shm` if no process maps it (the exclusive-`flock` test of
/// [`Segment::unlink_if_unused`]), or whatever maps it with `force`. Refuses files that are not
/// shmq segments of this user ([`OpenError::BadMagic`], [`OpenError::PermissionDenied`],
/// [`OpenError::NotRegularFile`]) even with `force`.
pub fn remove(name: &str, force: bool) -> Result<Removed, OpenError> {
    check_name(name, crate::SEGMENT_NAME_MAX).map_err(OpenError::InvalidName)?;
    let info = os::entry_info(name).ok_or(OpenError::NotFound)?;
    if !info.regular {
        return Err(OpenError::NotRegularFile);
    }
    if !info.ours {
        return Err(OpenError::PermissionDenied);
    }
    if os::read_prefix::<8>(name) != Some(MAGIC) {
        return Err(OpenError::BadMagic);
    }
    if force {
        Segment::unlink(name)?;
        return Ok(Removed::Removed);
    }
    if Segment::unlink_if_unused(name)? {
        return Ok(Removed::Removed);
    }
    if os::entry_info(name).is_none() {
        return Err(OpenError::NotFound); // removed by someone else meanwhile
    }
    let mut pids = os::mappers(info.file.dev, info.file.ino);
    pids.extend(os::flock_holders(info.file.dev, info.file.ino));
    pids.sort_unstable();
    pids.dedup();
    Ok(Removed::InUse(pids))
}

/// Removes every segment of this user whose every user is gone, as a `create` of its name would
/// (no process maps it, its creator is dead, it was not kept, and no participant record names a
/// live process; or it never became ready and its builder is gone), and the leftover temporary
/// files of dead builders, among the names that start with `prefix` (`""`: all). Returns the
/// names removed. Kept segments stay (remove them with [`remove`]).
pub fn gc(prefix: &str) -> std::io::Result<Vec<String>> {
    let mut removed = Vec::new();
    for name in os::shm_names()?
        .into_iter()
        .filter(|n| n.starts_with(prefix))
    {
        let Some(info) = os::entry_info(&name) else {
            continue;
        };
        if !info.regular || !info.ours {
            continue;
        }
        if let Some((base, _)) = name.split_once("~init~") {
            // A temporary build file (perhaps still zero: its builder may have died before the
            // header): its builder holds an exclusive lock while it lives.
            if check_name(base, crate::SEGMENT_NAME_MAX).is_ok() {
                let before = os::entry_info(&name).is_some();
                os::sweep_stale_temps(base);
                if before && os::entry_info(&name).is_none() {
                    removed.push(name);
                }
            }
            continue;
        }
        if os::read_prefix::<8>(&name) == Some(MAGIC) && os::reclaim_stale(&name) {
            removed.push(name);
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(miri, ignore = "opens /dev/shm, which miri's isolation hides")]
    fn a_missing_segment_is_not_found() {
        assert!(matches!(
            inspect("shmq-inspect-no-such-segment", false),
            Err(OpenError::NotFound)
        ));
        assert!(matches!(
            remove("shmq-inspect-no-such-segment", false),
            Err(OpenError::NotFound)
        ));
    }
}
