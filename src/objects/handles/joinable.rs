//! The `JoinableQueue` handle.

use super::*;

/// A [`Queue`] with unfinished-task accounting, like `multiprocessing.JoinableQueue`: every put
/// counts one unfinished task (before the item becomes visible), [`task_done`](Self::task_done)
/// finishes one, and [`join`](Self::join) waits until none is left.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let seg = shmq::Segment::builder("doc-joinable").joinable_queue::<u32>("tasks", 8).create_or_replace()?;
/// let tasks = seg.joinable_queue::<u32>("tasks")?;
/// tasks.put(1)?;
/// let _task = tasks.get()?;
/// assert_eq!(tasks.unfinished_tasks(), 1);
/// tasks.task_done()?;
/// tasks.join();
/// assert!(tasks.task_done().is_err()); // one too many
/// # Ok(()) }
/// ```
pub struct JoinableQueue<T> {
    queue: Queue<T>,
    join: Ptr<JoinState>,
}

impl<T> Clone for JoinableQueue<T> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
            join: self.join.clone(),
        }
    }
}

impl<T> std::fmt::Debug for JoinableQueue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinableQueue")
            .field("queue", &self.queue)
            .field(
                "unfinished",
                &self
                    .join
                    .get()
                    .unfinished(|| self.queue.ring().counted_puts()),
            )
            .finish()
    }
}

impl<T: bytemuck::Pod> JoinableQueue<T> {
    pub(crate) fn from_parts(queue: Queue<T>, join: *mut u8) -> Self {
        Self {
            queue,
            // SAFETY: the lookup checked a 128-byte JoinState sits at the start of the region, in
            // the mapping the queue's Arc keeps alive.
            join: unsafe { Ptr::new(join) },
        }
    }

    /// Puts `v` (one more unfinished task, from the moment its slot is claimed), waiting while
    /// the queue is full. A put that fails, or whose process is killed before its item is
    /// published, leaves no task behind.
    pub fn put(&self, v: T) -> Result<(), PutError<T>> {
        self.queue.put(v)
    }
    /// Puts `v`, waiting at most `timeout`.
    pub fn put_timeout(&self, v: T, timeout: Duration) -> Result<(), PutError<T>> {
        self.queue.put_timeout(v, timeout)
    }
    /// Puts `v` if there is room; linearizable, as [`Queue::try_put`].
    pub fn try_put(&self, v: T) -> Result<(), PutError<T>> {
        self.queue.try_put(v)
    }
    /// Takes the oldest item, waiting while empty (the task stays unfinished until
    /// [`task_done`](Self::task_done)).
    pub fn get(&self) -> Result<T, GetError> {
        self.queue.get()
    }
    /// Takes the oldest item, waiting at most `timeout`.
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, GetError> {
        self.queue.get_timeout(timeout)
    }
    /// Takes the oldest item if there is one; linearizable, as [`Queue::try_get`].
    pub fn try_get(&self) -> Result<T, GetError> {
        self.queue.try_get()
    }
    /// Marks one task finished; `Err` if more `task_done` calls than puts.
    pub fn task_done(&self) -> Result<(), TaskDoneError> {
        let ring = self.queue.ring();
        self.join
            .get()
            .task_done(|| ring.counted_puts())
            .map_err(|_| TaskDoneError)
    }
    /// Waits until every task put so far is done.
    pub fn join(&self) {
        let ring = self.queue.ring();
        while !self.join.get().join(|| ring.counted_puts(), None) {}
    }
    /// Waits at most `timeout` for every task to be done.
    pub fn join_timeout(&self, timeout: Duration) -> Result<(), Timeout> {
        let ring = self.queue.ring();
        if self
            .join
            .get()
            .join(|| ring.counted_puts(), deadline(timeout))
        {
            Ok(())
        } else {
            Err(Timeout)
        }
    }
    /// Tasks put and not yet marked done.
    pub fn unfinished_tasks(&self) -> u64 {
        let ring = self.queue.ring();
        self.join.get().unfinished(|| ring.counted_puts())
    }
    /// Items in the queue.
    pub fn len(&self) -> usize {
        self.queue.len()
    }
    /// `len() == 0`.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
    /// Slots.
    pub fn capacity(&self) -> usize {
        self.queue.capacity()
    }
    /// Closes the queue (see [`Queue::close`]).
    pub fn close(&self) -> bool {
        self.queue.close()
    }
    /// Whether the queue is closed.
    pub fn is_closed(&self) -> bool {
        self.queue.is_closed()
    }
    /// Whether a producer of this queue is alive; see [`Queue::producers_alive`].
    pub fn producers_alive(&self) -> bool {
        self.queue.producers_alive()
    }
    /// Counts the calling thread as a producer from now on: see
    /// [`Queue::register_producer`](crate::Queue::register_producer).
    pub fn register_producer(&self) {
        self.queue.register_producer()
    }
    /// Counters of the underlying queue.
    pub fn stats(&self) -> QueueStats {
        self.queue.stats()
    }
}

impl crate::SegmentBuilder {
    /// Adds a [`JoinableQueue`](crate::JoinableQueue) of `capacity` values of `T`.
    pub fn joinable_queue<T: bytemuck::Pod>(self, name: &str, capacity: u64) -> Self {
        self.object(
            name,
            ObjectKind::JoinableQueue,
            type_sig::<T>(),
            capacity,
            0,
        )
    }
}

impl crate::Segment {
    /// Looks up a joinable queue of `T`.
    pub fn joinable_queue<T: bytemuck::Pod>(
        &self,
        name: &str,
    ) -> Result<crate::JoinableQueue<T>, OpenError> {
        let o = self
            .inner
            .object(name, ObjectKind::JoinableQueue, Some(&type_sig::<T>()))?;
        let mut ring = self.inner.ring(name, &o)?;
        // SAFETY: the accounting block lies at the start of the object's region (checked to fit
        // the mapping by `object`), before the ring, in the mapping the queue keeps alive.
        ring.tomb_cell = Some(unsafe {
            crate::ring::CellRef::new(&(*o.base.cast::<crate::objects::joinable::JoinState>()).cell)
        });
        let q = crate::Queue::from_parts(self.inner.clone(), ring, o.index + 1);
        Ok(crate::JoinableQueue::from_parts(q, o.base))
    }
}
