//! Recovery made visible: every action taken for a dead peer is counted in shared memory (the
//! queue's `tombstones` and `lost`, the heap's `reclaimed`, the header's `records_reused`,
//! `locks_taken_over` and `slots_released`, all shown by `shmq stat`) and reported through the
//! `log` facade, target `shmq::recovery`, at `warn`, with the dead peer's pid where it is known.
//! Nothing is printed unless the program installs a logger (`env_logger` and the like): the
//! facade is off by default.

use super::Inner;
use crate::layout::OBJ_NAME_MAX;
use crate::sync::Ordering;

/// The log target of recovery reports.
pub(crate) const TARGET: &str = "shmq::recovery";

/// One recovery action (see the module docs).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Recovery<'a> {
    /// A dead producer's claim on position `pos` of queue `obj` (directory index + 1) was
    /// tombstoned (counted in the queue's `tombstones` by the ring).
    Tombstoned {
        obj: u32,
        pos: u64,
        pid: Option<u32>,
    },
    /// A slot a dead consumer held was released; `lost` if it held a message (counted in the
    /// queue's `lost` by the ring).
    Released {
        obj: u32,
        pos: u64,
        pid: Option<u32>,
        lost: bool,
    },
    /// A lock was taken over from an owner that died holding it (`pid`: its process, 0 when
    /// not known).
    LockTakenOver { what: &'a str, pid: u32 },
    /// Participant record `index` was taken over from dead process `pid`.
    RecordReused { index: u32, pid: u32 },
    /// Registrations that dead sleepers left on a wait cell of queue `obj` were taken back.
    WaitersRepaired { obj: u32, n: u32 },
}

impl Inner {
    /// Counts `r` in the segment's shared counters and logs it (see the module docs).
    pub(crate) fn recovered(&self, r: Recovery<'_>) {
        let h = self.header();
        let pid = |p: Option<u32>| p.map_or_else(|| "unknown".to_string(), |p| p.to_string());
        match r {
            Recovery::Tombstoned { obj, pos, pid: p } => log::warn!(
                target: TARGET,
                "segment {}: queue {}: position {pos} tombstoned (its producer, pid {}, died \
                 before publishing it)",
                self.name,
                self.object_name(obj),
                pid(p)
            ),
            Recovery::Released {
                obj,
                pos,
                pid: p,
                lost,
            } => {
                h.slots_released.fetch_add(1, Ordering::Relaxed);
                log::warn!(
                    target: TARGET,
                    "segment {}: queue {}: slot of position {pos} released (its consumer, pid \
                     {}, died holding it){}",
                    self.name,
                    self.object_name(obj),
                    pid(p),
                    if lost { "; its message is lost" } else { "" }
                )
            }
            Recovery::LockTakenOver { what, pid } => {
                h.locks_taken_over.fetch_add(1, Ordering::Relaxed);
                log::warn!(
                    target: TARGET,
                    "segment {}: {what} taken over from its owner, pid {}, which died holding it",
                    self.name,
                    if pid == 0 {
                        "unknown".to_string()
                    } else {
                        pid.to_string()
                    }
                )
            }
            Recovery::RecordReused { index, pid } => {
                h.records_reused.fetch_add(1, Ordering::Relaxed);
                log::warn!(
                    target: TARGET,
                    "segment {}: participant record {index} of dead pid {pid} reused",
                    self.name
                )
            }
            Recovery::WaitersRepaired { obj, n } => log::warn!(
                target: TARGET,
                "segment {}: queue {}: {n} registration(s) of dead sleepers taken back",
                self.name,
                self.object_name(obj)
            ),
        }
    }

    /// The name of object `obj` (directory index + 1), or `#obj` if it names none.
    pub(crate) fn object_name(&self, obj: u32) -> String {
        match obj.checked_sub(1).filter(|&i| i < self.dir_count()) {
            Some(i) => {
                let e = self.entry(i);
                String::from_utf8_lossy(&e.name[..(e.name_len as usize).min(OBJ_NAME_MAX)])
                    .into_owned()
            }
            None => format!("#{obj}"),
        }
    }
}
