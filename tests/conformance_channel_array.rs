//! Conformance tests: behaviour ported from crossbeam's `crossbeam-channel/tests/array.rs` (the
//! test suite of the bounded, array-backed flavour of `crossbeam_channel`; crossbeam is
//! MIT/Apache-2.0), rewritten against shmq's [`Queue`] API. Each test keeps its upstream name,
//! purpose and parameters.
//!
//! Mapping: `bounded(n)` -> a fresh segment holding one queue of capacity `n`, opened twice (a
//! "sender" handle and a "receiver" handle, which must agree); `send`/`recv` -> `put`/`get`;
//! `try_send`/`try_recv` -> `try_put`/`try_get`; `send_timeout`/`recv_timeout` ->
//! `put_timeout`/`get_timeout`; `len`/`is_empty`/`is_full`/`capacity` as is. Disconnection maps to
//! `close()`: where upstream drops the last sender, the sending side calls `close()`, after which
//! gets drain what is left and then fail with `Closed`. Where upstream drops the last receiver
//! (`send_after_disconnect`, `disconnect_wakes_sender`, and the last step of `try_send` and
//! `send_timeout`), the receiving side calls `close()`: shmq's close is the one way either side
//! tells the other to stop, and puts then fail with `Closed`, handing the value back, as
//! crossbeam's sends fail with `Disconnected`. (shmq does not notice consumers going away by
//! themselves; that part of crossbeam's behaviour has no counterpart and is not tested.)
//!
//! Upstream has 27 tests; 21 are ported, 6 are skipped:
//!
//! * `fairness`, `fairness_duplicates`, `recv_in_send`: built on `select!`; shmq has no select
//!   over several queues or operations.
//! * `channel_through_channel`: sends channel endpoints (`Box<dyn Any>`) through a channel. Queue
//!   values must be `Pod`; a queue handle cannot travel through a queue.
//! * `panic_on_drop`, `drop_unreceived`: check when the channel runs the `Drop` of values still in
//!   it (with panicking destructors, or an `Rc` freed when the last receiver goes). `Pod` values
//!   have no `Drop`, and shmq has no receiver count.
//!
//! Ported with changes:
//!
//! * Upstream's `thread::sleep`s order the two threads of `try_recv`, `recv_timeout`, `try_send`
//!   and `send_timeout` (the asserted results depend on which happened first). Here a
//!   `std::sync::Barrier` orders them; where a sleep remains it only makes a blocking call
//!   actually block first and no asserted result depends on it. Sleeps are 50-150 ms instead of
//!   0.5-1.5 s, and timeouts that must expire are 100 ms instead of 500-1000 ms (timeouts that
//!   must not expire keep upstream's 1000 ms).
//! * `stress_iter`: upstream's `try_iter()` / `iter()` become `while let Ok(..) = try_get()` /
//!   `while get().is_ok()` loops, and dropping both endpoints at the end becomes closing both
//!   queues.
//! * `drops`: upstream counts `Drop` calls of a non-`Pod` element (each value dropped exactly once,
//!   received or dropped with the channel). Here distinct `u64` values are sent: each must be
//!   received exactly once and in order, and the `additional` values left over must all still be
//!   in the queue.
//! * `send`: upstream leaves its last value (10) in the channel unchecked; the port also checks
//!   that it is there.

mod common;

use shmq::{GetError, PutError, Queue, Segment};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Barrier;
use std::thread;
use std::time::Duration;

fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// A fresh segment with one queue of capacity `cap`, and two handles to it: `(seg, s, r)`.
/// `tag` must be unique per test (tests run in parallel in one process).
fn bounded<T: shmq::bytemuck::Pod>(tag: &str, cap: u64) -> (Segment, Queue<T>, Queue<T>) {
    let seg = Segment::builder(&common::unique(tag))
        .queue::<T>("q", cap)
        .create_or_replace()
        .unwrap_or_else(|e| panic!("create queue {tag:?} of capacity {cap}: {e}"));
    let s = seg.queue::<T>("q").unwrap();
    let r = seg.queue::<T>("q").unwrap();
    (seg, s, r)
}

#[test]
fn smoke() {
    let (_seg, s, r) = bounded::<i32>("ch-smoke", 1);
    s.put(7).unwrap();
    assert_eq!(r.try_get(), Ok(7));

    s.put(8).unwrap();
    assert_eq!(r.get(), Ok(8));

    assert_eq!(r.try_get(), Err(GetError::Empty));
    // Upstream waits 1000 ms; this timeout must expire, so it is shortened.
    assert_eq!(r.get_timeout(ms(100)), Err(GetError::Timeout));
}

#[test]
fn capacity() {
    for i in 1..10u64 {
        let (_seg, s, r) = bounded::<()>(&format!("ch-capacity-{i}"), i);
        assert_eq!(s.capacity(), i as usize);
        assert_eq!(r.capacity(), i as usize);
    }
}

#[test]
fn len_empty_full() {
    let (_seg, s, r) = bounded::<()>("ch-len-empty-full", 2);

    assert_eq!(s.len(), 0);
    assert!(s.is_empty());
    assert!(!s.is_full());
    assert_eq!(r.len(), 0);
    assert!(r.is_empty());
    assert!(!r.is_full());

    s.put(()).unwrap();

    assert_eq!(s.len(), 1);
    assert!(!s.is_empty());
    assert!(!s.is_full());
    assert_eq!(r.len(), 1);
    assert!(!r.is_empty());
    assert!(!r.is_full());

    s.put(()).unwrap();

    assert_eq!(s.len(), 2);
    assert!(!s.is_empty());
    assert!(s.is_full());
    assert_eq!(r.len(), 2);
    assert!(!r.is_empty());
    assert!(r.is_full());

    r.get().unwrap();

    assert_eq!(s.len(), 1);
    assert!(!s.is_empty());
    assert!(!s.is_full());
    assert_eq!(r.len(), 1);
    assert!(!r.is_empty());
    assert!(!r.is_full());
}

#[test]
fn try_recv() {
    let (_seg, s, r) = bounded::<i32>("ch-try-recv", 100);
    let b = Barrier::new(2);

    thread::scope(|scope| {
        scope.spawn(|| {
            assert_eq!(r.try_get(), Err(GetError::Empty));
            b.wait(); // 1: the sender may put now
            b.wait(); // 2: it has put 7
            assert_eq!(r.try_get(), Ok(7));
            b.wait(); // 3: the sender may close now
            b.wait(); // 4: it has closed
            assert_eq!(r.try_get(), Err(GetError::Closed));
        });
        scope.spawn(|| {
            b.wait(); // 1
            s.put(7).unwrap();
            b.wait(); // 2
            b.wait(); // 3
            s.close(); // upstream: the sender is dropped
            b.wait(); // 4
        });
    });
}

#[test]
fn recv() {
    let (_seg, s, r) = bounded::<i32>("ch-recv", 100);

    thread::scope(|scope| {
        scope.spawn(|| {
            assert_eq!(r.get(), Ok(7));
            thread::sleep(ms(100));
            assert_eq!(r.get(), Ok(8));
            thread::sleep(ms(100));
            assert_eq!(r.get(), Ok(9));
            assert_eq!(r.get(), Err(GetError::Closed));
        });
        scope.spawn(|| {
            thread::sleep(ms(150)); // delay only: the first get() blocks until the put
            s.put(7).unwrap();
            s.put(8).unwrap();
            s.put(9).unwrap();
            s.close(); // upstream: the sender is dropped
        });
    });
}

#[test]
fn recv_timeout() {
    let (_seg, s, r) = bounded::<i32>("ch-recv-timeout", 100);
    let b = Barrier::new(2);

    thread::scope(|scope| {
        scope.spawn(|| {
            // Upstream: 1000 ms while the sender sleeps 1500 ms. Here the sender waits at the
            // barrier until this timeout has expired, so it is shortened.
            assert_eq!(r.get_timeout(ms(100)), Err(GetError::Timeout));
            b.wait();
            assert_eq!(r.get_timeout(ms(1000)), Ok(7));
            assert_eq!(r.get_timeout(ms(1000)), Err(GetError::Closed));
        });
        scope.spawn(|| {
            b.wait();
            thread::sleep(ms(50)); // delay only: lets the second get_timeout block first
            s.put(7).unwrap();
            s.close(); // upstream: the sender is dropped
        });
    });
}

#[test]
fn try_send() {
    let (_seg, s, r) = bounded::<i32>("ch-try-send", 1);
    let b = Barrier::new(2);

    thread::scope(|scope| {
        scope.spawn(|| {
            assert_eq!(s.try_put(1), Ok(()));
            assert_eq!(s.try_put(2), Err(PutError::Full(2)));
            b.wait(); // 1: the receiver may take 1 now
            b.wait(); // 2: it has, and is about to block in get()
            thread::sleep(ms(50)); // delay only: lets that get() block first
            assert_eq!(s.try_put(3), Ok(()));
            b.wait(); // 3: the receiver has taken 3 and closed
            assert_eq!(s.try_put(4), Err(PutError::Closed(4)));
        });
        scope.spawn(|| {
            b.wait(); // 1
            assert_eq!(r.try_get(), Ok(1));
            assert_eq!(r.try_get(), Err(GetError::Empty));
            b.wait(); // 2
            assert_eq!(r.get(), Ok(3));
            r.close(); // upstream: the receiver is dropped
            b.wait(); // 3
        });
    });
}

#[test]
fn send() {
    let (_seg, s, r) = bounded::<i32>("ch-send", 1);

    thread::scope(|scope| {
        scope.spawn(|| {
            s.put(7).unwrap();
            thread::sleep(ms(100));
            s.put(8).unwrap(); // blocks until 7 is taken
            thread::sleep(ms(100));
            s.put(9).unwrap();
            thread::sleep(ms(100));
            s.put(10).unwrap();
        });
        scope.spawn(|| {
            thread::sleep(ms(150)); // delay only: lets put(8) block on the full queue
            assert_eq!(r.get(), Ok(7));
            assert_eq!(r.get(), Ok(8));
            assert_eq!(r.get(), Ok(9));
        });
    });
    // Not in upstream: the last value is still there, alone.
    assert_eq!(r.len(), 1);
    assert_eq!(r.try_get(), Ok(10));
}

#[test]
fn send_timeout() {
    let (_seg, s, r) = bounded::<i32>("ch-send-timeout", 2);
    let b = Barrier::new(2);

    thread::scope(|scope| {
        scope.spawn(|| {
            assert_eq!(s.put_timeout(1, ms(1000)), Ok(()));
            assert_eq!(s.put_timeout(2, ms(1000)), Ok(()));
            // Upstream: 500 ms; this timeout must expire, so it is shortened.
            assert_eq!(s.put_timeout(3, ms(100)), Err(PutError::Timeout(3)));
            b.wait(); // 1: the receiver may take 1 now
            b.wait(); // 2: it has
            assert_eq!(s.put_timeout(4, ms(1000)), Ok(()));
            b.wait(); // 3: the receiver has taken 2 and 4 and closed
            assert_eq!(s.put(5), Err(PutError::Closed(5)));
        });
        scope.spawn(|| {
            b.wait(); // 1
            assert_eq!(r.get(), Ok(1));
            b.wait(); // 2
            assert_eq!(r.get(), Ok(2));
            assert_eq!(r.get(), Ok(4));
            r.close(); // upstream: the receiver is dropped
            b.wait(); // 3
        });
    });
}

#[test]
fn send_after_disconnect() {
    let (_seg, s, r) = bounded::<i32>("ch-send-after-disconnect", 100);

    s.put(1).unwrap();
    s.put(2).unwrap();
    s.put(3).unwrap();

    r.close(); // upstream: drop(r)

    assert_eq!(s.put(4), Err(PutError::Closed(4)));
    assert_eq!(s.try_put(5), Err(PutError::Closed(5)));
    assert_eq!(s.put_timeout(6, ms(500)), Err(PutError::Closed(6)));
}

#[test]
fn recv_after_disconnect() {
    let (_seg, s, r) = bounded::<i32>("ch-recv-after-disconnect", 100);

    s.put(1).unwrap();
    s.put(2).unwrap();
    s.put(3).unwrap();

    s.close(); // upstream: drop(s)

    assert_eq!(r.get(), Ok(1));
    assert_eq!(r.get(), Ok(2));
    assert_eq!(r.get(), Ok(3));
    assert_eq!(r.get(), Err(GetError::Closed));
}

#[test]
fn len() {
    const COUNT: u64 = 25_000;
    const CAP: u64 = 1000;

    let (_seg, s, r) = bounded::<u64>("ch-len", CAP);

    assert_eq!(s.len(), 0);
    assert_eq!(r.len(), 0);

    for _ in 0..CAP / 10 {
        for i in 0..50 {
            s.put(i).unwrap();
            assert_eq!(s.len() as u64, i + 1);
        }
        for i in 0..50 {
            r.get().unwrap();
            assert_eq!(r.len() as u64, 50 - i - 1);
        }
    }

    assert_eq!(s.len(), 0);
    assert_eq!(r.len(), 0);

    for i in 0..CAP {
        s.put(i).unwrap();
        assert_eq!(s.len() as u64, i + 1);
    }
    for _ in 0..CAP {
        r.get().unwrap();
    }

    assert_eq!(s.len(), 0);
    assert_eq!(r.len(), 0);

    thread::scope(|scope| {
        scope.spawn(|| {
            for i in 0..COUNT {
                assert_eq!(r.get(), Ok(i));
                let len = r.len() as u64;
                assert!(len <= CAP, "len {len} above capacity {CAP}");
            }
        });
        scope.spawn(|| {
            for i in 0..COUNT {
                s.put(i).unwrap();
                let len = s.len() as u64;
                assert!(len <= CAP, "len {len} above capacity {CAP}");
            }
        });
    });

    assert_eq!(s.len(), 0);
    assert_eq!(r.len(), 0);
}

#[test]
fn disconnect_wakes_sender() {
    let (_seg, s, r) = bounded::<()>("ch-disconnect-wakes-sender", 1);

    thread::scope(|scope| {
        scope.spawn(|| {
            assert_eq!(s.put(()), Ok(()));
            assert_eq!(s.put(()), Err(PutError::Closed(())));
        });
        scope.spawn(|| {
            thread::sleep(ms(100)); // delay only: lets the second put block first
            r.close(); // upstream: drop(r)
        });
    });
}

#[test]
fn disconnect_wakes_receiver() {
    let (_seg, s, r) = bounded::<()>("ch-disconnect-wakes-receiver", 1);

    thread::scope(|scope| {
        scope.spawn(|| {
            assert_eq!(r.get(), Err(GetError::Closed));
        });
        scope.spawn(|| {
            thread::sleep(ms(100)); // delay only: lets the get block first
            s.close(); // upstream: drop(s)
        });
    });
}

#[test]
fn spsc() {
    const COUNT: u64 = 100_000;

    let (_seg, s, r) = bounded::<u64>("ch-spsc", 3);

    thread::scope(|scope| {
        scope.spawn(|| {
            for i in 0..COUNT {
                assert_eq!(r.get(), Ok(i));
            }
            assert_eq!(r.get(), Err(GetError::Closed));
        });
        scope.spawn(|| {
            for i in 0..COUNT {
                s.put(i).unwrap();
            }
            s.close(); // upstream: the sender is dropped
        });
    });
}

#[test]
fn mpmc() {
    const COUNT: usize = 25_000;
    const THREADS: usize = 4;

    let (_seg, s, r) = bounded::<u64>("ch-mpmc", 3);
    let v = (0..COUNT).map(|_| AtomicUsize::new(0)).collect::<Vec<_>>();

    thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| {
                for _ in 0..COUNT {
                    let n = r.get().unwrap() as usize;
                    v[n].fetch_add(1, Ordering::SeqCst);
                }
            });
        }
        for _ in 0..THREADS {
            scope.spawn(|| {
                for i in 0..COUNT {
                    s.put(i as u64).unwrap();
                }
            });
        }
    });

    for (i, c) in v.iter().enumerate() {
        assert_eq!(c.load(Ordering::SeqCst), THREADS, "value {i}");
    }
    assert_eq!(r.try_get(), Err(GetError::Empty));
}

#[test]
fn stress_oneshot() {
    const COUNT: usize = 10_000;

    for i in 0..COUNT {
        let (_seg, s, r) = bounded::<i32>(&format!("ch-stress-oneshot-{i}"), 1);

        thread::scope(|scope| {
            scope.spawn(|| assert_eq!(r.get(), Ok(0)));
            scope.spawn(|| s.put(0).unwrap());
        });
    }
}

#[test]
fn stress_iter() {
    const COUNT: u64 = 100_000;

    let (_seg1, request_s, request_r) = bounded::<()>("ch-stress-iter-req", 1);
    let (_seg2, response_s, response_r) = bounded::<u64>("ch-stress-iter-resp", 1);

    thread::scope(|scope| {
        scope.spawn(|| {
            let mut count = 0;
            loop {
                // upstream: `for x in response_r.try_iter()`
                while let Ok(x) = response_r.try_get() {
                    count += x;
                    if count == COUNT {
                        // upstream: returning drops request_s and response_r
                        request_s.close();
                        response_r.close();
                        return;
                    }
                }
                request_s.put(()).unwrap();
            }
        });

        // upstream: `for _ in request_r.iter()`
        while request_r.get().is_ok() {
            if response_s.put(1).is_err() {
                break;
            }
        }
    });
}

#[test]
fn stress_timeout_two_threads() {
    const COUNT: u64 = 100;

    let (_seg, s, r) = bounded::<u64>("ch-stress-timeout-two-threads", 2);

    thread::scope(|scope| {
        scope.spawn(|| {
            for i in 0..COUNT {
                if i % 2 == 0 {
                    thread::sleep(ms(50));
                }
                loop {
                    match s.put_timeout(i, ms(10)) {
                        Ok(()) => break,
                        Err(PutError::Timeout(v)) => assert_eq!(v, i),
                        Err(e) => panic!("put_timeout({i}) failed: {e:?}"),
                    }
                }
            }
        });

        scope.spawn(|| {
            for i in 0..COUNT {
                if i % 2 == 0 {
                    thread::sleep(ms(50));
                }
                loop {
                    match r.get_timeout(ms(10)) {
                        Ok(x) => {
                            assert_eq!(x, i);
                            break;
                        }
                        Err(GetError::Timeout) => {}
                        Err(e) => panic!("get_timeout (expecting {i}) failed: {e:?}"),
                    }
                }
            }
        });
    });
}

/// A small xorshift generator (upstream uses `fastrand`); the seed is printed in failures.
struct Rng(u64);

impl Rng {
    fn from_clock() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        Rng((nanos ^ ((std::process::id() as u64) << 32)) | 1)
    }

    /// A value in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn drops() {
    const RUNS: usize = 100;
    const STEPS: u64 = 10_000;

    let mut rng = Rng::from_clock();
    let seed = rng.0;

    for run in 0..RUNS {
        let steps = rng.below(STEPS);
        let additional = rng.below(50);
        let ctx = format!("run {run}, steps {steps}, additional {additional}, seed {seed:#x}");

        let (_seg, s, r) = bounded::<u64>(&format!("ch-drops-{run}"), 50);
        let received = AtomicUsize::new(0);

        thread::scope(|scope| {
            scope.spawn(|| {
                for i in 0..steps {
                    assert_eq!(r.get(), Ok(i), "{ctx}");
                    received.fetch_add(1, Ordering::SeqCst);
                }
            });
            scope.spawn(|| {
                for i in 0..steps {
                    s.put(i).unwrap();
                }
            });
        });

        for j in 0..additional {
            s.put(steps + j).unwrap();
        }

        // Upstream: `steps` values dropped by now (the received ones) ...
        assert_eq!(received.load(Ordering::SeqCst) as u64, steps, "{ctx}");
        // ... and the `additional` ones dropped with the channel: here they must all be in the
        // queue, each once.
        assert_eq!(r.len() as u64, additional, "{ctx}");
        for j in 0..additional {
            assert_eq!(r.try_get(), Ok(steps + j), "{ctx}");
        }
        assert_eq!(r.try_get(), Err(GetError::Empty), "{ctx}");
    }
}

#[test]
fn linearizable() {
    const COUNT: usize = 25_000;
    const THREADS: usize = 4;

    let (_seg, s, r) = bounded::<u64>("ch-linearizable", THREADS as u64);

    thread::scope(|scope| {
        for t in 0..THREADS {
            let (s, r) = (&s, &r);
            scope.spawn(move || {
                for i in 0..COUNT {
                    s.put(0).unwrap();
                    if let Err(e) = r.try_get() {
                        panic!(
                            "thread {t}, iteration {i}: try_get right after a completed put \
                             failed with {e:?} (capacity {THREADS}, {THREADS} threads)"
                        );
                    }
                }
            });
        }
    });
    assert_eq!(r.len(), 0);
}
