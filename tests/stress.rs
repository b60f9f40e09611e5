//! Long-running stress tests between real processes, each under a watchdog. They are `#[ignore]`d
//! in the plain `cargo test` run and run by `.ci/run` in release mode:
//! `cargo test --release --test stress -- --ignored --skip child`.
//!
//! Sizes: `SHMQ_STRESS_HANDOFFS` (default 10^7) and `SHMQ_STRESS_MSGS` (default 200 000 per
//! producer).

mod common;

use common::*;
use shmq::{BytesPutError, GetError, Segment};
use std::process::Child;
use std::time::{Duration, Instant};

fn env_u64(k: &str, default: u64) -> u64 {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Waits for every child (draining their stdout meanwhile, so a child never blocks on a full
/// pipe); if they are not all done by `limit`, kills them and fails: a hang is a lost wake-up.
fn watchdog(children: Vec<Child>, limit: Duration) -> Vec<Vec<u8>> {
    use std::io::Read;
    let start = Instant::now();
    let mut readers = Vec::new();
    let mut children: Vec<Child> = children
        .into_iter()
        .map(|mut c| {
            let mut out = c.stdout.take().expect("piped stdout");
            readers.push(std::thread::spawn(move || {
                let mut buf = Vec::new();
                out.read_to_end(&mut buf).unwrap();
                buf
            }));
            c
        })
        .collect();
    loop {
        let mut done = true;
        for c in children.iter_mut() {
            done &= c.try_wait().unwrap().is_some();
        }
        if done {
            break;
        }
        if start.elapsed() > limit {
            for c in children.iter_mut() {
                let _ = c.kill();
            }
            panic!("watchdog: children still running after {limit:?} (lost wake-up?)");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for c in children.iter_mut() {
        assert!(c.wait().unwrap().success(), "child failed");
    }
    readers.into_iter().map(|r| r.join().unwrap()).collect()
}

#[test]
#[ignore = "child process of the stress tests"]
fn child_stress_role() {
    let seg = Segment::open(&child_var("SHMQ_SEG")).unwrap();
    match child_var("SHMQ_ROLE").as_str() {
        "echo" => {
            let p = child_var("SHMQ_ID");
            let ping = seg.queue::<u64>(&format!("ping{p}")).unwrap();
            let pong = seg.queue::<u64>(&format!("pong{p}")).unwrap();
            while let Ok(v) = ping.get() {
                pong.put(v + 1).unwrap();
            }
        }
        "producer" => {
            let id: u64 = child_var("SHMQ_ID").parse().unwrap();
            let n = env_u64("SHMQ_STRESS_MSGS", 200_000);
            let q = seg.bytes_queue("b").unwrap();
            let mut rng = Rng(id * 7919 + 1);
            let mut msg = Vec::with_capacity(q.max_len());
            for seq in 0..n {
                // Header: producer, sequence, checksum of the random body; then 0..=200 bytes.
                let body_len = (rng.next() % 201) as usize;
                msg.clear();
                msg.extend_from_slice(&id.to_le_bytes());
                msg.extend_from_slice(&seq.to_le_bytes());
                msg.extend_from_slice(&[0; 8]);
                let mut sum = 0u64;
                for _ in 0..body_len {
                    let b = rng.next() as u8;
                    sum = sum.wrapping_mul(31).wrapping_add(b as u64);
                    msg.push(b);
                }
                msg[16..24].copy_from_slice(&sum.to_le_bytes());
                // Random short timeouts: a timed-out put is retried, so every message goes in.
                loop {
                    let t = Duration::from_micros(rng.next() % 200);
                    match q.put_timeout(&msg, t) {
                        Ok(()) => break,
                        Err(BytesPutError::Timeout) => continue,
                        Err(e) => panic!("put: {e}"),
                    }
                }
            }
        }
        "consumer" => {
            let q = seg.bytes_queue("b").unwrap();
            let mut rng = Rng(std::process::id() as u64);
            let mut out = Vec::new();
            loop {
                let r = if rng.next() % 4 == 0 {
                    q.get_timeout(Duration::from_micros(rng.next() % 300))
                } else {
                    q.get()
                };
                let buf = match r {
                    Ok(m) => m,
                    Err(GetError::Timeout) => continue,
                    Err(GetError::Closed) => break,
                    Err(e) => panic!("get: {e}"),
                };
                let id = u64::from_le_bytes(buf[0..8].try_into().unwrap());
                let seq = u64::from_le_bytes(buf[8..16].try_into().unwrap());
                let sum = u64::from_le_bytes(buf[16..24].try_into().unwrap());
                let mut check = 0u64;
                for &b in &buf[24..] {
                    check = check.wrapping_mul(31).wrapping_add(b as u64);
                }
                assert_eq!(check, sum, "payload corrupted");
                out.push(id << 40 | seq);
            }
            print!("<<<{}>>>", encode(&out));
        }
        other => panic!("unknown role {other}"),
    }
}

/// xorshift: deterministic per process, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// Runs `pairs` ping-pong pairs (parent thread + echo child each) of `handoffs` hand-offs on
/// capacity-1 queues.
fn ping_pong(tag: &str, pairs: usize, handoffs: u64) {
    let name = unique(tag);
    let mut b = Segment::builder(&name);
    for p in 0..pairs {
        b = b
            .queue::<u64>(&format!("ping{p}"), 1)
            .queue::<u64>(&format!("pong{p}"), 1);
    }
    let seg = b.create().unwrap();
    let echoes: Vec<_> = (0..pairs)
        .map(|p| {
            spawn_child(
                "child_stress_role",
                &[
                    ("SHMQ_SEG", name.clone()),
                    ("SHMQ_ROLE", "echo".into()),
                    ("SHMQ_ID", p.to_string()),
                ],
            )
        })
        .collect();
    let t0 = Instant::now();
    let threads: Vec<_> = (0..pairs)
        .map(|p| {
            let ping = seg.queue::<u64>(&format!("ping{p}")).unwrap();
            let pong = seg.queue::<u64>(&format!("pong{p}")).unwrap();
            std::thread::spawn(move || {
                // Each round trip is two hand-offs. The gets are bounded by a timeout so a lost
                // wake-up fails the test instead of hanging it.
                let mut v = 0u64;
                for _ in 0..handoffs / 2 {
                    ping.put(v).unwrap();
                    v = pong
                        .get_timeout(Duration::from_secs(10))
                        .expect("no answer within 10 s: lost wake-up");
                }
                ping.close();
                assert_eq!(v, handoffs / 2);
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    watchdog(echoes, Duration::from_secs(30));
    eprintln!(
        "{pairs} pair(s) x {handoffs} hand-offs in {:?}",
        t0.elapsed()
    );
}

#[test]
#[ignore = "stress: run with --release --ignored (see the file docs)"]
fn capacity_one_ping_pong_hands_off_ten_million_times_without_losing_a_wake_up() {
    ping_pong("pingpong", 1, env_u64("SHMQ_STRESS_HANDOFFS", 10_000_000));
}

/// Eight processes on two cores: spinning cannot win, so nearly every hand-off goes through the
/// futex sleep/wake path.
#[test]
#[ignore = "stress: run with --release --ignored (see the file docs)"]
fn oversubscribed_ping_pong_pairs_never_lose_a_wake_up() {
    ping_pong(
        "oversub",
        4,
        env_u64("SHMQ_STRESS_HANDOFFS", 10_000_000) / 5,
    );
}

#[test]
#[ignore = "stress: run with --release --ignored (see the file docs)"]
fn four_process_mpmc_random_sizes_and_timeouts_delivers_exactly_once_in_order() {
    let n = env_u64("SHMQ_STRESS_MSGS", 200_000);
    let name = unique("mpmc");
    let seg = Segment::builder(&name)
        .bytes_queue("b", 64, 256)
        .create()
        .unwrap();
    let child = |role: &str, id: u64| {
        spawn_child(
            "child_stress_role",
            &[
                ("SHMQ_SEG", name.clone()),
                ("SHMQ_ROLE", role.to_string()),
                ("SHMQ_ID", id.to_string()),
            ],
        )
    };
    // The parent closes the queue after the producers: a producer until then (no consumer
    // reads the gap between two producers as `Disconnected`).
    seg.bytes_queue("b").unwrap().register_producer();
    let consumers = vec![child("consumer", 0), child("consumer", 1)];
    let producers = vec![child("producer", 0), child("producer", 1)];
    watchdog(producers, Duration::from_secs(600));
    seg.bytes_queue("b").unwrap().close();
    let outs = watchdog(consumers, Duration::from_secs(60));
    let mut all = Vec::new();
    for out in outs {
        let got = decode(&payload(&out));
        for id in 0..2u64 {
            let mine: Vec<u64> = got.iter().copied().filter(|v| v >> 40 == id).collect();
            assert!(
                mine.windows(2).all(|w| w[0] < w[1]),
                "producer {id} order broken"
            );
        }
        all.extend(got);
    }
    all.sort_unstable();
    let expect: Vec<u64> = (0..2u64)
        .flat_map(|id| (0..n).map(move |s| id << 40 | s))
        .collect();
    assert_eq!(all.len(), expect.len(), "messages lost or duplicated");
    assert!(all == expect, "messages lost or duplicated");
}
