//! The dictionary and the growable list over a heap in plain memory (natively and under miri):
//! the same algorithms as over a mapping, checked against `HashMap` and `Vec`, and by two threads
//! at once.

use crate::heap::held;
use crate::heap::plain::PlainHeap;
use crate::ring::mem::Zeroed;
use crate::sync::native_or_miri;
use crate::objects::bytes_list::{SeqHeader, SeqRef};
use crate::objects::dict::{DictHeader, DictRef};
use std::collections::HashMap;

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
const OPS: u32 = native_or_miri(3000, 120);

#[test]
fn dict_over_plain_memory_matches_a_hashmap() {
    let heap = PlainHeap::new(1 << 20);
    let h = Zeroed::<DictHeader>::new();
    let d = dict(h.get(), &heap, 0);
    let mut model: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    let (mut out, mut x) = (Vec::new(), 7u32);
    for step in 0..OPS {
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

/// Keys with equal hashes (the hash has no seed, so anyone can make them): each keeps its own
/// value, and removing one leaves the others.
#[test]
fn dict_keys_with_equal_hashes_stay_apart() {
    use crate::objects::dict::{absorb, hash};
    let heap = PlainHeap::new(1 << 20);
    let h = Zeroed::<DictHeader>::new();
    let d = dict(h.get(), &heap, 0);
    // 16-byte keys (a, b): the state after `a` is s(a) = absorb(s0, a); keys with equal
    // s(a) ^ b collide.
    let s0 = 0x9E37_79B9_7F4A_7C15u64 ^ 16;
    let key = |a: u64, b: u64| [a.to_le_bytes(), b.to_le_bytes()].concat();
    let target = absorb(s0, 1) ^ 2;
    let keys: Vec<Vec<u8>> = (1..=4u64)
        .map(|a| key(a, absorb(s0, a) ^ target))
        .collect();
    assert!(keys.iter().all(|k| hash(k) == hash(&keys[0])), "not colliding");
    let mut out = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        assert!(!d.insert(k, &[i as u8; 3], &mut out).unwrap());
    }
    for (i, k) in keys.iter().enumerate() {
        assert!(d.get(k, &mut out).unwrap());
        assert_eq!(out, [i as u8; 3]);
    }
    assert!(d.remove(&keys[1], &mut out).unwrap());
    assert_eq!(out, [1u8; 3]);
    assert!(!d.get(&keys[1], &mut out).unwrap());
    for i in [0, 2, 3] {
        assert!(d.get(&keys[i], &mut out).unwrap());
        assert_eq!(out, [i as u8; 3]);
    }
    assert_eq!(d.len().unwrap(), 3);
}

#[test]
fn list_over_plain_memory_matches_a_vec() {
    let heap = PlainHeap::new(1 << 20);
    let h = Zeroed::<SeqHeader>::new();
    let l = list(h.get(), &heap, 0);
    let mut model: Vec<Vec<u8>> = Vec::new();
    let (mut out, mut x) = (Vec::new(), 3u32);
    for step in 0..OPS {
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
    let per = native_or_miri(2000, 20);
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
