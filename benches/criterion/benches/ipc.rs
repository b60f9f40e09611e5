//! Cross-process benchmarks: round trip (ping-pong) and one-way 8-byte throughput between two
//! processes, for shmq (adaptive wait and blocking-only), shmq batches, a pipe, a unix socket, and
//! two floors over the same kind of mapping (a file in /dev/shm): a raw `AtomicU64` bounced between
//! the two processes by spinning, and a raw `FUTEX_WAKE`/`FUTEX_WAIT` ping-pong (the floor of a
//! sleeping hand-off).
//!
//! `cargo bench --bench ipc`. The benchmark binary re-executes itself for the child processes.

use criterion::{BenchmarkId, Criterion, Throughput};
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const ROLE: &str = "SHMQ_BENCH_ROLE";
const SEG: &str = "SHMQ_BENCH_SEG";
const SOCK: &str = "SHMQ_BENCH_SOCK";
const FLOOR: &str = "SHMQ_BENCH_FLOOR";
const SUFFIX: &str = "SHMQ_BENCH_SUFFIX";
const BATCH: usize = 64;

fn var(k: &str) -> String {
    std::env::var(k).unwrap()
}

fn floor_map(path: &str) -> memmap2::MmapMut {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    // SAFETY: the file is ours, 4096 bytes long, and only accessed through the atomic below.
    unsafe { memmap2::MmapMut::map_mut(&f).unwrap() }
}

fn floor_word(m: &memmap2::MmapMut) -> &AtomicU64 {
    // SAFETY: the mapping is page-aligned and 4096 bytes; AtomicU64 is valid for any bits.
    unsafe { &*(m.as_ptr() as *const AtomicU64) }
}

/// The futex floor's word: a u32 in the floor mapping, apart from the atomic floor's word.
fn futex_word(m: &memmap2::MmapMut) -> &AtomicU32 {
    // SAFETY: the mapping is page-aligned and 4096 bytes; offset 128 is 4-aligned and inside it;
    // AtomicU32 is valid for any bits.
    unsafe { &*(m.as_ptr().add(128) as *const AtomicU32) }
}

/// Sleeps until `w` no longer reads `seen` (shared futex: the peer is another process).
fn futex_wait_while(w: &AtomicU32, seen: u32) {
    while w.load(Ordering::Acquire) == seen {
        let _ = rustix::thread::futex::wait(w, rustix::thread::futex::Flags::empty(), seen, None);
    }
}

fn futex_wake(w: &AtomicU32) {
    let _ = rustix::thread::futex::wake(w, rustix::thread::futex::Flags::empty(), 1);
}

fn child(role: &str) {
    match role {
        "futex-floor" => {
            // Raw sleeping hand-off: wait (in the kernel) for an odd value, answer with the next
            // even one and wake the parent. u32::MAX ends it.
            let m = floor_map(&var(FLOOR));
            let w = futex_word(&m);
            let mut seen = 0u32;
            loop {
                futex_wait_while(w, seen);
                let v = w.load(Ordering::Acquire);
                if v == u32::MAX {
                    return;
                }
                w.store(v + 1, Ordering::Release);
                futex_wake(w);
                seen = v + 1;
            }
        }
        "echo" | "echo-block" => {
            let seg = shmq::Segment::open(&var(SEG)).unwrap();
            let spin = role == "echo";
            let sfx = var(SUFFIX);
            let ping = seg
                .queue::<u64>(&format!("ping{sfx}"))
                .unwrap()
                .with_spinning(spin);
            let pong = seg
                .queue::<u64>(&format!("pong{sfx}"))
                .unwrap()
                .with_spinning(spin);
            while let Ok(v) = ping.get() {
                pong.put(v).unwrap();
            }
        }
        "floor" => {
            let m = floor_map(&var(FLOOR));
            let w = floor_word(&m);
            loop {
                let v = w.load(Ordering::Acquire);
                if v == u64::MAX {
                    return;
                }
                if v % 2 == 1 {
                    w.store(v + 1, Ordering::Release);
                } else {
                    std::hint::spin_loop();
                }
            }
        }
        "producer" | "producer-block" | "producer-batch" => {
            let seg = shmq::Segment::open(&var(SEG)).unwrap();
            let spin = role != "producer-block";
            let sfx = var(SUFFIX);
            let ctl = seg.queue::<u64>(&format!("ctl{sfx}")).unwrap();
            let data = seg
                .queue::<u64>(&format!("data{sfx}"))
                .unwrap()
                .with_spinning(spin);
            let batch: Vec<u64> = (0..BATCH as u64).collect();
            while let Ok(n) = ctl.get() {
                if role == "producer-batch" {
                    let mut left = n as usize;
                    while left > 0 {
                        let k = left.min(BATCH);
                        data.put_many(&batch[..k]).unwrap();
                        left -= k;
                    }
                } else {
                    for i in 0..n {
                        data.put(i).unwrap();
                    }
                }
            }
        }
        "pipe-echo" | "unix-echo" => {
            let (mut r, mut w): (Box<dyn Read>, Box<dyn Write>) = if role == "pipe-echo" {
                (
                    Box::new(std::io::stdin().lock()),
                    Box::new(std::io::stdout().lock()),
                )
            } else {
                let s = UnixStream::connect(var(SOCK)).unwrap();
                (Box::new(s.try_clone().unwrap()), Box::new(s))
            };
            let mut b = [0u8; 8];
            while r.read_exact(&mut b).is_ok() {
                w.write_all(&b).unwrap();
                w.flush().unwrap();
            }
        }
        "pipe-producer" | "unix-producer" => {
            let (mut r, mut w): (Box<dyn Read>, Box<dyn Write>) = if role == "pipe-producer" {
                (
                    Box::new(std::io::stdin().lock()),
                    Box::new(std::io::stdout().lock()),
                )
            } else {
                let s = UnixStream::connect(var(SOCK)).unwrap();
                (Box::new(s.try_clone().unwrap()), Box::new(s))
            };
            let mut b = [0u8; 8];
            while r.read_exact(&mut b).is_ok() {
                for i in 0..u64::from_le_bytes(b) {
                    // One write (and flush: one syscall) per message.
                    w.write_all(&i.to_le_bytes()).unwrap();
                    w.flush().unwrap();
                }
            }
        }
        other => panic!("unknown role {other}"),
    }
}

fn spawn(role: &str, env: &[(&str, &str)], piped: bool) -> Child {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.env(ROLE, role);
    for (k, v) in env {
        c.env(k, v);
    }
    if piped {
        c.stdin(Stdio::piped()).stdout(Stdio::piped());
    }
    c.spawn().unwrap()
}

/// A byte-stream peer: (to child, from child). Unix sockets are written through a
/// `BufWriter`-free stream so every 8-byte message is its own syscall, as with the pipe.
struct Stream {
    to: Box<dyn Write>,
    from: Box<dyn Read>,
    /// The socket, to shut down at the end (dropping one clone of it does not close it).
    sock: Option<UnixStream>,
    child: Child,
}

impl Stream {
    /// Ends the child's input and waits for it to exit.
    fn finish(mut self) {
        drop(self.to);
        if let Some(s) = &self.sock {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        self.child.wait().unwrap();
    }
}

fn stream(kind: &str, role: &str, listener: &UnixListener, sock: &str) -> Stream {
    if kind == "pipe" {
        let mut child = spawn(&format!("pipe-{role}"), &[], true);
        let to = Box::new(child.stdin.take().unwrap());
        let from = Box::new(child.stdout.take().unwrap());
        Stream {
            to,
            from,
            sock: None,
            child,
        }
    } else {
        let child = spawn(&format!("unix-{role}"), &[(SOCK, sock)], false);
        let (s, _) = listener.accept().unwrap();
        Stream {
            to: Box::new(s.try_clone().unwrap()),
            from: Box::new(s.try_clone().unwrap()),
            sock: Some(s),
            child,
        }
    }
}

fn main() {
    if let Ok(role) = std::env::var(ROLE) {
        child(&role);
        return;
    }
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
        .configure_from_args();

    let pid = std::process::id();
    let name = format!("shmq-bench-ipc-{pid}");
    let mut builder = shmq::Segment::builder(&name);
    for i in 0..3 {
        builder = builder
            .queue::<u64>(&format!("ping{i}"), 1)
            .queue::<u64>(&format!("pong{i}"), 1)
            .queue::<u64>(&format!("ctl{i}"), 4)
            .queue::<u64>(&format!("data{i}"), 1024);
    }
    let seg = builder.create_or_replace().unwrap();
    let floor_path = format!("/dev/shm/shmq-bench-floor-{pid}");
    std::fs::File::create(&floor_path)
        .unwrap()
        .set_len(4096)
        .unwrap();
    let sock = format!("/tmp/shmq-bench-{pid}.sock");
    let _ = std::fs::remove_file(&sock);
    let listener = UnixListener::bind(&sock).unwrap();

    // ---- round trips ----
    let mut g = c.benchmark_group("ipc/round_trip");
    g.throughput(Throughput::Elements(1));
    {
        let m = floor_map(&floor_path);
        let w = floor_word(&m);
        let mut child = spawn("floor", &[(FLOOR, &floor_path)], false);
        let mut next = 1u64;
        g.bench_function(BenchmarkId::from_parameter("atomic_floor"), |b| {
            b.iter_custom(|iters| {
                let t = Instant::now();
                for _ in 0..iters {
                    w.store(next, Ordering::Release);
                    while w.load(Ordering::Acquire) != next + 1 {
                        std::hint::spin_loop();
                    }
                    next += 2;
                }
                t.elapsed()
            })
        });
        w.store(u64::MAX, Ordering::Release);
        child.wait().unwrap();
    }
    {
        // The floor of a sleeping hand-off: a raw FUTEX_WAKE / FUTEX_WAIT ping-pong, each side
        // asleep in the kernel until the other wakes it (what shmq_blocking does at best).
        let m = floor_map(&floor_path);
        let w = futex_word(&m);
        let mut child = spawn("futex-floor", &[(FLOOR, &floor_path)], false);
        let mut next = 1u32;
        g.bench_function(BenchmarkId::from_parameter("futex_floor"), |b| {
            b.iter_custom(|iters| {
                let t = Instant::now();
                for _ in 0..iters {
                    w.store(next, Ordering::Release);
                    futex_wake(w);
                    futex_wait_while(w, next);
                    next += 2;
                }
                t.elapsed()
            })
        });
        w.store(u32::MAX, Ordering::Release);
        futex_wake(w);
        child.wait().unwrap();
    }
    for (i, (label, role, spin)) in [
        ("shmq_adaptive", "echo", true),
        ("shmq_blocking", "echo-block", false),
    ]
    .into_iter()
    .enumerate()
    {
        let ping = seg
            .queue::<u64>(&format!("ping{i}"))
            .unwrap()
            .with_spinning(spin);
        let pong = seg
            .queue::<u64>(&format!("pong{i}"))
            .unwrap()
            .with_spinning(spin);
        let mut child = spawn(role, &[(SEG, &name), (SUFFIX, &i.to_string())], false);
        g.bench_function(BenchmarkId::from_parameter(label), |b| {
            b.iter_custom(|iters| {
                let t = Instant::now();
                for i in 0..iters {
                    ping.put(i).unwrap();
                    assert_eq!(pong.get().unwrap(), i);
                }
                t.elapsed()
            })
        });
        ping.close();
        child.wait().unwrap();
    }
    for kind in ["pipe", "unix"] {
        let mut s = stream(kind, "echo", &listener, &sock);
        let mut b8 = [0u8; 8];
        g.bench_function(BenchmarkId::from_parameter(kind), |b| {
            b.iter_custom(|iters| {
                let t = Instant::now();
                for i in 0..iters {
                    s.to.write_all(&i.to_le_bytes()).unwrap();
                    s.from.read_exact(&mut b8).unwrap();
                }
                t.elapsed()
            })
        });
        s.finish();
    }
    g.finish();

    // ---- one-way throughput, 8-byte messages ----
    let mut g = c.benchmark_group("ipc/throughput_8B");
    g.throughput(Throughput::Elements(1));
    for (i, (label, role, spin)) in [
        ("shmq_adaptive", "producer", true),
        ("shmq_blocking", "producer-block", false),
        ("shmq_batch64", "producer-batch", true),
    ]
    .into_iter()
    .enumerate()
    {
        let ctl = seg.queue::<u64>(&format!("ctl{i}")).unwrap();
        let data = seg
            .queue::<u64>(&format!("data{i}"))
            .unwrap()
            .with_spinning(spin);
        let mut child = spawn(role, &[(SEG, &name), (SUFFIX, &i.to_string())], false);
        let batch = role == "producer-batch";
        let mut buf = vec![0u64; BATCH];
        g.bench_function(BenchmarkId::from_parameter(label), |b| {
            b.iter_custom(|iters| {
                let t = Instant::now();
                ctl.put(iters).unwrap();
                let mut got = 0;
                while got < iters {
                    if batch {
                        got += data.get_many(&mut buf).unwrap() as u64;
                    } else {
                        data.get().unwrap();
                        got += 1;
                    }
                }
                t.elapsed()
            })
        });
        // The producer child exits when its `ctl` queue closes.
        ctl.close();
        child.wait().unwrap();
    }
    for kind in ["pipe", "unix"] {
        let mut s = stream(kind, "producer", &listener, &sock);
        let mut b8 = [0u8; 8];
        g.bench_function(BenchmarkId::from_parameter(kind), |b| {
            b.iter_custom(|iters| {
                let t = Instant::now();
                s.to.write_all(&iters.to_le_bytes()).unwrap();
                for _ in 0..iters {
                    s.from.read_exact(&mut b8).unwrap();
                }
                t.elapsed()
            })
        });
        s.finish();
    }
    g.finish();

    let _ = std::fs::remove_file(&floor_path);
    let _ = std::fs::remove_file(&sock);
    c.final_summary();
}
