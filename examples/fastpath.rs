//! Runs N uncontended put/get pairs in one thread (N from the first argument, default 1 000 000).
//! `scripts/count-syscalls.sh` runs it under strace for two values of N: the system-call counts
//! must not depend on N, i.e. the fast path makes no system call.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let name = format!("shmq-fastpath-{}", std::process::id());
    let seg = shmq::Segment::builder(&name)
        .queue::<u64>("q", 64)
        .create()?;
    let q = seg.queue::<u64>("q")?;
    let mut sum = 0u64;
    for i in 0..n {
        q.put(i)?;
        sum = sum.wrapping_add(q.get()?);
    }
    println!("{n} put/get pairs, checksum {sum}");
    Ok(())
}
