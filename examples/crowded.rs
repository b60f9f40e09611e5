//! A crowded machine: N producer and N consumer processes share one queue (N = 1, 2, 4, 8 by
//! default, on however many cores there are), each producer putting as fast as it can for a
//! fixed time with the default blocking `put`, each consumer taking with the default `get`
//! until the queue is closed. Prints, per N, the aggregate throughput, its ratio to 1P1C, and
//! each producer's share of the messages against a fair share; checks that every message put was
//! taken exactly once and each producer's messages in the order it put them.
//!
//! `cargo run --release --example crowded [SECONDS_PER_RUN] [N ...]`

use shmq::{process, GetError, Segment};
use std::time::{Duration, Instant};

/// Producers at most (a message names its producer in its top byte).
const MAX_N: usize = 64;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    match process::role().as_deref() {
        Some(role) if role.starts_with("producer") => return producer(role),
        Some(role) if role.starts_with("consumer") => return consumer(),
        Some(other) => return Err(format!("unknown role {other}").into()),
        None => {}
    }
    let mut args = std::env::args().skip(1);
    let secs: f64 = args.next().map_or(Ok(2.0), |s| s.parse())?;
    let mut ns: Vec<usize> = args.map(|s| s.parse()).collect::<Result<_, _>>()?;
    if ns.is_empty() {
        ns = vec![1, 2, 4, 8];
    }
    if let Some(&n) = ns.iter().find(|&&n| n == 0 || n > MAX_N) {
        return Err(format!("{n} producers: between 1 and {MAX_N}").into());
    }
    println!(
        "{} cores; each run {secs} s; Queue<u64> of capacity 1024; default put/get",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("  N   messages/s   vs 1P1C   producer share of fair (min .. max)");
    let mut base = None;
    for n in ns {
        let (rate, shares) = run(n, secs)?;
        let base = *base.get_or_insert(rate);
        let (lo, hi) = shares
            .iter()
            .fold((f64::MAX, 0f64), |(lo, hi), &s| (lo.min(s), hi.max(s)));
        println!(
            "{n:>3}   {:>10.0}   {:>6.2}×   {lo:.2} .. {hi:.2}",
            rate,
            rate / base
        );
    }
    Ok(())
}

/// One run with `n` producers and `n` consumers: (messages per second, each producer's share of
/// the messages divided by a fair share).
fn run(n: usize, secs: f64) -> Result<(f64, Vec<f64>), Box<dyn std::error::Error>> {
    let name = format!("shmq-example-crowded-{}-{n}", std::process::id());
    let seg = Segment::builder(&name)
        .queue::<u64>("q", 1024)
        // (producer, messages put) from each producer; (producer, messages taken) from each
        // consumer, then u64::MAX as its end.
        .queue::<[u64; 2]>("report", 4 * (MAX_N * MAX_N) as u64)
        // The start signal: the run's end time in ns after the parent's start, one per producer.
        .queue::<u64>("go", MAX_N as u64)
        .create()?;
    let q = seg.queue::<u64>("q")?;
    q.register_producer(); // until every producer is done (see examples/two_by_two.rs)
    let consumers = (0..n)
        .map(|i| process::spawn(&seg, &format!("consumer-{i}")))
        .collect::<Result<Vec<_>, _>>()?;
    let producers = (0..n)
        .map(|i| process::spawn(&seg, &format!("producer-{i}")))
        .collect::<Result<Vec<_>, _>>()?;
    // Start together: each producer puts until the duration it is given has passed from when
    // it reads it.
    let go = seg.queue::<u64>("go")?;
    let start = Instant::now();
    for _ in 0..n {
        go.put(Duration::from_secs_f64(secs).as_nanos() as u64)?;
    }
    for p in producers {
        if p.join()? != 0 {
            return Err("a producer failed".into());
        }
    }
    q.close();
    for c in consumers {
        if c.join()? != 0 {
            return Err("a consumer failed".into());
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let report = seg.queue::<[u64; 2]>("report")?;
    let (mut put, mut got) = (vec![0u64; n], vec![0u64; n]);
    let mut ends = 0;
    while let Ok(r) = report.try_get() {
        match r {
            [u64::MAX, _] => ends += 1,
            [p, count] if (p >> 32) == 1 => put[(p & 0xFFFF) as usize] += count,
            [p, count] => got[(p & 0xFFFF) as usize] += count,
        }
    }
    if ends != n || put != got {
        return Err(format!("lost or duplicated messages: put {put:?}, taken {got:?}").into());
    }
    let total: u64 = put.iter().sum();
    let fair = total as f64 / n as f64;
    Ok((
        total as f64 / elapsed,
        put.iter().map(|&c| c as f64 / fair).collect(),
    ))
}

fn producer(role: &str) -> Result<(), Box<dyn std::error::Error>> {
    let me: u64 = role.trim_start_matches("producer-").parse()?;
    let seg = process::segment()?;
    let q = seg.queue::<u64>("q")?;
    let ns = seg.queue::<u64>("go")?.get()?;
    let end = Instant::now() + Duration::from_nanos(ns);
    let mut i = 0u64;
    // Check the clock every 256 puts (a clock read costs about as much as a put).
    loop {
        for _ in 0..256 {
            q.put(me << 56 | i)?;
            i += 1;
        }
        if Instant::now() >= end {
            break;
        }
    }
    seg.queue::<[u64; 2]>("report")?.put([1 << 32 | me, i])?;
    Ok(())
}

fn consumer() -> Result<(), Box<dyn std::error::Error>> {
    let seg = process::segment()?;
    let q = seg.queue::<u64>("q")?;
    let mut next = [0u64; MAX_N];
    let mut taken = [0u64; MAX_N];
    loop {
        match q.get() {
            Ok(v) => {
                let (p, i) = ((v >> 56) as usize, v & ((1 << 56) - 1));
                if p >= MAX_N || i < next[p] {
                    return Err(format!("producer {p}'s message {i} out of order").into());
                }
                next[p] = i + 1;
                taken[p] += 1;
            }
            Err(GetError::Closed) => break,
            Err(e) => return Err(e.into()),
        }
    }
    let report = seg.queue::<[u64; 2]>("report")?;
    for (p, &count) in taken.iter().enumerate().filter(|(_, &c)| c > 0) {
        report.put([p as u64, count])?;
    }
    report.put([u64::MAX, 0])?;
    Ok(())
}
