//! The growable list: its operations in one process against a `Vec`, and many processes
//! appending to one list at once.

mod common;

use common::*;
use shmq::{ListError, OpenError, Segment};

fn list_segment(tag: &str) -> (String, Segment) {
    let name = unique(tag);
    let seg = Segment::builder(&name)
        .bytes_list("l")
        .shared_vec::<u64>("v")
        .create()
        .unwrap();
    (name, seg)
}

#[test]
fn every_operation_matches_a_vec() {
    let (_name, seg) = list_segment("list-ops");
    let l = seg.bytes_list("l").unwrap();
    let mut model: Vec<Vec<u8>> = Vec::new();
    let item = |i: u32| vec![(i % 251) as u8; (i as usize * 13) % 200];
    // A deterministic mix of every operation, enough pushes to grow the array many times.
    let mut x = 1u32;
    for step in 0..3000u32 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let r = (x >> 16) as usize;
        match r % 10 {
            0..=2 => {
                assert_eq!(l.push(&item(step)).unwrap(), model.len() + 1);
                model.push(item(step));
            }
            3 if !model.is_empty() => {
                let i = r % model.len();
                assert_eq!(l.set(i, &item(step)).unwrap(), model[i]);
                model[i] = item(step);
            }
            4 => assert_eq!(l.pop().unwrap(), model.pop()),
            5 if !model.is_empty() => {
                let i = r % model.len();
                assert_eq!(l.pop_at(i).unwrap(), model.remove(i));
            }
            6 => {
                let i = r % (model.len() + 2);
                l.insert(i, &item(step)).unwrap();
                model.insert(i.min(model.len()), item(step));
            }
            7 if !model.is_empty() => {
                let target = model[r % model.len()].clone();
                assert!(l.remove(&target).unwrap());
                let at = model.iter().position(|m| *m == target).unwrap();
                model.remove(at);
            }
            8 => {
                // Replace a range (possibly empty, possibly past the end) by 0..3 new items.
                let a = r % (model.len() + 2);
                let b = a + (r / 7) % 4;
                let new: Vec<Vec<u8>> = (0..(r / 11) % 3).map(|k| item(step + k as u32)).collect();
                let n = l.splice(a..b, new.iter().map(|v| v.as_slice())).unwrap();
                let (b, a) = (b.min(model.len()), a.min(model.len()));
                model.splice(a..b, new);
                assert_eq!(n, model.len());
            }
            _ => {
                let got = l.get(r % (model.len() + 1));
                match model.get(r % (model.len() + 1)) {
                    Some(m) => assert_eq!(&got.unwrap(), m),
                    None => assert!(matches!(got, Err(ListError::IndexOutOfRange { .. }))),
                }
            }
        }
    }
    assert_eq!(l.len().unwrap(), model.len());
    assert!(l.to_vec().unwrap() == model);
    let (a, b) = (model.len() / 3, model.len() / 2);
    assert!(l.slice(a..b).unwrap() == model[a..b]);
    assert!(l.slice(b..usize::MAX).unwrap() == model[b..]);
    assert!(!l.remove(b"not there").unwrap());
    l.clear().unwrap();
    assert!(l.is_empty().unwrap());
    assert_eq!(l.pop().unwrap(), None);
    assert!(matches!(
        l.pop_at(0),
        Err(ListError::IndexOutOfRange { index: 0, len: 0 })
    ));
    l.extend([&b"x"[..], b"y"]).unwrap();
    assert_eq!(l.to_vec().unwrap(), [b"x", b"y"]);
}

#[test]
fn items_of_a_mebibyte_and_empty_items_round_trip() {
    let (_name, seg) = list_segment("list-big");
    let l = seg.bytes_list("l").unwrap();
    let big: Vec<u8> = (0..1 << 20).map(|i: u32| (i * 7 % 256) as u8).collect();
    l.push(&big).unwrap();
    l.push(b"").unwrap();
    assert!(l.get(0).unwrap() == big);
    assert_eq!(l.get(1).unwrap(), b"");
}

#[test]
fn typed_lists_refuse_other_types_and_foreign_bytes() {
    let (_name, seg) = list_segment("list-types");
    assert!(matches!(
        seg.shared_vec::<u32>("v"),
        Err(OpenError::TypeMismatch { .. })
    ));
    assert!(matches!(
        seg.bytes_list("v"),
        Err(OpenError::TypeMismatch { .. })
    ));
    let v = seg.shared_vec::<u64>("v").unwrap();
    v.extend([1, 2, 3]).unwrap();
    v.as_bytes().push(b"odd").unwrap();
    assert!(matches!(
        v.get(3),
        Err(ListError::WrongSize {
            found: 3,
            expected: 8
        })
    ));
    assert_eq!(v.slice(0..3).unwrap(), [1, 2, 3]);
}

const PROCS: u64 = 4;
const PER: u64 = 2_000;

#[test]
#[ignore = "child process of the list tests"]
fn child_list_role() {
    let seg = Segment::open(&child_var("SHMQ_SEG")).unwrap();
    let me: u64 = child_var("SHMQ_INDEX").parse().unwrap();
    let v = seg.shared_vec::<u64>("v").unwrap();
    for i in 0..PER {
        v.push(me * PER + i).unwrap();
    }
}

#[test]
fn four_processes_appending_leave_every_item_once_in_each_ones_order() {
    let (name, seg) = list_segment("list-procs");
    let kids: Vec<_> = (0..PROCS)
        .map(|i| {
            spawn_child(
                "child_list_role",
                &[("SHMQ_SEG", name.clone()), ("SHMQ_INDEX", i.to_string())],
            )
        })
        .collect();
    for k in kids {
        finish(k);
    }
    let items = seg.shared_vec::<u64>("v").unwrap().to_vec().unwrap();
    assert_eq!(items.len() as u64, PROCS * PER);
    for p in 0..PROCS {
        let mine: Vec<u64> = items.iter().copied().filter(|x| x / PER == p).collect();
        assert_eq!(mine, (p * PER..(p + 1) * PER).collect::<Vec<_>>());
    }
}
