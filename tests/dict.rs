//! The shared dictionary: its operations in one process, and many processes inserting into and
//! updating one dictionary at once.

mod common;

use common::*;
use shmq::{DictError, OpenError, Segment};
use std::collections::HashMap;
use std::os::unix::fs::FileExt;

fn dict_segment(tag: &str) -> (String, Segment) {
    let name = unique(tag);
    let seg = Segment::builder(&name)
        .bytes_dict("d")
        .dict::<u64, u64>("n")
        .create()
        .unwrap();
    (name, seg)
}

#[test]
fn insert_get_replace_remove_and_snapshots_match_a_hashmap() {
    let (_name, seg) = dict_segment("dict-ops");
    let d = seg.bytes_dict("d").unwrap();
    let mut model: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    assert!(d.is_empty().unwrap());
    assert_eq!(d.get(b"nothing").unwrap(), None);
    assert_eq!(d.remove(b"nothing").unwrap(), None);
    // Keys and values of many sizes (0 bytes included), enough of them to grow the table a few
    // times, then replacements and removals of every third.
    for i in 0..3000u32 {
        let k = format!("key-{i}").into_bytes();
        let v = vec![(i % 251) as u8; (i as usize * 7) % 300];
        assert_eq!(d.insert(&k, &v).unwrap(), model.insert(k, v));
    }
    d.insert(b"", b"empty key").unwrap();
    model.insert(Vec::new(), b"empty key".to_vec());
    d.insert(b"empty value", b"").unwrap();
    model.insert(b"empty value".to_vec(), Vec::new());
    for i in (0..3000u32).step_by(3) {
        let k = format!("key-{i}").into_bytes();
        if i % 2 == 0 {
            assert_eq!(d.remove(&k).unwrap(), model.remove(&k));
        } else {
            let v = format!("replaced {i}").into_bytes();
            assert_eq!(d.insert(&k, &v).unwrap(), model.insert(k, v));
        }
    }
    assert_eq!(d.len().unwrap(), model.len());
    for (k, v) in &model {
        assert_eq!(d.get(k).unwrap().as_ref(), Some(v), "key {k:?}");
        assert!(d.contains_key(k).unwrap());
    }
    let mut items = d.items().unwrap();
    items.sort();
    let mut want: Vec<_> = model.clone().into_iter().collect();
    want.sort();
    assert!(items == want);
    let mut keys = d.keys().unwrap();
    keys.sort();
    assert_eq!(
        keys,
        want.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>()
    );
    d.clear().unwrap();
    assert!(d.is_empty().unwrap());
    assert_eq!(d.get(b"key-1").unwrap(), None);
    // Usable after a clear.
    d.insert(b"again", b"yes").unwrap();
    assert_eq!(d.get(b"again").unwrap(), Some(b"yes".to_vec()));
}

#[test]
fn a_value_of_a_mebibyte_and_a_long_key_round_trip() {
    let (_name, seg) = dict_segment("dict-big");
    let d = seg.bytes_dict("d").unwrap();
    let key = vec![7u8; 10_000];
    let value: Vec<u8> = (0..1 << 20).map(|i: u32| (i * 31 % 256) as u8).collect();
    d.insert(&key, &value).unwrap();
    assert!(d.get(&key).unwrap() == Some(value));
    assert_eq!(d.get(&key[..9_999]).unwrap(), None);
}

#[test]
fn update_reads_and_writes_in_one_step_and_can_remove() {
    let (_name, seg) = dict_segment("dict-update");
    let n = seg.dict::<u64, u64>("n").unwrap();
    assert_eq!(n.update(&1, |v| Some(v.unwrap_or(0) + 5)).unwrap(), Some(5));
    assert_eq!(
        n.update(&1, |v| Some(v.unwrap_or(0) + 5)).unwrap(),
        Some(10)
    );
    assert_eq!(n.update(&1, |_| None).unwrap(), None);
    assert_eq!(n.get(&1).unwrap(), None);
    assert_eq!(n.update(&2, |_| None).unwrap(), None);
    assert!(n.is_empty().unwrap());
}

#[test]
fn typed_dictionaries_refuse_other_types_and_foreign_bytes() {
    let (_name, seg) = dict_segment("dict-types");
    assert!(matches!(
        seg.dict::<u32, u64>("n"),
        Err(OpenError::TypeMismatch { .. })
    ));
    assert!(matches!(
        seg.bytes_dict("n"),
        Err(OpenError::TypeMismatch { .. })
    ));
    assert!(matches!(
        seg.queue::<u64>("d"),
        Err(OpenError::KindMismatch { .. })
    ));
    // Bytes of another size put under a typed key through the bytes face are a typed error.
    let n = seg.dict::<u64, u64>("n").unwrap();
    n.as_bytes().insert(&9u64.to_le_bytes(), b"short").unwrap();
    assert!(matches!(
        n.get(&9),
        Err(DictError::WrongSize {
            found: 5,
            expected: 8
        })
    ));
}

#[test]
fn a_full_segment_is_no_space_and_changes_nothing() {
    let name = unique("dict-full");
    let seg = Segment::builder(&name)
        .bytes_dict("d")
        .max_size(1 << 20)
        .create()
        .unwrap();
    let d = seg.bytes_dict("d").unwrap();
    d.insert(b"kept", b"value").unwrap();
    match d.insert(b"huge", &vec![0u8; 4 << 20]) {
        Err(DictError::NoSpace { max_size, .. }) => assert_eq!(max_size, 1 << 20),
        other => panic!("{other:?}"),
    }
    assert_eq!(d.len().unwrap(), 1);
    assert_eq!(d.get(b"kept").unwrap(), Some(b"value".to_vec()));
    assert_eq!(d.get(b"huge").unwrap(), None);
}

const PROCS: u64 = 4;
const PER: u64 = 10_000;

#[test]
#[ignore = "child process of the dictionary tests"]
fn child_dict_role() {
    let seg = Segment::open(&child_var("SHMQ_SEG")).unwrap();
    let me: u64 = child_var("SHMQ_INDEX").parse().unwrap();
    let n = seg.dict::<u64, u64>("n").unwrap();
    match child_var("SHMQ_ROLE").as_str() {
        "insert" => {
            for i in 0..PER {
                let k = me * PER + i;
                assert_eq!(n.insert(k, k * 3 + 1).unwrap(), None);
            }
        }
        "update" => {
            for _ in 0..PER {
                n.update(&0, |v| Some(v.unwrap_or(0) + 1)).unwrap();
            }
        }
        r => panic!("unknown role {r}"),
    }
}

fn run_children(name: &str, role: &str) {
    let kids: Vec<_> = (0..PROCS)
        .map(|i| {
            spawn_child(
                "child_dict_role",
                &[
                    ("SHMQ_SEG", name.to_string()),
                    ("SHMQ_ROLE", role.to_string()),
                    ("SHMQ_INDEX", i.to_string()),
                ],
            )
        })
        .collect();
    for k in kids {
        finish(k);
    }
}

#[test]
fn four_processes_inserting_distinct_keys_leave_exactly_their_entries() {
    let (name, seg) = dict_segment("dict-procs-insert");
    run_children(&name, "insert");
    let n = seg.dict::<u64, u64>("n").unwrap();
    assert_eq!(n.len().unwrap(), (PROCS * PER) as usize);
    for k in 0..PROCS * PER {
        assert_eq!(n.get(&k).unwrap(), Some(k * 3 + 1), "key {k}");
    }
    let mut items = n.items().unwrap();
    items.sort_unstable();
    assert!(items
        .iter()
        .enumerate()
        .all(|(i, &(k, v))| k == i as u64 && v == k * 3 + 1));
}

#[test]
fn four_processes_updating_one_key_count_every_update() {
    let (name, seg) = dict_segment("dict-procs-update");
    run_children(&name, "update");
    let n = seg.dict::<u64, u64>("n").unwrap();
    assert_eq!(n.get(&0).unwrap(), Some(PROCS * PER));
    assert_eq!(n.len().unwrap(), 1);
}

/// Segment `name`'s file, opened to forge words, and the byte offset of its dictionary's
/// region (read from its directory entry: the first, at 128, whose `offset` is at +200).
fn dict_region(name: &str) -> (std::fs::File, u64) {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/dev/shm/{name}"))
        .unwrap();
    let mut word = [0u8; 8];
    f.read_exact_at(&mut word[..1], 128).unwrap();
    assert_eq!(word[0], b'd', "the first directory entry is the dictionary");
    f.read_exact_at(&mut word, 128 + 200).unwrap();
    (f, u64::from_le_bytes(word))
}

/// A forged entry count (the header's `len` word) must not size the next table: every entry
/// sits in the table, so no more than its capacity exist. A count of 2^22 once made the next
/// growth allocate and zero a table of 2^24 slots (256 MiB; the `segment_layout` fuzz target
/// found it as a stall). `len` is the region's word at +136.
#[test]
fn a_forged_entry_count_does_not_size_the_table() {
    let (name, seg) = dict_segment("dict-forged-len");
    let d = seg.bytes_dict("d").unwrap();
    d.insert(b"first", b"1").unwrap();
    let (f, region) = dict_region(&name);
    f.write_all_at(&(1u64 << 22).to_le_bytes(), region + 136)
        .unwrap();
    let before = seg.stats().unwrap().heap_in_use;
    // Past 3/4 of the first table's 16 slots: the table grows.
    for i in 0..16 {
        d.insert(format!("k{i}").as_bytes(), b"v").unwrap();
    }
    let grown = seg.stats().unwrap().heap_in_use - before;
    assert!(grown < 1 << 20, "the heap grew by {grown} bytes");
}

/// A forged table capacity (the table block's first word) is refused as corrupt, whatever its
/// value: 2^63 is a power of two whose slot count (twice it) does not fit a word, and must not
/// wrap into a table of no slots (an index out of bounds, a panic).
#[test]
fn a_forged_table_capacity_is_corrupt() {
    let (name, seg) = dict_segment("dict-forged-cap");
    let d = seg.bytes_dict("d").unwrap();
    d.insert(b"first", b"1").unwrap();
    let (f, region) = dict_region(&name);
    // The table block's offset is the region's word at +128; its capacity the first word of
    // the block's payload (after the 32-byte block header).
    let mut word = [0u8; 8];
    f.read_exact_at(&mut word, region + 128).unwrap();
    let table = u64::from_le_bytes(word);
    for cap in [1u64 << 63, 1 << 41] {
        f.write_all_at(&cap.to_le_bytes(), table + 32).unwrap();
        assert_eq!(d.get(b"first"), Err(DictError::Corrupt), "capacity {cap}");
    }
}
