//! In-process throughput: shmq's queue (in a real segment) against `std::sync::mpsc::sync_channel`,
//! `crossbeam-channel` bounded and crossbeam's `ArrayQueue`, for 1 producer / 1 consumer and
//! 2 / 2, messages of 8 B, 64 B, 1 KiB and 64 KiB. Every queue gets the same capacity.
//!
//! `cargo bench --bench inproc` (a filter such as `-- 1p1c/8B` narrows it).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use crossbeam_queue::ArrayQueue;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One transfer: `producers` threads put `per` messages each, `consumers` threads take them all.
trait Transfer: Sync {
    fn send(&self, v: u64);
    fn recv(&self) -> u64;
}

/// A message of `N` bytes whose first word carries a value.
#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct Msg<const N: usize>([u8; N]);
// SAFETY: plain bytes, no padding (N is a multiple of 8 for every size used here).
unsafe impl<const N: usize> shmq::bytemuck::Zeroable for Msg<N> {}
// SAFETY: as above.
unsafe impl<const N: usize> shmq::bytemuck::Pod for Msg<N> {}

impl<const N: usize> Msg<N> {
    fn new(v: u64) -> Self {
        let mut m = Msg([0u8; N]);
        m.0[..8].copy_from_slice(&v.to_le_bytes());
        m
    }
    fn value(&self) -> u64 {
        u64::from_le_bytes(self.0[..8].try_into().unwrap())
    }
}

struct Shmq<const N: usize> {
    q: shmq::Queue<Msg<N>>,
    _seg: shmq::Segment,
}
impl<const N: usize> Transfer for Shmq<N> {
    fn send(&self, v: u64) {
        self.q.put(Msg::new(v)).unwrap();
    }
    fn recv(&self) -> u64 {
        self.q.get().unwrap().value()
    }
}

struct Std<const N: usize>(
    std::sync::mpsc::SyncSender<Msg<N>>,
    std::sync::Mutex<std::sync::mpsc::Receiver<Msg<N>>>,
);
impl<const N: usize> Transfer for Std<N> {
    fn send(&self, v: u64) {
        self.0.send(Msg::new(v)).unwrap();
    }
    fn recv(&self) -> u64 {
        // std's receiver is single-consumer: 2 consumers share it through a mutex.
        self.1.lock().unwrap().recv().unwrap().value()
    }
}

struct Crossbeam<const N: usize>(
    crossbeam_channel::Sender<Msg<N>>,
    crossbeam_channel::Receiver<Msg<N>>,
);
impl<const N: usize> Transfer for Crossbeam<N> {
    fn send(&self, v: u64) {
        self.0.send(Msg::new(v)).unwrap();
    }
    fn recv(&self) -> u64 {
        self.1.recv().unwrap().value()
    }
}

struct Array<const N: usize>(ArrayQueue<Msg<N>>);
impl<const N: usize> Transfer for Array<N> {
    fn send(&self, v: u64) {
        let mut m = Msg::new(v);
        // ArrayQueue never blocks: spin, then yield, as its users do.
        let mut spins = 0u32;
        while let Err(back) = self.0.push(m) {
            m = back;
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }
    fn recv(&self) -> u64 {
        let mut spins = 0u32;
        loop {
            if let Some(m) = self.0.pop() {
                return m.value();
            }
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }
}

fn run(t: &dyn Transfer, producers: u64, consumers: u64, total: u64) -> Duration {
    let per_p = total / producers;
    let per_c = per_p * producers / consumers;
    let start = Instant::now();
    std::thread::scope(|s| {
        for p in 0..producers {
            s.spawn(move || {
                for i in 0..per_p {
                    t.send(p << 40 | i);
                }
            });
        }
        for _ in 0..consumers {
            s.spawn(move || {
                let mut acc = 0u64;
                for _ in 0..per_c {
                    acc = acc.wrapping_add(t.recv());
                }
                black_box(acc);
            });
        }
    });
    start.elapsed()
}

fn capacity(size: usize) -> usize {
    if size >= 65536 {
        64
    } else {
        1024
    }
}

fn peers<const N: usize>() -> Vec<(&'static str, Arc<dyn Transfer + Send>)> {
    let cap = capacity(N);
    let name = format!("shmq-bench-inproc-{}-{N}", std::process::id());
    let seg = shmq::Segment::builder(&name)
        .queue::<Msg<N>>("q", cap as u64)
        .create_or_replace()
        .unwrap();
    let q = seg.queue::<Msg<N>>("q").unwrap();
    // Producer threads come and go between iterations: between one's exit and the next one's
    // first put every producer is gone, and a waiting consumer would get `Disconnected`. The
    // benchmark thread stays registered instead, as a channel's owner keeps a sender.
    q.register_producer();
    let (stx, srx) = std::sync::mpsc::sync_channel::<Msg<N>>(cap);
    let (ctx, crx) = crossbeam_channel::bounded::<Msg<N>>(cap);
    vec![
        ("shmq", Arc::new(Shmq::<N> { q, _seg: seg })),
        (
            "std_sync_channel",
            Arc::new(Std::<N>(stx, std::sync::Mutex::new(srx))),
        ),
        ("crossbeam_channel", Arc::new(Crossbeam::<N>(ctx, crx))),
        (
            "crossbeam_arrayqueue",
            Arc::new(Array::<N>(ArrayQueue::new(cap))),
        ),
    ]
}

fn bench_size<const N: usize>(c: &mut Criterion, label: &str) {
    for (producers, consumers, tag) in [(1u64, 1u64, "1p1c"), (2, 2, "2p2c")] {
        let mut g = c.benchmark_group(format!("inproc/{tag}/{label}"));
        g.throughput(Throughput::Elements(1));
        for (name, t) in peers::<N>() {
            g.bench_function(BenchmarkId::from_parameter(name), |b| {
                b.iter_custom(|iters| {
                    // Whole multiples of the producer count; per-message time is what matters.
                    let total = iters.max(producers) / producers * producers;
                    run(&*t, producers, consumers, total) * iters as u32 / total as u32
                })
            });
        }
        g.finish();
    }
}

fn inproc(c: &mut Criterion) {
    bench_size::<8>(c, "8B");
    bench_size::<64>(c, "64B");
    bench_size::<1024>(c, "1KiB");
    bench_size::<65536>(c, "64KiB");
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    targets = inproc
}
criterion_main!(benches);
