//! Round trip of shmq against the raw atomic floor, interleaved so that both are measured under
//! the same CPU placement. On a shared VM the hypervisor moves vCPUs between physical cores, and
//! the floor alone varies several-fold between runs; blocks of each, alternated, give a ratio that
//! does not depend on where the two processes happen to run.
//!
//! Three kinds of block, alternated, each of `BLOCK` round trips of one 8-byte value:
//!
//! * **floor**: one `AtomicU64` in a /dev/shm mapping, bounced with a Release store and an
//!   Acquire spin on both sides (the cheapest correct hand-off: one cache line, two transfers
//!   per round trip);
//! * **default**: `ping.put(x)` then `pong.get()` here, `pong.put(ping.get()?)` in the child: the
//!   calls a new user writes, with the default adaptive wait on both sides;
//! * **busy-poll**: the same, but both receivers spin on `try_get` (a tuned mode, named beside).
//!
//! It prints the median per-block time of each and the median of the per-block ratios.
//!
//! `cargo run --release --example rtt_ratio [BLOCKS]`

use shmq::{process, Segment};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

const BLOCK: u64 = 20_000;
const FLOOR_VAR: &str = "SHMQ_RTT_FLOOR";
const BLOCKS_VAR: &str = "SHMQ_RTT_BLOCKS";

/// The floor's mapping: one page of a /dev/shm file, unmapped on drop.
struct FloorMap {
    ptr: *mut core::ffi::c_void,
}

impl FloorMap {
    fn open(path: &str) -> std::io::Result<Self> {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)?;
        // SAFETY: a fresh shared mapping of 4096 bytes of a file at least that long; nothing
        // else is mapped at the address the kernel picks.
        let ptr = unsafe {
            rustix::mm::mmap(
                core::ptr::null_mut(),
                4096,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::SHARED,
                &f,
                0,
            )?
        };
        Ok(Self { ptr })
    }

    fn word(&self) -> &AtomicU64 {
        // SAFETY: the mapping is page-aligned, 4096 bytes, lives as long as `self`, and is only
        // accessed through this atomic (valid for any bits).
        unsafe { &*(self.ptr as *const AtomicU64) }
    }
}

impl Drop for FloorMap {
    fn drop(&mut self) {
        // SAFETY: `ptr` is our own 4096-byte mapping; no reference into it outlives `self`.
        let _ = unsafe { rustix::mm::munmap(self.ptr, 4096) };
    }
}

/// A busy-polling receive: `try_get` in a spin until a value comes (the tuned mode).
fn spin_get(q: &shmq::Queue<u64>) -> u64 {
    loop {
        if let Ok(x) = q.try_get() {
            return x;
        }
        std::hint::spin_loop();
    }
}

/// The child: echoes each kind of block in the order the parent runs them.
fn echo(blocks: usize) -> Result<(), Box<dyn std::error::Error>> {
    let seg = process::segment()?;
    let (ping, pong) = (seg.queue::<u64>("ping")?, seg.queue::<u64>("pong")?);
    let map = FloorMap::open(&std::env::var(FLOOR_VAR)?)?;
    let floor = map.word();
    let mut last = 0;
    for _ in 0..blocks + 1 {
        for _ in 0..BLOCK {
            let v = loop {
                // SYNC: Acquire pairs with the parent's Release store of the odd value.
                let v = floor.load(Ordering::Acquire);
                if v != last && v % 2 == 1 {
                    break v;
                }
                std::hint::spin_loop();
            };
            // SYNC: Release pairs with the parent's Acquire spin.
            floor.store(v + 1, Ordering::Release);
            last = v;
        }
        for _ in 0..BLOCK {
            pong.put(ping.get()?)?;
        }
        for _ in 0..BLOCK {
            pong.put(spin_get(&ping))?;
        }
    }
    Ok(())
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if process::role().is_some() {
        return echo(std::env::var(BLOCKS_VAR)?.parse()?);
    }
    let blocks: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20)
        .max(1);
    let name = format!("shmq-rtt-ratio-{}", std::process::id());
    let floor_path = format!("/dev/shm/shmq-rtt-floor-{}", std::process::id());
    std::fs::File::create(&floor_path)?.set_len(4096)?;
    let map = FloorMap::open(&floor_path)?;
    let floor = map.word();
    let seg = Segment::builder(&name)
        .queue::<u64>("ping", 1)
        .queue::<u64>("pong", 1)
        .create()?;
    let (ping, pong) = (seg.queue::<u64>("ping")?, seg.queue::<u64>("pong")?);
    let child = process::spawn_with(&seg, "echo", |c| {
        c.env(FLOOR_VAR, &floor_path)
            .env(BLOCKS_VAR, blocks.to_string());
    })?;
    let mut next = 1u64;
    let (mut f, mut d, mut p) = (Vec::new(), Vec::new(), Vec::new());
    let per = |t: Instant| t.elapsed().as_nanos() as f64 / BLOCK as f64;
    for b in 0..blocks + 1 {
        let t = Instant::now();
        for _ in 0..BLOCK {
            // SYNC: Release pairs with the child's Acquire spin; Acquire with its Release reply.
            floor.store(next, Ordering::Release);
            while floor.load(Ordering::Acquire) != next + 1 {
                std::hint::spin_loop();
            }
            next += 2;
        }
        let tf = per(t);
        let t = Instant::now();
        for i in 0..BLOCK {
            ping.put(i)?;
            assert_eq!(pong.get()?, i);
        }
        let td = per(t);
        let t = Instant::now();
        for i in 0..BLOCK {
            ping.put(i)?;
            assert_eq!(spin_get(&pong), i);
        }
        let tp = per(t);
        if b > 0 {
            // The first block of each is warm-up.
            f.push(tf);
            d.push(td);
            p.push(tp);
        }
    }
    assert_eq!(child.join()?, 0);
    let _ = std::fs::remove_file(&floor_path);
    let ratios = |v: &[f64]| -> Vec<f64> { f.iter().zip(v).map(|(a, b)| b / a).collect() };
    let (rd, rp) = (ratios(&d), ratios(&p));
    println!("{blocks} blocks of {BLOCK} round trips of each kind, alternated");
    println!(
        "  atomic floor (Release store, Acquire spin; one word):  median {:>6.0} ns",
        median(&f)
    );
    let row = |label: &str, times: &[f64], ratios: &[f64]| {
        println!(
            "  shmq Queue<u64> cap 1, {label:<30} median {:>6.0} ns  {:.2}x the floor (per-block {:.2}x .. {:.2}x)",
            median(times),
            median(ratios),
            ratios.iter().copied().fold(f64::INFINITY, f64::min),
            ratios.iter().copied().fold(0.0, f64::max)
        )
    };
    row("default put/get both sides:", &d, &rd);
    row("busy-polling try_get (tuned):", &p, &rp);
    Ok(())
}
