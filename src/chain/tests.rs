//! The unbounded queue's chain over a heap in plain memory (natively and under miri): the
//! shipping protocol and link layout (seal, install, tail CAS, retire, hazard announcements,
//! link frees into the shared heap) while threads put and get, checked against `VecDeque`,
//! against what each producer put, and against the heap's own invariants.

use super::{block, Chain, ChainHeader, ChainMem, LinkHeader};
use crate::heap::plain::PlainHeap;
use crate::ring::mem::Zeroed;
use crate::heap::{held, HeapError};
use crate::layout::SlotLayout;
use crate::ring::mem::RawRing;
use crate::ring::{Fail, Filling};
use crate::sync::native_or_miri as scale;
use crate::sync::{AtomicU64, Ordering};
use std::cell::Cell;
use std::collections::VecDeque;

thread_local! {
    /// The hazard word this thread uses (`None`: it has no participant record, and counts
    /// itself in the chain's `bare` count instead).
    static HAZARD: Cell<Option<usize>> = const { Cell::new(None) };
}

/// A chain's memory in a plain heap: its header in its own buffer, link blocks in the heap, a
/// hazard word per participant.
struct PlainLinks {
    heap: PlainHeap,
    hdr: Zeroed<ChainHeader>,
    hazards: Vec<AtomicU64>,
}

fn layout() -> SlotLayout {
    SlotLayout::for_pod(8, 8).expect("u64 slots")
}

impl ChainMem for PlainLinks {
    type Ring = RawRing;

    fn ends(&self) -> &super::ChainEnds {
        &self.hdr.get().ends
    }
    fn table(&self) -> &[AtomicU64] {
        &self.hdr.get().table
    }
    fn layout(&self) -> SlotLayout {
        layout()
    }
    fn obj(&self) -> u32 {
        1
    }
    fn hazard(&self) -> Option<&AtomicU64> {
        HAZARD.with(|h| h.get()).and_then(|i| self.hazards.get(i))
    }
    fn hazard_announced(&self, hazard: u64) -> bool {
        // SYNC: Acquire, as `Inner::hazard_announced`: pairs with the Release withdrawals.
        self.hazards
            .iter()
            .any(|w| w.load(Ordering::Acquire) == hazard)
    }
    fn new_link(&self, index: u64, base: u64, cap: u64, seen: u32) -> Result<u64, HeapError> {
        let heap = self.heap.heap();
        block::new_link(&heap, held(0, 0), 1, layout(), index, base, cap, seen)
    }
    fn view(&self, off: u64) -> Result<(&LinkHeader, RawRing), Fail> {
        block::view(&self.heap.heap(), layout(), off)
    }
    fn installed(&self, off: u64) {
        self.heap.heap().own_by_structure(off);
    }
    fn discard(&self, off: u64) {
        self.heap.heap().free(off).expect("a block of ours");
    }
    fn release(&self, slot: &AtomicU64, e: u64) {
        self.heap.heap().free_link(slot, e, super::entry_off(e));
    }
}

/// An empty unbounded queue of `u64`s over a heap of `bytes`, with `hazards` hazard words.
fn chain(bytes: u64, hazards: usize) -> Chain<PlainLinks> {
    let mem = PlainLinks {
        heap: PlainHeap::new(bytes),
        hdr: Zeroed::new(),
        hazards: (0..hazards).map(|_| AtomicU64::new(0)).collect(),
    };
    let c = Chain::over(mem, None);
    c.install_first().expect("link 0");
    c
}

/// Puts `vs` in one batch, as far as the tail link has room; `Ok(n)`: the first `n` (≥ 1) went
/// in.
fn put(c: &Chain<PlainLinks>, vs: &[u64]) -> Result<usize, Fail> {
    c.put(
        |_| None,
        vs.len(),
        |Filling { k, .. }, b: &mut [u8]| b[..8].copy_from_slice(&vs[k].to_le_bytes()),
    )
}

/// Gets up to `max` values without waiting.
fn get(c: &Chain<PlainLinks>, max: usize) -> Result<Vec<u64>, Fail> {
    let mut out = Vec::new();
    c.get(None, max, None, |_, b| {
        out.push(u64::from_le_bytes(b[..8].try_into().expect("8 bytes")))
    })?;
    Ok(out)
}

/// `(links freed, head link, tail link)`.
fn ends(c: &Chain<PlainLinks>) -> (u64, u64, u64) {
    let e = c.mem.ends();
    (
        e.meta.freed.load(Ordering::Relaxed),
        e.head.load(Ordering::Relaxed),
        e.tail.load(Ordering::Relaxed) & !crate::layout::CLOSED_BIT,
    )
}

/// Checks the heap's invariants and that its blocks are exactly the links not yet freed (no
/// link leaked, none freed twice); returns `(freed, head, tail)`.
fn links_are_the_heap(c: &Chain<PlainLinks>) -> (u64, u64, u64) {
    let (freed, head, tail) = ends(c);
    assert!(freed <= head && head <= tail, "ends {freed} {head} {tail}");
    let (_, blocks) = c.mem.heap.heap().check().expect("heap invariants");
    assert_eq!(blocks, tail - freed + 1, "heap blocks against links {freed}..={tail}");
    (freed, head, tail)
}

#[test]
fn one_thread_matches_a_vecdeque_through_many_links() {
    let c = chain(1 << 22, 1);
    HAZARD.with(|h| h.set(Some(0)));
    let mut model = VecDeque::new();
    let mut next = 0u64;
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..scale(3_000, 60) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        // About nine puts to every seven gets: the queue grows over several links while it
        // drains through earlier ones.
        let n = 1 + (rng % 40) as usize;
        if rng >> 60 < 9 || model.len() < 10 {
            let vs: Vec<u64> = (next..next + n as u64).collect();
            next += n as u64;
            // A batch goes into one link: the rest into the next.
            let mut done = 0;
            while done < n {
                done += put(&c, &vs[done..]).expect("room");
            }
            model.extend(vs);
        } else {
            let got = get(&c, n).expect("values");
            let want: Vec<u64> = (0..got.len()).map(|_| model.pop_front().unwrap()).collect();
            assert_eq!(got, want);
        }
        assert_eq!(c.len(), model.len() as u64);
    }
    while let Ok(got) = get(&c, 64) {
        let want: Vec<u64> = (0..got.len()).map(|_| model.pop_front().unwrap()).collect();
        assert_eq!(got, want);
    }
    assert!(model.is_empty());
    let (freed, head, tail) = links_are_the_heap(&c);
    assert!(tail >= 3, "the run used {} links", tail + 1);
    // Alone, every retired link is freed at once.
    assert_eq!(freed, head);
    HAZARD.with(|h| h.set(None));
}

#[test]
fn a_full_heap_refuses_puts_and_loses_nothing() {
    // Room for a few links only.
    let c = chain(scale(64 << 10, 2 << 10), 1);
    HAZARD.with(|h| h.set(Some(0)));
    let mut put_in = 0u64;
    let refused = loop {
        match put(&c, &[put_in]) {
            Ok(1) => put_in += 1,
            Err(e) => break e,
            Ok(n) => panic!("put {n} of 1"),
        }
    };
    assert_eq!(refused, Fail::NoSpace);
    assert!(put_in > 0);
    // Everything put comes out, in order; then the freed links make room again.
    let mut got = Vec::new();
    while let Ok(vs) = get(&c, 16) {
        got.extend(vs);
    }
    assert_eq!(got, (0..put_in).collect::<Vec<_>>());
    assert_eq!(put(&c, &[7]), Ok(1));
    assert_eq!(get(&c, 1), Ok(vec![7]));
    links_are_the_heap(&c);
    HAZARD.with(|h| h.set(None));
}

#[test]
fn producers_and_consumers_on_many_links_lose_and_duplicate_nothing() {
    const PRODUCERS: u64 = 2;
    const CONSUMERS: usize = 2;
    let per = scale(20_000, 40);
    // Two hazard words for four threads: one producer and one consumer announce with a hazard
    // word, the others through the bare count.
    let c = chain(1 << 24, 2);
    let got: Vec<Vec<u64>> = std::thread::scope(|s| {
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
            let c = &c;
            s.spawn(move || {
                if p == 0 {
                    HAZARD.with(|h| h.set(Some(0)));
                }
                let mut i = 0;
                while i < per {
                    let vs: Vec<u64> = (i..(i + 1 + i % 7).min(per)).map(|i| p << 32 | i).collect();
                    i += put(c, &vs).expect("room") as u64;
                }
            })
            })
            .collect();
        let consumers: Vec<_> = (0..CONSUMERS)
            .map(|k| {
                let c = &c;
                s.spawn(move || {
                    if k == 0 {
                        HAZARD.with(|h| h.set(Some(1)));
                    }
                    let mut mine = Vec::new();
                    let mut last = [None; PRODUCERS as usize];
                    // Until this consumer sees the queue closed and drained.
                    loop {
                        match get(c, 1 + mine.len() % 5) {
                            Ok(vs) => {
                                for v in vs {
                                    let p = (v >> 32) as usize;
                                    assert!(last[p] < Some(v), "producer {p}'s order broken");
                                    last[p] = Some(v);
                                    mine.push(v);
                                }
                            }
                            Err(Fail::WouldBlock) => std::thread::yield_now(),
                            Err(Fail::Closed) => return mine,
                            Err(e) => panic!("get: {e:?}"),
                        }
                    }
                })
            })
            .collect();
        for p in producers {
            p.join().unwrap();
        }
        assert!(c.close());
        consumers.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut all: Vec<u64> = got.into_iter().flatten().collect();
    all.sort_unstable();
    let want: Vec<u64> = (0..PRODUCERS)
        .flat_map(|p| (0..per).map(move |i| p << 32 | i))
        .collect();
    assert_eq!(all, want);
    let (_, _, tail) = links_are_the_heap(&c);
    assert!(tail >= 2, "the run used {} links", tail + 1);
}
