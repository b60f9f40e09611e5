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
    use std::os::unix::fs::OpenOptionsExt;
    let name = unique(tag);
    // Mode 0600 whatever the umask (another test here sets the process-wide umask to 0 for a
    // moment): a group- or world-writable file would be refused as InsecureMode first.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(shm_path(&name))
        .unwrap();
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
fn group_or_world_writable_segment_is_refused_unless_both_sides_opt_in() {
    use std::os::unix::fs::PermissionsExt;
    // Creating one needs the explicit opt-in.
    for mode in [0o666, 0o620, 0o602] {
        assert!(matches!(
            Segment::builder(&unique("wmode"))
                .queue::<u8>("q", 1)
                .mode(mode)
                .create(),
            Err(CreateError::InvalidConfig(_))
        ));
    }
    let name = unique("wmode-shared");
    let seg = Segment::builder(&name)
        .queue::<u8>("q", 1)
        .mode(0o660)
        .shared_mode(true)
        .create()
        .unwrap();
    seg.queue::<u8>("q").unwrap().put(7).unwrap();
    // An opener that did not ask for it is told why, before anything of the file is used.
    match Segment::open(&name) {
        Err(OpenError::InsecureMode { mode }) => assert_eq!(mode, 0o660),
        other => panic!("expected InsecureMode, got {other:?}"),
    }
    // One that asked for it gets the segment.
    let shared = Segment::open_shared(&name).unwrap();
    assert_eq!(shared.queue::<u8>("q").unwrap().get(), Ok(7));
    // A private segment made writable by others afterwards (chmod 0666 by anyone who can) is
    // refused the same way, and nothing is lost: the creator's handle still works.
    let private = unique("wmode-chmod");
    let seg2 = Segment::builder(&private)
        .queue::<u8>("q", 1)
        .create()
        .unwrap();
    seg2.queue::<u8>("q").unwrap().put(9).unwrap();
    std::fs::set_permissions(shm_path(&private), std::fs::Permissions::from_mode(0o666)).unwrap();
    match Segment::open(&private) {
        Err(OpenError::InsecureMode { mode }) => assert_eq!(mode, 0o666),
        other => panic!("expected InsecureMode, got {other:?}"),
    }
    assert_eq!(seg2.queue::<u8>("q").unwrap().get(), Ok(9));
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

/// Creates a kept segment with one u64 queue "q" of capacity 4 and one bytes queue "b", drops the
/// creator's handle and returns the name (cleaned up by the returned guard).
fn kept_segment(tag: &str) -> (String, Planted) {
    let name = unique(tag);
    let seg = Segment::builder(&name)
        .queue::<u64>("q", 4)
        .bytes_queue("b", 2, 16)
        .keep(true)
        .create()
        .unwrap();
    drop(seg);
    (name.clone(), Planted(name))
}

fn poke(name: &str, offset: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(shm_path(name))
        .unwrap();
    f.write_all_at(bytes, offset).unwrap();
}

/// Directory entry `i` starts at 128 + 256 i; its `offset`, `len` and `param0` fields are at
/// +200, +208 and +216 (docs/design.md, "Directory entry").
const DIR: u64 = 128;

#[test]
fn other_layout_version_is_version_mismatch() {
    let (name, _g) = kept_segment("version");
    poke(&name, 8, &8u32.to_le_bytes());
    match Segment::open(&name) {
        Err(OpenError::VersionMismatch {
            expected: 9,
            found: 8,
        }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn other_layout_hash_is_layout_mismatch() {
    let (name, _g) = kept_segment("hash");
    poke(&name, 16, &0x1234u64.to_le_bytes());
    assert!(matches!(
        Segment::open(&name),
        Err(OpenError::LayoutMismatch { found: 0x1234, .. })
    ));
}

#[test]
fn directory_outside_the_file_is_corrupt() {
    let (name, _g) = kept_segment("dirout");
    poke(&name, 32, &(1u64 << 39).to_le_bytes());
    assert!(matches!(Segment::open(&name), Err(OpenError::Corrupt(_))));
    let (name, _g) = kept_segment("dircount");
    poke(&name, 40, &u32::MAX.to_le_bytes());
    assert!(matches!(Segment::open(&name), Err(OpenError::Corrupt(_))));
}

#[test]
fn object_offsets_and_sizes_outside_the_mapping_are_corrupt() {
    // Region offset past the end of the mapping.
    let (name, _g) = kept_segment("objoff");
    poke(&name, DIR + 200, &(1u64 << 30).to_le_bytes());
    let seg = Segment::open(&name).unwrap();
    assert!(matches!(seg.queue::<u64>("q"), Err(OpenError::Corrupt(_))));
    // Offset + length overflowing u64.
    let (name, _g) = kept_segment("objoverflow");
    poke(&name, DIR + 200, &(u64::MAX - 127).to_le_bytes());
    let seg = Segment::open(&name).unwrap();
    assert!(matches!(seg.queue::<u64>("q"), Err(OpenError::Corrupt(_))));
    // A capacity whose slots would not fit the region.
    let (name, _g) = kept_segment("objcap");
    poke(&name, DIR + 216, &(1u64 << 40).to_le_bytes());
    let seg = Segment::open(&name).unwrap();
    assert!(matches!(seg.queue::<u64>("q"), Err(OpenError::Corrupt(_))));
    // The other object is still usable.
    assert!(seg.bytes_queue("b").is_ok());
}

#[test]
fn forged_byte_message_length_is_corrupt_not_an_overread() {
    let name = unique("forgedlen");
    let seg = Segment::builder(&name)
        .bytes_queue("b", 2, 16)
        .create()
        .unwrap();
    let b = seg.bytes_queue("b").unwrap();
    b.put(b"hello").unwrap();
    b.put(b"world").unwrap();
    // The bytes queue's region starts at the entry's offset: 640 bytes of ring header, then slot
    // 0: stamp (8 bytes), then the u32 length word.
    let off = {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::open(shm_path(&name)).unwrap();
        let mut v = [0u8; 8];
        f.read_exact_at(&mut v, DIR + 200).unwrap();
        u64::from_le_bytes(v)
    };
    poke(&name, off + 640 + 8, &1_000_000u32.to_le_bytes());
    assert_eq!(b.try_get(), Err(shmq::GetError::Corrupt));
    // The corrupt message was consumed; the next one is intact.
    assert_eq!(b.try_get().unwrap(), b"world");
}

#[test]
fn forged_slot_stamp_is_corrupt_not_a_hang() {
    let name = unique("forgedstamp");
    let seg = Segment::builder(&name)
        .queue::<u64>("q", 2)
        .create()
        .unwrap();
    let q = seg.queue::<u64>("q").unwrap();
    let off = {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::open(shm_path(&name)).unwrap();
        let mut v = [0u8; 8];
        f.read_exact_at(&mut v, DIR + 200).unwrap();
        u64::from_le_bytes(v)
    };
    // Slot 0's stamp claims a position far in the future.
    poke(&name, off + 640, &(1000u64 << 2).to_le_bytes());
    assert_eq!(q.try_get(), Err(shmq::GetError::Corrupt));
    assert_eq!(
        q.get_timeout(std::time::Duration::from_secs(5)),
        Err(shmq::GetError::Corrupt)
    );
    assert!(matches!(q.try_put(1), Err(shmq::PutError::Corrupt(1))));
}

#[test]
fn segment_owned_by_another_user_is_refused() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root to give a file to another user");
        return;
    }
    let (name, _g) = kept_segment("owner");
    let path = shm_path(&name);
    std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
    assert!(matches!(
        Segment::open(&name),
        Err(OpenError::PermissionDenied)
    ));
}

#[test]
fn open_racing_a_creator_waits_then_reports_not_ready() {
    // A file that looks like a segment whose creator has not stored READY yet.
    let mut bytes = vec![0u8; 4096];
    bytes[..8].copy_from_slice(b"SHMQSEG\0");
    let p = plant("notready", &bytes);
    let t0 = std::time::Instant::now();
    let wait = std::time::Duration::from_millis(50);
    assert!(matches!(
        Segment::open_timeout(&p.0, wait),
        Err(OpenError::NotReady)
    ));
    assert!(t0.elapsed() >= wait);
}

#[test]
fn leftovers_of_a_creator_killed_mid_init_are_reclaimed_by_the_next_create() {
    let name = unique("midinit");
    // What a creator killed while building leaves: its temporary file (nobody holds its flock).
    let temp = Planted(format!("{name}~init~999999~0"));
    std::fs::write(shm_path(&temp.0), [0u8; 4096]).unwrap();
    // And, from an older protocol or a forged file, a never-ready segment under the name itself.
    let mut bytes = vec![0u8; 4096];
    bytes[..8].copy_from_slice(b"SHMQSEG\0");
    std::fs::write(shm_path(&name), &bytes).unwrap();
    let _final = Planted(name.clone());
    let seg = Segment::builder(&name)
        .queue::<u8>("q", 1)
        .create()
        .unwrap();
    assert!(
        !std::path::Path::new(&shm_path(&temp.0)).exists(),
        "temporary file not swept"
    );
    assert!(Segment::open(&name).unwrap().queue::<u8>("q").is_ok());
    drop(seg);
}

#[test]
fn foreign_file_under_the_name_is_left_alone() {
    let p = plant("foreign", b"not a segment");
    assert!(matches!(
        Segment::builder(&p.0).queue::<u8>("q", 1).create(),
        Err(CreateError::AlreadyExists)
    ));
    assert_eq!(std::fs::read(shm_path(&p.0)).unwrap(), b"not a segment");
}

#[test]
fn capacity_or_length_other_than_expected_is_param_mismatch() {
    let (name, _g) = kept_segment("params");
    let seg = Segment::open(&name).unwrap();
    match seg.queue_with_capacity::<u64>("q", 8) {
        Err(OpenError::ParamMismatch {
            param: "capacity",
            expected: 8,
            found: 4,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        seg.bytes_queue_with("b", 2, 32),
        Err(OpenError::ParamMismatch {
            param: "max message length",
            expected: 32,
            found: 16,
            ..
        })
    ));
    assert!(seg.bytes_queue_with("b", 2, 16).is_ok());
}

/// Child of `full_shm_is_no_space_and_leaves_nothing`: runs inside a mount namespace where
/// /dev/shm is a 1 MiB tmpfs.
#[test]
#[ignore = "child process of full_shm_is_no_space_and_leaves_nothing"]
fn child_full_shm() {
    assert!(
        std::env::var_os("SHMQ_TEST_CHILD").is_some(),
        "run through its parent test"
    );
    let name = "shmq-nospace";
    match Segment::builder(name).queue::<u64>("big", 1 << 20).create() {
        Err(CreateError::NoSpace { requested }) => assert!(requested > 1 << 20),
        other => panic!("expected NoSpace, got {other:?}"),
    }
    let left: Vec<_> = std::fs::read_dir("/dev/shm").unwrap().flatten().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    // A small segment still fits.
    let _small = Segment::builder(name)
        .queue::<u64>("small", 16)
        .create()
        .unwrap();
    // A segment allowed to grow past what the tmpfs holds: the growth for a long message is
    // NoSpace (fallocate's ENOSPC), never a SIGBUS, and the queue goes on working.
    let grow = Segment::builder("shmq-nospace-grow")
        .bytes_queue("b", 4, usize::MAX)
        .max_size(64 << 20)
        .create()
        .unwrap();
    let b = grow.bytes_queue("b").unwrap();
    match b.put(&vec![1u8; 2 << 20]) {
        Err(shmq::BytesPutError::NoSpace { max_size, .. }) => assert_eq!(max_size, 64 << 20),
        other => panic!("expected NoSpace, got {other:?}"),
    }
    b.put(&[2u8; 1000]).unwrap();
    assert_eq!(b.get().unwrap(), vec![2u8; 1000]);
    assert_eq!(grow.stats().unwrap().heap_blocks, 0);
    print!("<<<ok>>>");
}

#[test]
fn full_shm_is_no_space_and_leaves_nothing() {
    let exe = std::env::current_exe().unwrap();
    let script = format!(
        "mount -t tmpfs -o size=1m tmpfs /dev/shm && exec {} child_full_shm --exact --ignored --nocapture",
        exe.display()
    );
    // Root: a mount namespace is enough; otherwise a user namespace maps us to root in it.
    let userns = if rustix::process::geteuid().is_root() {
        ""
    } else {
        "-r"
    };
    let mut cmd = std::process::Command::new("unshare");
    if !userns.is_empty() {
        cmd.arg(userns);
    }
    let out = match cmd
        .args(["-m", "sh", "-c", &script])
        .env("SHMQ_TEST_CHILD", "1")
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            eprintln!("skipped: cannot run unshare: {e}");
            return;
        }
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success()
        && (stderr.contains("unshare failed")
            || stderr.contains("mount:")
            || stderr.contains("Operation not permitted"))
    {
        eprintln!("skipped: namespaces unavailable here: {stderr}");
        return;
    }
    assert!(out.status.success(), "child failed: {stderr}");
    assert_eq!(common::payload(&out.stdout), b"ok");
}

#[test]
fn directory_whose_regions_overlap_is_corrupt() {
    // Entry 1 ("b") is pointed at entry 0's ("q") region: the two would alias.
    let (name, _g) = kept_segment("overlap");
    let seg_q_offset = {
        let bytes = std::fs::read(shm_path(&name)).unwrap();
        let at = (DIR + 200) as usize;
        u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
    };
    poke(&name, DIR + 256 + 200, &seg_q_offset.to_le_bytes());
    match Segment::open(&name) {
        Err(OpenError::Corrupt(m)) => assert!(m.contains("overlaps"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn region_over_the_participant_table_is_corrupt() {
    let (name, _g) = kept_segment("overlap-records");
    let part_offset = {
        let bytes = std::fs::read(shm_path(&name)).unwrap();
        u64::from_le_bytes(bytes[48..56].try_into().unwrap())
    };
    poke(&name, DIR + 200, &part_offset.to_le_bytes());
    match Segment::open(&name) {
        Err(OpenError::Corrupt(m)) => {
            assert!(m.contains("participant table"), "{m}")
        }
        other => panic!("{other:?}"),
    }
}

/// A region pointed at the header (offset 0) or into the directory (offset 128, entry 0's own
/// words) would let an object's writes land on the words every open trusts.
#[test]
fn region_over_the_header_or_the_directory_is_corrupt() {
    for (tag, offset, what) in [
        ("overlap-header", 0u64, "the header"),
        ("overlap-dir", DIR, "the directory"),
    ] {
        let (name, _g) = kept_segment(tag);
        poke(&name, DIR + 200, &offset.to_le_bytes());
        match Segment::open(&name) {
            Err(OpenError::Corrupt(m)) => assert!(m.contains(what), "{m}"),
            other => panic!("{tag}: {other:?}"),
        }
    }
}

/// A directory count whose entries would end past the file (or overflow) is refused at open.
#[test]
fn directory_count_past_the_file_is_corrupt() {
    let (name, _g) = kept_segment("dircount");
    // The header's `dir_count` (u32) follows `dir_offset` (u64 at 32; see docs/design.md).
    poke(&name, 40, &u32::MAX.to_le_bytes());
    match Segment::open(&name) {
        Err(OpenError::Corrupt(m)) => assert!(m.contains("directory"), "{m}"),
        other => panic!("{other:?}"),
    }
}

/// Parameters a creator refuses are refused at lookup too, as `Corrupt`. A byte queue whose
/// in-place size (its entry's `param2`, at +232) is below the 16 bytes a heap reference needs
/// once made a long put write past its slot's payload (a panic, found by the `segment_layout`
/// fuzz target); a queue of capacity 0 (`param0`, +216) is the other case tried here.
#[test]
fn parameters_a_creator_refuses_are_corrupt_at_lookup() {
    let (name, _g) = kept_segment("params");
    // "b" is entry 1: maximum length 1 MiB (`param1`, +224), 10 bytes in place.
    poke(&name, DIR + 256 + 224, &(1u64 << 20).to_le_bytes());
    poke(&name, DIR + 256 + 232, &10u64.to_le_bytes());
    poke(&name, DIR + 216, &0u64.to_le_bytes());
    let seg = Segment::open(&name).unwrap();
    match seg.bytes_queue("b") {
        Err(OpenError::Corrupt(m)) => assert!(m.contains("in-place size"), "{m}"),
        Err(e) => panic!("expected Corrupt, got {e}"),
        Ok(q) => panic!(
            "a queue with 10 bytes in place opened; a long put returned {:?}",
            q.try_put(&[1u8; 100])
        ),
    }
    match seg.queue::<u64>("q") {
        Err(OpenError::Corrupt(m)) => assert!(m.contains("capacity"), "{m}"),
        Err(e) => panic!("expected Corrupt, got {e}"),
        Ok(_) => panic!("a queue of capacity 0 opened"),
    }
}
