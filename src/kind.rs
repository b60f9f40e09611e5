//! What a directory entry says an object is: its kind and, for typed objects, the element type's
//! signature. Shown in [`OpenError`](crate::OpenError)s when a lookup finds something else.

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
}

const KINDS: [(ObjectKind, u32, &str); 11] = [
    (ObjectKind::Queue, 1, "queue"),
    (ObjectKind::BytesQueue, 2, "bytes queue"),
    (ObjectKind::JoinableQueue, 3, "joinable queue"),
    (ObjectKind::Value, 4, "value"),
    (ObjectKind::Array, 5, "array"),
    (ObjectKind::List, 6, "list"),
    (ObjectKind::Lock, 7, "lock"),
    (ObjectKind::Event, 8, "event"),
    (ObjectKind::Semaphore, 9, "semaphore"),
    (ObjectKind::Barrier, 10, "barrier"),
    (ObjectKind::Versioned, 11, "versioned value"),
];

impl ObjectKind {
    pub(crate) fn code(self) -> u32 {
        KINDS.iter().find(|k| k.0 == self).map_or(0, |k| k.1)
    }
    pub(crate) fn from_code(c: u32) -> Option<Self> {
        KINDS.iter().find(|k| k.1 == c).map(|k| k.0)
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(KINDS.iter().find(|k| k.0 == *self).map_or("?", |k| k.2))
    }
}
