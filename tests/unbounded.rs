//! Unbounded queues: a chain of links in the segment's heap.

mod common;

use common::*;
use shmq::{GetError, PutError, Segment};
use std::time::Duration;

fn unbounded(tag: &str) -> (String, Segment) {
    let name = unique(tag);
    let seg = Segment::builder(&name)
        .unbounded_queue::<u64>("q")
        .unbounded_bytes_queue("b")
        .max_size(1 << 30)
        .create()
        .unwrap();
    (name, seg)
}

#[test]
fn a_million_puts_before_any_get_then_all_come_out_in_order() {
    let (_n, seg) = unbounded("unb-million");
    let q = seg.queue::<u64>("q").unwrap();
    let base = seg.stats().unwrap();
    for i in 0..1_000_000u64 {
        q.put(i).unwrap();
    }
    assert_eq!(q.len(), 1_000_000);
    assert_eq!(q.capacity(), usize::MAX);
    assert!(!q.is_full());
    for i in 0..1_000_000u64 {
        assert_eq!(q.try_get(), Ok(i));
    }
    assert_eq!(q.try_get(), Err(GetError::Empty));
    // Drained links are freed: the heap is back to its first link.
    let s = seg.stats().unwrap();
    assert_eq!(s.heap_blocks, base.heap_blocks, "{s:?} vs {base:?}");
    // Nothing was lost or skipped on the way (freeing a drained link counts only messages
    // dead consumers still held).
    let qs = q.stats();
    assert_eq!((qs.lost, qs.tombstones), (0, 0), "{qs:?}");
}

#[test]
fn batches_span_links_and_close_drains_then_reports_closed() {
    let (_n, seg) = unbounded("unb-batch");
    let q = seg.queue::<u64>("q").unwrap();
    let items: Vec<u64> = (0..5000).collect();
    assert_eq!(q.put_many(&items), Ok(()));
    let mut buf = vec![0u64; 3000];
    let mut got = Vec::new();
    while got.len() < 5000 {
        let n = q.get_many(&mut buf).unwrap();
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, items);
    q.put(7).unwrap();
    assert!(q.close());
    assert!(matches!(q.put(8), Err(PutError::Closed(8))));
    assert_eq!(q.get(), Ok(7));
    assert_eq!(q.get(), Err(GetError::Closed));
    assert_eq!(
        q.get_timeout(Duration::from_millis(5)),
        Err(GetError::Closed)
    );
}

#[test]
fn a_blocked_getter_is_woken_by_a_put_into_a_later_link() {
    let (_n, seg) = unbounded("unb-wake");
    let q = seg.queue::<u64>("q").unwrap();
    // Fill the first link so the next puts go to a new one.
    for i in 0..1024 {
        q.put(i).unwrap();
    }
    for i in 0..1024 {
        assert_eq!(q.get(), Ok(i));
    }
    let q2 = q.clone();
    let getter = std::thread::spawn(move || q2.get_timeout(Duration::from_secs(20)));
    for i in 0..3000 {
        q.put(10_000 + i).unwrap();
    }
    assert_eq!(getter.join().unwrap(), Ok(10_000));
    for i in 1..3000 {
        assert_eq!(q.get(), Ok(10_000 + i));
    }
}

#[test]
fn threads_put_and_get_concurrently_across_links_exactly_once() {
    let (_n, seg) = unbounded("unb-mpmc");
    let q = seg.queue::<u64>("q").unwrap();
    let per = 50_000u64;
    let producers: Vec<_> = (0..2u64)
        .map(|p| {
            let q = q.clone();
            std::thread::spawn(move || {
                for i in 0..per {
                    q.put(p << 32 | i).unwrap();
                }
            })
        })
        .collect();
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            let q = q.clone();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                while let Ok(v) = q.get_timeout(Duration::from_secs(20)) {
                    if v == u64::MAX {
                        break;
                    }
                    got.push(v);
                }
                got
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    q.put(u64::MAX).unwrap();
    q.put(u64::MAX).unwrap();
    let mut all: Vec<u64> = consumers
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    // Each producer's items arrive in its order at each consumer, and exactly once overall.
    all.sort_unstable();
    let want: Vec<u64> = (0..2u64)
        .flat_map(|p| (0..per).map(move |i| p << 32 | i))
        .collect();
    assert_eq!(all, want);
}

#[test]
fn unbounded_bytes_queue_takes_messages_of_any_size() {
    let (_n, seg) = unbounded("unb-bytes");
    let b = seg.bytes_queue("b").unwrap();
    assert_eq!(b.max_len(), usize::MAX);
    for i in 0..3000usize {
        b.put(&vec![(i % 251) as u8; i % 700]).unwrap();
    }
    b.put(&vec![1u8; 3 << 20]).unwrap();
    for i in 0..3000usize {
        assert_eq!(b.get().unwrap(), vec![(i % 251) as u8; i % 700]);
    }
    assert_eq!(b.get().unwrap().len(), 3 << 20);
}

#[test]
fn an_unbounded_queue_past_max_size_is_no_space_and_keeps_what_it_holds() {
    let name = unique("unb-full");
    let seg = Segment::builder(&name)
        .unbounded_queue::<[u64; 8]>("q")
        .max_size(4 << 20)
        .create()
        .unwrap();
    let q = seg.queue::<[u64; 8]>("q").unwrap();
    let mut n = 0u64;
    let err = loop {
        match q.put([n; 8]) {
            Ok(()) => n += 1,
            Err(e) => break e,
        }
        assert!(n < 1_000_000, "never ran out of room");
    };
    assert!(
        matches!(err, PutError::NoSpace(v) if v == [n; 8]),
        "{err:?}"
    );
    assert!(n > 10_000, "only {n} items fitted");
    for i in 0..n {
        assert_eq!(q.get(), Ok([i; 8]));
    }
    // Room came back.
    q.put([1; 8]).unwrap();
}

#[test]
fn an_emptied_unbounded_queue_takes_puts_again_even_in_a_small_segment() {
    // Links grow geometrically: in a small segment the last link can hold the room that a link
    // twice its size needs, even once the queue is empty.
    for (k, max) in [1u64 << 20, 3 << 19, 2 << 20, 3 << 20]
        .into_iter()
        .enumerate()
    {
        let name = unique(&format!("unb-small-{k}"));
        let seg = Segment::builder(&name)
            .unbounded_queue::<[u64; 8]>("q")
            .max_size(max)
            .create()
            .unwrap();
        let q = seg.queue::<[u64; 8]>("q").unwrap();
        let mut n = 0u64;
        while q.put([n; 8]).is_ok() {
            n += 1;
        }
        for i in 0..n {
            assert_eq!(q.get(), Ok([i; 8]), "max_size {max}");
        }
        assert_eq!(
            q.put([n; 8]),
            Ok(()),
            "max_size {max}: the empty queue refused a put"
        );
        assert_eq!(q.get(), Ok([n; 8]));
    }
}

#[test]
fn opening_with_the_wrong_type_or_kind_is_a_typed_error() {
    let (name, _seg) = unbounded("unb-types");
    let other = Segment::open(&name).unwrap();
    assert!(matches!(
        other.queue::<u32>("q"),
        Err(shmq::OpenError::TypeMismatch { .. })
    ));
    assert!(matches!(
        other.lock("q"),
        Err(shmq::OpenError::KindMismatch { .. })
    ));
    assert!(other.queue::<u64>("q").is_ok());
}

#[test]
fn close_racing_producers_that_move_to_new_links_is_never_lost() {
    for round in 0..20 {
        let (_n, seg) = unbounded(&format!("unb-close-{round}"));
        let q = seg.queue::<u64>("q").unwrap();
        let accepted = std::sync::atomic::AtomicU64::new(0);
        std::thread::scope(|s| {
            for p in 0..2u64 {
                let q = q.clone();
                let accepted = &accepted;
                s.spawn(move || {
                    for i in 0.. {
                        match q.put(p << 32 | i) {
                            Ok(()) => {
                                accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            }
                            Err(PutError::Closed(_)) => return,
                            Err(e) => panic!("{e:?}"),
                        }
                    }
                });
            }
            // Let the producers cross a few links, then close.
            while q.len() < 3000 {
                std::thread::yield_now();
            }
            assert!(q.close());
        });
        // Every put that succeeded is delivered, then Closed; nothing is put after the close.
        let mut got = 0u64;
        loop {
            match q.get_timeout(Duration::from_secs(10)) {
                Ok(_) => got += 1,
                Err(GetError::Closed) => break,
                Err(e) => panic!("round {round}: after {got}: {e:?}"),
            }
        }
        assert_eq!(got, accepted.into_inner(), "round {round}");
        assert!(matches!(q.put(1), Err(PutError::Closed(1))));
    }
}

#[test]
fn an_idle_thread_that_used_the_queue_does_not_keep_drained_links_alive() {
    let (_n, seg) = unbounded("unb-idle");
    let q = seg.queue::<u64>("q").unwrap();
    let base = seg.stats().unwrap().heap_blocks;
    // This thread touches the first link, then stays idle while others stream through.
    q.put(1).unwrap();
    assert_eq!(q.get(), Ok(1));
    std::thread::scope(|s| {
        let qp = q.clone();
        s.spawn(move || {
            for i in 0..200_000u64 {
                qp.put(i).unwrap();
            }
        });
        let qc = q.clone();
        s.spawn(move || {
            for _ in 0..200_000u64 {
                qc.get_timeout(Duration::from_secs(20)).unwrap();
            }
        });
    });
    let s = seg.stats().unwrap();
    assert!(
        s.heap_blocks <= base + 1,
        "drained links kept: {} blocks (base {base})",
        s.heap_blocks
    );
}

#[test]
fn a_getter_on_a_later_link_is_told_disconnected_once_the_producer_is_gone() {
    let (_n, seg) = unbounded("unb-disc");
    let q = seg.queue::<u64>("q").unwrap();
    let qp = q.clone();
    // The producer fills more than the first link, then exits (its record is released).
    std::thread::spawn(move || {
        for i in 0..3000u64 {
            qp.put(i).unwrap();
        }
    })
    .join()
    .unwrap();
    for i in 0..3000u64 {
        assert_eq!(q.get(), Ok(i));
    }
    assert_eq!(
        q.get_timeout(Duration::from_secs(5)),
        Err(GetError::Disconnected)
    );
}
