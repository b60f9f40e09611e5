//! The claim paths: one put or get attempt over the slot protocol, and the non-blocking batch
//! calls built on them.

use super::*;

impl<M: RingMem, L: LiveRef> Ring<M, L> {
    crate::sync::model_or_test! {
    /// Tries to claim, fill and publish up to `max` (≥ 1) consecutive positions.
    /// `write(k, payload)` fills the `k`-th of them. Returns how many were put; when none,
    /// `WouldBlock` only if the ring was full during the call, `Pending` if the slot needed is
    /// still held by a consumer. (The raw attempt, for unit tests and models; callers use
    /// [`Ring::put_now`], which waits a held slot out.)
    pub(crate) fn try_put_batch(
        &self,
        who: Option<Claimant<'_>>,
        max: usize,
        write: impl FnMut(Filling, &mut [u8]),
    ) -> Result<usize, TryError> {
        self.put_attempt(who, max, true, write)
    }
    }

    /// One exact put attempt that never waits: `Pending` when the slot it needs is still held by a
    /// consumer mid-release (a link of an unbounded queue then moves on to the next link instead
    /// of waiting).
    #[inline]
    pub(crate) fn put_exact(
        &self,
        who: Option<Claimant<'_>>,
        max: usize,
        write: impl FnMut(Filling, &mut [u8]),
    ) -> Result<usize, TryError> {
        self.put_attempt(who, max, true, write)
    }

    crate::sync::model_or_test! {
    /// Tries to claim, read and release up to `max` (≥ 1) consecutive messages.
    /// `read(k, payload)` sees the `k`-th. Returns how many were delivered (tombstones are
    /// skipped); when none, `WouldBlock` only if the ring was empty during the call, `Pending` if
    /// the head position is claimed by a producer that has not published it. (The raw attempt,
    /// for unit tests and models; callers use [`Ring::get_now`].)
    pub(crate) fn try_get_batch(
        &self,
        who: Option<Claimant<'_>>,
        max: usize,
        read: impl FnMut(usize, &[u8]),
    ) -> Result<usize, TryError> {
        self.get_attempt(who, max, true, read)
    }
    }

    /// One put attempt. With `exact` it tells a full ring (`WouldBlock`) from a slot still held
    /// by a consumer (`Pending`) by reading `head`; without, it reports both as `WouldBlock` and
    /// leaves the consumers' line alone (the spin phase of a blocking put, which waits either way).
    #[inline(always)]
    pub(super) fn put_attempt(
        &self,
        who: Option<Claimant<'_>>,
        max: usize,
        exact: bool,
        write: impl FnMut(Filling, &mut [u8]),
    ) -> Result<usize, TryError> {
        self.attempt(who, max, exact, Putting(write))
    }

    /// One get attempt. With `exact` it tells an empty ring (`WouldBlock`) from a head claimed
    /// and not yet published (`Pending`) by reading `tail`; without, it reports both as
    /// `WouldBlock` and reads only the read-mostly closed flag, leaving the producers' hottest line
    /// alone (the spin phase of a blocking get, which waits either way: polling `tail` there
    /// once cost a cross-process round trip about half its speed, see docs/benchmarks.md).
    #[inline(always)]
    pub(super) fn get_attempt(
        &self,
        who: Option<Claimant<'_>>,
        max: usize,
        exact: bool,
        read: impl FnMut(usize, &[u8]),
    ) -> Result<usize, TryError> {
        self.attempt(who, max, exact, Getting::<_, false>(read))
    }

    /// One look at the head, as a get attempt would make it, without claiming: `Ok(1)` if a
    /// message (or a tombstone) is published there; otherwise what a get attempt reports
    /// (`WouldBlock`, `Pending`, `Closed`).
    #[inline(always)]
    pub(super) fn ready_attempt(&self, exact: bool) -> Result<usize, TryError> {
        self.attempt(None, 1, exact, Getting::<fn(usize, &[u8]), true>(|_, _| {}))
    }

    /// One claim attempt of side `S` (the one claim path of both sides; see the module docs):
    /// find the positions at the side's cursor whose slots are ready for it, record them, claim
    /// them with one CAS of the cursor, move their payloads and settle their stamps.
    // Always inlined: each call site passes a constant `exact` and one side, and the one-item
    // fast path must not pay a call (it costs about 30 % more instructions out of line).
    #[inline(always)]
    fn attempt<S: Claiming>(
        &self,
        who: Option<Claimant<'_>>,
        max: usize,
        exact: bool,
        mut side: S,
    ) -> Result<usize, TryError> {
        let hdr = self.hdr();
        let cap = self.capacity();
        let cursor = S::cursor(hdr);
        let mut backoff = Backoff::new();
        let mut at = cursor.load(Ordering::Relaxed);
        loop {
            let pos = at;
            if pos >= MAX_POS {
                // A put: the tail's closed bit is set (or, never in practice, 2^61 messages were
                // put; refusing keeps stamps from overflowing). A get: only a forged head.
                return Err(S::OVERFLOW);
            }
            // SYNC: Acquire pairs with the Release store that made this slot ready for us: a
            // consumer's release (`Stamp::free(p + cap)`), so its read of the old payload happens
            // before our overwrite; or a producer's publish, so the payload it wrote is visible
            // to our read.
            let stamp = self.mem.stamp(pos % cap).load(Ordering::Acquire);
            match S::look(stamp, pos) {
                // A look without a claim: something is there to take.
                Look::Ready { .. } if S::PEEK => return Ok(1),
                Look::Ready { batch } => {
                    // Count further ready positions for a batch (see the module docs for why the
                    // check stays valid until the CAS).
                    let limit = if batch { (max as u64).min(cap) } else { 1 };
                    let mut k = 1u64;
                    while k < limit {
                        let p = pos + k;
                        // SYNC: Acquire, as for the first stamp.
                        if self.mem.stamp(p % cap).load(Ordering::Acquire) != S::ready(p) {
                            break;
                        }
                        k += 1;
                    }
                    if let Some(c) = who {
                        // Recorded before the claim so a crash right after the CAS is
                        // attributable.
                        // SYNC: Release fence: our earlier settling stores (publish, release,
                        // tombstone) happen before any recoverer that reads these record words
                        // and then issues its Acquire fence (`Ring::recover`): one that sees our
                        // record name something else also sees our last claim settled.
                        fence(Ordering::Release);
                        let (obj, rpos, rlen) = c.record.side(S::SIDE);
                        obj.store(c.obj, Ordering::Relaxed);
                        rpos.store(pos, Ordering::Relaxed);
                        rlen.store(k, Ordering::Relaxed);
                        crate::fault::point(S::RECORDED);
                    }
                    let _unattributed = Unattributed::enter(self, who);
                    // SYNC: Release on success makes the claim record above visible to a
                    // recoverer that reads this cursor (or a later one in its RMW release
                    // sequence) with Acquire.
                    match cursor.compare_exchange_weak(
                        at,
                        at + k,
                        Ordering::Release,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => {
                            crate::fault::point(S::CLAIMED);
                            if crate::fault::dies(S::CLAIMED) {
                                // Loom models only (constant false otherwise): this "process"
                                // dies holding the claim. Nothing settled, no guard, record
                                // intact, an unattributed count left raised.
                                core::mem::forget(_unattributed);
                                return Ok(0);
                            }
                            // If the caller's closure panics, the guard settles the claimed
                            // positions not yet settled (a put's become tombstones, a get's are
                            // released and counted lost), so nobody is stuck behind them.
                            let mut guard = ClaimGuard {
                                ring: self,
                                pos,
                                end: pos + k,
                                side: S::SIDE,
                                record: who.map(|c| c.record),
                            };
                            for j in 0..k {
                                let p = pos + j;
                                // SAFETY: we won the CAS that claimed positions pos..pos+k, and
                                // their stamps read ready for exactly those positions for our
                                // side: nobody else touches these slots until we settle them.
                                unsafe { side.transfer(&self.mem, j, p, p % cap, cap, batch) };
                                guard.pos = p + 1;
                            }
                            core::mem::forget(guard);
                            if let Some(c) = who {
                                // Claim settled: the record names no position any more.
                                // SYNC: Release fence: a recoverer that reads this 0 and then
                                // issues its Acquire fence sees our settling stores, so its
                                // stamp CAS fails.
                                fence(Ordering::Release);
                                c.record.side(S::SIDE).0.store(0, Ordering::Relaxed);
                            }
                            S::after(self, pos + k, k);
                            if batch {
                                return Ok(k as usize);
                            }
                            // A tombstone: nothing delivered, look at the next position.
                            at = cursor.load(Ordering::Relaxed);
                        }
                        Err(actual) => {
                            // Another thread claimed `pos` (or close() set the tail's bit): retry
                            // there. Our record must not go on naming a position we do not
                            // hold: if we now sleep, a live record naming `pos` would keep
                            // recovery from ever touching it, even if its real claimant dies
                            // (and our wait would then never end).
                            if let Some(c) = who {
                                c.record.side(S::SIDE).0.store(0, Ordering::Relaxed);
                            }
                            at = actual;
                            backoff.spin();
                        }
                    }
                }
                Look::NotYet => {
                    S::not_yet(self, pos, exact)?;
                    let again = cursor.load(Ordering::Relaxed);
                    if again != at {
                        at = again;
                        backoff.spin();
                        continue;
                    }
                    // A put: position pos - cap is consumed (head is past it) but its slot is not
                    // released. A get: pos is claimed by a producer that has not published it.
                    return Err(TryError::Pending);
                }
                Look::Stale => {
                    // Our cursor is stale: pos was already claimed by another thread of our side.
                    // The stamp we read was stored after that claim CAS (happens-before through
                    // the Acquire above), so a reload must show a larger cursor; if it does not,
                    // the stamp is forged.
                    backoff.spin();
                    let again = cursor.load(Ordering::Relaxed);
                    if again == at {
                        return Err(TryError::Corrupt);
                    }
                    at = again;
                }
                Look::Corrupt => return Err(TryError::Corrupt),
            }
        }
    }
}

/// What a slot's stamp says to one side about position `pos`.
enum Look {
    /// Ready for this side to claim; `batch`: further positions may join the claim (a tombstone
    /// is claimed alone, and delivers nothing).
    Ready { batch: bool },
    /// Not ready yet: the slot still holds the previous lap for the other side (a put), or `pos`
    /// is not published (a get). [`Claiming::not_yet`] tells full or empty from mid-way.
    NotYet,
    /// Our side already moved past `pos`.
    Stale,
    /// A stamp no protocol step writes.
    Corrupt,
}

/// What differs between a put and a get in a claim attempt (`Ring::attempt`): the cursor, the
/// stamp that makes a slot ready, what is done with a claimed slot, and what a slot that is not
/// ready means.
trait Claiming {
    const SIDE: Side;
    /// What a cursor at or past `MAX_POS` means.
    const OVERFLOW: TryError;
    /// Crash points: after the claim is recorded, after the claim CAS.
    const RECORDED: &'static str;
    const CLAIMED: &'static str;
    /// Only looks: a ready position ends the attempt with `Ok(1)`, unclaimed.
    const PEEK: bool = false;
    /// The cursor this side claims with (the tail for puts, the head for gets).
    fn cursor(h: &RingHeader) -> &AtomicU64;
    /// The stamp with which the slot of `p` is ready for this side (and may join a batch).
    fn ready(p: u64) -> u64;
    fn look(stamp: u64, pos: u64) -> Look;
    /// Moves the `j`-th claimed position's payload (`p`, in slot `idx` of a ring of `cap` slots)
    /// and settles its stamp; `batch`: the claim was made on a ready, not a tombstone, stamp.
    ///
    /// # Safety
    ///
    /// The caller won the claim CAS for `p`, whose stamp read ready for this side.
    unsafe fn transfer<M: RingMem>(
        &mut self,
        mem: &M,
        j: u64,
        p: u64,
        idx: u64,
        cap: u64,
        batch: bool,
    );
    /// Why nothing is ready at `pos`: `Err` full or empty (or closed and drained); `Ok` if
    /// the other side is mid-way (then `Pending`, unless our cursor moved).
    fn not_yet<M: RingMem, L: LiveRef>(
        ring: &Ring<M, L>,
        pos: u64,
        exact: bool,
    ) -> Result<(), TryError>;
    /// After a claim of `k` positions ending at `end` is settled.
    fn after<M: RingMem, L: LiveRef>(ring: &Ring<M, L>, end: u64, k: u64);
}

/// A put: `write` fills each claimed slot.
struct Putting<W>(W);

impl<W: FnMut(Filling, &mut [u8])> Claiming for Putting<W> {
    const SIDE: Side = Side::Put;
    const OVERFLOW: TryError = TryError::Closed;
    const RECORDED: &'static str = "put-recorded";
    const CLAIMED: &'static str = "put-claimed";

    #[inline(always)]
    fn cursor(h: &RingHeader) -> &AtomicU64 {
        &h.tail
    }

    #[inline(always)]
    fn ready(p: u64) -> u64 {
        Stamp::free(p)
    }

    #[inline(always)]
    fn look(stamp: u64, pos: u64) -> Look {
        if stamp == Stamp::free(pos) {
            Look::Ready { batch: true }
        } else if Stamp::pos(stamp) < pos {
            // The slot still holds position pos - cap: either its message is unread (the ring
            // is full) or a consumer has claimed it and not released the slot yet.
            Look::NotYet
        } else {
            Look::Stale
        }
    }

    #[inline(always)]
    unsafe fn transfer<M: RingMem>(
        &mut self,
        mem: &M,
        j: u64,
        p: u64,
        idx: u64,
        _cap: u64,
        _batch: bool,
    ) {
        // SAFETY: the caller's contract: nobody else reads or writes this slot until we publish.
        unsafe {
            mem.with_payload_mut(idx, |buf| {
                (self.0)(
                    Filling {
                        k: j as usize,
                        pos: p,
                    },
                    buf,
                )
            })
        };
        // SYNC: Release publishes the payload; pairs with the consumer's Acquire load of this
        // stamp. (the mutation build weakens it to Relaxed, to show that the loom models catch
        // the torn payload.)
        mem.stamp(idx).store(Stamp::full(p), PUBLISH);
    }

    #[inline(always)]
    fn not_yet<M: RingMem, L: LiveRef>(
        ring: &Ring<M, L>,
        pos: u64,
        exact: bool,
    ) -> Result<(), TryError> {
        if !exact {
            return Err(TryError::WouldBlock);
        }
        // Relaxed: the Acquire stamp load before keeps this load after it, which is all the
        // snapshot needs (no data is read on the strength of it).
        let head = ring.hdr().head.load(Ordering::Relaxed);
        if head.saturating_add(ring.capacity()) <= pos {
            // Full at the instant of this load: tail ≥ pos (positions only grow) and
            // head ≤ pos - cap.
            return Err(TryError::WouldBlock);
        }
        Ok(())
    }

    #[inline(always)]
    fn after<M: RingMem, L: LiveRef>(ring: &Ring<M, L>, end: u64, k: u64) {
        ring.after_put(end, k);
    }
}

/// A get: `read` sees each claimed message. With `PEEK`, a look at the head for a getter that
/// waits without taking ([`Ring::wait_ready`]): the same view of every stamp, and never a claim
/// (`read` is never called).
struct Getting<R, const PEEK: bool>(R);

impl<R: FnMut(usize, &[u8]), const P: bool> Claiming for Getting<R, P> {
    const SIDE: Side = Side::Get;
    const OVERFLOW: TryError = TryError::Corrupt;
    const RECORDED: &'static str = "get-recorded";
    const CLAIMED: &'static str = "get-claimed";
    const PEEK: bool = P;

    #[inline(always)]
    fn cursor(h: &RingHeader) -> &AtomicU64 {
        &h.head
    }

    #[inline(always)]
    fn ready(p: u64) -> u64 {
        Stamp::full(p)
    }

    #[inline(always)]
    fn look(stamp: u64, pos: u64) -> Look {
        // The common case first (a full stamp's state is never 3).
        if stamp == Stamp::full(pos) {
            Look::Ready { batch: true }
        } else if Stamp::state(stamp) == 3 {
            Look::Corrupt
        } else if stamp == Stamp::tomb(pos) {
            Look::Ready { batch: false }
        } else if Stamp::pos(stamp) <= pos {
            // Position `pos` is not published: either no producer has claimed it (empty), or
            // one has and is still writing, or the slot still holds pos - cap for a consumer
            // that has not released it (then no producer can have claimed pos: empty).
            Look::NotYet
        } else {
            Look::Stale
        }
    }

    #[inline(always)]
    unsafe fn transfer<M: RingMem>(
        &mut self,
        mem: &M,
        j: u64,
        p: u64,
        idx: u64,
        cap: u64,
        batch: bool,
    ) {
        if batch {
            // SAFETY: the caller's contract; the stamp read FULL, so the producer is done with
            // these bytes and no other consumer can claim them.
            unsafe { mem.with_payload(idx, |buf| (self.0)(j as usize, buf)) };
        }
        // SYNC: Release orders our payload read before the next producer's overwrite; pairs
        // with the Acquire stamp load of a put's `attempt`.
        mem.stamp(idx)
            .store(Stamp::free(p + cap), Ordering::Release);
    }

    #[inline(always)]
    fn not_yet<M: RingMem, L: LiveRef>(
        ring: &Ring<M, L>,
        pos: u64,
        exact: bool,
    ) -> Result<(), TryError> {
        let hdr = ring.hdr();
        // SYNC: Acquire pairs with the Release flag store in `close`: a consumer that sees the
        // flag then reads a tail with the bit set.
        if !exact && hdr.counters.closed.load(Ordering::Acquire) == 0 {
            // Not closed; a close whose flag we miss has not happened yet for us, and a blocked
            // getter is woken by close's notify, which follows the flag store.
            return Err(TryError::WouldBlock);
        }
        // SYNC: Acquire pairs with the AcqRel `fetch_or` in `close` (a closed bit seen here
        // comes with the final tail). The Acquire stamp load before keeps this load after it.
        let tail = hdr.tail.load(Ordering::Acquire);
        if tail & !CLOSED_BIT <= pos {
            // Empty at the instant of this load: head ≥ pos (positions only grow) and tail ≤ pos.
            if tail & CLOSED_BIT != 0 {
                // Closed, and every position ever claimed by a producer is consumed.
                return Err(TryError::Closed);
            }
            return Err(TryError::WouldBlock);
        }
        Ok(())
    }

    #[inline(always)]
    fn after<M: RingMem, L: LiveRef>(ring: &Ring<M, L>, end: u64, k: u64) {
        ring.after_get(end, k);
    }
}
