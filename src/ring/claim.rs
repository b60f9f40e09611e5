//! The claim paths: one put or get attempt over the slot protocol, and the non-blocking batch
//! calls built on them.

use super::*;

impl<M: RingMem> Ring<M> {
    /// Tries to claim, fill and publish up to `max` (≥ 1) consecutive positions.
    /// `write(k, payload)` fills the `k`-th of them. Returns how many were put; when none,
    /// `WouldBlock` only if the ring was full during the call, `Pending` if the slot needed is
    /// still held by a consumer. (The raw attempt, for unit tests and models; callers use
    /// [`Ring::put_now`], which waits a held slot out.)
    #[cfg(any(test, shmq_loom))]
    pub(crate) fn try_put_batch(
        &self,
        who: Option<Claimant<'_>>,
        max: usize,
        write: impl FnMut(Filling, &mut [u8]),
    ) -> Result<usize, TryError> {
        self.put_attempt(who, max, true, write)
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

    /// Tries to claim, read and release up to `max` (≥ 1) consecutive messages.
    /// `read(k, payload)` sees the `k`-th. Returns how many were delivered (tombstones are
    /// skipped); when none, `WouldBlock` only if the ring was empty during the call, `Pending` if
    /// the head position is claimed by a producer that has not published it. (The raw attempt,
    /// for unit tests and models; callers use [`Ring::get_now`].)
    #[cfg(any(test, shmq_loom))]
    pub(crate) fn try_get_batch(
        &self,
        who: Option<Claimant<'_>>,
        max: usize,
        read: impl FnMut(usize, &[u8]),
    ) -> Result<usize, TryError> {
        self.get_attempt(who, max, true, read)
    }

    /// One put attempt. With `exact` it tells a full ring (`WouldBlock`) from a slot still held
    /// by a consumer (`Pending`) by reading `head`; without, it reports both as `WouldBlock` and
    /// leaves the consumers' line alone (the spin phase of a blocking put, which waits either way).
    // Always inlined: each call site passes a constant `exact`, and the one-item fast path must
    // not pay a call (it costs about 30 % more instructions out of line).
    #[inline(always)]
    pub(super) fn put_attempt(
        &self,
        who: Option<Claimant<'_>>,
        max: usize,
        exact: bool,
        mut write: impl FnMut(Filling, &mut [u8]),
    ) -> Result<usize, TryError> {
        let hdr = self.hdr();
        let cap = self.capacity();
        let mut backoff = Backoff::new();
        let mut tail = hdr.tail.load(Ordering::Relaxed);
        loop {
            if tail & CLOSED_BIT != 0 {
                return Err(TryError::Closed);
            }
            let pos = tail;
            if pos >= MAX_POS {
                // Never reached in practice (2^61 messages); refusing keeps stamps from overflowing.
                return Err(TryError::Closed);
            }
            // SYNC: Acquire pairs with the consumer's Release store that freed this slot
            // (`(p+cap)<<2|FREE` in `try_get_batch`), so its read of the old payload happens
            // before our overwrite.
            let stamp = self.mem.stamp(pos % cap).load(Ordering::Acquire);
            if stamp == Stamp::free(pos) {
                // Count further free positions for a batch (see the module docs for why the check
                // stays valid until the CAS).
                let limit = (max as u64).min(cap);
                let mut k = 1u64;
                while k < limit {
                    let p = pos + k;
                    // SYNC: Acquire, as for the first stamp.
                    if self.mem.stamp(p % cap).load(Ordering::Acquire) != Stamp::free(p) {
                        break;
                    }
                    k += 1;
                }
                if let Some(c) = who {
                    // Recorded before the claim so a crash right after the CAS is attributable.
                    // SYNC: Release fence: our earlier settling stores (publish, release,
                    // tombstone) happen before any recoverer that reads these record words and
                    // then issues its Acquire fence (`Ring::recover`): one that sees our record
                    // name something else also sees our last claim settled.
                    fence(Ordering::Release);
                    c.record.put_obj.store(c.obj, Ordering::Relaxed);
                    c.record.put_pos.store(pos, Ordering::Relaxed);
                    c.record.put_len.store(k, Ordering::Relaxed);
                    crate::fault::point("put-recorded");
                }
                let _unattributed = Unattributed::enter(self, who);
                // SYNC: Release on success makes the claim record above visible to a recoverer
                // that reads this tail (or a later one in its RMW release sequence) with Acquire.
                match hdr.tail.compare_exchange_weak(
                    tail,
                    tail + k,
                    Ordering::Release,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        // If `write` panics, the guard turns the claimed positions not yet
                        // published into tombstones so consumers are not stuck behind them.
                        crate::fault::point("put-claimed");
                        if crate::fault::dies("put-claimed") {
                            // Loom models only (constant false otherwise): this "process" dies
                            // holding the claim. Nothing published, no guard, record intact,
                            // an unattributed count left raised.
                            core::mem::forget(_unattributed);
                            return Ok(0);
                        }
                        let mut guard = ClaimGuard {
                            ring: self,
                            pos,
                            end: pos + k,
                            side: Side::Put,
                            record: who.map(|c| c.record),
                        };
                        for j in 0..k {
                            let p = pos + j;
                            // SAFETY: we won the CAS that claimed positions pos..pos+k, and their
                            // stamps read FREE for exactly those positions: nobody else reads or
                            // writes these slots until we publish them.
                            unsafe {
                                self.mem.with_payload_mut(p % cap, |buf| {
                                    write(
                                        Filling {
                                            k: j as usize,
                                            pos: p,
                                        },
                                        buf,
                                    )
                                })
                            };
                            // SYNC: Release publishes the payload; pairs with the consumer's
                            // Acquire load of this stamp. (`shmq_loom_broken` weakens it to
                            // Relaxed, to show that the loom models catch the torn payload.)
                            self.mem.stamp(p % cap).store(Stamp::full(p), PUBLISH);
                            guard.pos = p + 1;
                        }
                        core::mem::forget(guard);
                        if let Some(c) = who {
                            // Claim settled: the record names no position any more.
                            // SYNC: Release fence: a recoverer that reads this 0 and then issues
                            // its Acquire fence sees our publish stores, so its stamp CAS fails.
                            fence(Ordering::Release);
                            c.record.put_obj.store(0, Ordering::Relaxed);
                        }
                        self.after_put(pos + k, k);
                        return Ok(k as usize);
                    }
                    Err(actual) => {
                        // Another producer claimed `pos` (or close() set the bit): retry there.
                        // Our record must not go on naming a position we do not hold: if we
                        // now find the ring full and sleep, a live record naming `pos` would
                        // keep recovery from ever touching it, even if its real claimant dies
                        // (and our wait for space would then never end).
                        if let Some(c) = who {
                            c.record.put_obj.store(0, Ordering::Relaxed);
                        }
                        tail = actual;
                        backoff.spin();
                    }
                }
            } else if Stamp::pos(stamp) < pos {
                // The slot still holds position pos - cap: either its message is unread (the ring
                // is full) or a consumer has claimed it and not released the slot yet.
                if !exact {
                    return Err(TryError::WouldBlock);
                }
                // Relaxed: the Acquire stamp load above keeps this load after it, which is all
                // the snapshot needs (no data is read on the strength of it).
                let head = hdr.head.load(Ordering::Relaxed);
                if head.saturating_add(cap) <= pos {
                    // Full at the instant of this load: tail ≥ pos (positions only grow) and
                    // head ≤ pos - cap.
                    return Err(TryError::WouldBlock);
                }
                let again = hdr.tail.load(Ordering::Relaxed);
                if again != tail {
                    tail = again;
                    backoff.spin();
                    continue;
                }
                // Position pos - cap is consumed (head is past it) but its slot is not released.
                return Err(TryError::Pending);
            } else {
                // Our tail is stale: pos was already claimed by another producer. The stamp we
                // read was stored after that claim CAS (happens-before through the Acquire above),
                // so a reload must show a larger tail; if it does not, the stamp is forged.
                backoff.spin();
                let again = hdr.tail.load(Ordering::Relaxed);
                if again == tail {
                    return Err(TryError::Corrupt);
                }
                tail = again;
            }
        }
    }

    /// One get attempt. With `exact` it tells an empty ring (`WouldBlock`) from a head claimed
    /// and not yet published (`Pending`) by reading `tail`; without, it reports both as
    /// `WouldBlock` and reads only the read-mostly closed flag, leaving the producers' hottest line
    /// alone (the spin phase of a blocking get, which waits either way: polling `tail` there
    /// once cost a cross-process round trip about half its speed, see docs/benchmarks.md).
    // Always inlined: each call site passes a constant `exact`, and the one-item fast path must
    // not pay a call (it costs about 30 % more instructions out of line).
    #[inline(always)]
    pub(super) fn get_attempt(
        &self,
        who: Option<Claimant<'_>>,
        max: usize,
        exact: bool,
        mut read: impl FnMut(usize, &[u8]),
    ) -> Result<usize, TryError> {
        let hdr = self.hdr();
        let cap = self.capacity();
        let mut backoff = Backoff::new();
        let mut head = hdr.head.load(Ordering::Relaxed);
        loop {
            let pos = head;
            if pos >= MAX_POS {
                // Only a forged head gets here (2^61 messages are never reached).
                return Err(TryError::Corrupt);
            }
            // SYNC: Acquire pairs with the producer's Release publish of this stamp, so the
            // payload it wrote is visible to our read.
            let stamp = self.mem.stamp(pos % cap).load(Ordering::Acquire);
            if Stamp::state(stamp) == 3 {
                // No protocol step writes state 3.
                return Err(TryError::Corrupt);
            }
            let full = stamp == Stamp::full(pos);
            if full || stamp == Stamp::tomb(pos) {
                let limit = if full { (max as u64).min(cap) } else { 1 };
                let mut k = 1u64;
                while k < limit {
                    let p = pos + k;
                    // SYNC: Acquire, as for the first stamp.
                    if self.mem.stamp(p % cap).load(Ordering::Acquire) != Stamp::full(p) {
                        break;
                    }
                    k += 1;
                }
                if let Some(c) = who {
                    // SYNC: Release fence, as for puts.
                    fence(Ordering::Release);
                    c.record.get_obj.store(c.obj, Ordering::Relaxed);
                    c.record.get_pos.store(pos, Ordering::Relaxed);
                    c.record.get_len.store(k, Ordering::Relaxed);
                    crate::fault::point("get-recorded");
                }
                let _unattributed = Unattributed::enter(self, who);
                // SYNC: Release on success publishes the claim record (as for puts).
                match hdr.head.compare_exchange_weak(
                    head,
                    head + k,
                    Ordering::Release,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        // If `read` panics, the guard releases the claimed slots not yet released
                        // (their messages are counted lost) so producers are not stuck.
                        crate::fault::point("get-claimed");
                        if crate::fault::dies("get-claimed") {
                            // Loom models only, as for "put-claimed": dies holding the claim.
                            core::mem::forget(_unattributed);
                            return Ok(0);
                        }
                        let mut guard = ClaimGuard {
                            ring: self,
                            pos,
                            end: pos + k,
                            side: Side::Get,
                            record: who.map(|c| c.record),
                        };
                        for j in 0..k {
                            let p = pos + j;
                            if full {
                                // SAFETY: we won the CAS that claimed positions pos..pos+k and
                                // their stamps read FULL: the producers are done with these bytes
                                // and no other consumer can claim them.
                                unsafe {
                                    self.mem.with_payload(p % cap, |buf| read(j as usize, buf))
                                };
                            }
                            // SYNC: Release orders our payload read before the next producer's
                            // overwrite; pairs with the Acquire stamp load in `try_put_batch`.
                            self.mem
                                .stamp(p % cap)
                                .store(Stamp::free(p + cap), Ordering::Release);
                            guard.pos = p + 1;
                        }
                        core::mem::forget(guard);
                        if let Some(c) = who {
                            // SYNC: Release fence, as for puts (our release stores).
                            fence(Ordering::Release);
                            c.record.get_obj.store(0, Ordering::Relaxed);
                        }
                        self.after_get(pos + k, k);
                        if full {
                            return Ok(k as usize);
                        }
                        // A tombstone: nothing delivered, look at the next position.
                        head = hdr.head.load(Ordering::Relaxed);
                    }
                    Err(actual) => {
                        // As for puts: name no position we do not hold.
                        if let Some(c) = who {
                            c.record.get_obj.store(0, Ordering::Relaxed);
                        }
                        head = actual;
                        backoff.spin();
                    }
                }
            } else if Stamp::pos(stamp) <= pos {
                // Position `pos` is not published: either no producer has claimed it (empty), or
                // one has and is still writing, or the slot still holds pos - cap for a consumer
                // that has not released it (then no producer can have claimed pos: empty).
                // SYNC: Acquire pairs with the Release flag store in `close`: a consumer that sees
                // the flag then reads a tail with the bit set.
                if !exact && hdr.counters.closed.load(Ordering::Acquire) == 0 {
                    // Not closed; a close whose flag we miss has not happened yet for us, and a
                    // blocked getter is woken by close's notify, which follows the flag store.
                    return Err(TryError::WouldBlock);
                }
                // SYNC: Acquire pairs with the AcqRel `fetch_or` in `close` (a closed bit seen
                // here comes with the final tail). The Acquire stamp load above keeps this load
                // after it.
                let tail = hdr.tail.load(Ordering::Acquire);
                if tail & !CLOSED_BIT <= pos {
                    // Empty at the instant of this load: head ≥ pos (positions only grow) and
                    // tail ≤ pos.
                    if tail & CLOSED_BIT != 0 {
                        // Closed, and every position ever claimed by a producer is consumed.
                        return Err(TryError::Closed);
                    }
                    return Err(TryError::WouldBlock);
                }
                let again = hdr.head.load(Ordering::Relaxed);
                if again != head {
                    head = again;
                    backoff.spin();
                    continue;
                }
                // Claimed by a producer that has not published it yet.
                return Err(TryError::Pending);
            } else {
                // Our head is stale: pos was already consumed. As for puts, a reload that shows
                // no progress means the stamp is forged.
                backoff.spin();
                let again = hdr.head.load(Ordering::Relaxed);
                if again == head {
                    return Err(TryError::Corrupt);
                }
                head = again;
            }
        }
    }
}
