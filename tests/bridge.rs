//! `shmq bridge` through a real nats-server with JetStream: a local byte queue forwarded to a
//! subject by one bridge process and back into another segment's queue by a second one.
//!
//! The server is the one at `SHMQ_NATS_URL` if set (CI starts one on loopback), else one this
//! test starts itself if `nats-server` is on PATH (with its store in a temporary directory).
//! Without either the test says so and passes, unless `SHMQ_REQUIRE_NATS=1` (CI), where it
//! fails. `SHMQ_BRIDGE_MESSAGES` sets the number of messages (default 100 000).

mod common;
#[path = "common/nats_server.rs"]
mod nats_server;

use common::unique;
use nats_server::{server, Held};
use shmq::Segment;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn shmq_bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_shmq"))
}

fn bridge_in(subject: &str, segment: &str, url: &str) -> Held {
    // The receiving bridge runs until killed: it must not stop early on a redelivered message.
    Held(
        shmq_bin()
            .args(["bridge", "in", subject, segment, "in", "--server", url])
            .args(["--ack-wait", "1"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// Sends `n` messages through `bridge out`, the server and `bridge in`; with `kill_at`, SIGKILLs
/// the receiving bridge once that many distinct messages arrived and starts another (the same
/// durable consumer): every message must still arrive (at-least-once), duplicates allowed.
/// One run at a time: each starts its own server and bridges, heavy on a 2-core machine, and
/// two at once only slow each other down.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn through_nats(n: u64, mut kill_at: Option<u64>) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let tag = if kill_at.is_some() { "k" } else { "p" };
    let Some(server) = server(tag) else {
        return;
    };
    let (a, b) = (
        unique(&format!("bridge-{tag}a")),
        unique(&format!("bridge-{tag}b")),
    );
    let subject = format!("shmq.test.{}.{tag}", std::process::id());
    let seg_a = Segment::builder(&a)
        .bytes_queue("out", 4096, 256)
        .create_or_replace()
        .unwrap();
    let seg_b = Segment::builder(&b)
        .bytes_queue("in", 4096, 256)
        .create_or_replace()
        .unwrap();
    let out_q = seg_a.bytes_queue("out").unwrap();
    let in_q = seg_b.bytes_queue("in").unwrap();
    out_q.register_producer();
    // The receiving bridge is `in`'s only producer: between its kill and its restart a getter
    // would hear `Disconnected`. This process counts as one for as long as it gets.
    in_q.register_producer();

    let start = Instant::now();
    let mut out = Held(
        shmq_bin()
            .args(["--json", "bridge", "out", &a, "out", &subject, "--count"])
            .arg(n.to_string())
            .args(["--server", &server.url])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut receiver = bridge_in(&subject, &b, &server.url);
    let producer = std::thread::spawn(move || {
        for i in 0..n {
            let mut m = [0u8; 64];
            m[..8].copy_from_slice(&i.to_le_bytes());
            m[8..].fill((i % 251) as u8);
            out_q.put(&m).unwrap();
        }
    });
    let mut seen = vec![false; n as usize];
    let (mut distinct, mut duplicates) = (0u64, 0u64);
    while distinct < n {
        if kill_at == Some(distinct) {
            kill_at = None; // once
            drop(receiver);
            receiver = bridge_in(&subject, &b, &server.url);
        }
        let m = in_q
            .get_timeout(Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("after {distinct} of {n} messages: {e}"));
        assert_eq!(m.len(), 64, "a message changed length");
        let i = u64::from_le_bytes(m[..8].try_into().unwrap());
        assert!(i < n, "a message that was never sent: {i}");
        assert!(
            m[8..].iter().all(|&x| x == (i % 251) as u8),
            "message {i} changed"
        );
        if std::mem::replace(&mut seen[i as usize], true) {
            duplicates += 1;
        } else {
            distinct += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    producer.join().unwrap();
    let summary = out.0.wait_with_output_ref();
    eprintln!(
        "{n} messages of 64 bytes through nats-server (JetStream) and back in {secs:.2} s: \
         {:.1} µs per message, {:.0} messages/s, {duplicates} duplicates; bridge out: {summary}",
        secs * 1e6 / n as f64,
        n as f64 / secs
    );
    drop(receiver);
    drop(server);
}

#[test]
fn the_bridge_moves_every_message_through_a_real_nats_server() {
    let n = std::env::var("SHMQ_BRIDGE_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    through_nats(n, None);
}

#[test]
fn a_receiving_bridge_killed_midway_loses_nothing() {
    through_nats(20_000, Some(10_000));
}

/// The rest of the bridge's stdout once it exits (it stops by itself after `--count`).
trait WaitOutput {
    fn wait_with_output_ref(&mut self) -> String;
}

impl WaitOutput for Child {
    fn wait_with_output_ref(&mut self) -> String {
        use std::io::Read;
        let mut s = String::new();
        if let Some(mut o) = self.stdout.take() {
            let _ = o.read_to_string(&mut s);
        }
        let status = self.wait().expect("wait for the bridge");
        assert!(status.success(), "bridge out failed: {status:?}: {s}");
        s.trim().to_string()
    }
}
