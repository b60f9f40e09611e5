//! The only place that talks to the OS: segment files (open/create/stat/size/map/unlink, flock),
//! /proc, thread and process identity, fork generation, pidfds and epoll; `futex` the futex system
//! calls under `sync::futex`.
//!
//! Segments are files in `/dev/shm`, the tmpfs that glibc's `shm_open(3)` uses on Linux. They are
//! opened with `openat(2)` directly rather than through `shm_open` so that `O_NOFOLLOW` can be
//! passed: a symlink planted under the segment's name is refused, not followed.

pub(crate) mod futex;

use crate::error::{CreateError, OpenError};
use rustix::fd::OwnedFd;
use rustix::fs::{self, FallocateFlags, Mode, OFlags};
use rustix::io::Errno;
use std::fs::File;

/// Directory holding POSIX shared-memory objects on Linux.
pub(crate) const SHM_DIR: &str = "/dev/shm";

fn path_of(name: &str) -> String {
    format!("{SHM_DIR}/{name}")
}

/// Creates `/dev/shm/NAME` exclusively with exactly `mode` (`openat(2)` with
/// `O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC`, then `fchmod(2)` so the umask cannot change the mode).
pub(crate) fn create_exclusive(name: &str, mode: u32) -> Result<File, CreateError> {
    let flags = OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let m = Mode::from_raw_mode(mode & 0o777);
    let fd = fs::open(path_of(name), flags, m).map_err(|e| match e {
        Errno::EXIST => CreateError::AlreadyExists,
        Errno::ACCESS | Errno::PERM => CreateError::PermissionDenied,
        Errno::NOSPC => CreateError::NoSpace { requested: 0 },
        e => CreateError::Io(e.into()),
    })?;
    if let Err(e) = fs::fchmod(&fd, m) {
        let _ = unlink(name);
        return Err(CreateError::Io(e.into()));
    }
    Ok(File::from(fd))
}

/// Sizes the file to `size` bytes and reserves the pages (`ftruncate(2)` then `fallocate(2)`), so a
/// full tmpfs is reported here as `NoSpace` instead of killing a process with SIGBUS when it first
/// touches a page. tmpfs supports `fallocate` since Linux 3.5; where it is not supported the file is
/// only sized.
pub(crate) fn reserve(file: &File, size: u64) -> Result<(), CreateError> {
    let map = |e: Errno| match e {
        Errno::NOSPC | Errno::FBIG | Errno::NOMEM => CreateError::NoSpace { requested: size },
        Errno::ACCESS | Errno::PERM => CreateError::PermissionDenied,
        e => CreateError::Io(e.into()),
    };
    fs::ftruncate(file, size).map_err(map)?;
    match fs::fallocate(file, FallocateFlags::empty(), 0, size) {
        Ok(()) => Ok(()),
        Err(Errno::OPNOTSUPP) | Err(Errno::NOSYS) => Ok(()),
        Err(e) => Err(map(e)),
    }
}

/// What `fstat(2)` says about an opened segment file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FileInfo {
    pub(crate) size: u64,
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    /// Permission bits (`st_mode & 0o777`).
    pub(crate) mode: u32,
}

/// Opens `/dev/shm/NAME` read-write without following symlinks, then checks with `fstat(2)` that
/// it is a regular file owned by this user. Nothing of the file is touched before that.
pub(crate) fn open_existing(name: &str) -> Result<(File, FileInfo), OpenError> {
    let flags = OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd: OwnedFd = fs::open(path_of(name), flags, Mode::empty()).map_err(|e| match e {
        Errno::NOENT => OpenError::NotFound,
        Errno::ACCESS | Errno::PERM => OpenError::PermissionDenied,
        Errno::LOOP | Errno::ISDIR | Errno::NXIO => OpenError::NotRegularFile,
        e => OpenError::Io(e.into()),
    })?;
    let st = fs::fstat(&fd).map_err(|e| OpenError::Io(e.into()))?;
    if fs::FileType::from_raw_mode(st.st_mode) != fs::FileType::RegularFile {
        return Err(OpenError::NotRegularFile);
    }
    if st.st_uid != rustix::process::geteuid().as_raw() {
        return Err(OpenError::PermissionDenied);
    }
    let info = FileInfo {
        size: st.st_size as u64,
        dev: st.st_dev,
        ino: st.st_ino,
        mode: st.st_mode & 0o777,
    };
    Ok((File::from(fd), info))
}

/// `fstat(2)` identity of an open file.
pub(crate) fn identity(file: &File) -> std::io::Result<FileInfo> {
    let st = fs::fstat(file)?;
    Ok(FileInfo {
        size: st.st_size as u64,
        dev: st.st_dev,
        ino: st.st_ino,
        mode: st.st_mode & 0o777,
    })
}

/// Identity of whatever `/dev/shm/NAME` is now, without following a symlink.
pub(crate) fn identity_of_name(name: &str) -> Option<FileInfo> {
    let st = fs::lstat(path_of(name)).ok()?;
    Some(FileInfo {
        size: st.st_size as u64,
        dev: st.st_dev,
        ino: st.st_ino,
        mode: st.st_mode & 0o777,
    })
}

/// A temporary name for a segment being built: the final name plus `~init~PID~N`. `~` cannot
/// appear in a segment name, so no user segment can collide with it.
pub(crate) fn temp_name(name: &str) -> String {
    use crate::sync::local::AtomicU32;
    use crate::sync::Ordering;
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("{name}~init~{}~{n}", std::process::id())
}

/// Takes an exclusive `flock(2)` on the file, held until the file is closed. A creator holds it
/// while it builds a segment, so a half-built file whose lock can be taken belongs to a dead
/// creator (the kernel drops the lock at exit).
pub(crate) fn lock_exclusive(file: &File) -> std::io::Result<()> {
    fs::flock(file, fs::FlockOperation::LockExclusive).map_err(Into::into)
}

/// True if nobody holds an `flock` on the file (taking and dropping it at once).
fn unlocked(file: &File) -> bool {
    match fs::flock(file, fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {
            let _ = fs::flock(file, fs::FlockOperation::Unlock);
            true
        }
        Err(_) => false,
    }
}

/// Removes temporary files of `name` left by creators that died mid-build (their flock is gone).
pub(crate) fn sweep_stale_temps(name: &str) {
    let prefix = format!("{name}~init~");
    let Ok(dir) = std::fs::read_dir(SHM_DIR) else {
        return;
    };
    for entry in dir.flatten() {
        let fname = entry.file_name();
        let Some(f) = fname.to_str() else { continue };
        if !f.starts_with(&prefix) {
            continue;
        }
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        if let Ok(fd) = fs::open(path_of(f), flags, Mode::empty()) {
            if unlocked(&File::from(fd)) && unlink(f).is_ok() {
                log::warn!(
                    target: "shmq::recovery",
                    "{f} removed: left by a creator that died building the segment"
                );
            }
        }
    }
}

/// Publishes the built segment at `tmp` under `name` with `link(2)`, which fails with `EEXIST`
/// instead of replacing an existing file.
pub(crate) fn link(tmp: &str, name: &str) -> std::io::Result<()> {
    fs::link(path_of(tmp), path_of(name)).map_err(Into::into)
}

/// Takes a shared `flock(2)` on a segment file without blocking: every process that maps a named
/// segment holds one for as long as it has it mapped (the kernel drops it when the process exits,
/// however it exits), so "nobody holds this segment" is a lock the next `create` can take.
/// `Ok(false)` if an exclusive lock is held (a creator publishing, or a `create` checking the
/// segment for reclamation: both are brief).
pub(crate) fn try_lock_shared(file: &File) -> std::io::Result<bool> {
    match fs::flock(file, fs::FlockOperation::NonBlockingLockShared) {
        Ok(()) => Ok(true),
        Err(Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Drops this process's `flock` on the file. (Closing the descriptor is not enough while the
/// file is mapped: a mapping holds the open file description, and its lock, too.)
pub(crate) fn unlock(file: &File) -> std::io::Result<()> {
    fs::flock(file, fs::FlockOperation::Unlock).map_err(Into::into)
}

/// Turns the creator's exclusive build lock into the shared lock every holder keeps.
pub(crate) fn downgrade_lock(file: &File) -> std::io::Result<()> {
    fs::flock(file, fs::FlockOperation::LockShared).map_err(Into::into)
}

/// Removes `/dev/shm/NAME` if it is a shmq segment nobody can still use, and returns whether it did.
///
/// A segment is reclaimed when its exclusive `flock` can be taken (no process holds it mapped
/// through `create`/`open`, and no creator is building it) and either it never became ready, or
/// it is ready and its creator is dead, the creator did not ask to keep it (`keep(true)`), and no
/// participant record names a live process. Anything else, including files that are not shmq
/// segments and segments whose state cannot be read, is left alone. The unlink happens while the
/// exclusive lock is held and only if the name still refers to the file that was checked, so an
/// opener racing with it either holds its shared lock first (and the segment stays) or finds the
/// name gone or replaced once it gets its lock (and opens again).
pub(crate) fn reclaim_stale(name: &str) -> bool {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let Ok(fd) = fs::open(path_of(name), flags, Mode::empty()) else {
        return false;
    };
    let file = File::from(fd);
    let Ok(st) = fs::fstat(&file) else {
        return false;
    };
    if fs::FileType::from_raw_mode(st.st_mode) != fs::FileType::RegularFile
        || st.st_uid != rustix::process::geteuid().as_raw()
    {
        return false;
    }
    if fs::flock(&file, fs::FlockOperation::NonBlockingLockExclusive).is_err() {
        return false; // held: a live process has it mapped, or a creator is building it
    }
    let stale = unused_segment(&file, st.st_size as u64);
    let same =
        identity_of_name(name).is_some_and(|now| now.dev == st.st_dev && now.ino == st.st_ino);
    // Dropping `file` afterwards releases the exclusive lock.
    let removed = stale && same && unlink(name).is_ok();
    if removed {
        log::warn!(
            target: "shmq::recovery",
            "segment {name} reclaimed: nobody maps it and its creator and participants are gone"
        );
    }
    removed
}

/// Removes `/dev/shm/NAME` if it is a shmq segment that no process maps any more, and returns
/// whether it did. `Ok(false)`: someone holds an `flock` on it (a process maps it, a creator is
/// publishing it, or a `create` is checking it), or the file is not a shmq segment of this user.
///
/// Unlike [`reclaim_stale`], the creator may be alive and the segment may be kept: this is for
/// callers whose segments are only ever used while mapped (no process keeps a name to open
/// later without mapping it meanwhile), who remove the name once the last holder is gone. The
/// unlink happens under the exclusive lock and only if the name still refers to the file that
/// was checked, so a racing opener either holds its shared lock first (and the name stays) or
/// finds the name gone once it gets its lock (`NotFound`).
pub(crate) fn unlink_unmapped(name: &str) -> std::io::Result<bool> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let file = match fs::open(path_of(name), flags, Mode::empty()) {
        Ok(fd) => File::from(fd),
        Err(Errno::NOENT) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    let st = fs::fstat(&file)?;
    if fs::FileType::from_raw_mode(st.st_mode) != fs::FileType::RegularFile
        || st.st_uid != rustix::process::geteuid().as_raw()
    {
        return Ok(false);
    }
    if fs::flock(&file, fs::FlockOperation::NonBlockingLockExclusive).is_err() {
        return Ok(false); // held: a live process has it mapped, or a creator is publishing it
    }
    let mut magic = [0u8; 8];
    use std::os::unix::fs::FileExt;
    if file.read_exact_at(&mut magic, 0).is_err() || magic != crate::layout::MAGIC {
        return Ok(false);
    }
    let same =
        identity_of_name(name).is_some_and(|now| now.dev == st.st_dev && now.ino == st.st_ino);
    // Dropping `file` afterwards releases the exclusive lock.
    Ok(same && unlink(name).is_ok())
}

/// The header and participant-table checks of [`reclaim_stale`], read with `pread` (the file is
/// untrusted: every offset is bounds-checked against its size).
fn unused_segment(file: &File, size: u64) -> bool {
    use crate::layout::{
        ParticipantRecord, SegmentHeader, HEADER_KEEP, MAGIC, RECORD_SIZE, STATE_READY,
    };
    use core::mem::offset_of;
    use std::os::unix::fs::FileExt;
    let mut head = [0u8; core::mem::size_of::<SegmentHeader>()];
    if file.read_exact_at(&mut head, 0).is_err() || head[..8] != MAGIC {
        return false;
    }
    let u32_at = |b: &[u8], off: usize| u32::from_le_bytes(b[off..off + 4].try_into().unwrap());
    let u64_at = |b: &[u8], off: usize| u64::from_le_bytes(b[off..off + 8].try_into().unwrap());
    if u32_at(&head, offset_of!(SegmentHeader, state)) != STATE_READY {
        return true; // never became ready, and its creator no longer holds the build lock
    }
    if u32_at(&head, offset_of!(SegmentHeader, flags)) & HEADER_KEEP != 0 {
        return false;
    }
    let creator = u32_at(&head, offset_of!(SegmentHeader, creator_pid));
    let creator_start = u64_at(&head, offset_of!(SegmentHeader, creator_start));
    let creator_pidns = u64_at(&head, offset_of!(SegmentHeader, creator_pidns));
    if process_alive(creator, creator_start, creator_pidns) {
        return false;
    }
    let count = u32_at(&head, offset_of!(SegmentHeader, participants_count)) as u64;
    let table = u64_at(&head, offset_of!(SegmentHeader, participants_offset));
    let Some(end) = count
        .checked_mul(RECORD_SIZE)
        .and_then(|n| n.checked_add(table))
    else {
        return false;
    };
    if end > size {
        return false;
    }
    let mut rec = [0u8; core::mem::size_of::<ParticipantRecord>()];
    (0..count).all(|i| {
        if file
            .read_exact_at(&mut rec, table + i * RECORD_SIZE)
            .is_err()
        {
            return false;
        }
        let pid = u32_at(&rec, offset_of!(ParticipantRecord, pid));
        pid == 0
            || !process_alive(
                pid,
                u64_at(&rec, offset_of!(ParticipantRecord, start_time)),
                u64_at(&rec, offset_of!(ParticipantRecord, pidns)),
            )
    })
}

/// An anonymous memory file (`memfd_create(2)`), for segments that need no name.
#[cfg(feature = "fuzzing")]
pub(crate) fn anonymous() -> std::io::Result<File> {
    let fd = fs::memfd_create("shmq-anonymous", fs::MemfdFlags::CLOEXEC)?;
    Ok(File::from(fd))
}

/// `unlink(2)` of `/dev/shm/NAME` (what `shm_unlink(3)` does).
pub(crate) fn unlink(name: &str) -> std::io::Result<()> {
    fs::unlink(path_of(name)).map_err(Into::into)
}

/// Reserves `len` bytes of address space, inaccessible and backed by nothing (`mmap(2)` with
/// `PROT_NONE`, `MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE`): a segment's mapping grows inside
/// it with [`map_fixed`], so its base never moves and an offset means the same address for the
/// mapping's whole life.
pub(crate) fn reserve_address(len: usize) -> std::io::Result<*mut u8> {
    // SAFETY: a fresh anonymous mapping at an address the kernel picks: it aliases nothing.
    let p = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            len,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    Ok(p.cast())
}

/// Maps `len` bytes of `file` from `offset`, shared and read-write, at exactly `addr`
/// (`MAP_SHARED | MAP_FIXED`), replacing what was there.
///
/// # Safety
///
/// `[addr, addr + len)` must lie inside a reservation made by [`reserve_address`] that the
/// caller owns, page-aligned, and hold nothing any live reference points into except a mapping
/// of the same file at the same offsets (remapping those in place keeps their bytes).
pub(crate) unsafe fn map_fixed(
    addr: *mut u8,
    len: usize,
    file: &File,
    offset: u64,
) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let off = libc::off_t::try_from(offset)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "offset too large"))?;
    // SAFETY: the caller's contract: the range is ours, inside our reservation.
    let p = unsafe {
        libc::mmap(
            addr.cast(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_FIXED,
            file.as_raw_fd(),
            off,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Unmaps `[addr, addr + len)` (`munmap(2)`).
///
/// # Safety
///
/// The range must be a reservation of [`reserve_address`] (with whatever [`map_fixed`] put in
/// it), and nothing may use it afterwards.
pub(crate) unsafe fn unmap(addr: *mut u8, len: usize) {
    // SAFETY: the caller's contract.
    unsafe { libc::munmap(addr.cast(), len) };
}

/// Grows `file` to `to` bytes, reserving the pages from `from` (`fallocate(2)` with mode 0, which
/// also extends the file size), so the growth is `NoSpace` here rather than a SIGBUS at first
/// touch. Idempotent: a range already allocated is left alone, so a process killed after this
/// call and before it recorded the growth costs the next grower nothing.
pub(crate) fn grow_file(file: &File, from: u64, to: u64) -> Result<(), crate::error::HeapError> {
    use crate::error::HeapError;
    let len = to.saturating_sub(from);
    if len == 0 {
        return Ok(());
    }
    let map = |e: Errno| match e {
        Errno::NOSPC | Errno::FBIG | Errno::NOMEM => HeapError::NoSpace { requested: len },
        e => HeapError::Io(std::io::Error::from(e).to_string()),
    };
    match fs::fallocate(file, FallocateFlags::empty(), from, len) {
        Ok(()) => Ok(()),
        Err(Errno::OPNOTSUPP) | Err(Errno::NOSYS) => {
            let now = fs::fstat(file).map_err(map)?.st_size as u64;
            if now < to {
                fs::ftruncate(file, to).map_err(map)?;
            }
            Ok(())
        }
        Err(e) => Err(map(e)),
    }
}

/// The `max_size` field of a segment file's header (offset 88), read with `pread(2)` before the
/// file is mapped, to size the address-space reservation; `None` if it cannot be read. Only a
/// size comes from it: everything else is checked on the mapped, validated header.
pub(crate) fn read_max_size(file: &File) -> Option<u64> {
    use std::os::unix::fs::FileExt;
    let mut b = [0u8; 8];
    file.read_exact_at(&mut b, 88).ok()?;
    Some(u64::from_le_bytes(b))
}

/// Length of an open file (`fstat(2)`).
pub(crate) fn file_len(file: &File) -> std::io::Result<u64> {
    Ok(fs::fstat(file)?.st_size as u64)
}

/// Total bytes of the filesystem holding shared-memory segments (`statvfs(2)` of `/dev/shm`),
/// or `None` if it cannot be told.
pub(crate) fn shm_capacity() -> Option<u64> {
    let v = fs::statvfs(SHM_DIR).ok()?;
    v.f_blocks.checked_mul(v.f_frsize)
}

/// What `/proc/PID/stat` says about a process (or thread) id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProcState {
    /// Running or sleeping (or stopped), started at this time (clock ticks since boot, field 22).
    Alive(u64),
    /// Known to be gone: no such id in a procfs that shows this process, or a zombie.
    Dead,
    /// /proc could not tell (no procfs, a masked one, one of another PID namespace, no
    /// permission): treated as alive, so nothing is ever recovered on a guess.
    Unknown,
}

/// Whether `/proc` is a procfs of this process's own PID namespace: `/proc/self` names our pid.
/// Without it nothing /proc says proves anything: a tmpfs over /proc or a chroot without it
/// answers ENOENT for a live process, and a procfs mounted for another PID namespace describes
/// unrelated processes under the same numbers.
fn procfs_shows_us() -> bool {
    let me = rustix::process::getpid().as_raw_nonzero().get() as u32;
    std::fs::read_link("/proc/self")
        .ok()
        .and_then(|l| l.to_str().and_then(|s| s.parse::<u32>().ok()))
        == Some(me)
}

/// `id` as the kernel's pid type: `None` for 0 (no process) and for ids above `i32::MAX`, which
/// no process or thread can have (`pid_t` is a positive `i32`; the kernel's limit is far
/// below). A forged record can hold any `u32`: converting it with `as` would make it negative,
/// which `kill(2)` reads as a process group (and rustix rejects with a panic in debug builds).
fn kernel_pid(id: u32) -> Option<rustix::process::Pid> {
    rustix::process::Pid::from_raw(i32::try_from(id).ok()?)
}

/// Reads `/proc/ID/stat` for a thread id (`process == false`: a zombie thread is gone) or a
/// process id (`process == true`: a zombie *leader* whose other threads still run, after the main
/// thread called `pthread_exit`, is a live process).
fn proc_state_of(id: u32, process: bool) -> ProcState {
    // No process or thread has an id above i32::MAX (see `kernel_pid`): only a forged or
    // corrupt record holds one.
    if id > i32::MAX as u32 {
        return ProcState::Dead;
    }
    // A procfs that does not show us belongs to no namespace of ours (or is not a procfs): what
    // it says of any id, present or missing, is about some other process.
    if !procfs_shows_us() {
        return ProcState::Unknown;
    }
    let stat = match std::fs::read_to_string(format!("/proc/{id}/stat")) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // A procfs mounted with `hidepid` hides other users' processes behind ENOENT. The
            // kernel's own answer for our PID namespace settles it: ESRCH from kill(id, 0) is
            // "no such process or thread"; EPERM or success mean it exists.
            let gone = kernel_pid(id).is_some_and(|p| {
                rustix::process::test_kill_process(p) == Err(rustix::io::Errno::SRCH)
            });
            return if gone {
                ProcState::Dead
            } else {
                ProcState::Unknown
            };
        }
        Err(_) => return ProcState::Unknown,
    };
    // The command name (field 2) is in parentheses and may itself contain spaces or ')'.
    let Some(close) = stat.rfind(')') else {
        return ProcState::Unknown;
    };
    let mut fields = stat[close + 1..].split_ascii_whitespace();
    match fields.next() {
        // Field 3: state.
        Some("Z") | Some("X") | Some("x") => {
            if process {
                // A zombie leader whose other threads still run is a live process; if its task
                // list cannot be read, that is not known, so not dead.
                match std::fs::read_dir(format!("/proc/{id}/task")).map(|d| d.count()) {
                    Ok(n) if n > 1 => {}
                    Ok(_) => return ProcState::Dead,
                    Err(_) => return ProcState::Unknown,
                }
            } else {
                return ProcState::Dead;
            }
        }
        None => return ProcState::Unknown,
        _ => {}
    }
    // Fields 4..=21 are skipped; field 22 is the start time.
    match fields.nth(18).and_then(|f| f.parse().ok()) {
        Some(t) => ProcState::Alive(t),
        None => ProcState::Unknown,
    }
}

/// What `/proc/TID/stat` says about a thread (a lock owner).
pub(crate) fn thread_state(tid: u32) -> ProcState {
    proc_state_of(tid, false)
}

/// Start time of thread `tid`, or `None` if it is gone or /proc cannot tell.
pub(crate) fn thread_start_time(tid: u32) -> Option<u64> {
    match thread_state(tid) {
        ProcState::Alive(t) => Some(t),
        _ => None,
    }
}

/// This process's identity for liveness checks: pid, start time and PID namespace (see
/// [`pid_namespace`]), read once per process (a `fork()`ed child reads its own).
pub(crate) fn self_identity() -> (u32, u64, u64) {
    use std::sync::OnceLock;
    static ID: OnceLock<(u32, u64, u64)> = OnceLock::new();
    let pid = rustix::process::getpid().as_raw_nonzero().get() as u32;
    let read = || {
        let start = match proc_state_of(pid, true) {
            ProcState::Alive(t) => t,
            _ => 0,
        };
        (pid, start, pid_namespace())
    };
    let cached = *ID.get_or_init(read);
    // A fork()ed child inherits the static; the pid tells.
    if cached.0 == pid {
        cached
    } else {
        read()
    }
}

/// The calling process's PID namespace, as the inode number of `/proc/self/ns/pid` (what
/// `readlink` shows as `pid:[N]`); 0 if it cannot be read. Pids mean something only inside one
/// namespace: two containers sharing /dev/shm without sharing a PID namespace see each other's
/// pids as unrelated numbers, so a record from another namespace (or an unknown one) is never
/// judged dead.
pub(crate) fn pid_namespace() -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/ns/pid").map_or(0, |m| m.ino())
}

/// True unless the process `pid` of PID namespace `pidns` that started at `start` is known to be
/// gone (no such pid, a zombie, or a reused pid with another start time). `start == 0` means "not
/// recorded": the pid alone decides. A namespace that is not ours, or not known (`0`), or a
/// /proc that cannot tell, answers "alive".
pub(crate) fn process_alive(pid: u32, start: u64, pidns: u64) -> bool {
    process_verdict(pid, start, pidns) != Some(false)
}

/// The verdict behind [`process_alive`], with "cannot tell" kept apart: `Some(true)` alive,
/// `Some(false)` known to be gone, `None` unknown (another or an unknown PID namespace, a
/// /proc that cannot tell, an owner between its pid CAS and its identity stores). Only
/// reports need the difference; every decision treats `None` as alive.
pub(crate) fn process_verdict(pid: u32, start: u64, pidns: u64) -> Option<bool> {
    if pid == crate::layout::PID_TAKING || pidns == 0 || pidns != self_identity().2 {
        return None;
    }
    match proc_state_of(pid, true) {
        ProcState::Alive(t) => Some(start == 0 || t == start),
        ProcState::Dead => Some(false),
        ProcState::Unknown => None,
    }
}

/// What `lstat(2)` says about an entry of `/dev/shm`, for the inspection tools.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EntryInfo {
    pub(crate) file: FileInfo,
    pub(crate) uid: u32,
    /// A regular file (not a symlink, directory, ...).
    pub(crate) regular: bool,
    /// Whether it belongs to the calling user (effective uid).
    pub(crate) ours: bool,
}

/// Names in `/dev/shm`, sorted (every entry, whatever it is).
pub(crate) fn shm_names() -> std::io::Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(SHM_DIR)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    Ok(names)
}

/// `lstat(2)` of `/dev/shm/NAME`, without following a symlink; `None` if it is gone.
pub(crate) fn entry_info(name: &str) -> Option<EntryInfo> {
    let st = fs::lstat(path_of(name)).ok()?;
    Some(EntryInfo {
        file: FileInfo {
            size: st.st_size as u64,
            dev: st.st_dev,
            ino: st.st_ino,
            mode: st.st_mode & 0o777,
        },
        uid: st.st_uid,
        regular: fs::FileType::from_raw_mode(st.st_mode) == fs::FileType::RegularFile,
        ours: st.st_uid == rustix::process::geteuid().as_raw(),
    })
}

/// The first `N` bytes of `/dev/shm/NAME`, read with `pread(2)` from a read-only descriptor
/// (no symlink followed, nothing mapped, no lock taken); `None` if the file cannot be opened
/// or is shorter.
pub(crate) fn read_prefix<const N: usize>(name: &str) -> Option<[u8; N]> {
    use std::os::unix::fs::FileExt;
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
    let file = File::from(fs::open(path_of(name), flags, Mode::empty()).ok()?);
    let mut b = [0u8; N];
    file.read_exact_at(&mut b, 0).ok()?;
    Some(b)
}

/// Processes that map the file `(dev, ino)`: every `/proc/PID/maps` this process may read that
/// names it, sorted. Maps of other users' processes are unreadable without privilege, so the
/// list is what this user can see (see [`flock_holders`]).
pub(crate) fn mappers(dev: u64, ino: u64) -> Vec<u32> {
    let want_dev = (rustix::fs::major(dev), rustix::fs::minor(dev));
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(maps) = std::fs::read_to_string(format!("/proc/{pid}/maps")) else {
                return false;
            };
            maps.lines().any(|l| {
                // address perms offset dev inode path
                let mut f = l.split_ascii_whitespace().skip(3);
                let (Some(d), Some(i)) = (f.next(), f.next()) else {
                    return false;
                };
                i.parse::<u64>().ok() == Some(ino) && parse_dev(d) == Some(want_dev)
            })
        })
        .collect();
    pids.sort_unstable();
    pids
}

/// `MAJ:MIN` in hex, as /proc/PID/maps and /proc/locks write a device.
fn parse_dev(d: &str) -> Option<(u32, u32)> {
    let (maj, min) = d.split_once(':')?;
    Some((
        u32::from_str_radix(maj, 16).ok()?,
        u32::from_str_radix(min, 16).ok()?,
    ))
}

/// Pids that `/proc/locks` shows holding an `flock(2)` on the file `(dev, ino)` (the process
/// that took each lock; a child that inherited the descriptor shares it unnamed). Every process
/// that maps a named segment holds one (docs/design.md, "Segment lifecycle"), and /proc/locks
/// shows them whoever owns them. Read only: no lock is taken.
pub(crate) fn flock_holders(dev: u64, ino: u64) -> Vec<u32> {
    let want = (rustix::fs::major(dev), rustix::fs::minor(dev));
    let Ok(locks) = std::fs::read_to_string("/proc/locks") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = locks
        .lines()
        .filter_map(|l| {
            // "1: FLOCK  ADVISORY  READ  1234 00:1a:5678 0 EOF"; a blocked waiter's line has
            // "->" after the index.
            let f: Vec<&str> = l.split_ascii_whitespace().filter(|w| *w != "->").collect();
            if f.get(1) != Some(&"FLOCK") {
                return None;
            }
            let pid = f.get(4)?.parse::<u32>().ok()?;
            let (d, i) = f.get(5)?.rsplit_once(':')?;
            (i.parse::<u64>().ok()? == ino && parse_dev(d)? == want).then_some(pid)
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// Kernel thread id of the calling thread (`gettid(2)`).
pub(crate) fn thread_id() -> u32 {
    rustix::thread::gettid().as_raw_nonzero().get() as u32
}

/// Forks seen by this process and its ancestors since the first call: a `pthread_atfork` child
/// handler bumps it in every `fork()`ed child (Python's default start method on Linux forks
/// without exec). Per-thread caches (participant records, lock owner ids) store the value they
/// were made under and are rebuilt when it changes: a child must not act as its parent's threads.
///
/// If the handler cannot be registered (`pthread_atfork` failed, or this process was forked
/// while another thread was registering it, so the registration never finished here) the value
/// is this process's pid with the top bit set instead: a child then still reads another value,
/// at the cost of a `getpid` per call.
#[inline]
pub(crate) fn fork_generation() -> u64 {
    use crate::sync::Ordering;
    // The hot path, inlined into every operation's record lookup: one load.
    // SYNC: Acquire pairs with the Release `fetch_or` of `HANDLER_IN_PLACE` in
    // `fork_generation_slow`: a thread that sees the bit knows the handler is in place for every
    // later fork.
    let forks = FORKS.load(Ordering::Acquire);
    if forks & HANDLER_IN_PLACE != 0 {
        return forks;
    }
    fork_generation_slow()
}

/// Set in [`FORKS`] once the atfork handler is registered: the count is then the generation.
const HANDLER_IN_PLACE: u64 = 1 << 62;

/// [`ATFORK`] values: nothing yet, the handler in place, registration failed; or
/// `REGISTERING | pid` of the registering process.
const NONE: u64 = 0;
const REGISTERED: u64 = 1;
const FAILED: u64 = 2;
const REGISTERING: u64 = 1 << 62;

/// [`fork_generation`] until the handler is registered (or when it cannot be).
#[inline(never)]
fn fork_generation_slow() -> u64 {
    use crate::sync::Ordering;
    let by_pid = || 1 << 63 | rustix::process::getpid().as_raw_nonzero().get() as u64;
    loop {
        match ATFORK.load(Ordering::Acquire) {
            REGISTERED => return FORKS.load(Ordering::Relaxed),
            FAILED => return by_pid(),
            NONE => {
                let me = REGISTERING | by_pid() & u32::MAX as u64;
                if ATFORK
                    .compare_exchange(NONE, me, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
                {
                    // Miri cannot call foreign functions; an interpreted program never forks.
                    #[cfg(not(miri))]
                    // SAFETY: registers a child handler that only does an atomic add, which is
                    // async-signal-safe and so may run in a child right after fork().
                    let rc = unsafe { libc::pthread_atfork(None, None, Some(forked_child)) };
                    #[cfg(miri)]
                    let rc = 0;
                    if rc == 0 {
                        // SYNC: Release pairs with the Acquire load in `fork_generation`.
                        FORKS.fetch_or(HANDLER_IN_PLACE, Ordering::Release);
                    }
                    // SYNC: Release pairs with the Acquire load above: a thread that reads
                    // REGISTERED knows the handler is in place for every later fork (and sees
                    // `HANDLER_IN_PLACE`, set before).
                    ATFORK.store(if rc == 0 { REGISTERED } else { FAILED }, Ordering::Release);
                }
            }
            busy => {
                if busy & u32::MAX as u64 != by_pid() & u32::MAX as u64 {
                    // Inherited mid-registration from a parent: it never completes here.
                    return by_pid();
                }
                std::hint::spin_loop();
            }
        }
    }
}

/// Registration state of the atfork handler (see [`fork_generation`]); process-local.
static ATFORK: crate::sync::local::AtomicU64 = crate::sync::local::AtomicU64::new(0);

/// Forks counted by the handler, with [`HANDLER_IN_PLACE`] once it is registered (a child
/// forked between the registration and the bit inherits the count without the bit, and its
/// `ATFORK` names the parent's registration, so it falls back to its pid). Process-local, never
/// in shared memory.
static FORKS: crate::sync::local::AtomicU64 = crate::sync::local::AtomicU64::new(0);

#[cfg_attr(miri, allow(dead_code))]
extern "C" fn forked_child() {
    FORKS.fetch_add(1, crate::sync::Ordering::Relaxed);
}

/// What [`pidfd_open`] found.
pub(crate) enum Pidfd {
    /// A descriptor that becomes readable when the process exits (`pidfd_open(2)`, Linux 5.3).
    Open(OwnedFd),
    /// ESRCH: no process has that pid in our namespace.
    Gone,
    /// Anything else (EMFILE, ENOSYS, EPERM under a seccomp filter): no descriptor.
    Failed,
}

/// A pidfd for process `pid` of our PID namespace; with `thread`, for thread `pid` alone
/// (`PIDFD_THREAD`, Linux 6.9: readable once that thread exits).
pub(crate) fn pidfd_open(pid: u32, thread: bool) -> Pidfd {
    if pid > i32::MAX as u32 {
        // No process has it (see `kernel_pid`).
        return Pidfd::Gone;
    }
    let Some(p) = kernel_pid(pid) else {
        return Pidfd::Failed;
    };
    // PIDFD_THREAD is O_EXCL (include/uapi/linux/pidfd.h); rustix does not name it.
    let flags = if thread {
        rustix::process::PidfdFlags::from_bits_retain(libc::O_EXCL as u32)
    } else {
        rustix::process::PidfdFlags::empty()
    };
    match rustix::process::pidfd_open(p, flags) {
        Ok(fd) => Pidfd::Open(fd),
        Err(Errno::SRCH) => Pidfd::Gone,
        Err(_) => Pidfd::Failed,
    }
}

/// Whether `fd` is readable now (`poll(2)` with a zero timeout): for a pidfd, whether its
/// process (or thread) has exited. An error counts as not readable.
pub(crate) fn readable(fd: &OwnedFd) -> bool {
    use rustix::event::{poll, PollFd, PollFlags};
    let mut fds = [PollFd::new(fd, PollFlags::IN)];
    let zero = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    matches!(poll(&mut fds, Some(&zero)), Ok(n) if n > 0)
        && fds[0].revents().contains(PollFlags::IN)
}

/// The soft limit on open descriptors (`RLIMIT_NOFILE`; 1024 if unknown or unlimited).
pub(crate) fn open_files_limit() -> u64 {
    rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(1024)
}

/// An epoll instance (`epoll_create1(EPOLL_CLOEXEC)`) watching descriptors for readability, each
/// under a caller-chosen key.
pub(crate) struct Poller(OwnedFd);

impl Poller {
    pub(crate) fn new() -> std::io::Result<Self> {
        use rustix::event::epoll;
        Ok(Self(epoll::create(epoll::CreateFlags::CLOEXEC)?))
    }

    /// Watches `fd` for readability under `key`.
    pub(crate) fn add(&self, fd: &OwnedFd, key: u64) -> std::io::Result<()> {
        use rustix::event::epoll;
        Ok(epoll::add(
            &self.0,
            fd,
            epoll::EventData::new_u64(key),
            // One-shot: reported once, then disabled until removed. A descriptor whose file a
            // forked child still holds stays registered after we close ours, and must not be
            // reported for ever.
            epoll::EventFlags::IN | epoll::EventFlags::ONESHOT,
        )?)
    }

    /// Stops watching `fd` (before it is closed: see `add`).
    pub(crate) fn remove(&self, fd: &OwnedFd) {
        // ENOENT (never added) is the only possible failure for a valid epoll and fd.
        let _ = rustix::event::epoll::delete(&self.0, fd);
    }

    /// Blocks until at least one watched descriptor is readable; returns their keys. An
    /// interrupted wait returns no keys.
    pub(crate) fn wait(&self) -> std::io::Result<Vec<u64>> {
        use rustix::event::epoll;
        let mut events = Vec::with_capacity(16);
        match epoll::wait(&self.0, rustix::buffer::spare_capacity(&mut events), None) {
            Ok(_) => Ok(events.iter().map(|e| e.data.u64()).collect()),
            Err(Errno::INTR) => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A forged participant or owner record can hold any `u32` as a pid. One above `i32::MAX`
    /// is no process: it once became a negative `pid_t` on its way to `kill(2)`, which rustix
    /// refused with a panic (found by the `segment_layout` fuzz target).
    #[test]
    #[cfg_attr(miri, ignore = "reads /proc, which miri's isolation hides")]
    fn ids_above_i32_max_are_no_process() {
        let ns = self_identity().2;
        for id in [i32::MAX as u32 + 1, u32::MAX - 1, u32::MAX] {
            // u32::MAX is PID_TAKING, an owner between its CAS and its identity: unknown.
            if id != crate::layout::PID_TAKING {
                assert_eq!(process_verdict(id, 0, ns), Some(false), "process {id}");
            }
            assert!(
                matches!(proc_state_of(id, false), ProcState::Dead),
                "thread {id}"
            );
            assert!(matches!(pidfd_open(id, false), Pidfd::Gone), "pidfd {id}");
        }
    }
}
