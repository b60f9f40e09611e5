//! `BytesQueue::wait_ready`: a getter that waits for a message without taking it (then takes it
//! with a non-blocking get). Each test forces the interleaving it checks: the waiter is seen
//! asleep (`stats().waiting_getters`) before the put, close or publish that must wake it.

mod common;

use common::unique;
use shmq::{BytesQueue, GetError, Segment};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const LONG: Duration = Duration::from_secs(20);

/// Spins (yielding) until `q` has a sleeping getter; panics after 20 s.
fn until_a_getter_sleeps(q: &BytesQueue) {
    let end = Instant::now() + LONG;
    while q.stats().waiting_getters == 0 {
        assert!(Instant::now() < end, "no getter went to sleep");
        std::thread::yield_now();
    }
}

fn bounded(tag: &str) -> (BytesQueue, Segment) {
    let seg = Segment::builder(&unique(tag))
        .bytes_queue("q", 4, 64)
        .create()
        .unwrap();
    (seg.bytes_queue("q").unwrap(), seg)
}

fn unbounded(tag: &str) -> (BytesQueue, Segment) {
    let seg = Segment::builder(&unique(tag))
        .unbounded_bytes_queue("q")
        .create()
        .unwrap();
    (seg.bytes_queue("q").unwrap(), seg)
}

#[test]
fn an_empty_queue_times_out_and_a_waiting_one_leaves_the_message_in_place() {
    for (q, _seg) in [bounded("wr-empty"), unbounded("wr-empty-u")] {
        assert_eq!(
            q.wait_ready(Duration::from_millis(5)),
            Err(GetError::Timeout)
        );
        q.put(b"one").unwrap();
        assert_eq!(q.wait_ready(Duration::ZERO), Ok(()));
        assert_eq!(q.wait_ready(LONG), Ok(()));
        assert_eq!(q.len(), 1);
        assert_eq!(q.try_get(), Ok(b"one".to_vec()));
        assert_eq!(q.try_get(), Err(GetError::Empty));
    }
}

#[test]
fn a_sleeping_waiter_is_woken_by_a_put_from_another_thread() {
    for (q, _seg) in [bounded("wr-wake"), unbounded("wr-wake-u")] {
        std::thread::scope(|s| {
            let waiter = s.spawn(|| q.wait_ready(LONG));
            until_a_getter_sleeps(&q);
            q.put(b"wake").unwrap();
            assert_eq!(waiter.join().unwrap(), Ok(()));
        });
        assert_eq!(q.try_get(), Ok(b"wake".to_vec()));
    }
}

#[test]
fn a_waiter_is_not_told_ready_while_the_head_is_claimed_and_unpublished() {
    for (q, _seg) in [bounded("wr-pending"), unbounded("wr-pending-u")] {
        // Set by the producer inside its claim, just before the publish.
        let written = AtomicBool::new(false);
        std::thread::scope(|s| {
            let waiter = s.spawn(|| {
                let r = q.wait_ready(LONG);
                // Told ready only once the message is published (the publish's Release, the
                // wait's Acquire): the producer's last write inside its claim is visible.
                (r, written.load(Ordering::Relaxed), q.try_get())
            });
            // Claim the head position and hold it until the waiter sleeps behind it.
            q.put_with(4, |b| {
                until_a_getter_sleeps(&q);
                b.copy_from_slice(b"late");
                written.store(true, Ordering::Relaxed);
            })
            .unwrap();
            assert_eq!(waiter.join().unwrap(), (Ok(()), true, Ok(b"late".to_vec())));
        });
    }
}

#[test]
fn close_wakes_a_waiter_with_closed_once_drained() {
    for (q, _seg) in [bounded("wr-close"), unbounded("wr-close-u")] {
        q.put(b"left").unwrap();
        assert!(q.close());
        // Closed, not drained: a message is still there to take.
        assert_eq!(q.wait_ready(LONG), Ok(()));
        assert_eq!(q.try_get(), Ok(b"left".to_vec()));
        assert_eq!(q.wait_ready(LONG), Err(GetError::Closed));
    }
    let (q, _seg) = unbounded("wr-close-sleep");
    std::thread::scope(|s| {
        let waiter = s.spawn(|| q.wait_ready(LONG));
        until_a_getter_sleeps(&q);
        q.close();
        assert_eq!(waiter.join().unwrap(), Err(GetError::Closed));
    });
}

#[test]
fn an_unbounded_waiter_moves_past_drained_links_to_a_put_in_a_later_one() {
    let (q, _seg) = unbounded("wr-links");
    // Fill and drain the first links so that the next put goes to a later one.
    for i in 0..3000u32 {
        q.put(&i.to_le_bytes()).unwrap();
    }
    for i in 0..3000u32 {
        assert_eq!(q.try_get(), Ok(i.to_le_bytes().to_vec()));
    }
    std::thread::scope(|s| {
        let waiter = s.spawn(|| {
            q.wait_ready(LONG)?;
            q.try_get()
        });
        until_a_getter_sleeps(&q);
        for i in 0..3000u32 {
            q.put(&(10_000 + i).to_le_bytes()).unwrap();
        }
        assert_eq!(waiter.join().unwrap(), Ok(10_000u32.to_le_bytes().to_vec()));
    });
    for i in 1..3000u32 {
        assert_eq!(q.try_get(), Ok((10_000 + i).to_le_bytes().to_vec()));
    }
}

/// `get_ready_with`: takes only what is published at the head now.
#[test]
fn get_ready_takes_a_published_message_and_never_one_being_written() {
    for (q, _seg) in [bounded("gr-look"), unbounded("gr-look-u")] {
        assert_eq!(q.get_ready_with(|m| m.to_vec()), Err(GetError::Empty));
        q.put_with(3, |b| {
            // Our own claim of the head, not published yet: nothing to take.
            assert_eq!(q.get_ready_with(|m| m.to_vec()), Err(GetError::Empty));
            b.copy_from_slice(b"abc");
        })
        .unwrap();
        q.put(b"de").unwrap();
        assert_eq!(q.get_ready_with(|m| m.to_vec()), Ok(b"abc".to_vec()));
        assert_eq!(q.get_ready_with(|m| m.to_vec()), Ok(b"de".to_vec()));
        assert_eq!(q.get_ready_with(|m| m.to_vec()), Err(GetError::Empty));
        q.close();
        assert_eq!(q.get_ready_with(|m| m.to_vec()), Err(GetError::Closed));
    }
}

#[test]
fn get_ready_moves_past_drained_links_of_an_unbounded_queue() {
    let (q, _seg) = unbounded("gr-links");
    for i in 0..3000u32 {
        q.put(&i.to_le_bytes()).unwrap();
    }
    for i in 0..3000u32 {
        assert_eq!(
            q.get_ready_with(|m| m.to_vec()),
            Ok(i.to_le_bytes().to_vec())
        );
    }
    assert_eq!(q.get_ready_with(|m| m.to_vec()), Err(GetError::Empty));
}
