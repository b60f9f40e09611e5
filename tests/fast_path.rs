//! The uncontended fast path allocates nothing: a counting global allocator watches this thread
//! while it puts and gets. (That it makes no system call either is checked by
//! `scripts/count-syscalls.sh` with strace; see docs/benchmarks.md.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static WATCHED: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if WATCHED.with(Cell::get) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        if WATCHED.with(Cell::get) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations this thread makes while running `f`.
fn allocations(f: impl FnOnce()) -> u64 {
    let before = ALLOCS.load(Ordering::Relaxed);
    WATCHED.with(|w| w.set(true));
    f();
    WATCHED.with(|w| w.set(false));
    ALLOCS.load(Ordering::Relaxed) - before
}

#[test]
fn uncontended_put_and_get_allocate_nothing() {
    // Replaced if there: a name with this pid can only be a leftover of a killed process that
    // had it before.
    let name = format!("shmq-test-{}-noalloc", std::process::id());
    let seg = shmq::Segment::builder(&name)
        .queue::<u64>("q", 64)
        .bytes_queue("b", 64, 256)
        .create_or_replace()
        .unwrap();
    let q = seg.queue::<u64>("q").unwrap();
    let b = seg.bytes_queue("b").unwrap();
    let mut buf = Vec::with_capacity(256);
    let mut many = [0u64; 16];
    // Warm-up: the first operation registers this thread's participant record (one allocation
    // in a thread-local cache, once per thread and segment).
    q.put(0).unwrap();
    q.get().unwrap();
    let msg = [7u8; 200];
    let n = allocations(|| {
        for i in 0..10_000u64 {
            q.put(i).unwrap();
            assert_eq!(q.get().unwrap(), i);
            q.try_put(i).unwrap();
            assert_eq!(q.try_get().unwrap(), i);
            q.put_many(&[1, 2, 3]).unwrap();
            assert_eq!(q.get_many(&mut many).unwrap(), 3);
            b.put(&msg).unwrap();
            assert_eq!(b.get_into(&mut buf).unwrap(), 200);
            b.put_with(8, |m| m.fill(1)).unwrap();
            assert_eq!(b.get_with(|m| m.len()).unwrap(), 8);
        }
    });
    assert_eq!(n, 0, "the fast path allocated {n} times");
    // The counter works: an allocation in the window is seen.
    assert_eq!(allocations(|| drop(std::hint::black_box(vec![1u8; 10]))), 1);
}
