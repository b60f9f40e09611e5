//! Typed errors. Nothing in shmq panics on bad input; every failure is one of these.

use crate::kind::{ObjectKind, TypeSig};
use std::fmt;
use std::io;

/// Why a segment or object name was refused (before any system call).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameError {
    /// The name is empty.
    Empty,
    /// The name is longer than the limit.
    TooLong {
        /// Length of the name in bytes.
        len: usize,
        /// Largest length accepted.
        max: usize,
    },
    /// The name contains a byte outside `[A-Za-z0-9._-]` (this also rejects `/`, NUL and
    /// non-ASCII).
    BadByte {
        /// The offending byte.
        byte: u8,
        /// Its index in the name.
        at: usize,
    },
    /// `.` or `..`.
    Reserved,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Empty => write!(f, "name is empty"),
            NameError::TooLong { len, max } => {
                write!(f, "name is {len} bytes long, the limit is {max}")
            }
            NameError::BadByte { byte, at } => write!(
                f,
                "name has byte {byte:#04x} at index {at}; allowed are A-Z a-z 0-9 . _ -"
            ),
            NameError::Reserved => write!(f, "`.` and `..` are not valid names"),
        }
    }
}

impl std::error::Error for NameError {}

/// Errors from [`SegmentBuilder::create`](crate::SegmentBuilder::create).
#[derive(Debug)]
#[non_exhaustive]
pub enum CreateError {
    /// The segment name is not valid.
    InvalidName(NameError),
    /// An object name is not valid.
    InvalidObjectName {
        /// The object name.
        name: String,
        /// Why.
        reason: NameError,
    },
    /// Two objects share a name.
    DuplicateObject(String),
    /// A parameter is out of range (capacity 0, sizes that overflow, alignment above 128, ...).
    InvalidConfig(String),
    /// A segment of that name exists (use `create_or_replace`, or `Segment::unlink`).
    AlreadyExists,
    /// Not enough space in the shared-memory filesystem (`ENOSPC` from `fallocate`). Nothing is
    /// left behind.
    NoSpace {
        /// Bytes that were asked for.
        requested: u64,
    },
    /// The OS refused access (`EACCES`/`EPERM`).
    PermissionDenied,
    /// Any other OS error.
    Io(io::Error),
}

impl fmt::Display for CreateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CreateError::InvalidName(e) => write!(f, "invalid segment name: {e}"),
            CreateError::InvalidObjectName { name, reason } => {
                write!(f, "invalid object name {name:?}: {reason}")
            }
            CreateError::DuplicateObject(n) => write!(f, "two objects are named {n:?}"),
            CreateError::InvalidConfig(m) => write!(f, "invalid configuration: {m}"),
            CreateError::AlreadyExists => write!(f, "a segment with this name already exists"),
            CreateError::NoSpace { requested } => write!(
                f,
                "not enough space in /dev/shm for a segment of {requested} bytes"
            ),
            CreateError::PermissionDenied => write!(f, "permission denied"),
            CreateError::Io(e) => write!(f, "I/O error: {e}"),
        }
    }
}

impl std::error::Error for CreateError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CreateError::InvalidName(e) => Some(e),
            CreateError::InvalidObjectName { reason, .. } => Some(reason),
            CreateError::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// Errors from [`Segment::open`](crate::Segment::open) and from looking objects up in a segment.
#[derive(Debug)]
#[non_exhaustive]
pub enum OpenError {
    /// The segment name is not valid.
    InvalidName(NameError),
    /// No segment of that name exists.
    NotFound,
    /// The OS refused access, or the file is owned by another user.
    PermissionDenied,
    /// The name refers to something that is not a regular shared-memory file (or is a symlink).
    NotRegularFile,
    /// The segment file's group or others may write it, so any of them could forge its
    /// contents; refused unless opened with [`Segment::open_shared`](crate::Segment::open_shared).
    InsecureMode {
        /// The file's permission bits.
        mode: u32,
    },
    /// The file is smaller than a header, or than the size its header declares.
    TooSmall {
        /// Size of the file.
        size: u64,
        /// Size that was needed.
        needed: u64,
    },
    /// The file does not start with shmq's magic bytes.
    BadMagic,
    /// The segment was made by a build with another layout version.
    VersionMismatch {
        /// This build's version.
        expected: u32,
        /// The segment's.
        found: u32,
    },
    /// Same version, but the layout hash differs (a build with different struct layouts).
    LayoutMismatch {
        /// This build's hash.
        expected: u64,
        /// The segment's.
        found: u64,
    },
    /// The creator has not finished initialising the segment within the wait allowed.
    NotReady,
    /// A header or directory field is out of range or inconsistent.
    Corrupt(String),
    /// No object of that name in the segment.
    ObjectNotFound(String),
    /// The object exists but is of another kind.
    KindMismatch {
        /// The object name.
        name: String,
        /// What the caller asked for.
        expected: ObjectKind,
        /// What the segment holds.
        found: String,
    },
    /// The object exists but holds another element type.
    TypeMismatch {
        /// The object name.
        name: String,
        /// What the caller asked for.
        expected: TypeSig,
        /// What the segment holds.
        found: TypeSig,
    },
    /// The object exists with the right kind and type, but a parameter differs from what the
    /// caller expects (capacity, maximum message length).
    ParamMismatch {
        /// The object name.
        name: String,
        /// Which parameter.
        param: &'static str,
        /// What the caller expects.
        expected: u64,
        /// What the segment holds.
        found: u64,
    },
    /// Any other OS error.
    Io(io::Error),
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::InvalidName(e) => write!(f, "invalid segment name: {e}"),
            OpenError::NotFound => write!(f, "no shared-memory segment of that name"),
            OpenError::PermissionDenied => {
                write!(
                    f,
                    "permission denied (or the segment belongs to another user)"
                )
            }
            OpenError::NotRegularFile => write!(f, "not a regular shared-memory file"),
            OpenError::InsecureMode { mode } => write!(
                f,
                "segment file mode {mode:#o} lets its group or others write it (and forge its \
                 contents); use Segment::open_shared to accept that"
            ),
            OpenError::TooSmall { size, needed } => {
                write!(
                    f,
                    "segment file is {size} bytes, at least {needed} are needed"
                )
            }
            OpenError::BadMagic => write!(f, "not a shmq segment (bad magic)"),
            OpenError::VersionMismatch { expected, found } => write!(
                f,
                "segment layout version {found}, this build speaks version {expected}"
            ),
            OpenError::LayoutMismatch { expected, found } => write!(
                f,
                "segment layout hash {found:#x}, this build's is {expected:#x}"
            ),
            OpenError::NotReady => write!(f, "segment is still being initialised"),
            OpenError::Corrupt(m) => write!(f, "corrupt segment: {m}"),
            OpenError::ObjectNotFound(n) => write!(f, "no object named {n:?} in the segment"),
            OpenError::KindMismatch {
                name,
                expected,
                found,
            } => write!(f, "object {name:?} is a {found}, not a {expected}"),
            OpenError::TypeMismatch {
                name,
                expected,
                found,
            } => write!(
                f,
                "object {name:?} holds {found}, but {expected} was asked for"
            ),
            OpenError::ParamMismatch {
                name,
                param,
                expected,
                found,
            } => write!(
                f,
                "object {name:?} has {param} {found}, but {expected} was expected"
            ),
            OpenError::Io(e) => write!(f, "I/O error: {e}"),
        }
    }
}

impl std::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OpenError::InvalidName(e) => Some(e),
            OpenError::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// Why a put did not happen. The value is handed back in every case.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum PutError<T> {
    /// The queue is full (non-blocking put).
    Full(T),
    /// The queue is closed.
    Closed(T),
    /// The deadline passed while the queue stayed full.
    Timeout(T),
    /// The queue's shared state is corrupt (a forged or damaged segment).
    Corrupt(T),
    /// An unbounded queue needed room in its segment's heap and the segment is at its
    /// `max_size` ([`Segment::max_size`](crate::Segment::max_size)), or /dev/shm is full.
    /// Room comes back as consumers take items.
    NoSpace(T),
}

impl<T> PutError<T> {
    /// The value that was not put.
    pub fn into_inner(self) -> T {
        match self {
            PutError::Full(v)
            | PutError::Closed(v)
            | PutError::Timeout(v)
            | PutError::Corrupt(v)
            | PutError::NoSpace(v) => v,
        }
    }
}

impl<T> fmt::Debug for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            PutError::Full(_) => "Full(..)",
            PutError::Closed(_) => "Closed(..)",
            PutError::Timeout(_) => "Timeout(..)",
            PutError::Corrupt(_) => "Corrupt(..)",
            PutError::NoSpace(_) => "NoSpace(..)",
        };
        f.write_str(s)
    }
}

impl<T> fmt::Display for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            PutError::Full(_) => "queue is full",
            PutError::Closed(_) => "queue is closed",
            PutError::Timeout(_) => "timed out waiting for space in the queue",
            PutError::Corrupt(_) => "queue state in shared memory is corrupt",
            PutError::NoSpace(_) => {
                "no room in the segment for more items (it is at its max_size, or /dev/shm is full)"
            }
        };
        f.write_str(s)
    }
}

impl<T> std::error::Error for PutError<T> {}

pub(crate) use crate::heap::HeapError;

/// Why a dictionary operation failed. Nothing was changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DictError {
    /// The entry (or a larger table) needed space in the segment's shared heap, and the segment
    /// could not grow: it would pass its `max_size`, or `/dev/shm` is full.
    NoSpace {
        /// Bytes the heap was asked for.
        requested: u64,
        /// The segment's `max_size` ([`SegmentBuilder::max_size`](crate::SegmentBuilder::max_size)).
        max_size: u64,
    },
    /// Mapping the segment's new space failed (`mmap(2)`).
    Io(std::io::ErrorKind),
    /// The dictionary's shared state, or the heap under it, is corrupt.
    Corrupt,
    /// A stored key or value does not have the size of the typed dictionary's type (the bytes
    /// were put there through a [`BytesDict`](crate::BytesDict) or a forged segment).
    WrongSize {
        /// Bytes found.
        found: usize,
        /// Bytes of the type.
        expected: usize,
    },
}

impl fmt::Display for DictError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DictError::NoSpace {
                requested,
                max_size,
            } => write!(
                f,
                "no space in the segment's heap for {requested} bytes (max_size {max_size})"
            ),
            DictError::Io(k) => write!(f, "mapping the segment's new space failed: {k}"),
            DictError::Corrupt => write!(f, "the dictionary's shared state is corrupt"),
            DictError::WrongSize { found, expected } => write!(
                f,
                "a stored key or value has {found} bytes, the type has {expected}"
            ),
        }
    }
}

impl std::error::Error for DictError {}

/// Why a growable-list operation failed. Nothing was changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListError {
    /// The item (or a larger array) needed space in the segment's shared heap, and the segment
    /// could not grow: it would pass its `max_size`, or `/dev/shm` is full.
    NoSpace {
        /// Bytes the heap was asked for.
        requested: u64,
        /// The segment's `max_size`.
        max_size: u64,
    },
    /// Mapping the segment's new space failed (`mmap(2)`).
    Io(std::io::ErrorKind),
    /// The list's shared state, or the heap under it, is corrupt.
    Corrupt,
    /// No item has this index.
    IndexOutOfRange {
        /// The index asked for.
        index: usize,
        /// The list's length then.
        len: usize,
    },
    /// A stored item does not have the size of the typed list's type.
    WrongSize {
        /// Bytes found.
        found: usize,
        /// Bytes of the type.
        expected: usize,
    },
}

impl fmt::Display for ListError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListError::NoSpace {
                requested,
                max_size,
            } => write!(
                f,
                "no space in the segment's heap for {requested} bytes (max_size {max_size})"
            ),
            ListError::Io(k) => write!(f, "mapping the segment's new space failed: {k}"),
            ListError::Corrupt => write!(f, "the list's shared state is corrupt"),
            ListError::IndexOutOfRange { index, len } => {
                write!(f, "index {index} out of range for a list of {len}")
            }
            ListError::WrongSize { found, expected } => {
                write!(
                    f,
                    "a stored item has {found} bytes, the type has {expected}"
                )
            }
        }
    }
}

impl std::error::Error for ListError {}

/// Why a byte-message put did not happen. The caller still owns the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BytesPutError {
    /// The queue is full (non-blocking put).
    Full,
    /// The queue is closed.
    Closed,
    /// The deadline passed while the queue stayed full.
    Timeout,
    /// The message is longer than the queue's maximum; reported at once, never after blocking.
    TooLarge {
        /// Length of the message.
        len: usize,
        /// The queue's maximum message length.
        max: usize,
    },
    /// The queue's shared state is corrupt.
    Corrupt,
    /// A message too long for the queue's slots needed space in the segment's shared heap, and the
    /// segment could not grow: it would pass its `max_size`, or `/dev/shm` is full. Nothing was
    /// put. Space comes back as consumers take long messages.
    NoSpace {
        /// Bytes the message needed in the heap.
        requested: u64,
        /// The segment's `max_size` ([`SegmentBuilder::max_size`](crate::SegmentBuilder::max_size)).
        max_size: u64,
    },
    /// Mapping the segment's new space failed (`mmap(2)`); nothing was put.
    Io(std::io::ErrorKind),
}

impl fmt::Display for BytesPutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BytesPutError::Full => write!(f, "queue is full"),
            BytesPutError::Closed => write!(f, "queue is closed"),
            BytesPutError::Timeout => write!(f, "timed out waiting for space in the queue"),
            BytesPutError::TooLarge { len, max } => {
                write!(
                    f,
                    "message of {len} bytes exceeds the queue's maximum of {max}"
                )
            }
            BytesPutError::Corrupt => write!(f, "queue state in shared memory is corrupt"),
            BytesPutError::NoSpace {
                requested,
                max_size,
            } => write!(
                f,
                "no space for a message of {requested} bytes in the segment's heap \
                 (the segment may grow to {max_size} bytes, or /dev/shm is full)"
            ),
            BytesPutError::Io(kind) => write!(f, "could not map the segment's new space: {kind}"),
        }
    }
}

impl std::error::Error for BytesPutError {}

/// Why a get returned nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetError {
    /// The queue is empty (non-blocking get).
    Empty,
    /// The queue is closed and everything put before the close has been taken.
    Closed,
    /// The deadline passed while the queue stayed empty.
    Timeout,
    /// The queue's shared state is corrupt (a forged stamp, or a byte message whose stored length
    /// exceeds the queue's maximum). A corrupt message is consumed and dropped.
    Corrupt,
    /// A blocking get found the queue empty with every producer gone: threads have put to this
    /// queue, and none of them is alive any more (their processes exited or were killed, or they
    /// dropped the segment). Like a channel's disconnect, but a snapshot: a producer that starts
    /// later can still put. See `Queue::producers_alive`.
    Disconnected,
}

impl fmt::Display for GetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GetError::Empty => write!(f, "queue is empty"),
            GetError::Closed => write!(f, "queue is closed and drained"),
            GetError::Timeout => write!(f, "timed out waiting for a message"),
            GetError::Corrupt => write!(f, "queue state in shared memory is corrupt"),
            GetError::Disconnected => write!(f, "queue is empty and every producer is gone"),
        }
    }
}

impl std::error::Error for GetError {}

/// An index past the end of an [`Array`](crate::Array).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexError {
    /// The index asked for.
    pub index: usize,
    /// The array's length.
    pub len: usize,
}

impl fmt::Display for IndexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "index {} out of range for length {}",
            self.index, self.len
        )
    }
}

impl std::error::Error for IndexError {}

/// A push to a full [`List`](crate::List); the value is handed back.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ListFull<T>(pub T);

impl<T> fmt::Debug for ListFull<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ListFull(..)")
    }
}

impl<T> fmt::Display for ListFull<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("list is full")
    }
}

impl<T> std::error::Error for ListFull<T> {}

/// A wait that reached its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeout;

impl fmt::Display for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("timed out")
    }
}

impl std::error::Error for Timeout {}

/// A [`Semaphore::release`](crate::Semaphore::release) past the semaphore's bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReleaseError {
    /// The bound.
    pub max: u32,
}

impl fmt::Display for ReleaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "semaphore released past its bound of {}", self.max)
    }
}

impl std::error::Error for ReleaseError {}

/// [`JoinableQueue::task_done`](crate::JoinableQueue::task_done) called more often than items
/// were put.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskDoneError;

impl fmt::Display for TaskDoneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("task_done() called more times than there were items")
    }
}

impl std::error::Error for TaskDoneError {}
