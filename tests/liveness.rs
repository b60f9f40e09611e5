//! "Dead" needs proof: real processes whose liveness cannot be read, or can be misread, must
//! never be taken for dead, and a `fork()`ed child must act as itself.
//!
//! * a getter and a lock contender whose /proc is masked (a tmpfs mounted over it in a private
//!   mount namespace, as in a sandbox or a container with /proc hidden) see ENOENT for every pid;
//! * a producer and lock owner in another PID namespace (`unshare --pid`, as two containers
//!   sharing /dev/shm without sharing a process namespace) have pids that mean nothing here;
//! * a lock owner whose start time could not be read (its first lock ran out of file
//!   descriptors) stores 0, which must not read as "another process reused the id";
//! * a child of `fork()` without `exec` inherits the parent's per-thread caches.
//!
//! The namespace cases need `unshare(1)` and the privilege to use it (root, or user namespaces).
//! Where that is missing they say so and pass, unless `SHMQ_REQUIRE_NAMESPACES=1` (set by
//! `.ci/run`), which makes the missing privilege a failure.

mod common;

use common::*;
use shmq::{GetError, LockError, Segment};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long the observer gives a peer it must not take for dead: well past the 50 ms recovery
/// slice and the 50 ms claim wait, so a wrong verdict would have acted by then.
const OBSERVE: Duration = Duration::from_millis(400);

/// Kills and reaps a child when dropped, so a failing assertion never leaves it running.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `f` when dropped (also while unwinding from a failed assertion).
struct OnDrop<F: FnMut()>(F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}

/// Whether `unshare` with these flags can run here; panics if it cannot and namespaces are
/// required.
fn unshare_works(flags: &[&str]) -> bool {
    let ok = Command::new("unshare")
        .args(flags)
        .arg("true")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("SHMQ_REQUIRE_NAMESPACES").as_deref() != Ok("1"),
            "unshare {flags:?} does not work here, and SHMQ_REQUIRE_NAMESPACES=1"
        );
        eprintln!("SKIPPED: unshare {flags:?} does not work here (needs privilege)");
    }
    ok
}

/// Runs this test binary's `child` test as a child process under `prefix` (an `unshare`
/// command line; the child execs itself through `sh -c`, after `setup` shell commands), with
/// the segment name in the environment and stdin/stdout piped.
fn spawn_under(prefix: &[&str], setup: &str, child: &str, seg: &str) -> Child {
    let exe = std::env::current_exe().unwrap();
    let script = format!("{setup}exec \"$0\" {child} --exact --ignored --nocapture");
    Command::new(prefix[0])
        .args(&prefix[1..])
        .args(["sh", "-c", &script])
        .arg(exe)
        .env("SHMQ_TEST_CHILD", "1")
        .env("SHMQ_SEG", seg)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn unshare")
}

/// Reads the child's stdout until a line starting with `RESULT `, and returns the rest of it.
/// The rest of its output is drained in the background, so the child never blocks on it or
/// dies of SIGPIPE.
fn result_line(child: &mut Child) -> String {
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(r) = line.strip_prefix("RESULT ") {
            std::thread::spawn(move || for _ in lines {});
            return r.to_string();
        }
    }
    panic!("child ended without a RESULT line");
}

// ---------------------------------------------------------------------------------------------
// A masked /proc

#[test]
#[ignore = "child process of observer_without_procfs_never_takes_live_peers_for_dead"]
fn child_observer_without_procfs() {
    let seg = Segment::open(&child_var("SHMQ_SEG")).unwrap();
    assert!(
        std::fs::metadata("/proc/self").is_err(),
        "this child should run with /proc masked"
    );
    let got = seg.queue::<u64>("q").unwrap().get_timeout(OBSERVE);
    let lock = seg.lock("l").unwrap();
    let locked = match lock.lock_timeout(OBSERVE) {
        Ok(_) => "Ok",
        Err(LockError::OwnerDead(_)) => "OwnerDead",
        Err(LockError::Timeout) => "Timeout",
        Err(_) => "Other",
    };
    println!("RESULT {got:?} {locked}");
}

/// This thread's kernel thread id.
fn gettid() -> u32 {
    rustix::thread::gettid().as_raw_nonzero().get() as u32
}

/// A live producer thread of this process holds position 0 of a queue mid-put (a message is
/// published behind it) and this thread holds a lock, while `child_observer_without_procfs` runs
/// in a private mount namespace whose /proc the shell commands `setup(claimant_tid, owner_tid)`
/// prepared: the observer must take neither for dead (no tombstone, no takeover).
fn observer_in_a_mount_namespace_sees_live_peers(tag: &str, setup: impl Fn(u32, u32) -> String) {
    let masked = ["--mount", "--propagation", "private"];
    if !unshare_works(&masked) {
        return;
    }
    let name = unique(tag);
    let seg = Segment::builder(&name)
        .queue::<u64>("q", 4)
        .lock("l")
        .create()
        .unwrap();
    let q = seg.queue::<u64>("q").unwrap();
    let lock = seg.lock("l").unwrap();
    let guard = lock.lock().unwrap();
    let q = &q;
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let (claimed_tx, claimed_rx) = std::sync::mpsc::channel::<u32>();
    std::thread::scope(|s| {
        // Lets the producer go on however this scope ends.
        let _release = OnDrop(move || {
            let _ = tx.send(());
        });
        s.spawn(move || {
            q.put_with(|v| {
                *v = 1;
                claimed_tx.send(gettid()).unwrap();
                rx.recv().unwrap();
            })
            .unwrap()
        });
        let claimant_tid = claimed_rx.recv().unwrap();
        q.put(2).unwrap();
        let mut child = Reap(spawn_under(
            &["unshare", "--mount", "--propagation", "private"],
            &setup(claimant_tid, gettid()),
            "child_observer_without_procfs",
            &name,
        ));
        let seen = result_line(&mut child.0);
        assert!(child.0.wait().unwrap().success());
        assert_eq!(seen, "Err(Timeout) Timeout");
    });
    drop(guard);
    assert_eq!((q.get(), q.get()), (Ok(1), Ok(2)));
    assert_eq!(q.stats().tombstones, 0);
}

#[test]
fn observer_without_procfs_never_takes_live_peers_for_dead() {
    // An empty tmpfs over /proc: ENOENT for every pid used to mean "dead", so the claim was
    // tombstoned (the child got 2) and the lock taken over.
    observer_in_a_mount_namespace_sees_live_peers("noproc", |_, _| {
        "mount -t tmpfs none /proc && ".to_string()
    });
}

// ---------------------------------------------------------------------------------------------
// Another PID namespace

#[test]
#[ignore = "child process of peer_in_another_pid_namespace_is_never_taken_for_dead"]
fn child_peer_in_pid_namespace() {
    let seg = Segment::open(&child_var("SHMQ_SEG")).unwrap();
    let q = seg.queue::<u64>("q").unwrap();
    let lock = seg.lock("l").unwrap();
    let _guard = lock.lock().unwrap();
    q.put_with(|v| {
        *v = 1;
        println!("RESULT holding");
        std::io::stdout().flush().unwrap();
        // Hold the claim and the lock until the parent writes a byte (or closes stdin).
        let _ = std::io::Read::read(&mut std::io::stdin(), &mut [0u8; 1]);
    })
    .unwrap();
}

#[test]
fn peer_in_another_pid_namespace_is_never_taken_for_dead() {
    let pidns = ["--pid", "--fork", "--mount-proc"];
    if !unshare_works(&pidns) {
        return;
    }
    let name = unique("pidns");
    let seg = Segment::builder(&name)
        .queue::<u64>("q", 4)
        .lock("l")
        .create()
        .unwrap();
    let q = seg.queue::<u64>("q").unwrap();
    let lock = seg.lock("l").unwrap();
    let mut child = Reap(spawn_under(
        &["unshare", "--pid", "--fork", "--mount-proc"],
        "",
        "child_peer_in_pid_namespace",
        &name,
    ));
    assert_eq!(result_line(&mut child.0), "holding");
    // Its pid (1 or 2 in its namespace) is init or a kernel thread here, with another start
    // time: it used to read as dead, so its claim was tombstoned, its lock taken over, and the
    // queue reported Disconnected.
    assert_eq!(q.get_timeout(OBSERVE), Err(GetError::Timeout));
    assert!(matches!(
        lock.lock_timeout(OBSERVE),
        Err(LockError::Timeout)
    ));
    assert!(q.producers_alive());
    child.0.stdin.as_mut().unwrap().write_all(b"g").unwrap();
    assert_eq!(q.get_timeout(Duration::from_secs(10)), Ok(1));
    assert!(child.0.wait().unwrap().success());
    assert_eq!(q.stats().tombstones, 0);
}

// ---------------------------------------------------------------------------------------------
// A /proc that is not a procfs of ours

#[test]
fn observer_under_a_fake_procfs_never_takes_live_peers_for_dead() {
    // A sandbox's stand-in /proc whose entries say the live producer and lock owner are zombies:
    // a /proc that does not show the observer itself proves nothing, whatever it says. (Two
    // checks refuse it: the observer cannot read its own PID namespace there, and /proc/self
    // does not name it.)
    let zombie = |id: u32| {
        format!(
            "mkdir -p /proc/{id} && echo '{id} (fake) Z 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 \
             12345 0 0' > /proc/{id}/stat && "
        )
    };
    observer_in_a_mount_namespace_sees_live_peers("fakeproc", |claimant, owner| {
        format!(
            "mount -t tmpfs none /proc && {}{}{}",
            zombie(std::process::id()),
            zombie(claimant),
            zombie(owner)
        )
    });
}

// ---------------------------------------------------------------------------------------------
// A lock owner whose start time could not be read

#[test]
#[ignore = "child process of lock_owner_with_unknown_start_time_is_never_taken_over"]
fn child_lock_owner_out_of_fds() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let seg = Segment::open(&child_var("SHMQ_SEG")).unwrap();
    let lock = seg.lock("l").unwrap();
    let held = seg.event("held").unwrap();
    // No file descriptor left: the first lock cannot read /proc/self/task/TID/stat.
    let max_fd = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
        .max()
        .unwrap();
    let old = getrlimit(Resource::Nofile);
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(max_fd + 1),
            maximum: old.maximum,
        },
    )
    .unwrap();
    let mut fill = vec![];
    while let Ok(f) = std::fs::File::open("/dev/null") {
        fill.push(f);
    }
    let _guard = lock.lock().unwrap();
    held.set();
    // Hold the lock, alive, until the parent kills us.
    loop {
        std::thread::park();
    }
}

#[test]
fn lock_owner_with_unknown_start_time_is_never_taken_over() {
    let name = unique("lockfd");
    let seg = Segment::builder(&name)
        .lock("l")
        .event("held")
        .create()
        .unwrap();
    let mut child = Reap(spawn_child(
        "child_lock_owner_out_of_fds",
        &[("SHMQ_SEG", name.clone())],
    ));
    assert!(seg
        .event("held")
        .unwrap()
        .wait_timeout(Duration::from_secs(10)));
    // The owner stored start time 0; a contender that could read /proc compared it with the
    // owner's real start time and took the lock from the live owner.
    let lock = seg.lock("l").unwrap();
    assert!(matches!(
        lock.lock_timeout(OBSERVE),
        Err(LockError::Timeout)
    ));
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    // Once it is really gone, the lock is taken over.
    assert!(matches!(
        lock.lock_timeout(Duration::from_secs(10)),
        Err(LockError::OwnerDead(_))
    ));
}

// ---------------------------------------------------------------------------------------------
// fork() without exec

#[test]
fn forked_child_uses_its_own_identity_and_leaves_its_parents_alone() {
    let name = unique("fork");
    let seg = Segment::builder(&name)
        .queue::<u64>("q", 8)
        .lock("l")
        .create()
        .unwrap();
    let q = seg.queue::<u64>("q").unwrap();
    let lock = seg.lock("l").unwrap();
    // This thread's caches (its participant record, its lock-owner id) are filled before fork.
    q.put(1).unwrap();
    assert_eq!(q.get(), Ok(1));
    assert_eq!(q.stats().participants, 1);
    drop(lock.lock().unwrap());
    // SAFETY: the child only uses this thread's state and the segment, then leaves with
    // `_exit`, running no destructor of the test harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // Child: exit code 0 if it took a record of its own, else a code saying what failed.
        let mut code = 0;
        q.put(2).unwrap();
        if q.stats().participants != 2 {
            code = 2; // it wrote into its parent's record
        }
        // Die holding the lock (a child that exits without unlocking).
        std::mem::forget(lock.lock());
        // Dropping what it inherited must not free the parent's record nor unlink the name.
        drop((q, lock, seg));
        // SAFETY: ends the child at once, without unwinding into the harness.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waits for the child we forked.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status), "child did not exit: {status:#x}");
    assert_eq!(
        libc::WEXITSTATUS(status),
        0,
        "child saw the wrong record count"
    );
    // The name is still there and the parent's record still its own.
    assert!(
        Segment::open(&name).is_ok(),
        "the child unlinked its parent's segment"
    );
    assert_eq!(q.stats().participants, 1);
    assert_eq!(q.get(), Ok(2));
    // The child stored its own thread id in the lock word (not its parent's, which would make
    // the parent think it held the lock itself and wait for ever): the dead child's lock is
    // taken over.
    assert!(matches!(
        lock.lock_timeout(Duration::from_secs(10)),
        Err(LockError::OwnerDead(_))
    ));
}

// ---------------------------------------------------------------------------------------------
// A waiter killed asleep

#[test]
#[ignore = "child process of waiter_killed_asleep_has_its_registration_taken_back"]
fn child_sleeping_getter() {
    let seg = Segment::open(&child_var("SHMQ_SEG")).unwrap();
    let _ = seg.queue::<u64>("q").unwrap().get();
}

/// Starts a child blocked in `get()` on the empty queue `q` of segment `name`, waits until it is
/// registered as a waiter and asleep in the futex (so past noting its registration), and kills
/// it there.
fn kill_a_sleeping_getter(name: &str, q: &shmq::Queue<u64>) {
    let before = q.stats().waiting_getters;
    let mut child = Reap(spawn_child(
        "child_sleeping_getter",
        &[("SHMQ_SEG", name.to_string())],
    ));
    let watchdog = std::time::Instant::now() + Duration::from_secs(60);
    while q.stats().waiting_getters == before || !all_threads_asleep(child.0.id()) {
        assert!(
            child.0.try_wait().unwrap().is_none(),
            "the sleeping getter exited"
        );
        assert!(
            std::time::Instant::now() < watchdog,
            "the getter never slept"
        );
        std::thread::yield_now();
    }
    child.0.kill().unwrap();
    child.0.wait().unwrap();
}

#[test]
fn waiter_killed_asleep_has_its_registration_taken_back() {
    let name = unique("deadwaiter");
    let seg = Segment::builder(&name)
        .queue::<u64>("q", 4)
        .create()
        .unwrap();
    let q = seg.queue::<u64>("q").unwrap();
    let _ = recovery_log(); // install the capture before anything is recovered
    kill_a_sleeping_getter(&name, &q);
    // The dead getter's registration used to stay for good: every later put paid a futex_wake
    // for nobody. Puts that keep waking nobody now look for it.
    assert_eq!(q.stats().waiting_getters, 1);
    for i in 0..1000 {
        q.put(i).unwrap();
        assert_eq!(q.get(), Ok(i));
    }
    assert_eq!(q.stats().waiting_getters, 0);
    // The repair is reported once, with the queue's name and the count.
    let repaired: Vec<String> = recovery_log()
        .into_iter()
        .filter(|l| l.contains(&name) && l.contains("of dead sleepers taken back"))
        .collect();
    assert!(
        repaired.len() == 1 && repaired[0].contains("queue q: 1 registration(s)"),
        "{repaired:?}"
    );
    // A live getter that sleeps beside a dead one is never taken for it: its registration stays
    // counted (a notifier that saw 0 would not wake it) and a put still wakes it.
    kill_a_sleeping_getter(&name, &q);
    std::thread::scope(|s| {
        let live = s.spawn(|| q.get());
        while q.stats().waiting_getters < 2 {
            std::thread::yield_now();
        }
        for _ in 0..1000 {
            // Wake-ups that wake nobody are what starts a repair: the live sleeper is woken by
            // the first put, and the dead one is taken back by later ones.
            if q.try_put(7).is_err() {
                break;
            }
            if live.is_finished() {
                break;
            }
            std::thread::yield_now();
        }
        assert_eq!(live.join().unwrap(), Ok(7));
    });
    while q.try_get().is_ok() {}
    for i in 0..1000 {
        q.put(i).unwrap();
        assert_eq!(q.get(), Ok(i));
    }
    assert_eq!(q.stats().waiting_getters, 0);
}

/// A blocked `get()` (no deadline), a `get_timeout` and a `join_timeout` longer than one sleep
/// slice wake at every slice's end (5 s while the death watch covers the peers, 50 ms
/// otherwise) to look for dead peers, and go back to sleep: none returns before its event comes
/// (or its own deadline). The test lets a little more than one whole slice pass; that time is
/// what it checks.
#[test]
fn blocked_waits_outlast_their_sleep_slices() {
    let name = unique("slices");
    let seg = Segment::builder(&name)
        .queue::<u64>("q", 4)
        .joinable_queue::<u64>("j", 4)
        .create()
        .unwrap();
    let q = seg.queue::<u64>("q").unwrap();
    let j = seg.joinable_queue::<u64>("j").unwrap();
    q.register_producer(); // a live producer: no `Disconnected`
    j.put(1).unwrap(); // a task nobody has done yet
    std::thread::scope(|s| {
        let forever = s.spawn(|| q.get());
        let timed = s.spawn(|| q.get_timeout(Duration::from_secs(60)));
        let joiner = s.spawn(|| j.join_timeout(Duration::from_secs(60)));
        while q.stats().waiting_getters < 2 {
            std::thread::yield_now();
        }
        std::thread::sleep(Duration::from_millis(5_500));
        let early = [
            forever.is_finished(),
            timed.is_finished(),
            joiner.is_finished(),
        ];
        // Let every waiter finish before judging, so that a failure fails and does not hang.
        assert_eq!(j.get(), Ok(1));
        j.task_done().unwrap();
        q.put(1).unwrap();
        q.put(2).unwrap();
        let joined = joiner.join().unwrap();
        let mut got = [forever.join().unwrap(), timed.join().unwrap()];
        assert_eq!(
            early, [false; 3],
            "a blocked wait (get, get_timeout, join_timeout) returned at a sleep slice's end"
        );
        assert!(joined.is_ok());
        got.sort_unstable_by_key(|r| *r.as_ref().unwrap());
        assert_eq!(got, [Ok(1), Ok(2)]);
    });
}

/// A thread that takes over the record of a getter killed asleep takes the dead getter's
/// registration back at once (its note names the queue), before any wake-up is spent on it.
#[test]
fn taking_over_a_dead_sleepers_record_takes_its_registration_back() {
    let name = unique("takeover-sleeper");
    let seg = Segment::builder(&name)
        .queue::<u64>("q", 4)
        .participants(2)
        .create()
        .unwrap();
    let q = seg.queue::<u64>("q").unwrap();
    assert_eq!(q.try_get(), Err(GetError::Empty)); // this thread's record
    kill_a_sleeping_getter(&name, &q);
    assert_eq!(q.stats().waiting_getters, 1);
    // The table is full (this thread and the dead getter): a new thread takes the dead one's
    // record. A `try_get` wakes nobody, so only the takeover can lower the count.
    std::thread::scope(|s| {
        s.spawn(|| assert_eq!(q.try_get(), Err(GetError::Empty)));
    });
    assert_eq!(q.stats().waiting_getters, 0);
}

/// A thread that works on two segments in turn keeps one record in each.
#[test]
fn a_thread_alternating_between_segments_keeps_one_record_in_each() {
    let (a, b) = (unique("alt-a"), unique("alt-b"));
    let sa = Segment::builder(&a).queue::<u64>("q", 4).create().unwrap();
    let sb = Segment::builder(&b).queue::<u64>("q", 4).create().unwrap();
    let (qa, qb) = (sa.queue::<u64>("q").unwrap(), sb.queue::<u64>("q").unwrap());
    for i in 0..100 {
        qa.put(i).unwrap();
        qb.put(i).unwrap();
        assert_eq!((qa.get(), qb.get()), (Ok(i), Ok(i)));
    }
    assert_eq!((qa.stats().participants, qb.stats().participants), (1, 1));
}
