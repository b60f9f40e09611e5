//! The shared dictionary against in-process maps: shmq's `Dict<u64, [u8; 64]>` (in a real
//! segment) beside `std::collections::HashMap` behind a `Mutex` and `dashmap::DashMap`, for
//! `get`, `insert` (replacing) and `update` (read-modify-write) of 8-byte keys and 64-byte
//! values over 10 000 keys. "alone": one thread. "contended": while it is measured, a second
//! writer (another process for shmq, another thread for the in-process maps) updates random keys
//! of the same map without pause.
//!
//! Then the growable list: `SharedVec<u64>` push and indexed get beside a `Mutex<Vec<u64>>`.
//!
//! `cargo bench -p shmq-benches --bench dict` (a filter such as `-- dict/alone` narrows it).

use criterion::{BenchmarkId, Criterion, Throughput};
use dashmap::DashMap;
use std::collections::HashMap;
use std::hint::black_box;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const KEYS: u64 = 10_000;
const ROLE: &str = "SHMQ_BENCH_ROLE";
const SEG: &str = "SHMQ_BENCH_SEG";

type Val = [u8; 64];

/// A map under test.
trait Map: Send + Sync + 'static {
    fn get(&self, k: u64) -> Option<Val>;
    fn insert(&self, k: u64, v: Val);
    fn update(&self, k: u64);
}

impl Map for shmq::Dict<u64, Val> {
    fn get(&self, k: u64) -> Option<Val> {
        shmq::Dict::get(self, &k).unwrap()
    }
    fn insert(&self, k: u64, v: Val) {
        shmq::Dict::insert(self, k, v).unwrap();
    }
    fn update(&self, k: u64) {
        shmq::Dict::update(self, &k, |v| {
            let mut v = v.unwrap_or([0; 64]);
            v[0] = v[0].wrapping_add(1);
            Some(v)
        })
        .unwrap();
    }
}

impl Map for Mutex<HashMap<u64, Val>> {
    fn get(&self, k: u64) -> Option<Val> {
        self.lock().unwrap().get(&k).copied()
    }
    fn insert(&self, k: u64, v: Val) {
        self.lock().unwrap().insert(k, v);
    }
    fn update(&self, k: u64) {
        let mut m = self.lock().unwrap();
        let v = m.entry(k).or_insert([0; 64]);
        v[0] = v[0].wrapping_add(1);
    }
}

impl Map for DashMap<u64, Val> {
    fn get(&self, k: u64) -> Option<Val> {
        DashMap::get(self, &k).map(|v| *v)
    }
    fn insert(&self, k: u64, v: Val) {
        DashMap::insert(self, k, v);
    }
    fn update(&self, k: u64) {
        let mut v = self.entry(k).or_insert([0; 64]);
        v[0] = v[0].wrapping_add(1);
    }
}

/// A cheap key sequence that visits every key (a multiplicative step modulo a prime-ish
/// spread), the same in every run.
fn key(i: u64) -> u64 {
    i.wrapping_mul(7919) % KEYS
}

fn fill(m: &dyn Map) {
    for k in 0..KEYS {
        m.insert(k, [k as u8; 64]);
    }
}

fn bench_ops(c: &mut Criterion, group: &str, label: &str, m: &dyn Map) {
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(1));
    let mut i = 0u64;
    g.bench_function(BenchmarkId::new("get", label), |b| {
        b.iter(|| {
            i += 1;
            black_box(m.get(key(i)))
        })
    });
    g.bench_function(BenchmarkId::new("insert", label), |b| {
        b.iter(|| {
            i += 1;
            m.insert(key(i), [i as u8; 64])
        })
    });
    g.bench_function(BenchmarkId::new("update", label), |b| {
        b.iter(|| {
            i += 1;
            m.update(key(i))
        })
    });
    g.finish();
}

/// A second writer of an in-process map, until dropped.
struct Writer {
    stop: Arc<AtomicBool>,
    t: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn thread(m: Arc<dyn Map>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let t = std::thread::spawn(move || {
            let mut i = 1u64 << 32;
            while !s.load(Ordering::Relaxed) {
                i += 1;
                m.update(key(i));
            }
        });
        Self { stop, t: Some(t) }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.t.take() {
            t.join().unwrap();
        }
    }
}

fn bench_list(c: &mut Criterion, seg: &shmq::Segment) {
    let v = seg.shared_vec::<u64>("v").unwrap();
    let m: Mutex<Vec<u64>> = Mutex::new(Vec::new());
    let mut g = c.benchmark_group("list");
    g.throughput(Throughput::Elements(1));
    let mut i = 0u64;
    g.bench_function(BenchmarkId::new("push", "shmq"), |b| {
        b.iter(|| {
            i += 1;
            v.push(i).unwrap()
        })
    });
    g.bench_function(BenchmarkId::new("push", "mutex_vec"), |b| {
        b.iter(|| {
            i += 1;
            m.lock().unwrap().push(i)
        })
    });
    let (n, mn) = (v.len().unwrap() as u64, m.lock().unwrap().len() as u64);
    g.bench_function(BenchmarkId::new("get", "shmq"), |b| {
        b.iter(|| {
            i += 1;
            black_box(v.get((i % n) as usize).unwrap())
        })
    });
    g.bench_function(BenchmarkId::new("get", "mutex_vec"), |b| {
        b.iter(|| {
            i += 1;
            black_box(m.lock().unwrap()[(i % mn) as usize])
        })
    });
    g.finish();
}

fn main() {
    if std::env::var(ROLE).as_deref() == Ok("writer") {
        // The second process: updates random keys until the parent kills it.
        let seg = shmq::Segment::open(&std::env::var(SEG).unwrap()).unwrap();
        let d = seg.dict::<u64, Val>("d").unwrap();
        let mut i = 1u64 << 32;
        loop {
            i += 1;
            Map::update(&d, key(i));
        }
    }
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
        .configure_from_args();
    let name = format!("shmq-bench-dict-{}", std::process::id());
    let seg = shmq::Segment::builder(&name)
        .dict::<u64, Val>("d")
        .shared_vec::<u64>("v")
        .create_or_replace()
        .unwrap();
    let shmq_map = seg.dict::<u64, Val>("d").unwrap();
    fill(&shmq_map);
    let mutex: Arc<Mutex<HashMap<u64, Val>>> = Arc::new(Mutex::new(HashMap::new()));
    fill(&*mutex);
    let dash: Arc<DashMap<u64, Val>> = Arc::new(DashMap::new());
    fill(&*dash);

    bench_ops(&mut c, "dict/alone", "shmq", &shmq_map);
    bench_ops(&mut c, "dict/alone", "mutex_hashmap", &*mutex);
    bench_ops(&mut c, "dict/alone", "dashmap", &*dash);

    {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env(ROLE, "writer")
            .env(SEG, &name)
            .spawn()
            .unwrap();
        bench_ops(&mut c, "dict/contended", "shmq_2_processes", &shmq_map);
        child.kill().unwrap();
        child.wait().unwrap();
    }
    {
        let _w = Writer::thread(mutex.clone());
        bench_ops(&mut c, "dict/contended", "mutex_hashmap_2_threads", &*mutex);
    }
    {
        let _w = Writer::thread(dash.clone());
        bench_ops(&mut c, "dict/contended", "dashmap_2_threads", &*dash);
    }
    bench_list(&mut c, &seg);
    drop(seg);
    let _ = shmq::Segment::unlink(&name);
    c.final_summary();
}
