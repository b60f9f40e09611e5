//! Loom models of the ring and its wait protocol.
//!
//! Run with:
//! `RUSTFLAGS="--cfg shmq_loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test loom --target-dir target/loom`
//!
//! Threads stand in for processes; the ring is the crate's own algorithm over loom objects
//! (`shmq::model`), and the futex is modelled by a loom mutex + condvar, so a lost wake-up shows up
//! as a loom deadlock and a racy payload access as a loom data-race report.
#![cfg(shmq_loom)]

use loom::sync::Arc;
use loom::thread;
use shmq::model::{ModelQueue, Outcome, Which};
use std::time::Duration;

fn model(f: impl Fn() + Sync + Send + 'static) {
    model_at_least(2, f)
}

/// Runs a model with at least `bound` preemptions (more if LOOM_MAX_PREEMPTIONS asks for more),
/// for races that need that many to show.
fn model_at_least(bound: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(b.preemption_bound.unwrap_or(bound).max(bound));
    check_counted(b, f);
}

/// Runs the model; with `SHMQ_LOOM_RUNS` set, prints how many interleavings loom explored (a
/// model that runs once explores nothing: its racing side may be on the main thread, which loom
/// does not switch away from before its first join).
fn check_counted(b: loom::model::Builder, f: impl Fn() + Sync + Send + 'static) {
    use std::sync::atomic::{AtomicUsize, Ordering}; // shim-exempt: counts the model's runs
    let runs = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = runs.clone();
    b.check(move || {
        counted.fetch_add(1, Ordering::Relaxed);
        f()
    });
    if std::env::var_os("SHMQ_LOOM_RUNS").is_some() {
        let name = std::thread::current().name().unwrap_or("?").to_owned();
        eprintln!("loom runs: {name}: {}", runs.load(Ordering::Relaxed));
    }
}

/// Gets as process `p` until a value comes, trying to recover the head (`Which::Get`) whenever
/// the ring is empty; panics if a recovery succeeds (the claims in the models that use it are
/// live).
fn get_never_recovering(q: &ModelCrashQueue, p: usize) -> u64 {
    loop {
        match q.try_get(p) {
            Ok(v) => return v,
            Err(Outcome::WouldBlock) => {
                assert!(!q.recover(Which::Get), "a live claim was tombstoned");
                thread::yield_now();
            }
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
}

/// Runs `put` until it finds room: yields while it reports the queue full, panics on anything
/// else (a model's producer that waits for a consumer without a blocking call).
fn put_when_room(mut put: impl FnMut() -> Result<(), Outcome>) {
    loop {
        match put() {
            Ok(()) => return,
            Err(Outcome::WouldBlock) => thread::yield_now(),
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
}

/// 2 producers + 1 consumer on a capacity-2 ring: each item delivered exactly once, and each
/// producer's items in the order it put them.
#[test]
fn two_producers_one_consumer_exactly_once_in_order() {
    model(|| {
        let q = Arc::new(ModelQueue::new(2));
        let producers: Vec<_> = (0..2u64)
            .map(|p| {
                let q = q.clone();
                thread::spawn(move || {
                    for i in 0..2u64 {
                        q.put(p * 10 + i, None).unwrap();
                    }
                })
            })
            .collect();
        let mut got = vec![];
        for _ in 0..4 {
            got.push(q.get(None).unwrap());
        }
        for p in producers {
            p.join().unwrap();
        }
        let p0: Vec<_> = got.iter().copied().filter(|v| *v < 10).collect();
        let p1: Vec<_> = got.iter().copied().filter(|v| *v >= 10).collect();
        assert_eq!(p0, vec![0, 1]);
        assert_eq!(p1, vec![10, 11]);
        assert_eq!(q.try_get(), Err(Outcome::WouldBlock));
    });
}

/// Capacity 1, three items through one slot: exercises wrap-around on every put.
#[test]
fn capacity_one_wraps_every_put() {
    model(|| {
        let q = Arc::new(ModelQueue::new(1));
        let q2 = q.clone();
        let p = thread::spawn(move || {
            for i in 0..3u64 {
                q2.put(i, None).unwrap();
            }
        });
        for i in 0..3u64 {
            assert_eq!(q.get(None), Ok(i));
        }
        p.join().unwrap();
    });
}

/// A get that finds the ring empty and sleeps is woken by a put (no lost wake-up).
#[test]
fn blocked_get_is_woken_by_put() {
    model(|| {
        let q = Arc::new(ModelQueue::new(2));
        let q2 = q.clone();
        let c = thread::spawn(move || q2.get(None));
        // The put in a thread of its own: loom then switches between it and the getter at every
        // step (it explores few switches out of the main thread).
        let p = thread::spawn(move || q.put(7, None));
        assert_eq!(p.join().unwrap(), Ok(()));
        assert_eq!(c.join().unwrap(), Ok(7));
    });
}

/// A getter that waits without taking (`wait_ready`, as the Python binding's blocking get does)
/// is woken by a put, and is told ready only once the value is published: its non-blocking
/// get then takes it, never `WouldBlock` with nobody else consuming.
#[test]
fn a_getter_waiting_without_taking_is_woken_by_put_and_takes_it() {
    model(|| {
        let q = Arc::new(ModelQueue::new(2));
        let q2 = q.clone();
        let c = thread::spawn(move || q2.wait_ready_then_take(None));
        let p = thread::spawn(move || q.put(7, None));
        assert_eq!(p.join().unwrap(), Ok(()));
        assert_eq!(c.join().unwrap(), Ok(Some(7)));
    });
}

/// A put that finds the ring full and sleeps is woken by a get.
#[test]
fn blocked_put_is_woken_by_get() {
    model(|| {
        let q = Arc::new(ModelQueue::new(1));
        q.try_put(1).unwrap();
        let q2 = q.clone();
        let p = thread::spawn(move || q2.put(2, None));
        // The get in a thread of its own, as in `blocked_get_is_woken_by_put`.
        let q3 = q.clone();
        let c = thread::spawn(move || q3.get(None));
        assert_eq!(c.join().unwrap(), Ok(1));
        assert_eq!(p.join().unwrap(), Ok(()));
        assert_eq!(q.try_get(), Ok(2));
    });
}

/// Two sleeping getters and two puts: wake-one per item still wakes both.
#[test]
fn two_blocked_getters_both_woken() {
    model(|| {
        let q = Arc::new(ModelQueue::new(2));
        let getters: Vec<_> = (0..2)
            .map(|_| {
                let q = q.clone();
                thread::spawn(move || q.get(None).unwrap())
            })
            .collect();
        q.put(1, None).unwrap();
        q.put(2, None).unwrap();
        let mut got: Vec<_> = getters.into_iter().map(|g| g.join().unwrap()).collect();
        got.sort_unstable();
        assert_eq!(got, vec![1, 2]);
    });
}

/// close() wakes a blocked get, which then reports Closed.
#[test]
fn close_wakes_blocked_get() {
    model(|| {
        let q = Arc::new(ModelQueue::new(2));
        let q2 = q.clone();
        let c = thread::spawn(move || q2.get(None));
        // The close in a thread of its own, as in `blocked_get_is_woken_by_put`.
        let closer = thread::spawn(move || q.close());
        assert!(closer.join().unwrap());
        assert_eq!(c.join().unwrap(), Err(Outcome::Closed));
    });
}

/// close() racing a put and a blocked get: an accepted put is delivered before Closed; a refused
/// put reports Closed; nothing is lost or invented.
#[test]
fn close_races_put_and_get() {
    model(|| {
        let q = Arc::new(ModelQueue::new(2));
        let qp = q.clone();
        let p = thread::spawn(move || qp.put(5, None));
        let qc = q.clone();
        let c = thread::spawn(move || {
            let mut got = vec![];
            while let Ok(v) = qc.get(None) {
                got.push(v);
            }
            got
        });
        q.close();
        let put = p.join().unwrap();
        let got = c.join().unwrap();
        match put {
            Ok(()) => assert_eq!(got, vec![5]),
            Err(Outcome::Closed) => assert!(got.is_empty()),
            Err(e) => panic!("unexpected {e:?}"),
        }
    });
}

/// A timed get racing a put: the item is either returned or left in the ring, never lost.
#[test]
fn timed_get_racing_put_never_loses_the_item() {
    model(|| {
        let q = Arc::new(ModelQueue::new(2));
        let q2 = q.clone();
        let c = thread::spawn(move || q2.get(Some(Duration::from_millis(1))));
        let q3 = q.clone();
        let p = thread::spawn(move || q3.put(9, None));
        assert_eq!(p.join().unwrap(), Ok(()));
        match c.join().unwrap() {
            Ok(v) => {
                assert_eq!(v, 9);
                assert_eq!(q.try_get(), Err(Outcome::WouldBlock));
            }
            Err(Outcome::Timeout) => assert_eq!(q.try_get(), Ok(9)),
            Err(e) => panic!("unexpected {e:?}"),
        }
    });
}

/// Batch put and batch get move everything once, in order.
#[test]
fn put_many_get_many_in_order() {
    model(|| {
        let q = Arc::new(ModelQueue::new(2));
        let q2 = q.clone();
        let p = thread::spawn(move || q2.put_many(&[1, 2, 3]).unwrap());
        let mut got = vec![];
        while got.len() < 3 {
            let mut buf = [0u64; 2];
            let n = q.get_many(&mut buf).unwrap();
            got.extend_from_slice(&buf[..n]);
        }
        p.join().unwrap();
        assert_eq!(got, vec![1, 2, 3]);
    });
}

/// Two producers publishing out of order and two sleeping getters: a wake spent on a getter whose
/// head is still unpublished is passed on, so both getters get a message.
#[test]
fn out_of_order_publish_wakes_both_getters() {
    model(|| {
        let q = Arc::new(ModelQueue::new(2));
        let getters: Vec<_> = (0..2)
            .map(|_| {
                let q = q.clone();
                thread::spawn(move || q.get(None).unwrap())
            })
            .collect();
        let producers: Vec<_> = (0..2u64)
            .map(|p| {
                let q = q.clone();
                thread::spawn(move || q.put(p + 1, None).unwrap())
            })
            .collect();
        for p in producers {
            p.join().unwrap();
        }
        let mut got: Vec<_> = getters.into_iter().map(|g| g.join().unwrap()).collect();
        got.sort_unstable();
        assert_eq!(got, vec![1, 2]);
    });
}

/// close() while a put is in flight and two getters sleep: one getter takes the message, the
/// other is woken and reports Closed (none sleeps forever on a closed, drained ring). The lost
/// wake-up this pins (without the closed check in `after_get`) needs 3 preemptions to show.
#[test]
fn close_with_put_in_flight_wakes_every_getter() {
    model_at_least(3, || {
        let q = Arc::new(ModelQueue::new(2));
        let getters: Vec<_> = (0..2)
            .map(|_| {
                let q = q.clone();
                thread::spawn(move || q.get(None))
            })
            .collect();
        let qp = q.clone();
        let p = thread::spawn(move || qp.put(3, None));
        q.close();
        let put = p.join().unwrap();
        let mut got: Vec<_> = getters.into_iter().map(|g| g.join().unwrap()).collect();
        got.sort_unstable();
        match put {
            Ok(()) => assert_eq!(got, vec![Ok(3), Err(Outcome::Closed)]),
            Err(_) => assert_eq!(got, vec![Err(Outcome::Closed), Err(Outcome::Closed)]),
        }
    });
}

// ----- shared objects -----

use shmq::model::{
    ModelBarrier, ModelEvent, ModelJoinable, ModelList, ModelLock, ModelSemaphore, ModelValue,
};

/// Two threads increment a plain counter under the lock: no overlap (loom would report the data
/// race), no lost update, and a sleeping contender is woken by the unlock.
#[test]
fn lock_excludes_and_wakes() {
    model(|| {
        let l = Arc::new(ModelLock::new());
        let l2 = l.clone();
        let t = thread::spawn(move || {
            assert!(l2.increment(None));
        });
        assert!(l.increment(None));
        t.join().unwrap();
        assert_eq!(l.value(), 2);
    });
}

/// Three contenders, one of them timed: the counter equals the number of successful locks.
#[test]
fn lock_with_timeout_and_try_lock() {
    model(|| {
        let l = Arc::new(ModelLock::new());
        let a = {
            let l = l.clone();
            thread::spawn(move || l.increment(Some(Duration::from_millis(1))) as u64)
        };
        let b = {
            let l = l.clone();
            thread::spawn(move || l.try_increment() as u64)
        };
        let mine = l.increment(None) as u64;
        let total = mine + a.join().unwrap() + b.join().unwrap();
        assert_eq!(l.value(), total);
    });
}

/// A waiter sleeping on an event is woken by set and sees what was written before it.
#[test]
fn event_wait_sees_set() {
    model(|| {
        let e = Arc::new(ModelEvent::new());
        let e2 = e.clone();
        let w = thread::spawn(move || e2.wait(None));
        e.publish(5);
        assert_eq!(w.join().unwrap(), Some(5));
    });
}

/// A timed wait racing set: either it saw the event (and the payload), or it timed out.
#[test]
fn event_timed_wait_races_set() {
    model(|| {
        let e = Arc::new(ModelEvent::new());
        let e2 = e.clone();
        let w = thread::spawn(move || e2.wait(Some(Duration::from_millis(1))));
        e.publish(6);
        let r = w.join().unwrap();
        assert!(r.is_none() || r == Some(6));
    });
}

/// A 1-unit semaphore is a mutex: no overlap, no lost update, sleepers woken by release; the
/// bound is enforced.
#[test]
fn semaphore_counts_and_bounds() {
    model(|| {
        let s = Arc::new(ModelSemaphore::new(1, 1));
        let s2 = s.clone();
        let t = thread::spawn(move || assert!(s2.increment(None)));
        assert!(s.increment(None));
        t.join().unwrap();
        assert_eq!(s.data(), 2);
        assert_eq!(s.value(), 1);
        assert_eq!(s.release(), Err(1));
    });
}

/// Two parties, two generations: exactly one leader per generation, nobody passes early.
#[test]
fn barrier_generations_have_one_leader() {
    model(|| {
        let b = Arc::new(ModelBarrier::new(2));
        let b2 = b.clone();
        let t = thread::spawn(move || {
            let first = b2.wait(None).unwrap();
            let second = b2.wait(None).unwrap();
            (first, second)
        });
        let first = b.wait(None).unwrap();
        let second = b.wait(None).unwrap();
        let (f2, s2) = t.join().unwrap();
        assert!(first ^ f2);
        assert!(second ^ s2);
    });
}

/// What each party wrote before its `wait` is visible to every party after it (the barrier's
/// happens-before, as `std::sync::Barrier` gives): plain cells, so a missing edge is a loom
/// data-race report. The leader needs the Acquire of its arrival CAS (the first party's write);
/// the other party the leader's Release (the leader's write).
#[test]
fn barrier_orders_each_partys_writes_before_the_others_reads() {
    use loom::cell::UnsafeCell;
    model(|| {
        let b = Arc::new(ModelBarrier::new(2));
        let cells = Arc::new([UnsafeCell::new(0u64), UnsafeCell::new(0u64)]);
        let (b2, c2) = (b.clone(), cells.clone());
        let t = thread::spawn(move || {
            // SAFETY (model): the barrier orders this write before the other party's read.
            c2[1].with_mut(|p| unsafe { *p = 2 });
            b2.wait(None).unwrap();
            c2[0].with(|p| unsafe { *p })
        });
        cells[0].with_mut(|p| unsafe { *p = 1 });
        b.wait(None).unwrap();
        let seen = cells[1].with(|p| unsafe { *p });
        assert_eq!((seen, t.join().unwrap()), (2, 1));
    });
}

/// Both parties wait with a deadline (under loom it fires at once, at every point): they agree
/// (both pass or both time out), exactly one passing party leads, and a party that passes sees
/// what the other wrote before waiting, including one that finds the generation moved on while
/// withdrawing (its Acquire load is what orders it after the leader).
#[test]
fn barrier_timeouts_racing_the_last_arrival_agree_and_order_writes() {
    use loom::cell::UnsafeCell;
    model(|| {
        let b = Arc::new(ModelBarrier::new(2));
        let cells = Arc::new([UnsafeCell::new(0u64), UnsafeCell::new(0u64)]);
        let (b2, c2) = (b.clone(), cells.clone());
        let t = thread::spawn(move || {
            // SAFETY (model): read only after passing the barrier, which orders the write.
            c2[1].with_mut(|p| unsafe { *p = 2 });
            let r = b2.wait(Some(Duration::from_millis(1)));
            (r, r.is_ok().then(|| c2[0].with(|p| unsafe { *p })))
        });
        cells[0].with_mut(|p| unsafe { *p = 1 });
        let r = b.wait(Some(Duration::from_millis(1)));
        let seen = r.is_ok().then(|| cells[1].with(|p| unsafe { *p }));
        let (r2, seen2) = t.join().unwrap();
        match (r, r2) {
            (Ok(l1), Ok(l2)) => {
                assert!(l1 ^ l2, "one leader");
                assert_eq!((seen, seen2), (Some(2), Some(1)));
            }
            (Err(()), Err(())) => assert_eq!(b.arrived(), 0),
            other => panic!("the parties disagree: {other:?}"),
        }
    });
}

/// A timed-out party withdraws: the barrier still needs a full set afterwards.
#[test]
fn barrier_timeout_withdraws() {
    model(|| {
        let b = Arc::new(ModelBarrier::new(2));
        let b2 = b.clone();
        let t = thread::spawn(move || b2.wait(Some(Duration::from_millis(1))));
        let r = t.join().unwrap();
        assert_eq!(r, Err(()));
        assert_eq!(b.arrived(), 0);
    });
}

/// join() returns only after every put item was task_done'd; a consumer calling task_done races
/// the joiner.
#[test]
fn joinable_join_waits_for_task_done() {
    model(|| {
        let q = Arc::new(ModelJoinable::new(2));
        q.put(1).unwrap();
        q.put(2).unwrap();
        let qc = q.clone();
        let c = thread::spawn(move || {
            for _ in 0..2 {
                qc.get().unwrap();
                qc.task_done().unwrap();
            }
        });
        assert!(q.join(None));
        assert_eq!(q.unfinished(), 0);
        c.join().unwrap();
        assert!(q.task_done().is_err());
    });
}

/// What a consumer did before `task_done` is visible to a joiner once `join` returns (as with
/// `queue.Queue`): a plain cell, so a missing edge is a loom data-race report.
#[test]
fn joinable_join_orders_the_tasks_effects_before_it_returns() {
    use loom::cell::UnsafeCell;
    model(|| {
        let q = Arc::new(ModelJoinable::new(1));
        let cell = Arc::new(UnsafeCell::new(0u64));
        q.put(7).unwrap();
        let (qc, cc) = (q.clone(), cell.clone());
        let c = thread::spawn(move || {
            let v = qc.get().unwrap();
            // SAFETY (model): join returns only after this task_done, which orders the write.
            cc.with_mut(|p| unsafe { *p = v });
            qc.task_done().unwrap();
        });
        assert!(q.join(None));
        assert_eq!(cell.with(|p| unsafe { *p }), 7);
        c.join().unwrap();
    });
}

/// A reader that waits until it sees the element a writer pushes reads it whole: the element is
/// a loom cell, so a publish not ordered after the write (or a look at `ready` not ordered
/// before the read) is a data-race report. (The snapshot model below rarely gets its reader
/// past an unpublished slot; this one spins until it does.)
#[test]
fn list_reader_that_sees_an_element_sees_it_whole() {
    model(|| {
        let l = Arc::new(ModelList::new(1));
        let l2 = l.clone();
        let w = thread::spawn(move || l2.push(10).unwrap());
        // The reader in a thread of its own (loom explores few switches out of the main thread).
        let l3 = l.clone();
        let r = thread::spawn(move || loop {
            let seen = l3.to_vec();
            if !seen.is_empty() {
                assert_eq!(seen, vec![10]);
                break;
            }
            thread::yield_now();
        });
        r.join().unwrap();
        w.join().unwrap();
    });
}

/// Two writers push while a reader snapshots: the reader only ever sees finished elements
/// (loom would report a read of an element being written).
#[test]
fn list_readers_never_see_unfinished_elements() {
    model(|| {
        let l = Arc::new(ModelList::new(2));
        let writers: Vec<_> = (0..2u64)
            .map(|v| {
                let l = l.clone();
                thread::spawn(move || l.push(v + 10).unwrap())
            })
            .collect();
        let seen = l.to_vec();
        assert!(seen.iter().all(|v| *v == 10 || *v == 11));
        for w in writers {
            w.join().unwrap();
        }
        let mut all = l.to_vec();
        all.sort_unstable();
        assert_eq!(all, vec![10, 11]);
        assert_eq!(l.push(12), Err(12));
    });
}

/// fetch_add from two threads, through the native xadd path and the CAS-loop path.
#[test]
fn value_fetch_add_is_atomic() {
    model(|| {
        let v = Arc::new(ModelValue::new(0));
        let v2 = v.clone();
        let t = thread::spawn(move || {
            v2.fetch_add(1);
            v2.fetch_add_i32(1);
        });
        v.fetch_add(1);
        v.fetch_add_i32(1);
        t.join().unwrap();
        assert_eq!(v.load(), 4);
    });
}

use shmq::model::ModelBytesQueue;

/// Byte messages of different lengths through a capacity-1 ring from two producers: each arrives
/// whole (length and payload from the same put; loom would report a torn read as a data race).
#[test]
fn byte_messages_are_never_torn() {
    model(|| {
        let q = Arc::new(ModelBytesQueue::new(1, 4));
        let producers: Vec<_> = [vec![1u8], vec![2u8, 2, 2, 2]]
            .into_iter()
            .map(|m| {
                let q = q.clone();
                thread::spawn(move || q.put(&m).unwrap())
            })
            .collect();
        let mut got = vec![q.get().unwrap(), q.get().unwrap()];
        for p in producers {
            p.join().unwrap();
        }
        got.sort();
        assert_eq!(got, vec![vec![1u8], vec![2u8, 2, 2, 2]]);
    });
}

// ----- crash recovery -----
//
// A thread stands in for a process and dies at a crash point ("put-claimed", "get-claimed": the
// claim CAS won, nothing written), leaving its claim and claim record exactly as a SIGKILL there
// would; only after that last step does the liveness stub report it dead (the real check is per
// process, so a claim of a thread that can still act always reads as live). A blocked waiter under
// loom sleeps without slices, so a waiter that recovers here loops "try, then recover, then yield",
// as a blocked waiter does once per slice. At most one thread of a model loops like this at a time:
// two threads that both yield until a third acts can take turns forever, which loom cannot bound.

use shmq::model::{ModelCrashQueue, ModelRobustLock};

/// Gets by process `p` until the ring reports Closed, recovering a dead producer's claim whenever
/// it finds nothing to take. Returns what it got and how many recoveries it won.
fn drain_recovering(q: &ModelCrashQueue, p: usize) -> (Vec<u64>, u32) {
    let (mut got, mut wins) = (vec![], 0);
    loop {
        match q.try_get(p) {
            Ok(v) => got.push(v),
            Err(Outcome::WouldBlock) => {
                if q.recover(Which::Get) {
                    wins += 1;
                } else {
                    thread::yield_now();
                }
            }
            Err(Outcome::Closed) => return (got, wins),
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
}

/// A producer dies holding a claim while a live producer puts a message (behind the dead claim or
/// ahead of it). Two consumers drain until the ring (closed once both producers are done) reports
/// Closed, which it can only do once the dead position is settled: one recovers once (one slice)
/// and then sleeps in a blocking get (which itself recovers when it finds the head held, before
/// it sleeps), relying on the wake-ups of the publish, the recovery and close; the other (the live
/// producer's process, once its put is in and the death is certain) recovers whenever it finds
/// nothing (every slice). Exactly one recovery wins (the tombstone count counts every recovery,
/// wherever it ran), the message is delivered exactly once, and neither consumer stays stuck.
#[test]
fn dead_producer_claim_is_tombstoned_exactly_once() {
    model(|| {
        // Processes: 0 dies putting, 1 (this thread) puts then consumes, 2 consumes.
        let q = Arc::new(ModelCrashQueue::new(2, 3));
        let dying = {
            let q = q.clone();
            thread::spawn(move || q.put_and_die(0, 100))
        };
        let sleeper = {
            let q = q.clone();
            thread::spawn(move || {
                let wins = q.recover(Which::Get) as u32;
                let mut got = vec![];
                loop {
                    match q.get(2) {
                        Ok(v) => got.push(v),
                        Err(Outcome::Closed) => return (got, wins),
                        Err(e) => panic!("unexpected {e:?}"),
                    }
                }
            })
        };
        q.try_put(1, 7).unwrap();
        assert_eq!(dying.join().unwrap(), Ok(()));
        q.close();
        let (mut got, mut wins) = drain_recovering(&q, 1);
        let (g, w) = sleeper.join().unwrap();
        got.extend(g);
        wins += w;
        assert_eq!(got, vec![7]);
        assert!(wins <= 1);
        assert_eq!(q.tombstones(), 1);
        assert_eq!(q.lost(), 0);
    });
}

/// A slow but live producer (claimed, not yet published) races a consumer that recovers whenever
/// it finds nothing: a live claimant's position is never tombstoned, and its message arrives.
#[test]
fn live_producer_claim_is_never_tombstoned() {
    model(|| {
        // Processes: 0 puts, 1 consumes.
        let q = Arc::new(ModelCrashQueue::new(1, 2));
        let producer = {
            let q = q.clone();
            thread::spawn(move || q.try_put(0, 7))
        };
        let got = loop {
            match q.try_get(1) {
                Ok(v) => break v,
                Err(Outcome::WouldBlock) => {
                    assert!(
                        !q.recover(Which::Get),
                        "a live producer's claim was recovered"
                    );
                    thread::yield_now();
                }
                Err(e) => panic!("unexpected {e:?}"),
            }
        };
        assert_eq!(producer.join().unwrap(), Ok(()));
        assert_eq!(got, 7);
        assert_eq!(q.tombstones(), 0);
        assert_eq!(q.try_get(1), Err(Outcome::WouldBlock));
    });
}

/// A consumer dies holding the only slot of a full capacity-1 ring (claimed, never released)
/// while a producer blocked on the full ring recovers whenever it finds no room, and a second
/// recoverer acts once the death is certain: exactly one release, one message counted lost, and
/// the producer's put then goes in.
#[test]
fn dead_consumer_slot_is_released_exactly_once() {
    model(|| {
        // Processes: 0 dies getting, 1 puts, 2 is this thread.
        let q = Arc::new(ModelCrashQueue::new(1, 3));
        q.try_put(2, 5).unwrap();
        let dying = {
            let q = q.clone();
            thread::spawn(move || q.get_and_die(0))
        };
        let producer = {
            let q = q.clone();
            thread::spawn(move || {
                let mut wins = 0u32;
                loop {
                    match q.try_put(1, 6) {
                        Ok(()) => return wins,
                        Err(Outcome::WouldBlock) => {
                            if q.recover(Which::Put) {
                                wins += 1;
                            } else {
                                thread::yield_now();
                            }
                        }
                        Err(e) => panic!("unexpected {e:?}"),
                    }
                }
            })
        };
        assert_eq!(dying.join().unwrap(), Ok(()));
        let mine = q.recover(Which::Put) as u32;
        let theirs = producer.join().unwrap();
        assert_eq!(mine + theirs, 1);
        assert_eq!(q.lost(), 1);
        assert_eq!(q.tombstones(), 0);
        assert_eq!(q.try_get(2), Ok(6));
        assert_eq!(q.try_get(2), Err(Outcome::WouldBlock));
    });
}

/// A process dies after writing its record for position 0 but before its claim CAS, so its stale
/// record names position 0; then a thread without a record (a full participant table) claims
/// position 0 and publishes slowly, while a consumer recovers whenever it finds nothing. The dead
/// record names the position, yet the claim is live: it is never tombstoned, and the message
/// arrives.
#[test]
fn unattributed_put_under_a_stale_dead_record_is_never_tombstoned() {
    model(|| {
        // Processes: 0 died after recording, 1 consumes; the producer has no record.
        let q = Arc::new(ModelCrashQueue::new(1, 2));
        q.record_and_die(0, Which::Put, 0);
        let producer = {
            let q = q.clone();
            thread::spawn(move || q.try_put_unattributed(7))
        };
        let got = get_never_recovering(&q, 1);
        assert_eq!(producer.join().unwrap(), Ok(()));
        assert_eq!(got, 7);
        assert_eq!(q.tombstones(), 0);
        assert_eq!(q.try_put(1, 8), Ok(()));
        assert_eq!(q.try_get(1), Ok(8));
    });
}

/// As `unattributed_put_under_a_stale_dead_record_is_never_tombstoned`, with a recoverer that
/// copies the payload of a position it judges abandoned (as a byte queue with long messages
/// does): the copy may only read a payload that the unattributed producer has finished writing,
/// so a recoverer that finds the unattributed count back at 0 must also see that producer's
/// writes (the count's Acquire load, pairing with the Release decrement after the publish).
#[test]
fn copying_recovery_never_reads_a_payload_an_unattributed_producer_is_writing() {
    // Processes: 0 died after recording, 1 consumes; the producer has no record.
    copying_recovery_delivers_a_live_producers_put(2, 1, |q| q.try_put_unattributed(7));
}

/// As `copying_recovery_never_reads_a_payload_an_unattributed_producer_is_writing`, with a
/// producer that has a record (process 1): a recoverer whose scan reads that record already
/// cleared must also see the publish and the payload written before it (the Release fence
/// before the record is cleared, pairing with the Acquire fence of `claim_is_dead`), so its copy
/// never reads the payload while it is written.
#[test]
fn copying_recovery_never_reads_a_payload_a_recorded_producer_is_writing() {
    // Processes: 0 died after recording, 1 puts, 2 consumes.
    copying_recovery_delivers_a_live_producers_put(3, 2, |q| q.try_put(1, 7));
}

/// The body of the two models above: in a capacity-1 copying queue of `procs` processes,
/// process 0 died leaving a record naming position 0 for a put; `put` puts 7 from a thread of
/// its own while process `consumer` gets, trying to recover whenever it finds nothing. The 7
/// arrives, nothing is tombstoned, and loom reports any copy racing the payload's write.
fn copying_recovery_delivers_a_live_producers_put(
    procs: usize,
    consumer: usize,
    put: fn(&ModelCrashQueue) -> Result<(), Outcome>,
) {
    model(move || {
        let q = Arc::new(ModelCrashQueue::copying(1, procs));
        q.record_and_die(0, Which::Put, 0);
        let producer = {
            let q = q.clone();
            thread::spawn(move || put(&q))
        };
        let getter = {
            let q = q.clone();
            thread::spawn(move || get_never_recovering(&q, consumer))
        };
        assert_eq!(producer.join().unwrap(), Ok(()));
        assert_eq!(getter.join().unwrap(), 7);
        assert_eq!(q.tombstones(), 0);
    });
}

/// As `copying_recovery_never_reads_a_payload_a_recorded_producer_is_writing`, with a producer
/// whose writer panics after writing: the claim guard makes the position a tombstone and then
/// clears the record behind a Release fence, so a recoverer that reads the record cleared never
/// copies the payload while it is written (and never counts a second tombstone).
#[test]
fn copying_recovery_never_reads_a_payload_a_panicking_producer_wrote() {
    model(|| {
        // Processes: 0 died after recording, 1 puts and panics, 2 consumes.
        let q = Arc::new(ModelCrashQueue::copying(1, 3));
        q.record_and_die(0, Which::Put, 0);
        let producer = {
            let q = q.clone();
            thread::spawn(move || q.try_put_and_panic(1, 7))
        };
        let consumer = {
            let q = q.clone();
            thread::spawn(move || loop {
                match q.try_get(2) {
                    Ok(v) => panic!("the panicking put delivered {v}"),
                    Err(Outcome::WouldBlock) => {
                        assert!(!q.recover(Which::Get), "a live claim was tombstoned");
                        if q.tombstones() == 1 {
                            break;
                        }
                        thread::yield_now();
                    }
                    Err(e) => panic!("unexpected {e:?}"),
                }
            })
        };
        assert!(producer.join().unwrap());
        consumer.join().unwrap();
        assert_eq!(q.tombstones(), 1);
        // A get steps over the tombstone (if the consumer's last one did not), freeing the slot.
        assert_eq!(q.try_get(2), Err(Outcome::WouldBlock));
        assert_eq!(q.try_put(1, 8), Ok(()));
        assert_eq!(q.try_get(2), Ok(8));
    });
}

/// A producer dies holding position 0 of a capacity-1 ring; a recoverer that copies what the
/// dead claim left (as a byte queue with long messages does) turns it into a tombstone; another
/// process steps over the tombstone with a get, which frees the slot, and then writes the slot's
/// next lap with a put. The tombstone CAS's Release half orders the copy before that write,
/// through the get's Acquire look at the stamp. (Loom does not fail with that half removed: its
/// SeqCst fences synchronize with every earlier SeqCst fence, stronger than the memory model,
/// and the recoverer's `after_put` and the getter's `after_get` each issue one between; see
/// docs/testing.md.)
#[test]
fn a_copying_recoverers_read_happens_before_the_next_lap_is_written() {
    model(|| {
        // Processes: 0 dies putting, 1 recovers, 2 gets and then puts.
        let q = Arc::new(ModelCrashQueue::copying(1, 3));
        assert_eq!(q.put_and_die(0, 5), Ok(()));
        let recoverer = {
            let q = q.clone();
            thread::spawn(move || q.recover(Which::Get))
        };
        let other = {
            let q = q.clone();
            thread::spawn(move || loop {
                // Nothing was ever published: a get finds nothing, or steps over the tombstone.
                assert_eq!(q.try_get(2), Err(Outcome::WouldBlock));
                match q.try_put(2, 9) {
                    Ok(()) => break,
                    Err(Outcome::WouldBlock) => thread::yield_now(),
                    Err(e) => panic!("unexpected {e:?}"),
                }
            })
        };
        assert!(recoverer.join().unwrap());
        other.join().unwrap();
        assert_eq!(q.try_get(2), Ok(9));
        assert_eq!(q.tombstones(), 1);
    });
}

/// A live producer notes itself a producer of an empty ring while a getter asks whether it is
/// disconnected: never, since the producer lives. A getter that sees the producers flag must also
/// see the producer's own bit (the flag's Acquire load pairs with `note_producer`'s Release
/// `fetch_or`), or it would count no live producer and report the ring disconnected.
#[test]
fn a_getter_that_sees_the_producers_flag_sees_the_live_producer() {
    model(|| {
        // Processes: 0 puts (and lives), 1 gets.
        let q = Arc::new(ModelCrashQueue::tracking_producers(1, 2));
        let producer = {
            let q = q.clone();
            thread::spawn(move || q.note_producer(0))
        };
        let getter = {
            let q = q.clone();
            thread::spawn(move || q.disconnected())
        };
        producer.join().unwrap();
        assert!(
            !getter.join().unwrap(),
            "a live producer was taken for gone"
        );
        assert!(!q.disconnected());
    });
}

/// A consumer with a record (process 2) claims the only message and reads it, while a dead
/// process's stale record (process 0) names the same position for a get, and a producer on the
/// full ring recovers whenever it finds no room. The recoverer's Acquire load of `head` pairs
/// with the consumer's claim CAS, so its scan sees the live record and leaves the slot alone: it
/// is never released under the reader (no message counted lost, no write racing the read).
#[test]
fn a_live_consumers_record_keeps_its_claim_from_a_stale_dead_record() {
    model(|| {
        // Processes: 0 died after recording, 1 puts, 2 gets.
        let q = Arc::new(ModelCrashQueue::new(1, 3));
        q.try_put(1, 5).unwrap();
        q.record_and_die(0, Which::Get, 0);
        let consumer = {
            let q = q.clone();
            thread::spawn(move || q.try_get(2))
        };
        let producer = {
            let q = q.clone();
            thread::spawn(move || loop {
                match q.try_put(1, 6) {
                    Ok(()) => break,
                    Err(Outcome::WouldBlock) => {
                        assert!(
                            !q.recover(Which::Put),
                            "a live consumer's claim was released"
                        );
                        thread::yield_now();
                    }
                    Err(e) => panic!("unexpected {e:?}"),
                }
            })
        };
        assert_eq!(consumer.join().unwrap(), Ok(5));
        producer.join().unwrap();
        assert_eq!(q.lost(), 0);
        assert_eq!(q.try_get(1), Ok(6));
    });
}

/// As above for a get: a dead process's stale record names position 0 for a get, a thread
/// without a record claims that message and reads it slowly, and a producer blocked on the full
/// capacity-1 ring recovers whenever it finds no room. The slot is never released under the
/// reader (no lost message, no torn read), and the producer's put goes in after it.
#[test]
fn unattributed_get_under_a_stale_dead_record_is_never_released() {
    model(|| {
        // Processes: 0 died after recording, 1 puts; the consumer has no record.
        let q = Arc::new(ModelCrashQueue::new(1, 2));
        q.try_put(1, 5).unwrap();
        q.record_and_die(0, Which::Get, 0);
        let consumer = {
            let q = q.clone();
            thread::spawn(move || q.try_get_unattributed())
        };
        loop {
            match q.try_put(1, 6) {
                Ok(()) => break,
                Err(Outcome::WouldBlock) => {
                    assert!(
                        !q.recover(Which::Put),
                        "a live unattributed claim was released"
                    );
                    thread::yield_now();
                }
                Err(e) => panic!("unexpected {e:?}"),
            }
        }
        assert_eq!(consumer.join().unwrap(), Ok(5));
        assert_eq!(q.lost(), 0);
        assert_eq!(q.try_get(1), Ok(6));
    });
}

/// An owner dies holding the robust lock while two contenders wait: one sleeps in slices and
/// checks the owner after each, the other checks after one slice and then sleeps on the word until
/// woken. Exactly one takes the lock over (told OwnerDead); each unlocks without declaring the data
/// consistent, so the other, taking it normally, is told OwnerDead too, and so is every later owner
/// until one unlocks consistent. Loom checks that the protected counter is never accessed by two
/// owners at once, nor by the taker before the dead owner's write, and that no waiter is left
/// asleep.
#[test]
fn dead_lock_owner_is_taken_over_exactly_once() {
    model(|| {
        let l = Arc::new(ModelRobustLock::new());
        let owner = {
            let l = l.clone();
            thread::spawn(move || {
                assert_eq!(l.try_lock(), Some(false));
                // The contenders start while it holds the lock; it writes the protected data
                // (ordered before the taker's access only through its death) and dies holding it.
                let contenders: Vec<_> = [true, false]
                    .into_iter()
                    .map(|every_slice| {
                        let l = l.clone();
                        thread::spawn(move || {
                            let owner_dead = if every_slice {
                                l.lock_and_increment()
                            } else {
                                match l.lock_one_slice_and_increment() {
                                    Some(owner_dead) => owner_dead,
                                    None => l.lock_blocking_and_increment(),
                                }
                            };
                            l.unlock(false);
                            owner_dead
                        })
                    })
                    .collect();
                l.increment();
                l.die();
                contenders
            })
        };
        for c in owner.join().unwrap() {
            assert!(c.join().unwrap(), "an owner after the death was not told");
        }
        assert_eq!(l.takeovers(), 1);
        assert_eq!(l.value(), 3);
        assert_eq!(l.try_lock_and_increment(), Some(true));
        l.unlock(true);
        assert_eq!(l.try_lock_and_increment(), Some(false));
        l.unlock(true);
        assert!(!l.is_locked());
    });
}

// ----- Versioned: two copies and a version -----

use shmq::model::ModelVersioned;

/// Checks one read of a model `Versioned` whose writes are `[n, n]` at version n: whole, and the
/// value the version names. Returns the version.
fn check_whole(x: &ModelVersioned) -> u64 {
    let (value, version) = x.load();
    assert_eq!(
        value,
        [version, version],
        "torn or mislabelled read at version {version}"
    );
    version
}

/// A writer publishes twice, so its second write reuses the copy the initial value was in, while
/// a reader reads twice without the lock: every read is whole and is the value its version names,
/// and versions never go back.
#[test]
fn versioned_reader_never_sees_a_torn_value() {
    model(|| {
        let x = Arc::new(ModelVersioned::new([0, 0]));
        let writer = {
            let x = x.clone();
            thread::spawn(move || {
                x.store([1, 1]);
                x.store([2, 2]);
            })
        };
        let first = check_whole(&x);
        let second = check_whole(&x);
        assert!(second >= first);
        writer.join().unwrap();
        assert_eq!(check_whole(&x), 2);
    });
}

/// A writer dies holding the lock with half of its value written into the inactive copy, while a
/// reader reads and a second writer waits for the lock slice by slice: the reader never sees any
/// of the dead writer's words. Whichever writer takes the lock first, one later write takes the
/// lock over from the dead one, exactly once, and publishes its value whole (the main thread
/// writes last, so that one exists even when the second writer got the lock first).
#[test]
fn versioned_writer_killed_mid_write_is_never_seen_and_is_taken_over() {
    model(|| {
        let x = Arc::new(ModelVersioned::new([0, 0]));
        let dying = {
            let x = x.clone();
            thread::spawn(move || x.store_and_die([9, 9]))
        };
        let taker = {
            let x = x.clone();
            thread::spawn(move || x.store_taking_over([1, 1]))
        };
        let seen = check_whole(&x);
        assert!(seen <= 1);
        dying.join().unwrap();
        taker.join().unwrap();
        assert_eq!(check_whole(&x), 1);
        x.store_taking_over([2, 2]);
        assert_eq!(check_whole(&x), 2);
        assert_eq!(x.takeovers(), 1);
    });
}

/// crossbeam's `linearizable` on the smallest case: two threads each put one value, one of them
/// then takes one with the non-blocking get. Its own put returned before it, so the queue is never
/// empty during its call, and it must get a value even when the other put has claimed the head
/// position and not published it yet (it waits for that publish; a lost wake-up would be a
/// deadlock here, since the wait has no bound under loom). Both run in spawned threads, so that
/// the main thread's join gives loom a free switch into the racy order.
#[test]
fn try_get_waits_for_a_put_in_flight_and_never_reports_empty() {
    model(|| {
        let q = Arc::new(ModelQueue::new(2));
        let other = {
            let q = q.clone();
            thread::spawn(move || q.try_put(1))
        };
        let getter = {
            let q = q.clone();
            thread::spawn(move || {
                q.try_put(2).unwrap();
                q.try_get_now()
            })
        };
        assert_eq!(other.join().unwrap(), Ok(()));
        let got = getter
            .join()
            .unwrap()
            .expect("try_get found a queue holding a value empty");
        let rest = q.try_get_now().unwrap();
        let mut both = [got, rest];
        both.sort_unstable();
        assert_eq!(both, [1, 2]);
        assert_eq!(q.try_get_now(), Err(Outcome::WouldBlock));
    });
}

/// The mirror for puts: a capacity-1 queue's message is claimed by a consumer that has not
/// released its slot yet. Once the consumer's claim shows (the queue is empty), the non-blocking
/// put must succeed: it waits for the release instead of reporting a full queue.
#[test]
fn try_put_waits_for_a_get_in_flight_and_never_reports_full() {
    model(|| {
        let q = Arc::new(ModelQueue::new(1));
        q.try_put(1).unwrap();
        let consumer = {
            let q = q.clone();
            thread::spawn(move || q.try_get())
        };
        // The producer in a thread of its own, as in `try_put_recovers_a_dead_consumers_claim`.
        let producer = {
            let q = q.clone();
            thread::spawn(move || {
                while !q.is_empty() {
                    thread::yield_now();
                }
                q.try_put_now(2)
            })
        };
        producer
            .join()
            .unwrap()
            .expect("try_put found an empty queue full");
        assert_eq!(consumer.join().unwrap(), Ok(1));
        assert_eq!(q.try_get_now(), Ok(2));
    });
}

/// `len` returns a length the queue had. The queue starts with two messages; one thread gets,
/// puts, gets, puts (lengths 2, 1, 2, 1, 2), so it is never empty and never holds three, and a
/// concurrent `len` must say 1 or 2. Reading `tail` once and `head` once would not do: a `tail`
/// read at the start and a `head` read after both gets give 0. `len` re-reads `tail` until it did
/// not move across the `head` read (without that retry this model fails), and its three loads
/// are Acquire: a `tail` read that a claim wrote makes the `head` read after it at least what that
/// claimant saw, and vice versa. Weakening any one of them to Relaxed fails this model (`len()
/// said 0`). The reader is a spawned thread: loom explores no switch out of the main thread before
/// its first join, and with `len` on the main thread this model ran one interleaving.
#[test]
fn len_never_reports_a_length_the_queue_never_had() {
    model(|| {
        let q = Arc::new(ModelQueue::new(4));
        q.try_put(1).unwrap();
        q.try_put(2).unwrap();
        let worker = {
            let q = q.clone();
            thread::spawn(move || {
                for v in [3, 4] {
                    q.try_get().unwrap();
                    q.try_put(v).unwrap();
                }
            })
        };
        let reader = {
            let q = q.clone();
            thread::spawn(move || q.len())
        };
        worker.join().unwrap();
        let seen = reader.join().unwrap();
        assert!(
            (1..=2).contains(&seen),
            "len() said {seen}; the queue always held 1 or 2"
        );
        assert_eq!(q.len(), 2);
    });
}

/// A producer dies between its claim and its publish: a consumer polling with the non-blocking
/// get (which never sleeps a recovery slice) still recovers the dead claim and gets the message
/// behind it, and a live claimant is never tombstoned (the dying thread counts as alive until its
/// last step).
#[test]
fn try_get_recovers_a_dead_producers_claim() {
    model(|| {
        // Processes: 0 dies putting, 1 (this thread) puts and then polls.
        let q = Arc::new(ModelCrashQueue::new(2, 2));
        let dying = {
            let q = q.clone();
            thread::spawn(move || q.put_and_die(0, 100))
        };
        q.try_put(1, 7).unwrap();
        assert_eq!(q.try_get_now(1), Ok(7));
        assert_eq!(dying.join().unwrap(), Ok(()));
        // The dead claim, whichever position it took, is settled by the next poll at the latest.
        assert_eq!(q.try_get_now(1), Err(Outcome::WouldBlock));
        assert_eq!(q.tombstones(), 1);
    });
}

/// Recovery that copies the payload a dead consumer held (as a byte queue with long messages
/// does, to free the message's heap block) releases the slot with a Release CAS: a producer
/// that then reuses the slot writes after the copy (a race on the payload fails the model).
#[test]
fn recovery_copies_a_dead_consumers_payload_before_the_slot_is_reused() {
    model(|| {
        // Processes: 0 dies getting, 1 recovers, 2 (this thread) puts.
        let q = Arc::new(ModelCrashQueue::copying(1, 3));
        q.try_put(2, 5).unwrap();
        assert_eq!(q.get_and_die(0), Ok(()));
        let recoverer = {
            let q = q.clone();
            thread::spawn(move || q.recover(Which::Put))
        };
        // The producer in a thread of its own, so that loom switches between it and the
        // recoverer at every step.
        let producer = {
            let q = q.clone();
            thread::spawn(move || put_when_room(|| q.try_put(2, 6)))
        };
        producer.join().unwrap();
        assert!(recoverer.join().unwrap());
        assert_eq!(q.lost(), 1);
        assert_eq!(q.try_get(2), Ok(6));
    });
}

/// A consumer dies holding the only slot of a capacity-1 queue: a producer using the
/// non-blocking put recovers the slot (one message counted lost) instead of reporting a full
/// queue.
#[test]
fn try_put_recovers_a_dead_consumers_claim() {
    model(|| {
        // Processes: 0 dies getting, 1 (this thread) puts.
        let q = Arc::new(ModelCrashQueue::new(1, 2));
        q.try_put(1, 7).unwrap();
        let dying = {
            let q = q.clone();
            thread::spawn(move || q.get_and_die(0))
        };
        // The producer in a thread of its own (loom explores few switches out of the main thread).
        let producer = {
            let q = q.clone();
            thread::spawn(move || {
                while !q.is_empty() {
                    thread::yield_now();
                }
                q.try_put_now(1, 8)
            })
        };
        producer
            .join()
            .unwrap()
            .expect("try_put found an empty queue full");
        assert_eq!(dying.join().unwrap(), Ok(()));
        assert_eq!(q.lost(), 1);
        assert_eq!(q.try_get_now(1), Ok(8));
    });
}

/// The deliberately broken build (`--cfg shmq_loom_broken` weakens the producer's publish store
/// from Release to Relaxed): loom must report that the consumer reads the payload without a
/// happens-before edge to the producer's write, so this test is *expected to fail* with loom's
/// "Causality violation". Loom aborts the process on it (a panic while unwinding), which
/// `should_panic` cannot catch, so `.ci/run` runs it as its own step and requires the failure.
#[cfg(shmq_loom_broken)]
#[test]
fn broken_publish_ordering_tears_the_payload() {
    model(|| {
        let q = Arc::new(ModelQueue::new(2));
        let q2 = q.clone();
        let p = thread::spawn(move || q2.put(7, None).unwrap());
        assert_eq!(q.get(None), Ok(7));
        p.join().unwrap();
    });
}

// ----- Condition: no lost notify -----

use shmq::model::ModelCondition;

/// A waiter waits for the flag while a notifier raises it and notifies one: whatever the
/// interleaving (the notify before the waiter's look, between its registration and its sleep,
/// or while it sleeps), the waiter finishes. A lost notify would leave it asleep: a deadlock.
#[test]
fn condition_notify_is_never_lost() {
    model(|| {
        let c = Arc::new(ModelCondition::new());
        let waiter = {
            let c = c.clone();
            thread::spawn(move || c.wait_for(1))
        };
        c.raise_and_notify(1);
        waiter.join().unwrap();
    });
}

/// Two waiters for the same flag and two raises, each notifying one: both finish. (Waiters for
/// *different* conditions need `notify_all`: a notify of one can wake a waiter whose condition is
/// still false, which then sleeps again, as with any condition variable; the next model.)
#[test]
fn condition_two_waiters_two_notifies_both_finish() {
    model(|| {
        let c = Arc::new(ModelCondition::new());
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let c = c.clone();
                thread::spawn(move || c.wait_for(1))
            })
            .collect();
        c.raise_and_notify(1);
        c.raise_and_notify(1);
        for w in waiters {
            w.join().unwrap();
        }
    });
}

/// Waiters for different conditions (flag ≥ 1, flag ≥ 2) and two raises that notify all: both
/// finish.
#[test]
fn condition_notify_all_reaches_waiters_of_different_conditions() {
    model(|| {
        let c = Arc::new(ModelCondition::new());
        let waiters: Vec<_> = (1..=2)
            .map(|k| {
                let c = c.clone();
                thread::spawn(move || c.wait_for(k))
            })
            .collect();
        c.raise_and_notify(u32::MAX);
        c.raise_and_notify(u32::MAX);
        for w in waiters {
            w.join().unwrap();
        }
    });
}

/// A timed wait races a notify: the waiter returns either way (woken, or timed out with the
/// flag raised or not), its registration is withdrawn, and a later waiter is still woken by a
/// later notify (a timed-out waiter leaves nothing that swallows the next one).
#[test]
fn condition_timeout_racing_a_notify_leaves_the_condition_working() {
    model(|| {
        let c = Arc::new(ModelCondition::new());
        let waiter = {
            let c = c.clone();
            thread::spawn(move || c.wait_for_timeout(1))
        };
        c.raise_and_notify(1);
        let _ = waiter.join().unwrap();
        assert_eq!(c.waiters(), 0);
        let second = {
            let c = c.clone();
            thread::spawn(move || c.wait_for(2))
        };
        c.raise_and_notify(1);
        second.join().unwrap();
    });
}

// ---- The shared heap (`crate::heap`, over loom atomics) ----

/// A model of the heap: its control block has hundreds of words (free lists by class), so a run
/// makes more loads than loom's default branch bound allows.
fn model_heap(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(b.preemption_bound.unwrap_or(2).max(2));
    b.max_branches = 100_000;
    check_counted(b, f);
}

/// Two threads allocate at once (one lock serialises them): distinct, non-overlapping blocks,
/// and the heap's invariants hold before and after both are freed.
#[test]
fn heap_concurrent_allocations_never_overlap() {
    model_heap(|| {
        let h = Arc::new(shmq::model::ModelHeap::new(256, 256, 2));
        let t = {
            let h = h.clone();
            thread::spawn(move || h.alloc(64, 1).expect("room for two"))
        };
        let b = h.alloc(64, 0).expect("room for two");
        let a = t.join().unwrap();
        assert!(a.abs_diff(b) >= 96, "blocks {a} and {b} overlap");
        assert_eq!(h.check(), Ok((192, 2)));
        assert!(h.free(a) && h.free(b));
        assert_eq!(h.check(), Ok((0, 0)));
    });
}

/// An allocator killed holding the heap lock in the middle of a split (the remainder's header
/// written, the block not yet shrunk): the next allocator takes the lock over, rebuilds, and the
/// heap is whole, with nothing held by the dead thread.
#[test]
fn heap_allocator_killed_mid_split_leaves_a_usable_heap() {
    model_heap(|| {
        let h = Arc::new(shmq::model::ModelHeap::new(256, 256, 2));
        let t = {
            let h = h.clone();
            thread::spawn(move || h.alloc_and_die(64, 1))
        };
        let b = h.alloc(64, 0);
        t.join().unwrap();
        let b = b.expect("the dead allocator holds nothing");
        let c = h.alloc(64, 0).expect("room for a second");
        assert!(b.abs_diff(c) >= 96);
        assert!(h.free(b) && h.free(c));
        assert_eq!(h.check(), Ok((0, 0)));
    });
}

/// A consumer's take of a queued block races recovery giving the same position up: exactly one
/// of them frees it (no double free, no leak).
#[test]
fn heap_take_and_abandon_free_a_queued_block_exactly_once() {
    model_heap(|| {
        let h = Arc::new(shmq::model::ModelHeap::new(256, 256, 2));
        let b = h.alloc(64, 0).unwrap();
        h.hand_over(b, 5);
        let t = {
            let h = h.clone();
            thread::spawn(move || {
                if h.take(b, 64, 1) {
                    assert!(h.free(b), "the taker's free failed");
                }
            })
        };
        h.abandon(b, 5);
        t.join().unwrap();
        assert_eq!(h.check(), Ok((0, 0)));
    });
}

/// A thread dies holding a block while another holds one too: a sweep gives back the dead
/// holder's block only.
#[test]
fn heap_sweep_frees_only_a_dead_holders_block() {
    model_heap(|| {
        let h = Arc::new(shmq::model::ModelHeap::new(256, 256, 2));
        let t = {
            let h = h.clone();
            thread::spawn(move || {
                h.alloc(64, 1).expect("room");
                h.die(1);
            })
        };
        let mine = h.alloc(64, 0).expect("room");
        t.join().unwrap();
        assert_eq!(h.stats(), (96, 1));
        assert!(h.free(mine));
        assert_eq!(h.check(), Ok((0, 0)));
    });
}

/// Two threads that both need the heap to grow (one page each): each growth is made once, under
/// the lock, and both blocks fit.
#[test]
fn heap_concurrent_growths_both_fit() {
    model_heap(|| {
        let h = Arc::new(shmq::model::ModelHeap::new(64, 8192, 2));
        let t = {
            let h = h.clone();
            thread::spawn(move || h.alloc(1000, 1).expect("growth"))
        };
        let b = h.alloc(1000, 0).expect("growth");
        let a = t.join().unwrap();
        assert!(a.abs_diff(b) >= 1024);
        assert!(h.free(a) && h.free(b));
        assert_eq!(h.check(), Ok((0, 0)));
    });
}

/// A getter's reader panics after reading the value: the claim guard releases the slot while
/// unwinding, and a producer then reuses the slot. The guard's Release store orders the
/// reader's read of the payload before the producer's overwrite (a race on the payload fails the
/// model), as a normal release does.
#[test]
fn a_reader_that_panics_releases_its_slot_after_its_read() {
    model(|| {
        let q = Arc::new(ModelQueue::new(1));
        q.try_put(1).unwrap();
        let t = {
            let q = q.clone();
            thread::spawn(move || q.try_get_and_panic())
        };
        // Spin until the slot is free (the reader released it), then reuse it; in a thread of
        // its own (loom explores few switches out of the main thread).
        let p = {
            let q = q.clone();
            thread::spawn(move || put_when_room(|| q.try_put(2)))
        };
        p.join().unwrap();
        assert_eq!(t.join().unwrap(), Ok(1));
        assert_eq!(q.try_get(), Ok(2));
    });
}

/// A put whose writer panics is tombstoned while unwinding, and is no task; a joiner that counts
/// that tombstone counts the position it stands for too (the tombstone count is raised with
/// Release, which its Acquire read pairs with), so the one real task stays unfinished. Fails
/// with the claim guard's increment or `counted_puts`' load of the count weakened to Relaxed.
#[test]
fn joinable_counts_a_panicking_puts_tombstone_with_its_position() {
    model(|| {
        let j = Arc::new(ModelJoinable::new(2));
        j.put(10).unwrap();
        let t = {
            let j = j.clone();
            thread::spawn(move || j.put_and_panic())
        };
        // The joiner's count in a thread of its own: loom switches freely between spawned
        // threads (see `len_never_reports_a_length_the_queue_never_had`).
        let joiner = {
            let j = j.clone();
            thread::spawn(move || j.unfinished())
        };
        t.join().unwrap();
        let seen = joiner.join().unwrap();
        assert!(
            seen >= 1,
            "the task put before was counted done ({seen} unfinished)"
        );
        assert_eq!(j.unfinished(), 1);
    });
}

// ---- Unbounded queues (`crate::chain`: links of one slot each) ----

/// A producer notes itself on link 0 of an unbounded queue (a thread about to put); a second
/// producer fills link 0 and steps to link 1, which carries link 0's producers flag over; a
/// getter asks whether the tail link is disconnected. Never, as the first producer lives: a
/// getter that sees the carried flag on link 1 must also see that producer's bit (the step's
/// Acquire load of link 0's flag pairs with `note_producer`'s Release, and the install CAS
/// passes it on). (Written for that Acquire, chain/mod.rs `advance`; it passes with the load
/// Relaxed, up to 3 preemptions: something else on the model's path orders the bit before the
/// getter, not found yet. See docs/testing.md.)
#[test]
fn a_producers_flag_carried_to_the_next_link_brings_the_producer_with_it() {
    model(|| {
        // Processes: 0 notes itself (and lives), 1 puts without noting itself.
        let q = Arc::new(shmq::model::ModelChain::tracking_producers(4, 2));
        let first = {
            let q = q.clone();
            thread::spawn(move || q.note_producer(0))
        };
        let second = {
            let q = q.clone();
            thread::spawn(move || {
                // Link 0 has one slot: the second put steps to link 1.
                q.put(2).unwrap();
                q.put(3).unwrap();
            })
        };
        let getter = {
            let q = q.clone();
            thread::spawn(move || q.disconnected())
        };
        first.join().unwrap();
        second.join().unwrap();
        assert!(
            !getter.join().unwrap(),
            "a live producer was taken for gone"
        );
    });
}

/// A producer puts three values while a consumer gets them: every put moves to a new link
/// (seal, install, tail CAS), the consumer retires drained links and frees them (or helps a
/// producer that sealed a link but has not moved the tail yet). Each value arrives once, in
/// order, and no freed link is touched (a touch fails the model). Once nobody announces them,
/// the links behind the head are freed at the next retire.
#[test]
fn chain_link_step_delivers_in_order_and_frees_behind_the_head() {
    model(|| {
        let q = Arc::new(shmq::model::ModelChain::new(2));
        let p = {
            let q = q.clone();
            thread::spawn(move || {
                let mut put = 0;
                for v in 0..3u64 {
                    // The table holds two links: a third waits for the consumer to drain one.
                    put_when_room(|| q.put(v));
                    put += 1;
                }
                put
            })
        };
        let mut got = Vec::new();
        while got.len() < 3 {
            match q.try_get() {
                Ok(v) => got.push(v),
                Err(Outcome::WouldBlock) => thread::yield_now(),
                Err(e) => panic!("get: {e:?}"),
            }
        }
        assert_eq!(p.join().unwrap(), 3);
        assert_eq!(got, vec![0, 1, 2]);
        assert_eq!(q.try_get(), Err(Outcome::WouldBlock));
        // A link retired while the producer still announced it is freed at the next retire:
        // two more puts move to a new link, and getting them retires the last one.
        q.put(3).unwrap();
        q.put(4).unwrap();
        assert_eq!((q.try_get(), q.try_get()), (Ok(3), Ok(4)));
        let (freed, head, allocated) = q.links();
        assert_eq!(freed, head, "links behind the head left unfreed");
        assert!(allocated >= 3 && head >= 2);
    });
}

/// Two producers race to install the same next link: one CAS wins, the loser frees its link,
/// and the four values arrive once each, each producer's in its order.
#[test]
fn chain_install_race_keeps_one_link_and_every_value() {
    model(|| {
        let q = Arc::new(shmq::model::ModelChain::new(2));
        let t = {
            let q = q.clone();
            thread::spawn(move || q.put(10).unwrap())
        };
        q.put(20).unwrap();
        t.join().unwrap();
        let mut got = vec![q.try_get().unwrap(), q.try_get().unwrap()];
        got.sort_unstable();
        assert_eq!(got, vec![10, 20]);
        assert_eq!(q.try_get(), Err(Outcome::WouldBlock));
        q.put(30).unwrap();
        assert_eq!(q.try_get(), Ok(30));
    });
}

/// `close` races a producer moving to a new link: a put that returned `Ok` is delivered, a put
/// after the close is refused, and the consumer ends with `Closed` (a close is never lost in a
/// link step).
#[test]
fn chain_close_racing_a_link_step_loses_no_put_and_no_close() {
    model(|| {
        let q = Arc::new(shmq::model::ModelChain::new(2));
        q.put(0).unwrap();
        let p = {
            let q = q.clone();
            thread::spawn(move || q.put(1).is_ok())
        };
        assert!(q.close());
        let ok = p.join().unwrap();
        assert_eq!(q.put(2), Err(Outcome::Closed));
        let mut got = Vec::new();
        loop {
            match q.try_get() {
                Ok(v) => got.push(v),
                Err(Outcome::Closed) => break,
                Err(e) => panic!("get after close: {e:?}"),
            }
        }
        let want: Vec<u64> = if ok { vec![0, 1] } else { vec![0] };
        assert_eq!(got, want);
    });
}

/// Two getters race for the last value of a sealed link: the loser finds the link empty and
/// withdraws its announcement while the winner retires the link and frees it. The withdrawal's
/// Release orders the loser's last touches of the link (after its last fence) before a free that
/// reads the withdrawal; a touch the free does not happen after fails the model. The schedule
/// needs three preemptions.
#[test]
fn chain_getter_that_withdraws_from_a_link_being_freed_touched_it_before() {
    model_at_least(3, || {
        let q = Arc::new(shmq::model::ModelChain::new(2));
        q.put(0).unwrap();
        q.put(1).unwrap();
        // Link 0 is sealed and drained; link 1 holds the value the two getters race for.
        assert_eq!(q.try_get(), Ok(0));
        let t = {
            let q = q.clone();
            thread::spawn(move || q.try_get())
        };
        let mine = q.try_get();
        let theirs = t.join().unwrap();
        let mut got = [mine, theirs];
        got.sort_unstable_by_key(|r| r.is_err());
        assert_eq!(got, [Ok(1), Err(Outcome::WouldBlock)]);
        // Whatever was left unfreed while announced is freed at the next retire.
        q.put(2).unwrap();
        q.put(3).unwrap();
        assert_eq!((q.try_get(), q.try_get()), (Ok(2), Ok(3)));
        let (freed, head, _) = q.links();
        assert_eq!(freed, head, "links behind the head left unfreed");
    });
}

// ---- The shared dictionary (`crate::objects::dict`, over the model heap) ----

/// Two threads insert the same key at once: one entry remains, holding one of the two values,
/// and exactly one insert saw the other's value as the one it replaced. The heap then holds the
/// table and that one entry.
#[test]
fn dict_two_inserts_of_one_key_leave_one_entry() {
    model_heap(|| {
        let d = Arc::new(shmq::model::ModelDict::new(3));
        let t = {
            let d = d.clone();
            thread::spawn(move || d.insert(1, 7, 100))
        };
        let mine = d.insert(2, 7, 200);
        let theirs = t.join().unwrap();
        let now = d.get(7).unwrap();
        match (theirs, mine) {
            (None, Some(100)) => assert_eq!(now, 200),
            (Some(200), None) => assert_eq!(now, 100),
            other => panic!("inserts returned {other:?}, value {now}"),
        }
        assert_eq!(d.len(), 1);
        assert_eq!(d.check().map(|(_, blocks)| blocks), Ok(2));
    });
}

/// A removal races an insert of the same key: the outcome is one of the two orders, and the
/// entry count matches it.
#[test]
fn dict_insert_and_remove_of_one_key_linearize() {
    model_heap(|| {
        let d = Arc::new(shmq::model::ModelDict::new(3));
        d.insert(2, 5, 1);
        let t = {
            let d = d.clone();
            thread::spawn(move || d.remove(1, 5))
        };
        let replaced = d.insert(2, 5, 2);
        let removed = t.join().unwrap();
        match (removed, replaced, d.get(5)) {
            // remove, then insert
            (Some(1), None, Some(2)) => assert_eq!(d.len(), 1),
            // insert, then remove
            (Some(2), Some(1), None) => assert!(d.is_empty()),
            other => panic!("{other:?}"),
        }
    });
}

/// Two updates of one key add up: neither is lost.
#[test]
fn dict_updates_of_one_key_are_atomic() {
    model_heap(|| {
        let d = Arc::new(shmq::model::ModelDict::new(3));
        let t = {
            let d = d.clone();
            thread::spawn(move || d.add(1, 3, 1))
        };
        let a = d.add(2, 3, 1);
        let b = t.join().unwrap();
        assert_eq!((a.min(b), a.max(b)), (1, 2));
        assert_eq!(d.get(3), Some(2));
    });
}

/// An insert that grows the table (the twelfth entry of sixteen slots) while another thread
/// reads an old key: the reader always finds it, and after the growth every key is there.
#[test]
fn dict_growth_while_a_reader_reads_loses_no_key() {
    model_heap(|| {
        let d = Arc::new(shmq::model::ModelDict::new(3));
        for k in 0..11 {
            d.insert(2, k, k + 100);
        }
        let t = {
            let d = d.clone();
            thread::spawn(move || d.insert(1, 11, 111))
        };
        assert_eq!(d.get(4), Some(104));
        t.join().unwrap();
        for k in 0..12 {
            assert_eq!(d.get(k), Some(k + 100));
        }
        assert_eq!(d.check().map(|(_, blocks)| blocks), Ok(13));
    });
}

// ---- The growable list (`crate::objects::bytes_list`, over the model heap) ----

/// Two threads push at once: both items are there, each once, and the heap holds the array and
/// the two items.
#[test]
fn list_two_pushes_both_land() {
    model_heap(|| {
        let l = Arc::new(shmq::model::ModelSharedVec::new(3));
        let t = {
            let l = l.clone();
            thread::spawn(move || l.push(1, 10))
        };
        let mine = l.push(2, 20);
        let theirs = t.join().unwrap();
        assert_eq!((mine.min(theirs), mine.max(theirs)), (1, 2));
        let mut items = l.items();
        items.sort_unstable();
        assert_eq!(items, vec![10, 20]);
        assert_eq!(l.check().map(|(_, blocks)| blocks), Ok(3));
    });
}

/// An insert in the middle (which rebuilds the array) races a pop of the last item: both take
/// effect, whole, whichever runs first.
#[test]
fn list_insert_in_the_middle_and_pop_linearize() {
    model_heap(|| {
        let l = Arc::new(shmq::model::ModelSharedVec::new(3));
        for v in [1, 2, 3] {
            l.push(2, v);
        }
        let t = {
            let l = l.clone();
            thread::spawn(move || l.pop(1))
        };
        l.insert(2, 1, 9);
        let popped = t.join().unwrap();
        // Either order ends the same: [1, 2, 3] -> pop 3 -> insert 9 at 1, or [1, 9, 2, 3] ->
        // pop 3.
        assert_eq!((popped, l.items()), (Some(3), vec![1, 9, 2]));
        assert_eq!(l.check().map(|(_, blocks)| blocks), Ok(4));
    });
}
