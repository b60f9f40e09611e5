//! Kill -9 soak of the heap-backed objects: writer processes insert into one shared dictionary
//! and push to one growable list while the parent SIGKILLs a random writer every few
//! milliseconds and starts a new incarnation in its place. At the end it checks:
//!
//! * every dictionary value and every list item reads whole (a checksum over its bytes);
//! * every acknowledged write is there: a key holds the last value its writer was told was
//!   inserted, or a later one; every acknowledged push is in the list, each incarnation's items in
//!   the order pushed, none twice;
//! * nothing is lost in the heap: after a sweep it holds the dictionary's table, the list's
//!   array, one block per entry and one per item, no more;
//! * nothing hung: the writers made progress after every window of kills, and the checks ran
//!   under a watchdog.
//!
//! `#[ignore]`d; `.ci/run` runs it in release:
//! `SHMQ_SOAK_KILLS=100 cargo test --release --test soak_heap -- --ignored --skip child --nocapture`.

mod common;

use common::*;
use shmq::Segment;
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const WRITERS: u64 = 3;
/// Keys each writer owns in the dictionary.
const SLOTS: u64 = 64;

/// A value or item: writer, incarnation, sequence, then bytes derived from them, then a
/// checksum (FNV-1a of everything before it). 16 bytes to about 2 KiB.
fn encode(id: u64, inc: u64, seq: u64) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&id.to_le_bytes());
    v.extend_from_slice(&inc.to_le_bytes());
    v.extend_from_slice(&seq.to_le_bytes());
    let n = (seq as usize * 131 + id as usize * 17) % 2000;
    v.extend((0..n).map(|i| (i as u64 ^ seq ^ inc) as u8));
    let sum = fnv(&v);
    v.extend_from_slice(&sum.to_le_bytes());
    v
}

fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| {
        (h ^ x as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// (writer, incarnation, sequence) of a whole value; `None` if it is torn.
fn decode(v: &[u8]) -> Option<(u64, u64, u64)> {
    if v.len() < 32 {
        return None;
    }
    let (body, sum) = v.split_at(v.len() - 8);
    if fnv(body) != u64::from_le_bytes(sum.try_into().ok()?) {
        return None;
    }
    let w = |i: usize| u64::from_le_bytes(body[i * 8..i * 8 + 8].try_into().unwrap());
    let (id, inc, seq) = (w(0), w(1), w(2));
    (encode(id, inc, seq) == v).then_some((id, inc, seq))
}

fn key(id: u64, slot: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&id.to_le_bytes());
    k[8..].copy_from_slice(&slot.to_le_bytes());
    k
}

#[test]
#[ignore = "child process of the heap soak"]
fn child_heap_writer() {
    let seg = Segment::open(&child_var("SHMQ_SEG")).unwrap();
    let id: u64 = child_var("SHMQ_ID").parse().unwrap();
    let inc: u64 = child_var("SHMQ_INC").parse().unwrap();
    let (d, l) = (seg.bytes_dict("d").unwrap(), seg.bytes_list("l").unwrap());
    // acked[id * SLOTS + slot]: inc << 32 | seq of the last insert the writer saw succeed.
    let acked = seg.array::<u64>("acked").unwrap();
    // pushed[id]: inc << 32 | number of pushes this incarnation saw succeed.
    let pushed = seg.array::<u64>("pushed").unwrap();
    let progress = seg.array::<u64>("progress").unwrap();
    for seq in 1u64.. {
        let slot = seq % SLOTS;
        d.insert(&key(id, slot), &encode(id, inc, seq)).unwrap();
        acked
            .set((id * SLOTS + slot) as usize, inc << 32 | seq)
            .unwrap();
        if seq % 4 == 0 {
            l.push(&encode(id, inc, seq)).unwrap();
            pushed.set(id as usize, (inc << 32) | (seq / 4)).unwrap();
        }
        progress.fetch_add(0, 1).unwrap();
    }
}

/// Aborts the test process if the checks take longer than `limit` (a hang).
fn watchdog(limit: Duration) -> std::sync::mpsc::Sender<()> {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if rx.recv_timeout(limit) == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
            eprintln!("heap soak: the checks hung for {limit:?}");
            std::process::abort();
        }
    });
    tx
}

#[test]
#[ignore = "soak: run in release, see the module docs"]
fn kill_nine_soak_of_dict_and_list_writers_keeps_every_acknowledged_write_whole() {
    let kills: u64 = std::env::var("SHMQ_SOAK_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let name = unique("soak-heap");
    let seg = Segment::builder(&name)
        .bytes_dict("d")
        .bytes_list("l")
        .array::<u64>("acked", WRITERS * SLOTS)
        .array::<u64>("pushed", WRITERS)
        .array::<u64>("progress", 1)
        .create()
        .unwrap();
    let spawn = |id: u64, inc: u64| -> Child {
        Command::new(std::env::current_exe().unwrap())
            .args([
                "child_heap_writer",
                "--exact",
                "--ignored",
                "--test-threads=1",
            ])
            .env("SHMQ_TEST_CHILD", "1")
            .env("SHMQ_SEG", &name)
            .env("SHMQ_ID", id.to_string())
            .env("SHMQ_INC", inc.to_string())
            .stdout(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut incs = vec![1u64; WRITERS as usize];
    let mut kids: Vec<Child> = (0..WRITERS).map(|i| spawn(i, 1)).collect();
    let progress = seg.array::<u64>("progress").unwrap();
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ std::process::id() as u64;
    let started = Instant::now();
    for k in 0..kills {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        std::thread::sleep(Duration::from_millis(2 + x % 8));
        let i = (x % WRITERS) as usize;
        kids[i].kill().unwrap();
        kids[i].wait().unwrap();
        incs[i] += 1;
        kids[i] = spawn(i as u64, incs[i]);
        if k % 20 == 19 {
            // Progress after every window of kills: the survivors were never wedged.
            let before = progress.get(0).unwrap();
            let t = Instant::now();
            while progress.get(0).unwrap() == before {
                assert!(
                    t.elapsed() < Duration::from_secs(20),
                    "no write for 20 s after {k} kills"
                );
                std::thread::yield_now();
            }
        }
    }
    for c in &mut kids {
        c.kill().unwrap();
        c.wait().unwrap();
    }
    let done = watchdog(Duration::from_secs(120));
    let (d, l) = (seg.bytes_dict("d").unwrap(), seg.bytes_list("l").unwrap());
    let acked = seg.array::<u64>("acked").unwrap();
    let pushed = seg.array::<u64>("pushed").unwrap();

    // The dictionary: every value whole; every key at least its acknowledged write.
    let entries = d.items().unwrap();
    for (k, v) in &entries {
        let (id, inc, seq) = decode(v).unwrap_or_else(|| panic!("torn value under {k:?}"));
        assert_eq!(
            k.as_slice(),
            key(id, seq % SLOTS),
            "value under another key"
        );
        let _ = inc;
    }
    for id in 0..WRITERS {
        for slot in 0..SLOTS {
            let a = acked.get((id * SLOTS + slot) as usize).unwrap();
            if a == 0 {
                continue;
            }
            let v = d
                .get(&key(id, slot))
                .unwrap()
                .unwrap_or_else(|| panic!("acknowledged key ({id}, {slot}) missing"));
            let (_, inc, seq) = decode(&v).unwrap();
            assert!(
                inc << 32 | seq >= a,
                "key ({id}, {slot}) holds ({inc}, {seq}), older than its acknowledged write"
            );
        }
    }

    // The list: every item whole, each incarnation's in order and none twice; every
    // acknowledged push of an incarnation's last report is there.
    let items = l.to_vec().unwrap();
    let mut last: HashMap<(u64, u64), u64> = HashMap::new();
    let mut count: HashMap<(u64, u64), u64> = HashMap::new();
    for it in &items {
        let (id, inc, seq) = decode(it).expect("torn list item");
        let prev = last.insert((id, inc), seq).unwrap_or(0);
        assert!(
            seq > prev,
            "writer {id} incarnation {inc}: {seq} after {prev}"
        );
        *count.entry((id, inc)).or_default() += 1;
    }
    for id in 0..WRITERS {
        let p = pushed.get(id as usize).unwrap();
        let (inc, n) = (p >> 32, p & 0xffff_ffff);
        if n > 0 {
            assert!(
                count.get(&(id, inc)).copied().unwrap_or(0) >= n,
                "writer {id} incarnation {inc}: {n} pushes acknowledged, fewer in the list"
            );
        }
    }

    // The heap: the table, the array, one block per entry and per item.
    let stats = seg.stats().unwrap();
    assert_eq!(
        stats.heap_blocks,
        entries.len() as u64 + items.len() as u64 + 2,
        "{stats:?}"
    );
    drop(done);
    println!(
        "heap soak: {kills} kills in {:.1} s, {} writes, {} entries, {} items, {} blocks \
         reclaimed, heap {} KiB",
        started.elapsed().as_secs_f64(),
        progress.get(0).unwrap(),
        entries.len(),
        items.len(),
        stats.reclaimed,
        stats.heap_bytes / 1024
    );
}
