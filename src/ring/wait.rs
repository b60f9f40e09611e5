//! Waiting: the blocking calls, the bounded wait of the non-blocking ones behind a held
//! position, and the sleep on a wait cell with the death watch.

use super::*;

impl<M: RingMem, L: LiveRef> Ring<M, L> {
    /// The end of the next sleep slice: the deadline itself without a liveness source;
    /// [`WATCHED_SLICE`] when the death watch covers the peers, [`RECOVERY_SLICE`] otherwise.
    pub(super) fn sliced(&self, deadline: Option<Instant>, watched: bool) -> Option<Instant> {
        if self.live.is_none() {
            return deadline;
        }
        let slice = if watched {
            crate::fault::watched_slice(WATCHED_SLICE)
        } else {
            RECOVERY_SLICE
        };
        crate::sync::slice_end(deadline, slice)
    }

    /// Whether every producer is gone (see [`disconnected`](Self::disconnected)), for a sleeper
    /// armed with the death watch `watch`. Only a producer leaving (`leaves`, word 1) or dying
    /// (`deaths`, word 2) can disconnect a ring, and a watched producer's death moves `deaths`,
    /// so once a live producer was seen, the scan is skipped until an epoch moves (`members`
    /// included, see below): a sleeper looks before each sleep at no cost.
    pub(super) fn disconnected_watched(&self, watch: &[AlsoWake<'_>; 3]) -> bool {
        // `members` too: a producer that joined after the arm's scan is alive in the scan below
        // but not watched until the rescan its join causes; a verdict cached under the old
        // `members` must not outlive that rescan. All three only grow, so the sum moves.
        let joins_and_leaves = watch[0].expected.wrapping_add(watch[1].expected);
        let key = u64::from(joins_and_leaves) << 32 | u64::from(watch[2].expected);
        self.disconnected_unless(
            || self.live_seen_at.load(Ordering::Relaxed) == key,
            || self.live_seen_at.store(key, Ordering::Relaxed),
        )
    }

    /// Non-blocking put of up to `max` items. Reports `WouldBlock` (full) only if the ring was
    /// full at some instant during the call: when the slot it needs is still held by a consumer
    /// that claimed its message, it waits for that release (see [`Ring::settle`]).
    #[inline]
    pub(crate) fn put_now(
        &self,
        who: Option<Claimant<'_>>,
        max: usize,
        mut write: impl FnMut(Filling, &mut [u8]),
    ) -> Result<usize, TryError> {
        // The first attempt is made directly, not through `settle`: a closure whose address
        // escapes to the out-of-line slow path would keep the fast path's state in memory.
        match self.put_attempt(who, max, true, &mut write) {
            Err(TryError::Pending) => self.wait_out_claim(who, Side::Put, &mut |exact| {
                self.put_attempt(who, max, exact, &mut write)
            }),
            r => r,
        }
    }

    /// Non-blocking get of up to `max` items. Reports `WouldBlock` (empty) only if the ring was
    /// empty at some instant during the call: when the head position is claimed by a producer that
    /// has not published it yet, it waits for that publish (see [`Ring::settle`]).
    #[inline]
    pub(crate) fn get_now(
        &self,
        who: Option<Claimant<'_>>,
        max: usize,
        mut read: impl FnMut(usize, &[u8]),
    ) -> Result<usize, TryError> {
        // As in `put_now`.
        match self.get_attempt(who, max, true, &mut read) {
            Err(TryError::Pending) => self.wait_out_claim(who, Side::Get, &mut |exact| {
                self.get_attempt(who, max, exact, &mut read)
            }),
            r => r,
        }
    }

    /// Runs `attempt` until it returns something other than [`TryError::Pending`]: the position
    /// the caller needs is held by a claimant mid-way (for a getter, `head` claimed and not
    /// published; for a putter, the slot of `tail - capacity` claimed and not released). Spins
    /// and yields first (the claimant is normally done within nanoseconds), then, if the claimant
    /// is dead, recovers its claim, else sleeps on `cell` (woken by the claimant's publish or
    /// release) in short slices, looking at its liveness after each. Gives up with `WouldBlock`
    /// after [`CLAIM_WAIT`](crate::sync::CLAIM_WAIT), or at once if the claim is the calling thread's own (a call made
    /// inside a `put_with` / `get_with` closure on the same queue: waiting could only delay).
    /// Under loom the wait has no bound (the model checks that the wake-up is never lost).
    #[inline]
    pub(super) fn settle(
        &self,
        who: Option<Claimant<'_>>,
        side: Side,
        attempt: &mut impl FnMut(bool) -> Result<usize, TryError>,
    ) -> Result<usize, TryError> {
        match attempt(true) {
            Err(TryError::Pending) => self.wait_out_claim(who, side, attempt),
            r => r,
        }
    }

    /// The slow half of [`Ring::settle`], after an attempt found the position held.
    #[cold]
    #[inline(never)]
    pub(super) fn wait_out_claim(
        &self,
        who: Option<Claimant<'_>>,
        side: Side,
        attempt: &mut impl FnMut(bool) -> Result<usize, TryError>,
    ) -> Result<usize, TryError> {
        if self.own_claim(who, side) {
            return Err(TryError::WouldBlock);
        }
        let cell = self.hdr().wait_cell(side);
        let limit = crate::sync::claim_wait_end();
        let mut backoff = Backoff::new();
        loop {
            if !backoff.is_completed() {
                backoff.snooze();
            } else if !self.recover(side) {
                let slice = crate::sync::claim_slice_end(limit, self.live.is_some());
                let (epoch, registered) = cell.register_guarded(who, side);
                let retry = attempt(true);
                if retry == Err(TryError::Pending) {
                    cell.epoch.wait(epoch, slice);
                }
                drop(registered);
                if retry != Err(TryError::Pending) {
                    return retry;
                }
                crate::sync::model_yield();
            }
            match attempt(true) {
                Err(TryError::Pending) => {}
                r => return r,
            }
            if crate::sync::claim_wait_over(limit) {
                return Err(TryError::WouldBlock);
            }
        }
    }

    /// Whether the claim a [`TryError::Pending`] stopped at is the calling thread's own, as its
    /// claim record tells (a get stopped at `head`, named by our put claim; a put stopped at the
    /// slot of `tail - capacity`, named by our get claim).
    pub(super) fn own_claim(&self, who: Option<Claimant<'_>>, side: Side) -> bool {
        let Some(c) = who else {
            return false;
        };
        let hdr = self.hdr();
        let pos = if side == Side::Put {
            (hdr.tail.load(Ordering::Relaxed) & !CLOSED_BIT).wrapping_sub(self.capacity())
        } else {
            hdr.head.load(Ordering::Relaxed)
        };
        // Our own record: we wrote these words (program order), nobody else does.
        let (obj, first, len) = c.record.side(side.other());
        let first = first.load(Ordering::Relaxed);
        obj.load(Ordering::Relaxed) == c.obj
            && first <= pos
            && pos - first < len.load(Ordering::Relaxed)
    }

    /// One get attempt that takes only messages published at the head now and reads nothing
    /// the producers write but the slots (no `tail`): `WouldBlock` when the head is empty or
    /// still being written (not linearizable; for a getter that waits when it finds nothing).
    #[inline]
    pub(crate) fn get_look(
        &self,
        who: Option<Claimant<'_>>,
        max: usize,
        mut read: impl FnMut(usize, &[u8]),
    ) -> Result<usize, TryError> {
        self.get_attempt(who, max, false, &mut read)
    }

    /// Blocking put of up to `max` items: spins, yields, then sleeps on the `space` futex until at
    /// least one item is put, the ring closes, or `deadline` passes.
    // Always inlined, with the wait's first attempt: an uncontended put returns without the
    // call into the wait (its set-up and register saves cost about 50 instructions a call).
    #[inline(always)]
    pub(crate) fn put_batch(
        &self,
        who: Option<Claimant<'_>>,
        max: usize,
        deadline: Option<Instant>,
        mut write: impl FnMut(Filling, &mut [u8]),
    ) -> Result<usize, WaitError> {
        if let Some(r) = finished(self.put_attempt(who, max, false, &mut write)) {
            return r;
        }
        self.put_wait(who, max, deadline, write)
    }

    #[inline(never)]
    fn put_wait(
        &self,
        who: Option<Claimant<'_>>,
        max: usize,
        deadline: Option<Instant>,
        mut write: impl FnMut(Filling, &mut [u8]),
    ) -> Result<usize, WaitError> {
        self.block_on(who, deadline, Side::Put, |exact| {
            self.put_attempt(who, max, exact, &mut write)
        })
    }

    /// Blocking get of up to `max` items (see [`Ring::put_batch`]).
    #[inline(always)]
    pub(crate) fn get_batch(
        &self,
        who: Option<Claimant<'_>>,
        max: usize,
        deadline: Option<Instant>,
        mut read: impl FnMut(usize, &[u8]),
    ) -> Result<usize, WaitError> {
        if let Some(r) = finished(self.get_attempt(who, max, false, &mut read)) {
            return r;
        }
        self.get_wait(who, max, deadline, read)
    }

    #[inline(never)]
    fn get_wait(
        &self,
        who: Option<Claimant<'_>>,
        max: usize,
        deadline: Option<Instant>,
        mut read: impl FnMut(usize, &[u8]),
    ) -> Result<usize, WaitError> {
        self.block_on(who, deadline, Side::Get, |exact| {
            self.get_attempt(who, max, exact, &mut read)
        })
    }

    /// Waits, as a blocking get does, until a message (or a tombstone) is published at the head,
    /// without taking it: `Ok(1)` then, and the caller takes it with a non-blocking get (which
    /// may find it gone to another consumer: the caller then waits again). For a getter that
    /// reads a message in place under a lock it must not hold while it sleeps.
    pub(crate) fn wait_ready(
        &self,
        who: Option<Claimant<'_>>,
        deadline: Option<Instant>,
    ) -> Result<usize, WaitError> {
        if let Some(r) = finished(self.ready_attempt(false)) {
            return r;
        }
        self.block_on(who, deadline, Side::Get, |exact| self.ready_attempt(exact))
    }

    /// The adaptive wait shared by both directions.
    ///
    /// A claimant that holds the position we wait behind and has died cannot wake us, so with a
    /// liveness source the wait looks for one: as soon as the spin phase ends with the position
    /// held ([`TryError::Pending`]), and again after every sleep slice. When the deadline passes
    /// with the position still held by a live claimant, the last attempt waits for it as a
    /// non-blocking call would ([`Ring::settle`]), so `Timeout` means the ring stayed empty (full).
    ///
    /// Called after one cheap attempt (`attempt(false)`) failed.
    pub(super) fn block_on(
        &self,
        who: Option<Claimant<'_>>,
        deadline: Option<Instant>,
        side: Side,
        mut attempt: impl FnMut(bool) -> Result<usize, TryError>,
    ) -> Result<usize, WaitError> {
        let cell = self.hdr().wait_cell(side);
        let done = finished;
        let mut backoff = Backoff::new();
        // The caller has just made the first pass's cheap attempt (inline, see `put_batch`).
        let mut skip = true;
        loop {
            if !core::mem::take(&mut skip) {
                if let Some(r) = done(attempt(false)) {
                    return r;
                }
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                // One settled attempt: `Timeout` only if the ring is empty (full), not merely
                // held by a claimant mid-way.
                return done(self.settle(who, side, &mut attempt))
                    .unwrap_or(Err(WaitError::Timeout));
            }
            if self.spin && !backoff.is_completed() {
                backoff.snooze();
                continue;
            }
            // Arm the death watch first (see `Liveness::watch`): a peer that dies from here on
            // wakes the sleep below, one that died before is seen by the attempt that follows.
            let watch = self.live.as_deref().and_then(|l| l.watch());
            // Before sleeping, one exact attempt: if the position we wait behind is held by a
            // claimant that is dead, recover it now rather than after a whole slice.
            match attempt(true) {
                Err(TryError::Pending) => {
                    if self.recover(side) {
                        continue;
                    }
                }
                r => {
                    if let Some(r) = done(r) {
                        return r;
                    }
                }
            }
            // A getter watching its peers looks for a disconnect before every sleep (free
            // while no producer left or died since it last saw one alive); otherwise once per
            // slice, below.
            if let Some(w) = watch.as_ref().filter(|_| side == Side::Get) {
                if self.disconnected_watched(w) {
                    return Err(WaitError::Disconnected);
                }
            }
            // With a liveness source, sleep in slices: a process that died holding the claim we
            // wait behind cannot wake us, so every slice we look for one and recover its claim.
            let slice_end = self.sliced(deadline, watch.is_some());
            let (epoch, registered) = cell.register_guarded(who, side);
            let retry = attempt(false);
            let (why, slice_end) = match retry {
                Err(TryError::WouldBlock) | Err(TryError::Pending) => {
                    // Without futex_waitv, poll in recovery slices for what the watch would
                    // have told.
                    cell.epoch.wait_watched(
                        epoch,
                        watch.as_ref().map(|w| &w[..]),
                        slice_end,
                        RECOVERY_SLICE,
                    )
                }
                _ => (WakeAlso::Own(Wake::Woken), slice_end),
            };
            drop(registered);
            if let Some(r) = done(retry) {
                return r;
            }
            let woke = match why {
                WakeAlso::Own(w) => w,
                // A peer joined, left or died: the next pass watches a joiner too, recovers a
                // dead claim we wait behind (its exact attempt), and looks for a disconnect.
                WakeAlso::Other(_) => continue,
            };
            if woke == Wake::TimedOut && slice_end != deadline {
                let user_deadline_passed = deadline.is_some_and(|d| Instant::now() >= d);
                if !user_deadline_passed {
                    if !self.recover(side) && side == Side::Get && self.disconnected() {
                        return Err(WaitError::Disconnected);
                    }
                    continue;
                }
            }
            if woke == Wake::TimedOut {
                // One last attempt: a message published as the deadline fired is taken, not left
                // behind for nobody (its wake-up may have been spent on us).
                return done(self.settle(who, side, &mut attempt))
                    .unwrap_or(Err(WaitError::Timeout));
            }
        }
    }
}

/// What an attempt means to a blocking call: its result, or `None` to go on waiting.
#[inline(always)]
fn finished(r: Result<usize, TryError>) -> Option<Result<usize, WaitError>> {
    match r {
        Ok(n) => Some(Ok(n)),
        Err(TryError::Closed) => Some(Err(WaitError::Closed)),
        Err(TryError::Corrupt) => Some(Err(WaitError::Corrupt)),
        Err(TryError::WouldBlock) | Err(TryError::Pending) => None,
    }
}
