//! One thread puts then gets `N` values through a bounded and an unbounded queue (prints ns per
//! put + get of each): a quick look at what the chain's announcements cost on the fast path.
//! `cargo run --release --example unbounded_cost -- [N]`
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2_000_000);
    let name = format!("shmq-example-ubcost-{}", std::process::id());
    let seg = shmq::Segment::builder(&name)
        .queue::<u64>("bounded", 1024)
        .unbounded_queue::<u64>("unbounded")
        .create()?;
    for which in ["bounded", "unbounded"] {
        let q = seg.queue::<u64>(which)?;
        let t = Instant::now();
        for i in 0..n {
            q.put(i)?;
            assert_eq!(q.get()?, i);
        }
        let ns = t.elapsed().as_nanos() as f64 / n as f64;
        println!("{which:>9}: {ns:.1} ns per put + get");
    }
    Ok(())
}
