//! Crash survival with real kills: a child process stops itself at a named protocol step
//! (feature `fault-injection`), the test SIGKILLs it there, and checks that the survivors go on.
//! Run with `cargo test --features fault-injection --test crash`.

mod common;

use common::*;
use shmq::{GetError, Segment};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Starts a child running `role` that will stop at `fault` after passing it `skip` times, and
/// returns once it has stopped there.
fn child_stopped_at(seg: &str, role: &str, fault: &str, skip: u32, resume: bool) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["child_crash_role", "--exact", "--ignored", "--nocapture"])
        .env("SHMQ_TEST_CHILD", "1")
        .env("SHMQ_SEG", seg)
        .env("SHMQ_ROLE", role)
        .env("SHMQ_FAULT", fault)
        .env("SHMQ_FAULT_SKIP", skip.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if resume {
        cmd.env("SHMQ_FAULT_RESUME", "1");
    }
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    loop {
        let line = lines
            .next()
            .expect("child exited before its crash point")
            .unwrap();
        if line.starts_with("SHMQ_FAULT_HIT") {
            break;
        }
    }
    // Keep draining stderr so the child never blocks on it.
    std::thread::spawn(move || for _ in lines {});
    child
}

fn kill(mut child: Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
#[ignore = "child process of the crash tests"]
fn child_crash_role() {
    let seg = Segment::open(&child_var("SHMQ_SEG")).unwrap();
    let q = seg.queue::<u64>("q").unwrap();
    match child_var("SHMQ_ROLE").as_str() {
        "producer" => {
            for v in 1..=3 {
                q.put(v).unwrap();
            }
        }
        "consumer" => {
            q.get().unwrap();
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn producer_killed_between_claim_and_publish_is_skipped_and_later_messages_arrive() {
    let name = unique("deadprod");
    let seg = Segment::builder(&name)
        .queue::<u64>("q", 8)
        .create()
        .unwrap();
    let q = seg.queue::<u64>("q").unwrap();
    // The child puts 1 and 2, then stops holding the claim of its third put (position 2).
    let child = child_stopped_at(&name, "producer", "put-claimed", 2, false);
    kill(child);
    q.put(10).unwrap();
    q.put(11).unwrap();
    let t0 = Instant::now();
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(q.get_timeout(Duration::from_secs(10)).unwrap());
    }
    assert_eq!(got, vec![1, 2, 10, 11]);
    assert_eq!(q.stats().tombstones, 1);
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "recovery took {:?}",
        t0.elapsed()
    );
    // Producers go on after the ring wraps past the tombstone.
    for v in 0..8 {
        q.put(v).unwrap();
        assert_eq!(q.get().unwrap(), v);
    }
}

#[test]
fn consumer_killed_between_claim_and_release_frees_the_slot_and_counts_the_loss() {
    let name = unique("deadcons");
    let seg = Segment::builder(&name)
        .queue::<u64>("q", 2)
        .create()
        .unwrap();
    let q = seg.queue::<u64>("q").unwrap();
    q.put(1).unwrap();
    q.put(2).unwrap();
    // The child claims message 1 and stops before releasing its slot.
    let child = child_stopped_at(&name, "consumer", "get-claimed", 0, false);
    kill(child);
    // The ring is full behind the dead consumer's slot: this put must still get through.
    q.put_timeout(3, Duration::from_secs(10)).unwrap();
    assert_eq!(q.stats().lost, 1);
    assert_eq!(q.get().unwrap(), 2);
    assert_eq!(q.get().unwrap(), 3);
}

#[test]
fn get_timeout_returns_at_its_deadline_when_the_only_producer_died() {
    let name = unique("deadonly");
    let seg = Segment::builder(&name)
        .queue::<u64>("q", 4)
        .create()
        .unwrap();
    let q = seg.queue::<u64>("q").unwrap();
    let child = child_stopped_at(&name, "producer", "put-claimed", 0, false);
    kill(child);
    let t0 = Instant::now();
    let wait = Duration::from_millis(300);
    assert_eq!(q.get_timeout(wait), Err(GetError::Timeout));
    let took = t0.elapsed();
    assert!(took >= wait, "returned early: {took:?}");
    assert!(
        took < wait + Duration::from_secs(2),
        "returned late: {took:?}"
    );
    assert_eq!(q.stats().tombstones, 1);
}

#[test]
fn slow_but_live_producer_is_never_tombstoned() {
    let name = unique("slowprod");
    let seg = Segment::builder(&name)
        .queue::<u64>("q", 4)
        .create()
        .unwrap();
    let q = seg.queue::<u64>("q").unwrap();
    // Held at its crash point with a claim: alive, just not making progress.
    let mut child = child_stopped_at(&name, "producer", "put-claimed", 0, true);
    assert_eq!(
        q.get_timeout(Duration::from_millis(300)),
        Err(GetError::Timeout)
    );
    assert_eq!(q.stats().tombstones, 0);
    // Let it go on: its message arrives.
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"g").unwrap();
    assert_eq!(q.get_timeout(Duration::from_secs(10)).unwrap(), 1);
    assert!(child.wait().unwrap().success());
}
