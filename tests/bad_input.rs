//! Bad names, foreign files and mismatched types get typed errors, never a crash.

mod common;

use common::unique;
use shmq::{CreateError, NameError, ObjectKind, OpenError, Segment};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;

fn shm_path(name: &str) -> String {
    format!("/dev/shm/{name}")
}

/// Removes a file in /dev/shm when dropped (for files the tests plant by hand).
struct Planted(String);
impl Drop for Planted {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(shm_path(&self.0));
    }
}

fn plant(tag: &str, bytes: &[u8]) -> Planted {
    let name = unique(tag);
    let mut f = std::fs::File::create(shm_path(&name)).unwrap();
    f.write_all(bytes).unwrap();
    Planted(name)
}

#[test]
fn invalid_names_are_rejected_before_any_syscall() {
    let long = "a".repeat(shmq::SEGMENT_NAME_MAX + 1);
    let cases: [(&str, NameError); 7] = [
        ("", NameError::Empty),
        ("/", NameError::BadByte { byte: b'/', at: 0 }),
        ("a/b", NameError::BadByte { byte: b'/', at: 1 }),
        (".", NameError::Reserved),
        ("..", NameError::Reserved),
        ("nul\0x", NameError::BadByte { byte: 0, at: 3 }),
        ("é", NameError::BadByte { byte: 0xc3, at: 0 }),
    ];
    for (name, want) in cases {
        match Segment::open(name) {
            Err(OpenError::InvalidName(e)) => assert_eq!(e, want, "{name:?}"),
            other => panic!("{name:?}: {other:?}"),
        }
        match Segment::builder(name).queue::<u8>("q", 1).create() {
            Err(CreateError::InvalidName(e)) => assert_eq!(e, want, "{name:?}"),
            other => panic!("{name:?}: {other:?}"),
        }
    }
    assert!(matches!(
        Segment::open(&long),
        Err(OpenError::InvalidName(NameError::TooLong { .. }))
    ));
}

#[test]
fn bad_object_configs_are_typed_errors() {
    let name = unique("badcfg");
    assert!(matches!(
        Segment::builder(&name).queue::<u8>("q", 0).create(),
        Err(CreateError::InvalidConfig(_))
    ));
    assert!(matches!(
        Segment::builder(&name)
            .queue::<u8>("q", 1)
            .queue::<u8>("q", 1)
            .create(),
        Err(CreateError::DuplicateObject(_))
    ));
    assert!(matches!(
        Segment::builder(&name).queue::<u8>("bad/name", 1).create(),
        Err(CreateError::InvalidObjectName { .. })
    ));
    assert!(matches!(
        Segment::builder(&name)
            .queue::<u8>("q", u64::MAX / 2)
            .create(),
        Err(CreateError::InvalidConfig(_))
    ));
    // None of the failures left a file behind.
    assert!(matches!(Segment::open(&name), Err(OpenError::NotFound)));
}

#[test]
fn missing_segment_is_not_found() {
    assert!(matches!(
        Segment::open(&unique("missing")),
        Err(OpenError::NotFound)
    ));
}

#[test]
fn create_twice_is_already_exists_and_replace_works() {
    let name = unique("twice");
    let a = Segment::builder(&name)
        .queue::<u8>("q", 1)
        .create()
        .unwrap();
    assert!(matches!(
        Segment::builder(&name).queue::<u8>("q", 1).create(),
        Err(CreateError::AlreadyExists)
    ));
    let b = Segment::builder(&name)
        .queue::<u16>("q", 2)
        .create_or_replace()
        .unwrap();
    // The old mapping still works; new opens see the new segment.
    a.queue::<u8>("q").unwrap().put(1).unwrap();
    assert_eq!(
        Segment::open(&name)
            .unwrap()
            .queue::<u16>("q")
            .unwrap()
            .capacity(),
        2
    );
    drop(a); // must not unlink b's file
    assert!(Segment::open(&name).is_ok());
    drop(b);
    assert!(matches!(Segment::open(&name), Err(OpenError::NotFound)));
}

#[test]
fn wrong_type_kind_or_name_are_typed_errors() {
    #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    #[repr(C)]
    struct Pair {
        a: u32,
        b: u32,
    }
    let name = unique("types");
    let seg = Segment::builder(&name)
        .queue::<u64>("q", 4)
        .bytes_queue("b", 4, 16)
        .create()
        .unwrap();
    match seg.queue::<u32>("q") {
        Err(OpenError::TypeMismatch {
            expected, found, ..
        }) => {
            assert_eq!((expected.size, found.size), (4, 8));
            assert!(found.name.contains("u64"), "{}", found.name);
        }
        other => panic!("{other:?}"),
    }
    // Same size and alignment, different type: still refused.
    assert!(matches!(
        seg.queue::<Pair>("q"),
        Err(OpenError::TypeMismatch { .. })
    ));
    assert!(matches!(
        seg.bytes_queue("q"),
        Err(OpenError::KindMismatch {
            expected: ObjectKind::BytesQueue,
            ..
        })
    ));
    assert!(matches!(
        seg.queue::<u64>("b"),
        Err(OpenError::KindMismatch { .. })
    ));
    assert!(matches!(
        seg.queue::<u64>("nope"),
        Err(OpenError::ObjectNotFound(_))
    ));
}

#[test]
fn empty_and_short_files_are_too_small() {
    for (tag, len) in [("zero", 0usize), ("short", 10)] {
        let p = plant(tag, &vec![0u8; len]);
        match Segment::open(&p.0) {
            Err(OpenError::TooSmall { size, .. }) => assert_eq!(size, len as u64),
            other => panic!("{tag}: {other:?}"),
        }
    }
}

#[test]
fn foreign_file_is_bad_magic() {
    let p = plant("garbage", &[0xAB; 8192]);
    assert!(matches!(Segment::open(&p.0), Err(OpenError::BadMagic)));
}

#[test]
fn file_shorter_than_declared_size_is_too_small() {
    let name = unique("truncated");
    let seg = Segment::builder(&name)
        .queue::<u64>("q", 10_000)
        .keep(true)
        .create()
        .unwrap();
    let _cleanup = Planted(name.clone());
    let full = seg.size();
    drop(seg);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(shm_path(&name))
        .unwrap();
    f.set_len(full / 2).unwrap();
    match Segment::open(&name) {
        Err(OpenError::TooSmall { size, needed }) => {
            assert_eq!((size, needed), (full / 2, full))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn created_mode_is_exact_whatever_the_umask() {
    let old = rustix::process::umask(rustix::fs::Mode::empty());
    let name = unique("mode");
    let seg = Segment::builder(&name)
        .queue::<u8>("q", 1)
        .create()
        .unwrap();
    let seg2 = Segment::builder(&unique("mode2"))
        .queue::<u8>("q", 1)
        .mode(0o640)
        .create()
        .unwrap();
    rustix::process::umask(old);
    let mode = |n: &str| std::fs::metadata(shm_path(n)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(seg.name()), 0o600);
    assert_eq!(mode(seg2.name()), 0o640);
}

#[test]
fn symlink_under_segment_name_is_refused() {
    let target = plant("symtarget", &[0u8; 4096]);
    let name = unique("symlink");
    std::os::unix::fs::symlink(shm_path(&target.0), shm_path(&name)).unwrap();
    let _cleanup = Planted(name.clone());
    assert!(matches!(
        Segment::open(&name),
        Err(OpenError::NotRegularFile)
    ));
    assert!(matches!(
        Segment::builder(&name).queue::<u8>("q", 1).create(),
        Err(CreateError::AlreadyExists)
    ));
}
