//! Byte messages of any size through the segment's shared heap, and the segment's growth.

mod common;

use common::*;
use shmq::{BytesPutError, Segment};
use std::time::Duration;

/// A message of `len` bytes whose content depends on `seed`, and its checksum.
fn message(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn any_size_segment(tag: &str, capacity: u64) -> (String, Segment) {
    let name = unique(tag);
    let seg = Segment::builder(&name)
        .bytes_queue("q", capacity, usize::MAX)
        .max_size(1 << 30)
        .create()
        .unwrap();
    (name, seg)
}

#[test]
fn messages_of_every_size_round_trip_exactly() {
    let (_n, seg) = any_size_segment("heap-sizes", 8);
    let q = seg.bytes_queue("q").unwrap();
    assert_eq!(q.max_len(), usize::MAX);
    assert_eq!(q.inline_len(), shmq::LONG_QUEUE_INLINE);
    let sizes = [
        0usize,
        1,
        239,
        240,
        241,
        1000,
        4096,
        65_536,
        1 << 20,
        (10 << 20) + 3,
        16 << 20,
    ];
    for (i, &len) in sizes.iter().enumerate() {
        let m = message(len, i as u64);
        q.put(&m).unwrap();
        let got = q.get().unwrap();
        assert_eq!(got.len(), len);
        assert!(got == m, "message of {len} bytes came back different");
    }
    let s = seg.stats().unwrap();
    assert_eq!((s.heap_in_use, s.heap_blocks), (0, 0), "{s:?}");
    assert!(s.growths >= 1 && s.size > s.heap_bytes, "{s:?}");
}

#[test]
fn queued_long_messages_are_delivered_in_order_and_their_space_comes_back() {
    let (_n, seg) = any_size_segment("heap-order", 64);
    let q = seg.bytes_queue("q").unwrap();
    for i in 0..64u64 {
        q.put(&message(300 + (i as usize * 9973) % 200_000, i))
            .unwrap();
    }
    assert!(seg.stats().unwrap().heap_blocks == 64);
    for i in 0..64u64 {
        let want = message(300 + (i as usize * 9973) % 200_000, i);
        assert!(q.get().unwrap() == want, "message {i}");
    }
    let s = seg.stats().unwrap();
    assert_eq!((s.heap_in_use, s.heap_blocks), (0, 0), "{s:?}");
}

#[test]
fn another_mapping_of_the_segment_maps_its_growth_when_it_meets_it() {
    let (name, seg) = any_size_segment("heap-lazy", 4);
    let other = Segment::open(&name).unwrap();
    let before = other.stats().unwrap().mapped;
    let q = seg.bytes_queue("q").unwrap();
    let big = message(8 << 20, 7);
    q.put(&big).unwrap();
    assert!(seg.size() > before);
    // The opener mapped only what existed when it opened; the message lies beyond it.
    assert!(other.stats().unwrap().mapped == before);
    assert!(other.bytes_queue("q").unwrap().get().unwrap() == big);
    assert!(other.stats().unwrap().mapped >= seg.size() - 4096);
}

#[test]
fn a_message_that_can_never_fit_is_too_large_at_once() {
    let name = unique("heap-never");
    let seg = Segment::builder(&name)
        .bytes_queue("q", 4, usize::MAX)
        .max_size(4 << 20)
        .create()
        .unwrap();
    let q = seg.bytes_queue("q").unwrap();
    let t0 = std::time::Instant::now();
    match q.put(&vec![0u8; 5 << 20]) {
        Err(BytesPutError::TooLarge { len, max }) => {
            assert_eq!(len, 5 << 20);
            assert!(max < 4 << 20 && max > 3 << 20, "max {max}");
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(t0.elapsed() < Duration::from_secs(1));
    assert_eq!(seg.stats().unwrap().heap_blocks, 0);
}

#[test]
fn a_full_segment_is_no_space_naming_its_limit_and_space_returns_after_a_get() {
    let name = unique("heap-full");
    let seg = Segment::builder(&name)
        .bytes_queue("q", 16, usize::MAX)
        .max_size(8 << 20)
        .create()
        .unwrap();
    let q = seg.bytes_queue("q").unwrap();
    let m = message(3 << 20, 1);
    q.put(&m).unwrap();
    q.put(&m).unwrap();
    match q.put(&m) {
        Err(BytesPutError::NoSpace { max_size, .. }) => assert_eq!(max_size, 8 << 20),
        other => panic!("expected NoSpace, got {other:?}"),
    }
    assert!(seg.size() <= 8 << 20);
    assert!(q.get().unwrap() == m);
    q.put(&m).unwrap();
    assert_eq!(seg.stats().unwrap().heap_blocks, 2);
}

#[test]
fn freed_space_is_reused_by_a_long_running_pair() {
    let (_n, seg) = any_size_segment("heap-reuse", 32);
    let q = seg.bytes_queue("q").unwrap();
    let total: u64 = std::env::var("SHMQ_HEAP_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let mut x = 12345u64;
    let mut next_len = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Mostly short of a slot, some a few KiB, a few up to 256 KiB.
        match x % 100 {
            0..=59 => (x >> 8) as usize % 240,
            60..=97 => 241 + (x >> 8) as usize % 8192,
            _ => 241 + (x >> 8) as usize % (256 << 10),
        }
    };
    let mut queued = std::collections::VecDeque::new();
    let mut peak = 0;
    for i in 0..total {
        let len = next_len();
        q.put(&vec![i as u8; len]).unwrap();
        queued.push_back((len, i as u8));
        if queued.len() == 32 {
            for _ in 0..16 {
                let (len, b) = queued.pop_front().unwrap();
                let got = q.get().unwrap();
                assert!(got.len() == len && got.iter().all(|&c| c == b));
            }
        }
        if i % 1000 == 0 {
            peak = peak.max(seg.stats().unwrap().heap_bytes);
        }
    }
    while let Some((len, _)) = queued.pop_front() {
        assert_eq!(q.get().unwrap().len(), len);
    }
    let s = seg.stats().unwrap();
    assert_eq!((s.heap_in_use, s.heap_blocks), (0, 0), "{s:?}");
    // At most 32 messages of at most 256 KiB are queued at once: 8 MiB. The heap stays within a
    // small multiple of that however many messages pass.
    assert!(
        s.heap_bytes <= 24 << 20,
        "heap grew to {} bytes ({s:?})",
        s.heap_bytes
    );
    eprintln!(
        "{total} messages: heap peaked at {} KiB, {} growths, segment {} KiB",
        peak.max(s.heap_bytes) >> 10,
        s.growths,
        s.size >> 10
    );
}

#[test]
fn put_with_and_get_with_work_in_place_for_long_messages() {
    let (_n, seg) = any_size_segment("heap-inplace", 4);
    let q = seg.bytes_queue("q").unwrap();
    q.put_with(100_000, |b| b.fill(9)).unwrap();
    let sum = q
        .get_with(|m| m.iter().map(|&b| b as u64).sum::<u64>())
        .unwrap();
    assert_eq!(sum, 900_000);
    // A panicking reader still frees the block (and the message is consumed).
    q.put(&[1u8; 5000]).unwrap();
    let q2 = q.clone();
    let r = std::thread::spawn(move || q2.get_with(|_| panic!("reader fails"))).join();
    assert!(r.is_err());
    let s = seg.stats().unwrap();
    assert_eq!((s.heap_blocks, q.len()), (0, 0), "{s:?}");
}

#[test]
fn small_max_len_queues_keep_every_message_in_its_slot() {
    let name = unique("heap-inline");
    let seg = Segment::builder(&name)
        .bytes_queue("q", 4, 4096)
        .create()
        .unwrap();
    let q = seg.bytes_queue("q").unwrap();
    assert_eq!((q.max_len(), q.inline_len()), (4096, 4096));
    q.put(&[3u8; 4096]).unwrap();
    assert_eq!(seg.stats().unwrap().heap_blocks, 0);
    assert_eq!(q.get().unwrap(), vec![3u8; 4096]);
    assert!(matches!(
        q.put(&[0u8; 4097]),
        Err(BytesPutError::TooLarge {
            len: 4097,
            max: 4096
        })
    ));
}
