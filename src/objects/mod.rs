//! Shared objects: their shared-memory states and algorithms (used natively over `mmap`ed memory
//! and under loom over heap objects), and, natively, the public handles.

pub(crate) mod atom;
pub(crate) mod barrier;
pub(crate) mod bytes_list;
pub(crate) mod cell;
pub(crate) mod condition;
pub(crate) mod dict;
pub(crate) mod event;
pub(crate) mod heaped;
pub(crate) mod joinable;
pub(crate) mod list;
pub(crate) mod lock;
pub(crate) mod semaphore;
pub(crate) mod versioned;

crate::sync::native_only! {
    pub(crate) mod handles;
}

crate::sync::native_only! {
/// The object algorithms over heap copies of their shared states (the same code that runs over a
/// mapping), natively and under miri.
#[cfg(test)]
mod tests {
    use super::barrier::BarrierState;
    use super::cell::Cell;
    use super::event::EventState;
    use super::joinable::JoinState;
    use super::list::{self, ListHeader};
    use super::lock::LockState;
    use super::semaphore::SemaphoreState;
    use super::versioned::VersionedRef;
    use crate::ring::mem::Zeroed;
    use crate::sync::native_or_miri as scale;
    use crate::sync::{AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    #[test]
    fn lock_makes_two_step_increments_exact() {
        let lock = Arc::new(Zeroed::<LockState>::new());
        let data = Arc::new(AtomicU64::new(0));
        let n = scale(20_000, 50);
        let ts: Vec<_> = (0..3)
            .map(|_| {
                let (lock, data) = (lock.clone(), data.clone());
                std::thread::spawn(move || {
                    for _ in 0..n {
                        assert!(lock.get().lock(None).is_some());
                        // Two separate steps: only the lock makes them atomic together.
                        let v = data.load(Ordering::Relaxed);
                        data.store(v + 1, Ordering::Relaxed);
                        lock.get().unlock(true);
                    }
                })
            })
            .collect();
        for t in ts {
            t.join().unwrap();
        }
        assert_eq!(data.load(Ordering::Relaxed), 3 * n);
        assert!(!lock.get().is_locked());
    }

    #[test]
    fn lock_timeout_expires_then_succeeds_after_unlock() {
        let lock = Arc::new(Zeroed::<LockState>::new());
        assert!(lock.get().try_lock().is_some());
        assert!(lock.get().try_lock().is_none());
        let t0 = Instant::now();
        assert!(lock
            .get()
            .lock(Some(t0 + Duration::from_millis(10)))
            .is_none());
        assert!(t0.elapsed() >= Duration::from_millis(10));
        lock.get().unlock(true);
        assert!(lock
            .get()
            .lock(Some(Instant::now() + Duration::from_secs(5)))
            .is_some());
    }

    #[test]
    #[cfg_attr(miri, ignore = "needs /proc to see that the owner thread is gone")]
    fn lock_of_a_dead_owner_is_taken_over_and_reported_until_made_consistent() {
        use super::lock::Acquired;
        let lock = Arc::new(Zeroed::<LockState>::new());
        // A thread takes the lock and exits without unlocking (as if its process died there).
        let l2 = lock.clone();
        std::thread::spawn(move || assert_eq!(l2.get().lock(None), Some(Acquired::Clean)))
            .join()
            .unwrap();
        assert!(lock.get().is_locked());
        let t0 = Instant::now();
        // The takeover itself names the dead owner's process (this one: a thread stood in).
        assert_eq!(
            lock.get().lock(None),
            Some(Acquired::TookOver {
                pid: std::process::id()
            })
        );
        assert!(t0.elapsed() < Duration::from_secs(5));
        // Released without declaring the data consistent: the next owner is told too.
        lock.get().unlock(false);
        assert_eq!(lock.get().try_lock(), Some(Acquired::OwnerDead));
        lock.get().unlock(true);
        assert_eq!(lock.get().try_lock(), Some(Acquired::Clean));
        lock.get().unlock(true);
    }

    /// The shared parts of a versioned value of four words, on the heap.
    struct VersionedHeap {
        lock: Arc<Zeroed<LockState>>,
        version: AtomicU64,
        copies: [[AtomicU64; 4]; 2],
    }

    impl VersionedHeap {
        fn new(initial: u64) -> Arc<Self> {
            let v = Arc::new(Self {
                lock: Arc::new(Zeroed::new()),
                version: AtomicU64::new(0),
                copies: Default::default(),
            });
            for w in &v.copies[0] {
                w.store(initial, Ordering::Relaxed);
            }
            v
        }
        fn shared(&self) -> VersionedRef<'_> {
            VersionedRef {
                lock: self.lock.get(),
                version: &self.version,
                copies: [&self.copies[0], &self.copies[1]],
            }
        }
        fn read(&self) -> ([u64; 4], u64) {
            let mut out = [0u64; 4];
            let v = self.shared().read(bytemuck::bytes_of_mut(&mut out));
            (out, v)
        }
    }

    #[test]
    fn versioned_readers_never_see_a_mix_of_two_writes() {
        let v = VersionedHeap::new(0);
        let n = scale(20_000, 30);
        let writers: Vec<_> = (0..2u64)
            .map(|w| {
                let v = v.clone();
                std::thread::spawn(move || {
                    for i in 0..n {
                        let k = i * 2 + w + 1;
                        if i % 2 == 0 {
                            assert!(v.shared().write(bytemuck::bytes_of(&[k; 4]), None));
                        } else {
                            let mut scratch = [0u64; 4];
                            v.shared()
                                .update(bytemuck::bytes_of_mut(&mut scratch), |b| {
                                    b.copy_from_slice(bytemuck::bytes_of(&[k; 4]))
                                });
                        }
                    }
                })
            })
            .collect();
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let v = v.clone();
                std::thread::spawn(move || {
                    let mut last = 0;
                    for _ in 0..n {
                        let (words, version) = v.read();
                        assert!(words.iter().all(|&x| x == words[0]), "torn: {words:?}");
                        assert!(version >= last, "version went back");
                        last = version;
                    }
                })
            })
            .collect();
        for t in writers.into_iter().chain(readers) {
            t.join().unwrap();
        }
        assert_eq!(v.read().1, 2 * n);
        assert!(!v.lock.get().is_locked());
    }

    #[test]
    #[cfg_attr(miri, ignore = "needs /proc to see that the writer thread is gone")]
    fn versioned_writer_that_dies_mid_write_is_invisible_and_taken_over() {
        let v = VersionedHeap::new(7);
        // A writer takes the lock, writes half of a new value into the inactive copy, and its
        // thread ends there (as if its process had been killed mid-write).
        let v2 = v.clone();
        std::thread::spawn(move || {
            assert!(v2.lock.get().lock(None).is_some());
            v2.copies[1][0].store(9, Ordering::Relaxed);
            v2.copies[1][1].store(9, Ordering::Relaxed);
        })
        .join()
        .unwrap();
        assert_eq!(v.read(), ([7; 4], 0));
        let t0 = Instant::now();
        assert!(v.shared().write(bytemuck::bytes_of(&[8u64; 4]), None));
        assert!(t0.elapsed() < Duration::from_secs(5));
        assert_eq!(v.read(), ([8; 4], 1));
        assert!(!v.lock.get().is_locked());
    }

    /// Cells (`Value`, `Array` elements) are sequentially consistent, as Python's shared
    /// variables are: in the store-buffering litmus test (each thread stores 1 to its cell, then
    /// loads the other's) both loads never read 0. A store weakened to Release is a plain `mov`
    /// on x86-64, which the store buffer holds past the following load, and that outcome then
    /// shows on two cores. Loom cannot check this (it models SeqCst accesses as AcqRel). The
    /// two threads start each round together by spinning on a round counter.
    #[test]
    #[cfg_attr(miri, ignore = "needs two threads running at once for many rounds")]
    fn cells_pass_the_store_buffering_litmus_test() {
        use std::sync::atomic::{AtomicU64 as StdU64, Ordering as O}; // shim-exempt: test harness
        let rounds = 200_000u64;
        let cells = Arc::new([Cell(AtomicU64::new(0)), Cell(AtomicU64::new(0))]);
        let start = Arc::new(StdU64::new(0));
        let (done, seen) = (Arc::new(StdU64::new(0)), Arc::new(StdU64::new(0)));
        let t = {
            let (cells, start, done, seen) = (cells.clone(), start.clone(), done.clone(), seen.clone());
            std::thread::spawn(move || {
                for r in 1..=rounds {
                    while start.load(O::Acquire) < r {
                        std::hint::spin_loop();
                    }
                    cells[1].store(1u64);
                    seen.store(cells[0].load::<u64>(), O::Relaxed);
                    done.store(r, O::Release);
                }
            })
        };
        let mut both_zero = 0;
        for r in 1..=rounds {
            cells[0].0.store(0, Ordering::Relaxed);
            cells[1].0.store(0, Ordering::Relaxed);
            start.store(r, O::Release);
            cells[0].store(1u64);
            let mine: u64 = cells[1].load();
            while done.load(O::Acquire) < r {
                std::hint::spin_loop();
            }
            if mine == 0 && seen.load(O::Relaxed) == 0 {
                both_zero += 1;
            }
        }
        t.join().unwrap();
        assert_eq!(both_zero, 0, "store buffering seen in {both_zero} of {rounds} rounds");
    }

    /// The version is a shared word a hostile process can set to anything: a write at
    /// `u64::MAX` wraps to 0 rather than overflowing (a debug-build panic the `segment_layout`
    /// fuzz target found), and readers see the new value.
    #[test]
    fn versioned_write_at_the_last_version_wraps() {
        let v = VersionedHeap::new(7);
        v.version.store(u64::MAX, Ordering::Relaxed);
        // Version u64::MAX is odd: the current copy is copy 1.
        for w in &v.copies[1] {
            w.store(5, Ordering::Relaxed);
        }
        assert_eq!(v.read(), ([5; 4], u64::MAX));
        assert!(v.shared().write(bytemuck::bytes_of(&[6u64; 4]), None));
        assert_eq!(v.read(), ([6; 4], 0));
    }

    #[test]
    fn event_wakes_sleeping_waiter() {
        let ev = Arc::new(Zeroed::<EventState>::new());
        let ev2 = ev.clone();
        let t = std::thread::spawn(move || ev2.get().wait(None));
        while ev.get().waiters.load(Ordering::Relaxed) == 0 {
            std::thread::yield_now();
        }
        ev.get().set();
        assert!(t.join().unwrap());
        ev.get().clear();
        assert!(!ev
            .get()
            .wait(Some(Instant::now() + Duration::from_millis(5))));
    }

    #[test]
    fn semaphore_admits_at_most_its_count() {
        let sem = Arc::new(Zeroed::<SemaphoreState>::new());
        sem.get().release(2).unwrap();
        sem.get().release(2).unwrap();
        assert_eq!(sem.get().release(2), Err(2));
        let inside = Arc::new(AtomicU64::new(0));
        let max = Arc::new(AtomicU64::new(0));
        let n = scale(5_000, 20);
        let ts: Vec<_> = (0..4)
            .map(|_| {
                let (sem, inside, max) = (sem.clone(), inside.clone(), max.clone());
                std::thread::spawn(move || {
                    for _ in 0..n {
                        assert!(sem.get().acquire(None));
                        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        max.fetch_max(now, Ordering::SeqCst);
                        inside.fetch_sub(1, Ordering::SeqCst);
                        sem.get().release(2).unwrap();
                    }
                })
            })
            .collect();
        for t in ts {
            t.join().unwrap();
        }
        assert!(max.load(Ordering::SeqCst) <= 2);
        assert_eq!(sem.get().value(), 2);
    }

    #[test]
    fn barrier_rounds_have_exactly_one_leader() {
        let b = Arc::new(Zeroed::<BarrierState>::new());
        let rounds = scale(500, 5);
        let ts: Vec<_> = (0..3)
            .map(|_| {
                let b = b.clone();
                std::thread::spawn(move || {
                    (0..rounds)
                        .filter(|_| b.get().wait(3, None).unwrap())
                        .count()
                })
            })
            .collect();
        let leaders: usize = ts.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(leaders as u64, rounds);
    }

    #[test]
    fn barrier_timeout_withdraws_and_barrier_stays_usable() {
        let b = Arc::new(Zeroed::<BarrierState>::new());
        let d = Instant::now() + Duration::from_millis(5);
        assert!(b.get().wait(2, Some(d)).is_err());
        assert_eq!(b.get().arrived(), 0);
        let b2 = b.clone();
        let t = std::thread::spawn(move || b2.get().wait(2, None).unwrap());
        let here = b.get().wait(2, None).unwrap();
        assert!(here ^ t.join().unwrap());
    }

    /// A party that times out takes its arrival back; if a hostile process zeroed the count
    /// meanwhile there is nothing to take back (it once underflowed into the generation bits,
    /// a debug-build panic at generation 0), and the barrier stays usable.
    #[test]
    fn barrier_withdrawal_after_a_forged_zero_count() {
        let b = Arc::new(Zeroed::<BarrierState>::new());
        let b2 = b.clone();
        let t = std::thread::spawn(move || {
            let d = Instant::now() + Duration::from_millis(300);
            b2.get().wait(2, Some(d))
        });
        while b.get().arrived() == 0 {
            std::thread::yield_now();
        }
        b.get().state.store(0, Ordering::Relaxed);
        assert!(t.join().unwrap().is_err());
        assert_eq!(b.get().state.load(Ordering::Relaxed), 0);
        let b3 = b.clone();
        let t = std::thread::spawn(move || b3.get().wait(2, None).unwrap());
        let here = b.get().wait(2, None).unwrap();
        assert!(here ^ t.join().unwrap());
    }

    #[test]
    fn join_waits_for_every_task_done() {
        use crate::sync::AtomicU64;
        use std::sync::Arc;
        let j = Arc::new(Zeroed::<JoinState>::new());
        // Stands for the ring's `tail - tombstones`.
        let puts = Arc::new(AtomicU64::new(0));
        let p = || puts.load(Ordering::Acquire);
        assert!(j.get().task_done(p).is_err());
        let n = scale(1000, 10);
        puts.store(n, Ordering::Release);
        let (j2, puts2) = (j.clone(), puts.clone());
        let t = std::thread::spawn(move || {
            for _ in 0..n {
                j2.get()
                    .task_done(|| puts2.load(Ordering::Acquire))
                    .unwrap();
            }
        });
        assert!(j.get().join(p, None));
        assert_eq!(j.get().unfinished(p), 0);
        t.join().unwrap();
        assert!(j.get().task_done(p).is_err());
        // One more put: join waits for it.
        puts.fetch_add(1, Ordering::AcqRel);
        assert!(!j
            .get()
            .join(p, Some(Instant::now() + Duration::from_millis(5))));
        // Its claim tombstoned (the producer died): nothing left to wait for, though nobody
        // called task_done.
        puts.fetch_sub(1, Ordering::AcqRel);
        assert!(j.get().join(p, None));
    }

    #[test]
    fn list_claims_are_unique_and_bounded() {
        let h = Arc::new(Zeroed::<ListHeader>::new());
        let ready: Arc<Vec<AtomicU64>> = Arc::new((0..64).map(|_| AtomicU64::new(0)).collect());
        let ts: Vec<_> = (0..4)
            .map(|_| {
                let (h, ready) = (h.clone(), ready.clone());
                std::thread::spawn(move || {
                    let mut mine = 0;
                    while let Some(i) = h.get().claim(64) {
                        assert_eq!(
                            ready[i as usize].swap(1, Ordering::SeqCst),
                            0,
                            "index twice"
                        );
                        list::publish(&ready[i as usize]);
                        mine += 1;
                    }
                    mine
                })
            })
            .collect();
        let total: u64 = ts.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(total, 64);
        assert_eq!(h.get().len(64), 64);
        assert!(ready.iter().all(list::is_ready));
    }

    #[test]
    fn cell_arithmetic_wraps_at_the_type_width() {
        let c = Arc::new(Zeroed::<Cell>::new());
        c.get().store(i8::MAX);
        assert_eq!(c.get().fetch_add(1i8), i8::MAX);
        assert_eq!(c.get().load::<i8>(), i8::MIN);
        c.get().store(0u64);
        assert_eq!(c.get().fetch_sub(1u64), 0);
        assert_eq!(c.get().load::<u64>(), u64::MAX);
        c.get().store(-2.5f64);
        c.get().fetch_add(1.0f64);
        assert_eq!(c.get().load::<f64>(), -1.5);
        assert_eq!(
            c.get().fetch_update(|x: f64| (x > 0.0).then_some(x)),
            Err(-1.5)
        );
    }
}
}
