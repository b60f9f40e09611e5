//! Non-blocking calls are linearizable: `try_get` reports `Empty` only if the queue was empty at
//! some instant during the call, `try_put` reports `Full` only if it was full. The cases that used
//! to break this are the moments when the position a call needs is held by another thread mid-way:
//! a producer between its claim and its publish (while later positions are already published), a
//! consumer between its claim and its release (while the queue is no longer full). Each test below
//! holds such a claimant inside a `put_with` / `get_with` closure until the non-blocking call is
//! seen waiting for it (`stats().waiting_getters` / `waiting_putters`), so the interleaving is
//! forced, not hoped for. A claimant that never sees a waiter gives up once the call returned, so
//! a regression fails the test instead of hanging it.

mod common;

use common::unique;
use shmq::{GetError, PutError, Segment};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Spins until `cond` holds or `done` is set; whether `cond` held.
fn until(done: &AtomicBool, cond: impl Fn() -> bool) -> bool {
    loop {
        if cond() {
            return true;
        }
        if done.load(Ordering::Acquire) {
            return false;
        }
        std::thread::yield_now();
    }
}

#[test]
fn try_get_waits_for_a_producer_mid_publish_instead_of_reporting_empty() {
    let seg = Segment::builder(&unique("nb-get"))
        .queue::<u64>("q", 4)
        .create()
        .unwrap();
    let q = seg.queue::<u64>("q").unwrap();
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let producer = s.spawn(|| {
            // Claims position 0 and holds it until a getter waits.
            q.put_with(|v| {
                *v = 1;
                until(&done, || q.stats().waiting_getters > 0);
            })
            .unwrap();
        });
        while q.is_empty() {
            std::thread::yield_now();
        }
        // Position 1 is published while position 0 is still being written: not empty.
        q.put(2).unwrap();
        let got = q.try_get();
        done.store(true, Ordering::Release);
        assert_eq!(
            got,
            Ok(1),
            "try_get reported an empty queue holding two values"
        );
        producer.join().unwrap();
    });
    assert_eq!(q.try_get(), Ok(2));
    assert_eq!(q.try_get(), Err(GetError::Empty));
}

#[test]
fn get_timeout_zero_and_try_get_many_wait_for_a_producer_mid_publish() {
    let seg = Segment::builder(&unique("nb-getmany"))
        .queue::<u64>("q", 4)
        .create()
        .unwrap();
    let q = seg.queue::<u64>("q").unwrap();
    for round in 0..2u64 {
        let done = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                q.put_with(|v| {
                    *v = 10 + round;
                    until(&done, || q.stats().waiting_getters > 0);
                })
                .unwrap()
            });
            while q.is_empty() {
                std::thread::yield_now();
            }
            q.put(20 + round).unwrap();
            let got = if round == 0 {
                q.get_timeout(Duration::ZERO).map(|v| vec![v])
            } else {
                let mut buf = [0u64; 4];
                q.try_get_many(&mut buf).map(|n| buf[..n].to_vec())
            };
            done.store(true, Ordering::Release);
            // A batch takes what is published from the head on: at least the held value.
            let got = got.unwrap();
            assert_eq!(got[0], 10 + round, "round {round}: {got:?}");
        });
        while q.try_get().is_ok() {}
    }
}

#[test]
fn try_put_waits_for_a_consumer_mid_release_instead_of_reporting_full() {
    let seg = Segment::builder(&unique("nb-put"))
        .queue::<u64>("q", 1)
        .create()
        .unwrap();
    let q = seg.queue::<u64>("q").unwrap();
    q.put(1).unwrap();
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let consumer = s.spawn(|| {
            // Claims the only message and holds its slot until a putter waits.
            q.get_with(|v| {
                until(&done, || q.stats().waiting_putters > 0);
                *v
            })
        });
        while !q.is_empty() {
            std::thread::yield_now();
        }
        // The message is consumed (len 0): not full, although its slot is not released yet.
        let put = q.try_put(2);
        done.store(true, Ordering::Release);
        assert_eq!(
            put,
            Ok(()),
            "try_put reported a full queue with nothing in it"
        );
        assert_eq!(consumer.join().unwrap(), Ok(1));
    });
    assert_eq!(q.try_get(), Ok(2));
}

#[test]
fn bytes_queue_try_get_waits_for_a_producer_mid_publish() {
    let seg = Segment::builder(&unique("nb-bytes"))
        .bytes_queue("b", 4, 64)
        .create()
        .unwrap();
    let b = seg.bytes_queue("b").unwrap();
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            b.put_with(5, |buf| {
                buf.copy_from_slice(b"first");
                until(&done, || b.stats().waiting_getters > 0);
            })
            .unwrap()
        });
        while b.is_empty() {
            std::thread::yield_now();
        }
        b.put(b"second").unwrap();
        let got = b.try_get();
        done.store(true, Ordering::Release);
        assert_eq!(got.as_deref(), Ok(&b"first"[..]));
    });
    assert_eq!(b.try_get().as_deref(), Ok(&b"second"[..]));
}

#[test]
fn a_call_inside_its_own_claims_closure_reports_empty_and_full_at_once() {
    let seg = Segment::builder(&unique("nb-own"))
        .queue::<u64>("q", 1)
        .create()
        .unwrap();
    let q = seg.queue::<u64>("q").unwrap();
    // Inside our own put's closure the head is our own unpublished claim: nothing to wait for.
    q.put_with(|v| {
        *v = 7;
        assert_eq!(q.try_get(), Err(GetError::Empty));
    })
    .unwrap();
    // Inside our own get's closure the only slot is ours, unreleased.
    let got = q
        .get_with(|v| {
            assert_eq!(q.try_put(8), Err(PutError::Full(8)));
            *v
        })
        .unwrap();
    assert_eq!(got, 7);
    // Nobody ever waited for the other.
    let s = q.stats();
    assert_eq!((s.tombstones, s.lost, s.len), (0, 0, 0));
}

/// crossbeam's `linearizable` test, for the queue kinds the conformance suites do not cover:
/// threads each put one value and then take one with the non-blocking call, which must never
/// find the queue empty (every thread's own put precedes its get, and at most `threads` values
/// are in the queue).
fn put_then_try_get_never_finds_empty(
    put: impl Fn(u64) + Sync,
    try_get: impl Fn() -> Result<(), GetError> + Sync,
) {
    const THREADS: u64 = 4;
    const ROUNDS: u64 = 10_000;
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (put, try_get) = (&put, &try_get);
            s.spawn(move || {
                for i in 0..ROUNDS {
                    put(t << 32 | i);
                    try_get().unwrap_or_else(|e| panic!("thread {t}, round {i}: {e:?}"));
                }
            });
        }
    });
}

#[test]
fn bytes_queue_put_then_try_get_is_linearizable() {
    let seg = Segment::builder(&unique("nb-lin-bytes"))
        .bytes_queue("b", 4, 16)
        .create()
        .unwrap();
    let b = seg.bytes_queue("b").unwrap();
    put_then_try_get_never_finds_empty(
        |v| b.put(&v.to_le_bytes()).unwrap(),
        || b.try_get().map(drop),
    );
    assert!(b.is_empty());
}

#[test]
fn joinable_queue_put_then_try_get_is_linearizable() {
    let seg = Segment::builder(&unique("nb-lin-join"))
        .joinable_queue::<u64>("j", 4)
        .create()
        .unwrap();
    let j = seg.joinable_queue::<u64>("j").unwrap();
    put_then_try_get_never_finds_empty(
        |v| j.put(v).unwrap(),
        || {
            j.try_get()?;
            j.task_done().unwrap();
            Ok(())
        },
    );
    assert_eq!(j.unfinished_tasks(), 0);
}

#[test]
fn stats_count_puts_and_gets_before_and_after_close() {
    for unbounded in [false, true] {
        let b = Segment::builder(&unique("nb-stats"));
        let b = if unbounded {
            b.unbounded_queue::<u64>("q")
        } else {
            b.queue::<u64>("q", 8)
        };
        let seg = b.create().unwrap();
        let q = seg.queue::<u64>("q").unwrap();
        for i in 0..5 {
            q.put(i).unwrap();
        }
        assert_eq!(q.get(), Ok(0));
        assert_eq!(q.get(), Ok(1));
        let s = q.stats();
        assert_eq!((s.puts, s.gets, s.len, s.closed), (5, 2, 3, false), "{s:?}");
        q.close();
        let s = q.stats();
        assert_eq!((s.puts, s.gets, s.len, s.closed), (5, 2, 3, true), "{s:?}");
        assert_eq!(q.len(), 3);
    }
}
