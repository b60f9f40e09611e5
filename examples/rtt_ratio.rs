//! Round trip of shmq against the raw atomic floor, interleaved so that both are measured under
//! the same CPU placement. On a shared VM the hypervisor moves vCPUs between physical cores, and
//! the floor alone varies several-fold between runs; blocks of each, alternated, give a ratio that
//! does not depend on where the two processes happen to run.
//!
//! One child serves both: it spins on the floor word and polls the shmq ping queue. The parent
//! alternates blocks of `BLOCK` floor round trips and `BLOCK` shmq round trips (put on `ping`,
//! blocking `get` on `pong`), and reports the median per-block time of each and their ratio.
//!
//! `cargo run --release --example rtt_ratio [BLOCKS]`

use shmq::{process, Segment};
use std::time::Instant;

const BLOCK: u64 = 20_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seg_is_child = process::role().is_some();
    if seg_is_child {
        let seg = process::segment()?;
        let (ping, pong) = (seg.queue::<u64>("ping")?, seg.queue::<u64>("pong")?);
        let floor = seg.value::<u64>("floor")?;
        let mut last = 0;
        loop {
            let v = floor.load();
            if v == u64::MAX {
                return Ok(());
            }
            if v % 2 == 1 && v != last {
                floor.store(v + 1);
                last = v;
            }
            if let Ok(x) = ping.try_get() {
                pong.put(x)?;
            }
            std::hint::spin_loop();
        }
    }
    let blocks: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20);
    let name = format!("shmq-rtt-ratio-{}", std::process::id());
    let seg = Segment::builder(&name)
        .queue::<u64>("ping", 1)
        .queue::<u64>("pong", 1)
        .value::<u64>("floor", 0)
        .create()?;
    let (ping, pong) = (seg.queue::<u64>("ping")?, seg.queue::<u64>("pong")?);
    let floor = seg.value::<u64>("floor")?;
    let child = process::spawn(&seg, "echo")?;
    let mut next = 1u64;
    let (mut f, mut q) = (Vec::new(), Vec::new());
    for b in 0..blocks + 1 {
        let t = Instant::now();
        for _ in 0..BLOCK {
            floor.store(next);
            while floor.load() != next + 1 {
                std::hint::spin_loop();
            }
            next += 2;
        }
        let tf = t.elapsed().as_nanos() as f64 / BLOCK as f64;
        let t = Instant::now();
        for i in 0..BLOCK {
            ping.put(i)?;
            assert_eq!(pong.get()?, i);
        }
        let tq = t.elapsed().as_nanos() as f64 / BLOCK as f64;
        if b > 0 {
            // The first block of each is warm-up.
            f.push(tf);
            q.push(tq);
        }
    }
    floor.store(u64::MAX);
    assert_eq!(child.join()?, 0);
    let ratios: Vec<f64> = f.iter().zip(&q).map(|(a, b)| b / a).collect();
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!("{blocks} blocks of {BLOCK} round trips each, alternated");
    println!(
        "  atomic floor (SeqCst store + load, one word): median {:.0} ns",
        median(&f)
    );
    println!(
        "  shmq Queue<u64> cap 1, ping + pong:           median {:.0} ns",
        median(&q)
    );
    println!(
        "  shmq / floor, median of per-block ratios:     {:.2}x",
        median(&ratios)
    );
    println!(
        "  per-block ratio range:                        {:.2}x .. {:.2}x",
        ratios.iter().copied().fold(f64::INFINITY, f64::min),
        ratios.iter().copied().fold(0.0, f64::max)
    );
    Ok(())
}
