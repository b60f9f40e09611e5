//! 64 KiB messages: bytes per second through a `BytesQueue`, beside a plain `memcpy` of the same
//! size, in one run.
//!
//! * `memcpy`: one 64 KiB copy between two buffers whose addresses differ by 1 KiB modulo 4 KiB.
//!   (Buffers that alias modulo 4 KiB make `rep movsb` 15× slower on the AMD EPYC machines we
//!   measure on, which would flatter everything compared with it.)
//! * `shmq_put_get`: pure transfer: the producer `put`s a 64 KiB buffer (one copy in), the consumer
//!   `get_into`s its buffer (one copy out), in two threads.
//! * `shmq_put_get_work` and `shmq_loan`: the same work per message in both: the producer produces
//!   64 KiB (a `fill`) and the consumer consumes them (sums them as u64 words). With put/get the
//!   producer fills its own buffer and `put` copies it into the slot, and `get_into` copies it out
//!   before the sum; with the loan API the producer fills the slot itself and the consumer sums the
//!   slot in place: no copy at all.
//!
//!
//! `bandwidth/{1,4,10,16}MiB`: the same for 1 to 16 MiB messages through a byte queue of any size
//! (`max_len = usize::MAX`), whose messages go through the segment's heap: `memcpy` of the size;
//! `shmq_put_get` (one copy into a heap block, one copy out, producer and consumer each on its own
//! mapping of the segment, as two processes would be, in two threads); `shmq_put_get_in_place`
//! (`put` copies in, the consumer sums the block in place with `get_with`: one copy in all) beside
//! `memcpy_then_sum` (the same work without shmq: one copy and the sum).
//!
//! `cargo bench --bench bandwidth`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::time::{Duration, Instant};

const SIZE: usize = 64 * 1024;
const CAP: u64 = 16;

fn consume(m: &[u8]) -> u64 {
    m.chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .fold(0, u64::wrapping_add)
}

fn bandwidth(c: &mut Criterion) {
    let name = format!("shmq-bench-bw-{}", std::process::id());
    let seg = shmq::Segment::builder(&name)
        .bytes_queue("copy", CAP, SIZE)
        .bytes_queue("loan", CAP, SIZE)
        .create_or_replace()
        .unwrap();
    let mut g = c.benchmark_group("bandwidth/64KiB");
    g.throughput(Throughput::Bytes(SIZE as u64));

    // One allocation, two page-aligned-relative windows 1 KiB apart modulo 4 KiB.
    let mut area = vec![0u8; 2 * SIZE + 3 * 4096];
    let base = area.as_ptr() as usize;
    let src_off = (4096 - base % 4096) % 4096;
    let dst_off = src_off + SIZE + 4096 + 1024;
    let (head, tail) = area.split_at_mut(dst_off);
    let src = &mut head[src_off..src_off + SIZE];
    src.fill(7);
    let src: &[u8] = src;
    let dst = &mut tail[..SIZE];
    g.bench_function(BenchmarkId::from_parameter("memcpy"), |b| {
        b.iter(|| {
            dst.copy_from_slice(black_box(src));
            black_box(&dst);
        })
    });

    let q = seg.bytes_queue("copy").unwrap();
    // Producer threads come and go between samples: counting this thread as a producer keeps
    // the consumer from being told `Disconnected` while the next one starts.
    q.register_producer();
    g.bench_function(BenchmarkId::from_parameter("shmq_put_get"), |b| {
        b.iter_custom(|iters| {
            let t = Instant::now();
            std::thread::scope(|s| {
                let qp = q.clone();
                s.spawn(move || {
                    for _ in 0..iters {
                        qp.put(src).unwrap();
                    }
                });
                let mut buf = Vec::with_capacity(SIZE + 4096);
                for _ in 0..iters {
                    q.get_into(&mut buf).unwrap();
                }
                black_box(&buf);
            });
            t.elapsed()
        })
    });

    g.bench_function(BenchmarkId::from_parameter("shmq_put_get_work"), |b| {
        b.iter_custom(|iters| {
            let t = Instant::now();
            std::thread::scope(|s| {
                let qp = q.clone();
                s.spawn(move || {
                    let mut buf = vec![0u8; SIZE];
                    for i in 0..iters {
                        buf.fill(i as u8);
                        qp.put(&buf).unwrap();
                    }
                });
                let mut buf = Vec::with_capacity(SIZE);
                let mut acc = 0u64;
                for _ in 0..iters {
                    q.get_into(&mut buf).unwrap();
                    acc = acc.wrapping_add(consume(&buf));
                }
                black_box(acc);
            });
            t.elapsed()
        })
    });

    let q = seg.bytes_queue("loan").unwrap();
    q.register_producer(); // as for "copy"
    g.bench_function(BenchmarkId::from_parameter("shmq_loan"), |b| {
        b.iter_custom(|iters| {
            let t = Instant::now();
            std::thread::scope(|s| {
                let qp = q.clone();
                s.spawn(move || {
                    for i in 0..iters {
                        qp.put_with(SIZE, |slot| slot.fill(i as u8)).unwrap();
                    }
                });
                let mut acc = 0u64;
                for _ in 0..iters {
                    acc = acc.wrapping_add(q.get_with(consume).unwrap());
                }
                black_box(acc);
            });
            t.elapsed()
        })
    });
    g.finish();
}

/// Long-message sizes, in MiB: every one goes through the segment's heap.
const LONG_MIB: [usize; 4] = [1, 4, 10, 16];

fn bandwidth_long(c: &mut Criterion) {
    for mib in LONG_MIB {
        bandwidth_long_size(c, mib);
    }
}

fn bandwidth_long_size(c: &mut Criterion, mib: usize) {
    let long = mib << 20;
    let name = format!("shmq-bench-bw-long-{}-{mib}", std::process::id());
    let seg = shmq::Segment::builder(&name)
        .bytes_queue("q", 4, usize::MAX)
        .create_or_replace()
        .unwrap();
    // The consumer's own mapping: it maps the segment's growth lazily, as another process does.
    let other = shmq::Segment::open(&name).unwrap();
    let mut g = c.benchmark_group(format!("bandwidth/{mib}MiB"));
    g.throughput(Throughput::Bytes(long as u64));
    let src = vec![7u8; long];
    let mut dst = vec![0u8; long];
    g.bench_function(BenchmarkId::from_parameter("memcpy"), |b| {
        b.iter(|| {
            dst.copy_from_slice(black_box(&src));
            black_box(&dst);
        })
    });
    g.bench_function(BenchmarkId::from_parameter("memcpy_then_sum"), |b| {
        b.iter(|| {
            dst.copy_from_slice(black_box(&src));
            black_box(consume(&dst))
        })
    });
    let qp = seg.bytes_queue("q").unwrap();
    let qc = other.bytes_queue("q").unwrap();
    // Producer threads come and go between samples: counting this thread as a producer keeps
    // the consumer from being told `Disconnected` while the next one starts.
    qc.register_producer();
    g.bench_function(BenchmarkId::from_parameter("shmq_put_get"), |b| {
        b.iter_custom(|iters| {
            let t = Instant::now();
            std::thread::scope(|s| {
                let qp = qp.clone();
                let src = &src;
                s.spawn(move || {
                    for _ in 0..iters {
                        qp.put(src).unwrap();
                    }
                });
                let mut buf = Vec::with_capacity(long);
                for _ in 0..iters {
                    qc.get_into(&mut buf).unwrap();
                }
                black_box(&buf);
            });
            t.elapsed()
        })
    });
    g.bench_function(BenchmarkId::from_parameter("shmq_put_get_in_place"), |b| {
        b.iter_custom(|iters| {
            let t = Instant::now();
            std::thread::scope(|s| {
                let qp = qp.clone();
                let src = &src;
                s.spawn(move || {
                    for _ in 0..iters {
                        qp.put(src).unwrap();
                    }
                });
                let mut acc = 0u64;
                for _ in 0..iters {
                    acc = acc.wrapping_add(qc.get_with(consume).unwrap());
                }
                black_box(acc);
            });
            t.elapsed()
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    targets = bandwidth, bandwidth_long
}
criterion_main!(benches);
