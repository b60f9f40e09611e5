//! What an idle blocked receiver costs, and how soon it learns that the peer it waits for died.
//!
//! Three children block at once: one in `get()` on an empty queue (with a live producer
//! registered, so it also watches for a disconnect), one in `get()` behind a live producer that
//! holds the queue's next position mid-`put_with`, and one in `read(2)` on an empty pipe. The
//! parent counts each child's context switches (`/proc/PID/task/*/status`) over the same window.
//! Then it SIGKILLs the claim holder and times how long the getter behind it takes to return
//! `Disconnected` (its claim recovered, no producer left).
//!
//! `cargo run --release --example idle_wakeups [SECONDS]` (default 10)

use shmq::{process, GetError, Segment};
use std::io::Read;
use std::time::{Duration, Instant};

fn switches(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
        .flat_map(|s| {
            s.lines()
                .filter(|l| l.contains("ctxt_switches"))
                .filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .sum()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    match process::role().as_deref() {
        Some("getter") => {
            let q = process::segment()?.queue::<u64>("idle")?;
            let _ = q.get(); // Err(Closed) when the parent closes the queue
            return Ok(());
        }
        Some("behind") => {
            let q = process::segment()?.queue::<u64>("held")?;
            match q.get() {
                Err(GetError::Disconnected) => return Ok(()),
                other => return Err(format!("expected Disconnected, got {other:?}").into()),
            }
        }
        Some("claimer") => {
            let q = process::segment()?.queue::<u64>("held")?;
            // Holds position 0 until killed.
            q.put_with(|v| {
                *v = 1;
                let _ = std::io::stdin().read(&mut [0u8; 1]);
            })?;
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
    let seg = Segment::builder(&name)
        .queue::<u64>("idle", 4)
        .queue::<u64>("held", 4)
        .create()?;
    let idle = seg.queue::<u64>("idle")?;
    let held = seg.queue::<u64>("held")?;
    // Register this process as a live producer of "idle" (its getter then also checks for a
    // disconnect).
    idle.put(1)?;
    assert_eq!(idle.get()?, 1);
    let getter = process::spawn(&seg, "getter")?;
    let mut claimer = std::process::Command::new(std::env::current_exe()?)
        .env(process::ROLE_VAR, "claimer")
        .env(process::SEGMENT_VAR, &name)
        .stdin(std::process::Stdio::piped())
        .spawn()?;
    while held.stats().len == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let behind = process::spawn(&seg, "behind")?;
    let mut piper = std::process::Command::new(std::env::current_exe()?)
        .env(process::ROLE_VAR, "piper")
        .stdin(std::process::Stdio::piped())
        .spawn()?;
    // Let all three reach their blocking call.
    while idle.stats().waiting_getters == 0 || held.stats().waiting_getters == 0 {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(200));
    let ids = [getter.id(), behind.id(), piper.id()];
    let before = ids.map(switches);
    std::thread::sleep(Duration::from_secs(secs));
    let after = ids.map(switches);
    println!("idle window: {secs} s");
    let labels = [
        "shmq get() blocked on an empty queue:     ",
        "shmq get() blocked behind a live claimant:",
        "read(2) blocked on an empty pipe:         ",
    ];
    for ((label, b), a) in labels.iter().zip(before).zip(after) {
        println!(
            "  {label} {} context switches ({:.1}/s)",
            a - b,
            (a - b) as f64 / secs as f64
        );
    }
    // The claimant dies: how long until the getter behind it has recovered the claim, seen that
    // no producer is left, and exited.
    let t0 = Instant::now();
    claimer.kill()?;
    let code = behind.join()?;
    let noticed = t0.elapsed();
    claimer.wait()?;
    println!(
        "  claimant SIGKILLed: the getter behind it returned Disconnected and exited after {:.1} ms",
        noticed.as_secs_f64() * 1e3
    );
    idle.close();
    drop(piper.stdin.take());
    piper.wait()?;
    getter.join()?;
    if code != 0 {
        return Err(format!("the getter behind the claim failed (exit code {code})").into());
    }
    Ok(())
}
