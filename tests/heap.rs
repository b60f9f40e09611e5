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

/// Message `i` of producer `p`: its length (8 B .. 16 MiB, mostly short) and content are fixed
/// by `(p, i)`, and its first 16 bytes say who sent it, so a consumer can check it whole.
fn mixed_message(p: u64, i: u64) -> Vec<u8> {
    let id = p << 32 | i;
    let len = match id.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 58 {
        0 => 16 << 20,
        1..=3 => (1 << 20) + (i as usize * 131) % 4096,
        4..=20 => 241 + (i as usize * 7919) % 60_000,
        _ => 16 + (i as usize * 31) % 224,
    };
    let mut m = message(len, id);
    m[..8].copy_from_slice(&p.to_le_bytes());
    m[8..16].copy_from_slice(&i.to_le_bytes());
    m
}

const MIXED_PER_PRODUCER: u64 = 300;

#[test]
#[ignore = "child process of two_producers_and_two_consumers_exchange_mixed_sizes_exactly_once"]
fn child_mixed_role() {
    let seg = Segment::open(&child_var("SHMQ_SEG")).unwrap();
    let q = seg.bytes_queue("q").unwrap();
    let role = child_var("SHMQ_ROLE");
    if let Some(p) = role.strip_prefix("producer-") {
        let p: u64 = p.parse().unwrap();
        for i in 0..MIXED_PER_PRODUCER {
            q.put(&mixed_message(p, i)).unwrap();
        }
        return;
    }
    // Consumer: checks every message whole, reports (producer, index) of each.
    let mut seen = Vec::new();
    while let Ok(m) = q.get() {
        let p = u64::from_le_bytes(m[..8].try_into().unwrap());
        let i = u64::from_le_bytes(m[8..16].try_into().unwrap());
        assert!(m == mixed_message(p, i), "message {p}/{i} arrived damaged");
        seen.push(p << 32 | i);
    }
    println!("<<<{}>>>", encode(&seen));
}

#[test]
fn two_producers_and_two_consumers_exchange_mixed_sizes_exactly_once() {
    let (name, seg) = any_size_segment("heap-2p2c", 16);
    let env = |role: &str| vec![("SHMQ_SEG", name.clone()), ("SHMQ_ROLE", role.to_string())];
    let consumers: Vec<_> = (0..2)
        .map(|_| spawn_child("child_mixed_role", &env("consumer")))
        .collect();
    let producers: Vec<_> = (0..2)
        .map(|p| spawn_child("child_mixed_role", &env(&format!("producer-{p}"))))
        .collect();
    for p in producers {
        finish(p);
    }
    seg.bytes_queue("q").unwrap().close();
    let mut all: Vec<u64> = consumers
        .into_iter()
        .flat_map(|c| decode(&payload(&finish(c))))
        .collect();
    all.sort_unstable();
    let want: Vec<u64> = (0..2)
        .flat_map(|p| (0..MIXED_PER_PRODUCER).map(move |i| p << 32 | i))
        .collect();
    assert_eq!(all, want, "every message exactly once");
    let s = seg.stats().unwrap();
    assert_eq!((s.heap_in_use, s.heap_blocks), (0, 0), "{s:?}");
}
