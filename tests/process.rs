//! Queues between real processes: the test binary re-executes itself as producers and consumers
//! that open the segment by name.

mod common;

use common::*;
use shmq::{GetError, Segment};
use std::io::Write;
use std::time::{Duration, Instant};

const N: u64 = 100_000;

/// Child role: put N values tagged with the producer id, blocking when full.
#[test]
#[ignore = "child process of the multi-process tests"]
fn child_producer() {
    let seg = Segment::open(&child_var("SHMQ_SEG")).unwrap();
    let q = seg.queue::<u64>("q").unwrap();
    let id: u64 = child_var("SHMQ_ID").parse().unwrap();
    let n: u64 = child_var("SHMQ_N").parse().unwrap();
    for i in 0..n {
        q.put(id << 32 | i).unwrap();
    }
}

/// Child role: get until the queue is closed and drained, print everything received.
#[test]
#[ignore = "child process of the multi-process tests"]
fn child_consumer() {
    let seg = Segment::open(&child_var("SHMQ_SEG")).unwrap();
    let q = seg.queue::<u64>("q").unwrap();
    let mut got = Vec::new();
    loop {
        match q.get() {
            Ok(v) => got.push(v),
            Err(GetError::Closed) => break,
            Err(e) => panic!("get: {e}"),
        }
    }
    let mut out = std::io::stdout().lock();
    write!(out, "<<<{}>>>", encode(&got)).unwrap();
}

fn exchange(producers: u64, consumers: usize, tag: &str) {
    let name = unique(tag);
    let seg = Segment::builder(&name)
        .queue::<u64>("q", 1024)
        .create()
        .unwrap();
    let q = seg.queue::<u64>("q").unwrap();
    // The parent closes the queue after the producers: it is a producer until then, so no
    // consumer reads a gap between producers as `Disconnected`.
    q.register_producer();
    let cons: Vec<_> = (0..consumers)
        .map(|_| spawn_child("child_consumer", &[("SHMQ_SEG", name.clone())]))
        .collect();
    let prods: Vec<_> = (0..producers)
        .map(|id| {
            spawn_child(
                "child_producer",
                &[
                    ("SHMQ_SEG", name.clone()),
                    ("SHMQ_ID", id.to_string()),
                    ("SHMQ_N", N.to_string()),
                ],
            )
        })
        .collect();
    for p in prods {
        finish(p);
    }
    q.close();
    let mut all = Vec::new();
    for c in cons {
        let got = decode(&payload(&finish(c)));
        // Each consumer sees each producer's values in increasing order.
        for id in 0..producers {
            let mine: Vec<u64> = got.iter().copied().filter(|v| v >> 32 == id).collect();
            assert!(
                mine.windows(2).all(|w| w[0] < w[1]),
                "producer {id} order broken"
            );
        }
        all.extend(got);
    }
    all.sort_unstable();
    let expect: Vec<u64> = (0..producers)
        .flat_map(|id| (0..N).map(move |i| id << 32 | i))
        .collect();
    assert_eq!(all.len(), expect.len(), "count differs");
    assert!(all == expect, "some message lost or duplicated");
}

#[test]
fn one_producer_one_consumer_processes_exchange_100k_exactly_once() {
    exchange(1, 1, "1p1c");
}

#[test]
fn two_producers_two_consumers_processes_exchange_exactly_once_in_order() {
    exchange(2, 2, "2p2c");
}

/// Child role: block in get() and print what came (or that the queue closed).
#[test]
#[ignore = "child process of the multi-process tests"]
fn child_blocking_getter() {
    let seg = Segment::open(&child_var("SHMQ_SEG")).unwrap();
    let q = seg.queue::<u64>("q").unwrap();
    let r = match q.get() {
        Ok(v) => format!("value {v}"),
        Err(e) => format!("error {e:?}"),
    };
    print!("<<<{r}>>>");
}

/// Waits (without sleeping as synchronisation: polling a shared counter) until a getter from
/// another process is registered as sleeping on the queue.
fn wait_for_sleeping_getter(q: &shmq::Queue<u64>) {
    let start = Instant::now();
    while q.stats().waiting_getters == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "getter never went to sleep"
        );
        std::thread::yield_now();
    }
}

#[test]
fn blocked_get_in_child_is_woken_by_put_in_parent() {
    let name = unique("wake");
    let seg = Segment::builder(&name)
        .queue::<u64>("q", 4)
        .create()
        .unwrap();
    let q = seg.queue::<u64>("q").unwrap();
    let child = spawn_child("child_blocking_getter", &[("SHMQ_SEG", name.clone())]);
    wait_for_sleeping_getter(&q);
    q.put(4242).unwrap();
    assert_eq!(payload(&finish(child)), b"value 4242");
}

#[test]
fn close_in_parent_wakes_blocked_get_in_child() {
    let name = unique("close");
    let seg = Segment::builder(&name)
        .queue::<u64>("q", 4)
        .create()
        .unwrap();
    let q = seg.queue::<u64>("q").unwrap();
    let child = spawn_child("child_blocking_getter", &[("SHMQ_SEG", name.clone())]);
    wait_for_sleeping_getter(&q);
    assert!(q.close());
    assert_eq!(payload(&finish(child)), b"error Closed");
}

#[test]
fn segment_mapped_twice_in_one_process_wakes_across_mappings() {
    let name = unique("twice");
    let seg = Segment::builder(&name)
        .queue::<u64>("q", 4)
        .create()
        .unwrap();
    let other = Segment::open(&name).unwrap();
    let qa = seg.queue::<u64>("q").unwrap();
    let qb = other.queue::<u64>("q").unwrap();
    let t = std::thread::spawn(move || qa.get());
    wait_for_sleeping_getter(&qb);
    qb.put(9).unwrap();
    assert_eq!(t.join().unwrap(), Ok(9));
}

#[test]
fn get_timeout_returns_timeout_after_deadline_with_no_producer() {
    let name = unique("timeout");
    let seg = Segment::builder(&name)
        .queue::<u64>("q", 4)
        .create()
        .unwrap();
    let q = seg.queue::<u64>("q").unwrap();
    let t0 = Instant::now();
    assert_eq!(
        q.get_timeout(Duration::from_millis(50)),
        Err(GetError::Timeout)
    );
    assert!(t0.elapsed() >= Duration::from_millis(50));
    q.put(1).unwrap();
    assert_eq!(q.get_timeout(Duration::from_secs(5)), Ok(1));
}

#[test]
fn put_timeout_on_full_queue_hands_value_back() {
    let name = unique("puttimeout");
    let seg = Segment::builder(&name)
        .queue::<u64>("q", 1)
        .create()
        .unwrap();
    let q = seg.queue::<u64>("q").unwrap();
    q.put(1).unwrap();
    let t0 = Instant::now();
    assert_eq!(
        q.put_timeout(2, Duration::from_millis(30)),
        Err(shmq::PutError::Timeout(2))
    );
    assert!(t0.elapsed() >= Duration::from_millis(30));
    assert_eq!(q.len(), 1);
}

#[test]
fn try_put_full_and_try_get_empty_return_at_once() {
    let name = unique("try");
    let seg = Segment::builder(&name)
        .queue::<u64>("q", 2)
        .create()
        .unwrap();
    let q = seg.queue::<u64>("q").unwrap();
    assert_eq!(q.try_get(), Err(GetError::Empty));
    q.try_put(1).unwrap();
    q.try_put(2).unwrap();
    assert!(q.is_full());
    assert_eq!(q.try_put(3), Err(shmq::PutError::Full(3)));
    assert_eq!(q.stats().waiting_putters, 0);
}

#[test]
fn oversized_byte_message_is_rejected_at_once_even_when_full() {
    let name = unique("toolarge");
    let seg = Segment::builder(&name)
        .bytes_queue("b", 1, 8)
        .create()
        .unwrap();
    let b = seg.bytes_queue("b").unwrap();
    b.put(b"12345678").unwrap();
    // Full queue and a blocking put: TooLarge must come before any wait.
    assert_eq!(
        b.put(b"123456789"),
        Err(shmq::BytesPutError::TooLarge { len: 9, max: 8 })
    );
    assert_eq!(b.get().unwrap(), b"12345678");
}

#[test]
fn byte_messages_of_every_length_round_trip() {
    let name = unique("bytes");
    let seg = Segment::builder(&name)
        .bytes_queue("b", 3, 100)
        .create()
        .unwrap();
    let b = seg.bytes_queue("b").unwrap();
    let mut buf = Vec::new();
    for len in 0..=100usize {
        let msg: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
        b.put(&msg).unwrap();
        assert_eq!(b.get_into(&mut buf), Ok(len));
        assert_eq!(buf, msg);
    }
}

/// Child role for the spawn helper: exits with the code it was told.
#[test]
#[ignore = "child process of the multi-process tests"]
fn child_exit_code() {
    let role = shmq::process::role().expect("started by shmq::process::spawn");
    let seg = shmq::process::segment().expect("segment passed along");
    assert!(seg.queue::<u64>("q").is_ok());
    let code: i32 = role.trim_start_matches("exit-").parse().unwrap();
    std::process::exit(code);
}

#[test]
fn spawned_child_gets_role_and_segment_and_its_exit_code_reaches_join() {
    let name = unique("spawn");
    let seg = Segment::builder(&name)
        .queue::<u64>("q", 1)
        .create()
        .unwrap();
    for code in [0, 3] {
        let child = shmq::process::spawn_with(&seg, &format!("exit-{code}"), |c| {
            c.args(["child_exit_code", "--exact", "--ignored", "--nocapture"]);
        })
        .unwrap();
        assert_eq!(child.join().unwrap(), code);
    }
}

#[test]
fn handles_are_send_sync_and_clone() {
    fn check<T: Send + Sync + Clone>() {}
    check::<Segment>();
    check::<shmq::Queue<u64>>();
    check::<shmq::BytesQueue>();
    check::<shmq::JoinableQueue<u64>>();
    check::<shmq::Value<i64>>();
    check::<shmq::Array<f64>>();
    check::<shmq::List<u32>>();
    check::<shmq::Lock>();
    check::<shmq::Event>();
    check::<shmq::Semaphore>();
    check::<shmq::Barrier>();
}

#[test]
fn get_reports_disconnected_after_every_producer_thread_is_gone_and_not_before() {
    let name = unique("thread-disconnect");
    let seg = Segment::builder(&name)
        .queue::<u32>("q", 4)
        .create()
        .unwrap();
    let q = seg.queue::<u32>("q").unwrap();
    // Nobody has put yet: an empty queue with no producer is not "disconnected".
    assert!(!q.producers_alive());
    assert_eq!(
        q.get_timeout(Duration::from_millis(120)),
        Err(GetError::Timeout)
    );
    let producer = {
        let q = q.clone();
        std::thread::spawn(move || q.put(9).unwrap())
    };
    producer.join().unwrap();
    // The producer thread exited (its participant record was released): its message is still
    // delivered, then the blocked get learns that nobody is left to put.
    assert_eq!(q.get(), Ok(9));
    let t0 = Instant::now();
    assert_eq!(
        q.get_timeout(Duration::from_secs(10)),
        Err(GetError::Disconnected)
    );
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    // A consumer that has put itself is a live producer: it is never told it is disconnected.
    q.put(1).unwrap();
    assert_eq!(q.get(), Ok(1));
    assert!(q.producers_alive());
    assert_eq!(
        q.get_timeout(Duration::from_millis(120)),
        Err(GetError::Timeout)
    );
}
