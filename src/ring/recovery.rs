//! Recovery of claims left by dead processes, tombstone wake-ups, repair of dead waiters'
//! registrations, and the disconnect check.

use super::*;

impl<M: RingMem, L: LiveRef> Ring<M, L> {
    /// A position was just tombstoned (and counted): wake the joiners a tombstone may have
    /// finished (`tomb_cell`). `notify_all`'s SeqCst fence orders the count before its look at
    /// the joiners' registrations, as `task_done`'s does.
    pub(super) fn tombstoned(&self) {
        if let Some(c) = &self.tomb_cell {
            c.get().notify_all();
        }
    }

    /// Takes back the registrations that dead processes left on the `space` (`Side::Put`) or `items`
    /// wait cell (see [`Liveness::repair_waiters`]). Runs when wake-ups keep waking nobody: a
    /// leftover registration costs something only while no live waiter sleeps there (otherwise
    /// the wake-ups reach the live one), which is exactly when they wake nobody. A registration
    /// taken back is one a dead process will never undo, so live waiters' counts are never
    /// touched.
    pub(super) fn repair_waiters(&self, side: Side) {
        let Some(live) = self.live.as_deref() else {
            return;
        };
        let n = live.repair_waiters(side);
        if n > 0 {
            self.hdr().wait_cell(side).take_back(n);
        }
    }

    /// A wake-up on the `space` (`Side::Put`) or `items` cell woke nobody: either a waiter is between
    /// registering and sleeping (harmless), or a dead process left its registration behind. Every
    /// [`REPAIR_EVERY`]-th time, look for the latter.
    #[cold]
    pub(super) fn woke_nobody(&self, side: Side) {
        if self.live.is_some()
            && self.woke_nobody.fetch_add(1, Ordering::Relaxed) % REPAIR_EVERY == REPAIR_EVERY - 1
        {
            self.repair_waiters(side);
        }
    }

    /// Recovers the claim a blocked waiter is stuck behind, if its holder is dead: for a getter,
    /// the head position claimed by a producer but never published becomes a tombstone; for a
    /// putter, the slot of `tail - capacity` claimed by a consumer but never released is released
    /// and its message counted lost. Each recovery is one CAS on the stamp, so only one recoverer
    /// acts, and a live claimant is never touched. Returns whether it recovered something.
    pub(crate) fn recover(&self, side: Side) -> bool {
        let Some(live) = self.live.as_deref() else {
            return false;
        };
        let hdr = self.hdr();
        let cap = self.capacity();
        // SYNC: Acquire on both positions pairs with the Release claim CASes, so the claim records
        // written before them are visible to the liveness check.
        let head = hdr.head.load(Ordering::Acquire);
        let tail = hdr.tail.load(Ordering::Acquire) & !CLOSED_BIT;
        if side == Side::Get {
            if head >= tail || head >= MAX_POS {
                return false;
            }
            let stamp = self.mem.stamp(head % cap);
            let unpublished = Stamp::free(head);
            if stamp.load(Ordering::Acquire) != unpublished
                || !self.claim_is_dead(live, head, Side::Put)
            {
                return false;
            }
            let payload = self.abandoned_head(live, head);
            // SYNC: AcqRel; the Release half publishes the tombstone like a producer's publish.
            let won = stamp
                .compare_exchange(
                    unpublished,
                    Stamp::tomb(head),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok();
            if won {
                // SYNC: Release pairs with the Acquire load in `counted_puts`: a joiner that
                // counts this tombstone also sees the `tail` that includes its position.
                hdr.counters.tombstones.fetch_add(1, Ordering::Release);
                if let Some(p) = &payload {
                    live.abandoned(head, Side::Put, p);
                }
                live.recovered(head, Side::Put, false);
                self.tombstoned();
                self.after_put(head + 1, 1);
            }
            won
        } else {
            if tail < cap || tail >= MAX_POS {
                return false;
            }
            let p = tail - cap;
            if head <= p {
                return false; // the slot holds an unread message: the ring is just full
            }
            let stamp = self.mem.stamp(p % cap);
            // A consumer claims tombstones too (to step over them), so a dead one may hold either
            // a message or a tombstone; only the first loses anything.
            let held = stamp.load(Ordering::Acquire);
            if (held != Stamp::full(p) && held != Stamp::tomb(p))
                || !self.claim_is_dead(live, p, Side::Get)
            {
                return false;
            }
            let payload = if held == Stamp::full(p) {
                self.abandoned_head(live, p)
            } else {
                None
            };
            // SYNC: AcqRel; the Release half frees the slot like a consumer's release.
            let won = stamp
                .compare_exchange(
                    held,
                    Stamp::free(p + cap),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok();
            if won {
                let lost = Stamp::state(held) == STAMP_FULL;
                if lost {
                    hdr.counters.lost.fetch_add(1, Ordering::Relaxed);
                }
                if let Some(h) = &payload {
                    live.abandoned(p, Side::Get, h);
                }
                live.recovered(p, Side::Get, lost);
                self.after_get(p + 1, 1);
            }
            won
        }
    }

    /// The messages still claimed by consumers in a ring nobody else can touch any more (a drained
    /// link of an unbounded queue about to be freed: every claimant still holding a slot is
    /// dead): how many, and the start of each one's payload with its position.
    pub(crate) fn held_by_dead_consumers(&self) -> Vec<(u64, [u8; ABANDONED_HEAD])> {
        let cap = self.capacity();
        let mut out = Vec::new();
        for i in 0..cap {
            // SYNC: Acquire pairs with the producer's Release publish: the payload is visible.
            let stamp = self.mem.stamp(i).load(Ordering::Acquire);
            if Stamp::state(stamp) != STAMP_FULL || Stamp::pos(stamp) % cap != i {
                continue;
            }
            let mut head = [0u8; ABANDONED_HEAD];
            // SAFETY: nobody else can touch this ring (the caller's contract), so reading the
            // payload of a slot whose claimant is dead races with nothing.
            unsafe {
                self.mem.with_payload(i, |b| {
                    let n = b.len().min(ABANDONED_HEAD);
                    head[..n].copy_from_slice(&b[..n]);
                })
            };
            out.push((Stamp::pos(stamp), head));
        }
        out
    }

    /// A copy of the start of position `pos`'s payload, if `live` wants it
    /// ([`Liveness::abandoned`]); taken while a claim judged dead holds the slot, before the
    /// recovery CAS.
    fn abandoned_head(&self, live: &dyn Liveness, pos: u64) -> Option<[u8; ABANDONED_HEAD]> {
        if !live.wants_abandoned() {
            return None;
        }
        let mut out = [0u8; ABANDONED_HEAD];
        // SAFETY: the slot is held by a claim of a dead process (checked by the caller), which
        // writes nothing more. The only other writer it can meet is a producer that claims the
        // slot after another recoverer's CAS released it; then our own CAS fails and this copy is
        // thrown away. The copy is made with volatile reads into a local, so no conclusion is
        // drawn from bytes read twice.
        unsafe {
            self.mem.with_payload(pos % self.capacity(), |b| {
                for (i, o) in out.iter_mut().enumerate().take(b.len()) {
                    *o = core::ptr::read_volatile(b.as_ptr().add(i));
                }
            })
        };
        Some(out)
    }

    /// Whether the claim on position `pos` (`Side::Put`: a producer's, else a consumer's), which the
    /// caller saw claimed through an Acquire load of `tail` / `head`, may be recovered: only dead
    /// processes' records name it, and no thread without a record is in the middle of a claim on
    /// this ring (its claim names no record, so a dead process's stale record naming the same
    /// position would otherwise pass for the claimant).
    pub(super) fn claim_is_dead(&self, live: &dyn Liveness, pos: u64, side: Side) -> bool {
        if live.claimant(pos, side) != Claim::Dead {
            return false;
        }
        // SYNC: Acquire fence pairs with the Release fence a claimant issues before each update
        // of its record (clearing it after settling, or naming its next claim): if the scan read
        // a live owner's record as no longer naming `pos`, the stores that settled `pos` happen
        // before our stamp CAS, which then fails.
        fence(Ordering::Acquire);
        // SYNC: Acquire pairs with the Release decrement in `Unattributed::drop` (a 0 that counts
        // a thread's decrement shows its settling store). A raise we must see happens before this
        // load: it precedes the Release claim CAS that the caller's Acquire load of `head` /
        // `tail` synchronised with (every later write to those words is an RMW, so it stays in
        // that CAS's release sequence).
        self.hdr().counters.unattributed.load(Ordering::Acquire) == 0
    }

    /// Whether a claim record naming positions `pos..pos + len` of this ring (`Side::Put`: as a
    /// producer, else as a consumer), left by a process that is dead, may still be the evidence a
    /// recovery needs: some position in it was claimed (it is below `tail`, or `head`) and is not
    /// yet settled (a put: still unpublished; a get: still unreleased). When this returns `false`
    /// it stays `false`: the dead process claims nothing more, positions are claimed in order, and
    /// a settled position never becomes unsettled for the same position number.
    pub(crate) fn claim_pending(&self, pos: u64, len: u64, side: Side) -> bool {
        let hdr = self.hdr();
        let cap = self.capacity();
        // SYNC: Acquire, as in `recover`: pairs with the Release claim CASes.
        let claimed_to = if side == Side::Put {
            hdr.tail.load(Ordering::Acquire) & !CLOSED_BIT
        } else {
            hdr.head.load(Ordering::Acquire)
        };
        // A record names at most one batch, which is at most `capacity` positions.
        let end = pos.saturating_add(len.min(cap)).min(claimed_to);
        (pos..end).any(|q| {
            if q >= MAX_POS {
                return false;
            }
            // SYNC: Acquire, as in `recover`.
            let s = self.mem.stamp(q % cap).load(Ordering::Acquire);
            if side == Side::Put {
                s == Stamp::free(q)
            } else {
                s == Stamp::full(q) || s == Stamp::tomb(q)
            }
        })
    }

    /// True if a getter can never be served by the producers it knows of: some producer
    /// registered, none is unattributed, none is alive, and the ring holds no position that is
    /// claimed for put but not yet consumed. A producer that registers after the check can still
    /// put; the answer is a snapshot, like `len`.
    pub(crate) fn disconnected(&self) -> bool {
        self.disconnected_unless(|| false, || {})
    }

    /// [`disconnected`](Self::disconnected), skipping the participant scan while `known_live()`
    /// says a live producer was seen since the last peer left or died; `saw_live()` records that
    /// one was.
    pub(super) fn disconnected_unless(
        &self,
        known_live: impl Fn() -> bool,
        saw_live: impl Fn(),
    ) -> bool {
        let Some(live) = self.live.as_deref() else {
            return false;
        };
        let hdr = self.hdr();
        // SYNC: Acquire pairs with the Release `fetch_or` in `RingHandle::note_producer`, so the
        // registering thread's `producer_of` bit (set before it) is visible to the scan below.
        if hdr.counters.producers.load(Ordering::Acquire) != PRODUCER_SEEN || known_live() {
            return false;
        }
        if live.live_producers() > 0 {
            saw_live();
            return false;
        }
        // Emptiness is read after the scan: a producer whose record was released (clean exit) or
        // whose death was observed had claimed its positions before, so they show in `tail` here.
        // SYNC: Acquire pairs with the claim CASes' Release (and a released record's Release
        // store in `participants::release`, read with Acquire by the scan).
        let head = hdr.head.load(Ordering::Acquire);
        let tail = hdr.tail.load(Ordering::Acquire) & !CLOSED_BIT;
        head >= tail
    }
}
