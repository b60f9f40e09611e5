//! Kill -9 soak: producer and consumer processes share one queue while the parent SIGKILLs a
//! random one every few milliseconds and starts a new incarnation in its place. At the end the
//! parent stops the producers, lets the consumers drain until their blocked `get` reports
//! `Disconnected`, and checks, for every producer incarnation:
//!
//! * every acknowledged put (its `put` returned `Ok` and the producer recorded it) was delivered,
//!   or is one of the messages the queue counted in `stats().lost` (consumers killed holding one);
//! * nothing was delivered twice, and nothing was delivered that was never put;
//! * each consumer saw each producer incarnation's messages in the order they were put;
//! * nothing hung: progress after every window of kills, and the final drain, run under
//!   watchdogs.
//!
//! `#[ignore]`d (it is slow in debug builds); `.ci/run` runs it in release with 200 kills:
//! `SHMQ_SOAK_KILLS=200 cargo test --release --test soak -- --ignored --skip child --nocapture`.
//! `SHMQ_SOAK_SEED` replays a schedule. `SHMQ_SOAK_LONG=1` runs it over a byte queue of any
//! message size instead, with messages from 8 bytes to 100 KiB (most longer than a slot, so they
//! go through the segment's heap), each checked byte for byte, and at the end also checks that
//! the heap is back to its baseline (no block left by any killed process).

mod common;

use common::*;
use shmq::{GetError, Segment};
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PRODUCERS: u64 = 3;
const CONSUMERS: u64 = 2;
/// Puts per producer incarnation (then it idles until told to stop).
const SEQ_CAP: u64 = 1 << 14;
const WORDS: u64 = SEQ_CAP / 64;
const QUEUE_CAP: u64 = 64;

/// A message: producer id (4 bits), incarnation (20 bits), sequence number (1..SEQ_CAP).
fn msg(p: u64, inc: u64, seq: u64) -> u64 {
    p << 60 | inc << 40 | seq
}

fn unmsg(m: u64) -> (u64, u64, u64) {
    (m >> 60, (m >> 40) & 0xf_ffff, m & 0xff_ffff_ffff)
}

/// Incarnations each producer may have (sized from the kill count by the parent).
fn max_inc() -> u64 {
    child_var("SHMQ_SOAK_MAXINC").parse().unwrap()
}

/// Whether this run uses long byte messages (`SHMQ_SOAK_LONG=1`).
fn long_mode() -> bool {
    std::env::var("SHMQ_SOAK_LONG").is_ok_and(|v| v == "1")
}

/// Length of long-mode message `seq`: 8 to about 3 KiB, every 64th 100 KiB.
fn long_len(seq: u64) -> usize {
    if seq % 64 == 0 {
        100 << 10
    } else {
        8 + (seq as usize * 7919) % 3000
    }
}

/// Fills a long-mode message: the id, then bytes derived from it.
fn fill_long(buf: &mut [u8], m: u64) {
    buf[..8].copy_from_slice(&m.to_le_bytes());
    for (i, b) in buf[8..].iter_mut().enumerate() {
        *b = (m as usize).wrapping_add(i * 31) as u8;
    }
}

/// The id of a long-mode message if it is whole (its length and every byte as put), else `None`.
fn check_long(buf: &[u8]) -> Option<u64> {
    let m = u64::from_le_bytes(buf.get(..8)?.try_into().ok()?);
    let (_, _, seq) = unmsg(m);
    let whole = buf.len() == long_len(seq)
        && buf[8..]
            .iter()
            .enumerate()
            .all(|(i, &b)| b == (m as usize).wrapping_add(i * 31) as u8);
    whole.then_some(m)
}

/// The soak's queue, as a child sees it: `put(m, work)` and `get(f)` over a `Queue<u64>` or, in
/// long mode, a byte queue.
enum SoakQueue {
    Values(shmq::Queue<u64>),
    Bytes(shmq::BytesQueue),
}

impl SoakQueue {
    fn open(seg: &Segment) -> Self {
        if long_mode() {
            SoakQueue::Bytes(seg.bytes_queue("b").unwrap())
        } else {
            SoakQueue::Values(seg.queue::<u64>("q").unwrap())
        }
    }

    fn put(&self, m: u64, seq: u64) {
        match self {
            SoakQueue::Values(q) => q
                .put_with(|slot| {
                    *slot = m;
                    work(seq);
                })
                .unwrap(),
            SoakQueue::Bytes(b) => b
                .put_with(long_len(seq), |buf| {
                    fill_long(buf, m);
                    work(seq);
                })
                .unwrap(),
        }
    }

    /// Gets one message and runs `f` on its id (`None`: damaged) while it is still held.
    fn get(&self, mut f: impl FnMut(Option<u64>)) -> Result<(), GetError> {
        match self {
            SoakQueue::Values(q) => q.get_with(|&m| f(Some(m))),
            SoakQueue::Bytes(b) => b.get_with(|buf| f(check_long(buf))),
        }
    }
}

#[test]
#[ignore = "child process of the soak test"]
fn child_soak_role() {
    let seg = Segment::open(&child_var("SHMQ_SEG")).unwrap();
    let q = SoakQueue::open(&seg);
    let stop = seg.event("stop").unwrap();
    let id: u64 = child_var("SHMQ_ID").parse().unwrap();
    match child_var("SHMQ_ROLE").as_str() {
        "producer" => {
            let inc: u64 = child_var("SHMQ_INC").parse().unwrap();
            let acked = seg.array::<u64>("acked").unwrap();
            let slot = (id * max_inc() + inc) as usize;
            for seq in 1..SEQ_CAP {
                if stop.is_set() {
                    return;
                }
                // Filled in place: the claim (or, for a long message, the heap block) stays
                // open for the work below, so kills land between claim and publish often enough
                // to leave tombstones (or blocks held by dead producers).
                q.put(msg(id, inc, seq), seq);
                // The acknowledgement: from here on this message must be delivered or accounted.
                acked.set(slot, seq).unwrap();
            }
            stop.wait();
        }
        "consumer" => {
            let bits = seg.array::<u64>("bits").unwrap();
            let counters = seg.array::<u64>("counters").unwrap();
            let maxinc = max_inc();
            let mut last: HashMap<(u64, u64), u64> = HashMap::new();
            loop {
                // Recorded while the message is still claimed: a kill inside the closure leaves
                // the claim to recovery, which counts the message lost.
                let r = q.get(|m| {
                    let Some(m) = m else {
                        counters.fetch_add(BAD, 1).unwrap();
                        return;
                    };
                    let (p, inc, seq) = unmsg(m);
                    if p >= PRODUCERS || inc >= maxinc || seq == 0 || seq >= SEQ_CAP {
                        counters.fetch_add(BAD, 1).unwrap();
                        return;
                    }
                    let word = ((p * maxinc + inc) * WORDS + seq / 64) as usize;
                    let bit = 1u64 << (seq % 64);
                    let mut cur = bits.get(word).unwrap();
                    loop {
                        if cur & bit != 0 {
                            counters.fetch_add(DUPLICATES, 1).unwrap();
                            break;
                        }
                        match bits.compare_exchange(word, cur, cur | bit).unwrap() {
                            Ok(_) => break,
                            Err(now) => cur = now,
                        }
                    }
                    let prev = last.insert((p, inc), seq).unwrap_or(0);
                    if seq <= prev {
                        counters.fetch_add(OUT_OF_ORDER, 1).unwrap();
                    }
                    counters.fetch_add(DELIVERED, 1).unwrap();
                    work(m);
                });
                match r {
                    Ok(()) => {}
                    Err(GetError::Disconnected) => return,
                    Err(e) => panic!("get: {e:?}"),
                }
            }
        }
        other => panic!("unknown role {other}"),
    }
}

/// About a microsecond of computation, done while a message is claimed (a consumer processing
/// it in place, a producer building it in place), to widen the windows the kills aim at.
fn work(seed: u64) {
    let mut x = seed;
    for i in 0..1000u64 {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(i);
    }
    std::hint::black_box(x);
}

/// Indices into the shared `counters` array.
const DELIVERED: usize = 0;
const DUPLICATES: usize = 1;
const OUT_OF_ORDER: usize = 2;
const BAD: usize = 3;

/// A small deterministic generator (xorshift64*), seeded per run and printed for replay.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct Soak {
    name: String,
    maxinc: u64,
}

impl Soak {
    fn spawn(&self, role: &str, id: u64, inc: u64) -> Child {
        Command::new(std::env::current_exe().unwrap())
            .args([
                "child_soak_role",
                "--exact",
                "--ignored",
                "--test-threads=1",
            ])
            .env("SHMQ_TEST_CHILD", "1")
            .env("SHMQ_SEG", &self.name)
            .env("SHMQ_ROLE", role)
            .env("SHMQ_ID", id.to_string())
            .env("SHMQ_INC", inc.to_string())
            .env("SHMQ_SOAK_MAXINC", self.maxinc.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap()
    }
}

/// The running children; all are SIGKILLed if the test fails, so none outlives it.
struct Fleet(Vec<Child>);

impl Drop for Fleet {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn env_u64(k: &str, default: u64) -> u64 {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
#[ignore = "soak: run in release, see the module docs"]
fn kill_nine_soak_loses_nothing_acknowledged_and_never_hangs() {
    let kills = env_u64("SHMQ_SOAK_KILLS", 200);
    let seed = env_u64(
        "SHMQ_SOAK_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1,
    );
    let mut rng = Rng(seed);
    let maxinc = kills + 1;
    let name = unique("soak");
    let seg = Segment::builder(&name)
        .queue::<u64>("q", QUEUE_CAP)
        .bytes_queue("b", QUEUE_CAP, usize::MAX)
        .array::<u64>("acked", PRODUCERS * maxinc)
        .array::<u64>("bits", PRODUCERS * maxinc * WORDS)
        .array::<u64>("counters", 4)
        .event("stop")
        .participants(256)
        .create()
        .unwrap();
    let long = long_mode();
    let counters = seg.array::<u64>("counters").unwrap();
    let soak = Soak {
        name: name.clone(),
        maxinc,
    };

    // procs[0..PRODUCERS] are producers, the rest consumers; incs counts incarnations.
    let n = (PRODUCERS + CONSUMERS) as usize;
    let role = |i: usize| {
        if (i as u64) < PRODUCERS {
            ("producer", i as u64)
        } else {
            ("consumer", i as u64 - PRODUCERS)
        }
    };
    let mut incs = vec![0u64; n];
    let mut fleet = Fleet(
        (0..n)
            .map(|i| {
                let (r, id) = role(i);
                soak.spawn(r, id, 0)
            })
            .collect(),
    );
    let procs = &mut fleet.0;
    let (mut producer_kills, mut consumer_kills) = (0u64, 0u64);
    let t0 = Instant::now();
    let mut window_start = counters.get(DELIVERED).unwrap();
    for k in 0..kills {
        std::thread::sleep(Duration::from_micros(1000 + rng.below(14_000)));
        let i = rng.below(n as u64) as usize;
        procs[i].kill().unwrap();
        let status = procs[i].wait().unwrap();
        assert!(
            status.success() || std::os::unix::process::ExitStatusExt::signal(&status) == Some(9),
            "child {i} failed on its own: {status:?}"
        );
        incs[i] += 1;
        let (r, id) = role(i);
        if r == "producer" {
            producer_kills += 1;
        } else {
            consumer_kills += 1;
        }
        procs[i] = soak.spawn(r, id, incs[i]);
        // Progress watchdog: every 25 kills, messages must still be flowing.
        if k % 25 == 24 {
            let limit = Instant::now() + Duration::from_secs(20);
            while counters.get(DELIVERED).unwrap() == window_start {
                assert!(
                    Instant::now() < limit,
                    "no message delivered for 20 s after kill {k} (seed {seed})"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
            window_start = counters.get(DELIVERED).unwrap();
        }
    }

    // Stop the producers; consumers drain and leave when their get reports Disconnected. A
    // consumer may have left early (all producers were down at once for a moment): restart it
    // while producers still run, so none of them blocks on a full queue with nobody reading.
    seg.event("stop").unwrap().set();
    let deadline = Instant::now() + Duration::from_secs(60);
    let np = PRODUCERS as usize;
    loop {
        let mut running = 0;
        for i in 0..n {
            if let Some(status) = procs[i].try_wait().unwrap() {
                assert!(status.success(), "child {i} failed at the end: {status:?}");
                if i >= np
                    && procs[..np]
                        .iter_mut()
                        .any(|p| p.try_wait().unwrap().is_none())
                {
                    incs[i] += 1;
                    let (r, id) = role(i);
                    procs[i] = soak.spawn(r, id, incs[i]);
                    running += 1;
                }
            } else {
                running += 1;
            }
        }
        if running == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "watchdog: {running} children still running 60 s after stop (seed {seed})"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let elapsed = t0.elapsed();

    // Account for every acknowledged put.
    let acked = seg.array::<u64>("acked").unwrap().to_vec();
    let bits = seg.array::<u64>("bits").unwrap().to_vec();
    let delivered_bit = |p: u64, inc: u64, seq: u64| {
        bits[((p * maxinc + inc) * WORDS + seq / 64) as usize] & (1 << (seq % 64)) != 0
    };
    let (mut acknowledged, mut missing, mut phantom, mut unacked_delivered) = (0u64, 0, 0, 0);
    for p in 0..PRODUCERS {
        for inc in 0..=incs[p as usize] {
            let a = acked[(p * maxinc + inc) as usize];
            acknowledged += a;
            for seq in 1..SEQ_CAP {
                let got = delivered_bit(p, inc, seq);
                if seq <= a && !got {
                    missing += 1;
                } else if seq == a + 1 && got {
                    unacked_delivered += 1; // put returned, killed before recording the ack
                } else if seq > a + 1 && got {
                    phantom += 1;
                }
            }
        }
    }
    // A sweep first (Segment::stats runs one): it gives back the blocks of killed holders and
    // counts the long messages killed consumers had taken out of their slots as lost.
    let heap = seg.stats().unwrap();
    let stats = if long {
        seg.bytes_queue("b").unwrap().stats()
    } else {
        seg.queue::<u64>("q").unwrap().stats()
    };
    let delivered = counters.get(DELIVERED).unwrap();
    println!(
        "soak: seed {seed}, {kills} kills ({producer_kills} producers, {consumer_kills} \
         consumers) in {elapsed:.1?}; {acknowledged} acknowledged puts, {delivered} deliveries, \
         {unacked_delivered} delivered before their ack was recorded; missing {missing}, \
         lost (counted) {}, tombstones {}; duplicates {}, out of order {}, undecodable {}, \
         phantom {phantom}",
        stats.lost,
        stats.tombstones,
        counters.get(DUPLICATES).unwrap(),
        counters.get(OUT_OF_ORDER).unwrap(),
        counters.get(BAD).unwrap(),
    );
    assert_eq!(counters.get(DUPLICATES).unwrap(), 0, "seed {seed}");
    assert_eq!(counters.get(OUT_OF_ORDER).unwrap(), 0, "seed {seed}");
    assert_eq!(counters.get(BAD).unwrap(), 0, "seed {seed}");
    assert_eq!(
        phantom, 0,
        "delivered messages that were never put (seed {seed})"
    );
    // Each consumer kill loses at most the one message it held; every missing acknowledged
    // message must be one of those.
    assert!(stats.lost <= consumer_kills, "seed {seed}");
    assert!(
        missing <= stats.lost,
        "{} acknowledged messages unaccounted for (seed {seed})",
        missing - stats.lost
    );
    assert!(stats.tombstones <= producer_kills, "seed {seed}");
    assert!(acknowledged > 0);
    if long {
        println!(
            "soak heap: {} blocks in use after the drain, {} given back from killed holders, \
             {} growths, segment {} KiB",
            heap.heap_blocks,
            heap.reclaimed,
            heap.growths,
            heap.size >> 10
        );
        assert_eq!(
            (heap.heap_blocks, heap.heap_in_use),
            (0, 0),
            "heap not back to baseline (seed {seed})"
        );
    }
}
