//! The dictionary and the growable list over a heap in plain memory (natively and under miri):
//! the same algorithms as over a mapping, checked against `HashMap` and `Vec`, and by two threads
//! at once.

use crate::heap::{held, Heap, HeapError, HeapHeader, HeapMem, HEAP_HEADER_SIZE};
use crate::objects::bytes_list::{SeqHeader, SeqRef};
use crate::objects::dict::{DictHeader, DictRef};
use crate::ring::mem::HeapRegion;
use crate::sync::AtomicU64;
use std::collections::HashMap;

/// A heap of fixed size in a zeroed, 128-aligned buffer: the control block at 0, blocks after
/// it. Nobody ever dies here, so every structure block counts as used.
struct PlainHeap {
    mem: HeapRegion,
}

impl PlainHeap {
    fn new(bytes: u64) -> Self {
        let mem = HeapRegion::zeroed(HEAP_HEADER_SIZE + bytes).expect("memory");
        // SAFETY: the region is zeroed, 128-aligned and ours alone; the control block is its
        // first HEAP_HEADER_SIZE bytes and the blocks the rest.
        unsafe {
            crate::heap::init(
                mem.as_ptr(),
                mem.as_ptr().cast(),
                HEAP_HEADER_SIZE,
                HEAP_HEADER_SIZE + bytes,
            )
        };
        Self { mem }
    }

    fn hdr(&self) -> &HeapHeader {
        // SAFETY: `init` wrote a control block at the start of the region, which lives as long
        // as `self`; HeapHeader is atomics only.
        unsafe { &*self.mem.as_ptr().cast::<HeapHeader>() }
    }

    fn heap(&self) -> Heap<'_, PlainHeap> {
        Heap::over(self, self.hdr())
    }
}

impl HeapMem for PlainHeap {
    fn word(&self, off: u64) -> Result<&AtomicU64, HeapError> {
        self.words(off, 1).map(|w| &w[0])
    }
    fn words(&self, off: u64, n: u64) -> Result<&[AtomicU64], HeapError> {
        let end = n
            .checked_mul(8)
            .and_then(|b| b.checked_add(off))
            .ok_or(HeapError::Corrupt)?;
        if off % 8 != 0 || end > self.mem.len() {
            return Err(HeapError::Corrupt);
        }
        // SAFETY: [off, end) lies in the region (checked), 8-aligned; AtomicU64 is valid for any
        // bits, and the region lives as long as `self`.
        Ok(unsafe {
            core::slice::from_raw_parts(
                self.mem.as_ptr().add(off as usize).cast::<AtomicU64>(),
                n as usize,
            )
        })
    }
    fn holder_gone(&self, _rec: u32, _inc: u32) -> bool {
        false
    }
    fn structure_blocks(&self, _obj: u32, _each: &mut dyn FnMut(u64)) -> bool {
        false // nobody dies here: take every structure block as used
    }
    fn committed(&self) -> u64 {
        self.mem.len()
    }
    fn max_size(&self) -> u64 {
        self.mem.len()
    }
    fn commit(&self, _from: u64, to: u64) -> Result<(), HeapError> {
        Err(HeapError::NoSpace { requested: to })
    }
    fn lock_token(&self) -> u32 {
        1
    }
    fn token_gone(&self, _token: u32) -> bool {
        false
    }
}

/// A zeroed, 128-aligned state `S` in its own buffer (all-zero is a fresh header).
struct Zeroed<S> {
    mem: HeapRegion,
    _s: core::marker::PhantomData<S>,
}

impl<S> Zeroed<S> {
    fn new() -> Self {
        Self {
            mem: HeapRegion::zeroed(core::mem::size_of::<S>() as u64).expect("memory"),
            _s: core::marker::PhantomData,
        }
    }
    fn get(&self) -> &S {
        // SAFETY: the buffer is zeroed, 128-aligned and as large as S; S is atomics only, so
        // zero is a valid S (a fresh header).
        unsafe { &*self.mem.as_ptr().cast::<S>() }
    }
}

fn dict<'a>(hdr: &'a DictHeader, heap: &'a PlainHeap, who: u32) -> DictRef<'a, PlainHeap> {
    DictRef {
        hdr,
        heap: heap.heap(),
        obj: 1,
        me: held(who, 0),
    }
}

fn list<'a>(hdr: &'a SeqHeader, heap: &'a PlainHeap, who: u32) -> SeqRef<'a, PlainHeap> {
    SeqRef {
        hdr,
        heap: heap.heap(),
        obj: 2,
        me: held(who, 0),
    }
}

/// Operations in a run (fewer under miri, which is slow).
fn ops() -> u32 {
    if cfg!(miri) {
        120
    } else {
        3000
    }
}

#[test]
fn dict_over_plain_memory_matches_a_hashmap() {
    let heap = PlainHeap::new(1 << 20);
    let h = Zeroed::<DictHeader>::new();
    let d = dict(h.get(), &heap, 0);
    let mut model: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    let (mut out, mut x) = (Vec::new(), 7u32);
    for step in 0..ops() {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let k = format!("k{}", (x >> 16) % 64).into_bytes();
        match (x >> 8) % 4 {
            0 | 1 => {
                let v = vec![step as u8; (step % 90) as usize];
                let had = d.insert(&k, &v, &mut out).unwrap();
                assert_eq!(had.then(|| out.clone()), model.insert(k, v));
            }
            2 => {
                let had = d.remove(&k, &mut out).unwrap();
                assert_eq!(had.then(|| out.clone()), model.remove(&k));
            }
            _ => {
                let had = d.get(&k, &mut out).unwrap();
                assert_eq!(had.then(|| out.clone()).as_ref(), model.get(&k));
            }
        }
    }
    assert_eq!(d.len().unwrap(), model.len() as u64);
    let mut n = 0;
    d.items(|k, v| {
        assert_eq!(model.get(k).map(Vec::as_slice), Some(v));
        n += 1;
    })
    .unwrap();
    assert_eq!(n, model.len());
    d.clear().unwrap();
    assert_eq!(d.len().unwrap(), 0);
    // Everything went back: the heap holds the (empty) table only.
    assert_eq!(heap.heap().stats().unwrap().blocks, 1);
}

#[test]
fn list_over_plain_memory_matches_a_vec() {
    let heap = PlainHeap::new(1 << 20);
    let h = Zeroed::<SeqHeader>::new();
    let l = list(h.get(), &heap, 0);
    let mut model: Vec<Vec<u8>> = Vec::new();
    let (mut out, mut x) = (Vec::new(), 3u32);
    for step in 0..ops() {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let r = (x >> 16) as u64;
        let item = vec![step as u8; (step % 40) as usize];
        match r % 6 {
            0 | 1 => {
                l.extend([&item[..]]).unwrap();
                model.push(item);
            }
            2 => {
                let i = r % (model.len() as u64 + 1);
                l.insert(i, &item).unwrap();
                model.insert((i as usize).min(model.len()), item);
            }
            3 => match l.pop(Some(r % (model.len() as u64 + 1)), &mut out).unwrap() {
                Ok(()) => assert_eq!(out, model.remove((r % (model.len() as u64 + 1)) as usize)),
                Err(_) => assert!(r % (model.len() as u64 + 1) == model.len() as u64),
            },
            4 if !model.is_empty() => {
                let i = r % model.len() as u64;
                l.set(i, &item, &mut out).unwrap().unwrap();
                assert_eq!(out, std::mem::replace(&mut model[i as usize], item));
            }
            _ => {
                let mut got = Vec::new();
                l.slice(0, u64::MAX, |b| got.push(b.to_vec())).unwrap();
                assert!(got == model);
            }
        }
    }
    assert_eq!(l.len().unwrap(), model.len() as u64);
    l.clear().unwrap();
    assert_eq!(heap.heap().stats().unwrap().blocks, 1);
}

#[test]
fn two_threads_insert_and_update_one_dict() {
    let heap = PlainHeap::new(1 << 20);
    let h = Zeroed::<DictHeader>::new();
    let per = if cfg!(miri) { 20 } else { 2000 };
    std::thread::scope(|s| {
        for t in 0..2u32 {
            let (heap, h) = (&heap, &h);
            s.spawn(move || {
                let d = dict(h.get(), heap, t);
                let mut old = Vec::new();
                for i in 0..per {
                    let k = (t * per + i).to_le_bytes();
                    assert!(!d.insert(&k, &k, &mut old).unwrap());
                    d.update(b"count", |v| {
                        let n = v.map_or(0, |b| u32::from_le_bytes(b.try_into().unwrap()));
                        Some((n + 1).to_le_bytes().to_vec())
                    })
                    .unwrap();
                }
            });
        }
    });
    let d = dict(h.get(), &heap, 0);
    let mut v = Vec::new();
    assert!(d.get(b"count", &mut v).unwrap());
    assert_eq!(v, (2 * per).to_le_bytes());
    assert_eq!(d.len().unwrap(), 2 * per as u64 + 1);
    for k in 0..2 * per {
        assert!(d.get(&k.to_le_bytes(), &mut v).unwrap());
        assert_eq!(v, k.to_le_bytes());
    }
}
