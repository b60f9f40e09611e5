//! How often an idle blocked receiver wakes up: a child blocks in `get()` on an empty queue (with
//! a live producer registered, so it also watches for a disconnect), another child blocks in
//! `read(2)` on an empty pipe, and the parent counts each child's context switches
//! (`/proc/PID/status`) over the same window.
//!
//! `cargo run --release --example idle_wakeups [SECONDS]` (default 10)

use shmq::{process, Segment};
use std::io::Read;
use std::time::Duration;

fn switches(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .filter(|l| l.starts_with("voluntary_ctxt_switches") || l.starts_with("nonvoluntary"))
        .filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
        .sum()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    match process::role().as_deref() {
        Some("getter") => {
            let q = process::segment()?.queue::<u64>("q")?;
            let _ = q.get(); // Err(Closed) when the parent closes the queue
            return Ok(());
        }
        Some("piper") => {
            let _ = std::io::stdin().read(&mut [0u8; 1]);
            return Ok(());
        }
        _ => {}
    }
    let secs: u64 = std::env::args().nth(1).map_or(Ok(10), |s| s.parse())?;
    let name = format!("shmq-idle-{}", std::process::id());
    let seg = Segment::builder(&name).queue::<u64>("q", 4).create()?;
    let q = seg.queue::<u64>("q")?;
    // Register this process as a live producer (a getter then also checks for a disconnect).
    q.put(1)?;
    assert_eq!(q.get()?, 1);
    let getter = process::spawn(&seg, "getter")?;
    let mut piper = std::process::Command::new(std::env::current_exe()?)
        .env(process::ROLE_VAR, "piper")
        .stdin(std::process::Stdio::piped())
        .spawn()?;
    // Let both reach their blocking call.
    while q.stats().waiting_getters == 0 {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(200));
    let (g0, p0) = (switches(getter.id()), switches(piper.id()));
    std::thread::sleep(Duration::from_secs(secs));
    let (g1, p1) = (switches(getter.id()), switches(piper.id()));
    println!("idle window: {secs} s");
    println!(
        "  shmq get() blocked on an empty queue: {} context switches ({:.1}/s)",
        g1 - g0,
        (g1 - g0) as f64 / secs as f64
    );
    println!(
        "  read(2) blocked on an empty pipe:     {} context switches ({:.1}/s)",
        p1 - p0,
        (p1 - p0) as f64 / secs as f64
    );
    q.close();
    drop(piper.stdin.take());
    piper.wait()?;
    getter.join()?;
    Ok(())
}
