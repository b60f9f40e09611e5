//! The demo: moves 1 000 000 messages from one process to another through a shmq queue, then the
//! same transfer through a pipe (one `write` per message, as a pickling pipe queue does), and the
//! same for ping-pong round trips; prints both, measured in the same run.
//!
//! `cargo run --release --example quickstart` (add a message count to change it: `-- 200000`)

use rustix::fd::AsFd;
use shmq::{process, GetError, Segment};
use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

const ROUND_TRIPS: usize = 20_000;

/// Message count: the first argument in the parent; children get it through `QUICKSTART_N`.
fn count() -> u64 {
    std::env::var("QUICKSTART_N")
        .ok()
        .or_else(|| std::env::args().nth(1))
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000)
}

fn write_all_fd(fd: impl AsFd, mut buf: &[u8]) -> std::io::Result<()> {
    while !buf.is_empty() {
        let n = rustix::io::write(fd.as_fd(), buf)?;
        buf = &buf[n..];
    }
    Ok(())
}

fn child(role: &str) -> Result<(), Box<dyn std::error::Error>> {
    let n = count();
    match role {
        "shmq-producer" => {
            let q = process::segment()?.queue::<u64>("data")?;
            for i in 0..n {
                q.put(i)?;
            }
        }
        "shmq-echo" => {
            let seg = process::segment()?;
            let (ping, pong) = (seg.queue::<u64>("ping")?, seg.queue::<u64>("pong")?);
            loop {
                match ping.get() {
                    Ok(v) => pong.put(v)?,
                    Err(GetError::Closed) => break,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        "pipe-producer" => {
            let out = std::io::stdout();
            for i in 0..n {
                // One write(2) per message: the cost a pipe-based queue pays.
                write_all_fd(&out, &i.to_le_bytes())?;
            }
        }
        "pipe-echo" => {
            let out = std::io::stdout();
            let mut input = std::io::stdin().lock();
            let mut buf = [0u8; 8];
            while input.read_exact(&mut buf).is_ok() {
                write_all_fd(&out, &buf)?;
            }
        }
        other => return Err(format!("unknown role {other}").into()),
    }
    Ok(())
}

fn rate(n: u64, d: Duration) -> String {
    format!(
        "{:>12.0} msgs/s {:>9.1} ns/msg",
        n as f64 / d.as_secs_f64(),
        d.as_nanos() as f64 / n as f64
    )
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i].as_nanos() as f64 / 1000.0
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let Some(role) = process::role() {
        return child(&role);
    }
    let n = count();
    // Children re-execute this binary without arguments: pass the count along.
    std::env::set_var("QUICKSTART_N", n.to_string());
    let name = format!("shmq-quickstart-{}", std::process::id());
    let seg = Segment::builder(&name)
        .queue::<u64>("data", 1024)
        .queue::<u64>("ping", 1)
        .queue::<u64>("pong", 1)
        .create()?;
    println!("shmq quickstart: {n} u64 messages from one process to another\n");

    // shmq throughput. The clock starts at the first message so process start-up is not counted.
    let data = seg.queue::<u64>("data")?;
    let producer = process::spawn(&seg, "shmq-producer")?;
    assert_eq!(data.get()?, 0);
    let t = Instant::now();
    for i in 1..n {
        let v = data.get()?;
        assert_eq!(v, i, "out of order");
    }
    let shmq_time = t.elapsed();
    assert_eq!(producer.join()?, 0);

    // Pipe throughput, same shape.
    let mut pipe_child = process::spawn_with(&seg, "pipe-producer", |c| {
        c.stdout(Stdio::piped());
    })?;
    let mut out = pipe_child.as_std_mut().stdout.take().expect("piped stdout");
    let mut buf = [0u8; 8];
    out.read_exact(&mut buf)?;
    let t = Instant::now();
    for i in 1..n {
        out.read_exact(&mut buf)?;
        assert_eq!(u64::from_le_bytes(buf), i, "out of order");
    }
    let pipe_time = t.elapsed();
    drop(out);
    assert_eq!(pipe_child.join()?, 0);

    println!("throughput ({} messages after the first)", n - 1);
    println!("  shmq Queue<u64>         {}", rate(n - 1, shmq_time));
    println!("  pipe, 1 write/message   {}", rate(n - 1, pipe_time));
    println!(
        "  shmq is {:.1}x the pipe's message rate\n",
        pipe_time.as_secs_f64() / shmq_time.as_secs_f64()
    );

    // Round trips: shmq ping/pong queues of capacity 1, then a pipe pair.
    let (ping, pong) = (seg.queue::<u64>("ping")?, seg.queue::<u64>("pong")?);
    let echo = process::spawn(&seg, "shmq-echo")?;
    let mut shmq_rtt = Vec::with_capacity(ROUND_TRIPS);
    for i in 0..(ROUND_TRIPS + 1000) as u64 {
        let t = Instant::now();
        ping.put(i)?;
        assert_eq!(pong.get()?, i);
        if i >= 1000 {
            shmq_rtt.push(t.elapsed());
        }
    }
    ping.close();
    assert_eq!(echo.join()?, 0);

    let mut pipe_echo = process::spawn_with(&seg, "pipe-echo", |c| {
        c.stdin(Stdio::piped()).stdout(Stdio::piped());
    })?;
    let to_child = pipe_echo.as_std_mut().stdin.take().expect("piped stdin");
    let mut from_child = pipe_echo.as_std_mut().stdout.take().expect("piped stdout");
    let mut pipe_rtt = Vec::with_capacity(ROUND_TRIPS);
    for i in 0..(ROUND_TRIPS + 1000) as u64 {
        let t = Instant::now();
        write_all_fd(&to_child, &i.to_le_bytes())?;
        from_child.read_exact(&mut buf)?;
        assert_eq!(u64::from_le_bytes(buf), i);
        if i >= 1000 {
            pipe_rtt.push(t.elapsed());
        }
    }
    drop(to_child);
    assert_eq!(pipe_echo.join()?, 0);

    shmq_rtt.sort_unstable();
    pipe_rtt.sort_unstable();
    println!("round trip ({ROUND_TRIPS} ping-pongs after 1000 warm-up)");
    for (label, v) in [
        ("shmq Queue<u64> cap 1 ", &shmq_rtt),
        ("pipe pair             ", &pipe_rtt),
    ] {
        println!(
            "  {label}  p50 {:>7.2} µs   p99 {:>7.2} µs",
            percentile(v, 0.5),
            percentile(v, 0.99)
        );
    }
    println!(
        "  shmq p50 is {:.1}x faster than the pipe's",
        percentile(&pipe_rtt, 0.5) / percentile(&shmq_rtt, 0.5)
    );
    Ok(())
}
