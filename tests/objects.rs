//! Shared objects used from several real processes.

mod common;

use common::*;
use shmq::{OpenError, Segment};
use std::time::Duration;

const ADDS: i64 = 100_000;
const LOCKED_ADDS: i64 = 20_000;

/// Child roles, chosen by SHMQ_ROLE.
#[test]
#[ignore = "child process of the multi-process tests"]
fn child_object_role() {
    let seg = Segment::open(&child_var("SHMQ_SEG")).unwrap();
    match child_var("SHMQ_ROLE").as_str() {
        "fetch_add" => {
            let v = seg.value::<i64>("count").unwrap();
            for _ in 0..ADDS {
                v.fetch_add(1);
            }
        }
        "locked_add" => {
            let v = seg.value::<i64>("count").unwrap();
            for _ in 0..LOCKED_ADDS {
                let _g = v.get_lock().lock().unwrap();
                // A read-modify-write in two steps: only the lock makes it exact.
                let x = v.load();
                v.store(x + 1);
            }
        }
        "rlocked_add" => {
            // Each step takes the lock twice (an outer and a nested guard): only exclusion across
            // processes and reentrancy within one make the count exact.
            let r = seg.rlock("r").unwrap();
            let v = seg.value::<i64>("count").unwrap();
            for _ in 0..LOCKED_ADDS {
                let _outer = r.lock().unwrap();
                let x = v.load();
                let _inner = r.lock().unwrap();
                v.store(x + 1);
            }
        }
        "rlock_hold_twice" => {
            let r = seg.rlock("r").unwrap();
            let _a = r.lock().unwrap();
            let _b = r.lock().unwrap();
            println!("<<<held>>>");
            std::io::Write::flush(&mut std::io::stdout()).unwrap();
            let mut b = [0u8; 1];
            let _ = std::io::Read::read(&mut std::io::stdin(), &mut b);
            std::thread::park();
        }
        "cond_pingpong" => {
            // Turn-taking with the parent through one condition: waits for an odd count, makes it
            // even, notifies; a lost wake-up would leave one side asleep for good.
            let c = seg.condition("c").unwrap();
            let n = seg.value::<u64>("n").unwrap();
            let mut g = c.lock().unwrap();
            loop {
                g = c.wait_for(g, || n.load() % 2 == 1, None).unwrap();
                let v = n.load();
                if v >= 2 * COND_ROUNDS {
                    break;
                }
                n.store(v + 1);
                c.notify_all().unwrap();
            }
            drop(g);
        }
        "cond_wait_forever" => {
            // Waits on the condition for a flag nobody raises; says so once asleep-bound.
            let c = seg.condition("c").unwrap();
            let g = c.lock().unwrap();
            println!("<<<held>>>");
            std::io::Write::flush(&mut std::io::stdout()).unwrap();
            let _g = c.wait_for(g, || false, None).unwrap();
        }
        "event_wait" => {
            let e = seg.event("go").unwrap();
            let acked = seg.value::<u32>("acked").unwrap();
            acked.store(1);
            e.wait();
            print!("<<<woken>>>");
        }
        "barrier" => {
            let b = seg.barrier("b").unwrap();
            let leaders = seg.array::<u32>("leaders").unwrap();
            for round in 0..50 {
                if b.wait() {
                    leaders.fetch_add(round, 1).unwrap();
                }
            }
        }
        "worker" => {
            let q = seg.joinable_queue::<u64>("tasks").unwrap();
            let sum = seg.value::<u64>("sum").unwrap();
            while let Ok(v) = q.get() {
                sum.fetch_add(v);
                q.task_done().unwrap();
            }
        }
        "list_push" => {
            let l = seg.list::<u32>("l").unwrap();
            let base: u32 = child_var("SHMQ_ID").parse().unwrap();
            for i in 0..100 {
                l.push(base * 1000 + i).unwrap();
            }
        }
        "sem_hold" => {
            let s = seg.semaphore("s").unwrap();
            let inside = seg.value::<i64>("inside").unwrap();
            let max_seen = seg.value::<i64>("max").unwrap();
            for _ in 0..2000 {
                s.acquire();
                let now = inside.fetch_add(1) + 1;
                max_seen.fetch_update(|m| (now > m).then_some(now)).ok();
                inside.fetch_sub(1);
                s.release().unwrap();
            }
        }
        "lock_hold" => {
            let lock = seg.lock("l").unwrap();
            let v = seg.value::<i64>("count").unwrap();
            let _g = lock.lock().unwrap();
            v.store(1); // the first half of an update the lock protects
            println!("<<<held>>>");
            std::io::Write::flush(&mut std::io::stdout()).unwrap();
            // Hold the lock until killed.
            let mut b = [0u8; 1];
            let _ = std::io::Read::read(&mut std::io::stdin(), &mut b);
            std::thread::park();
        }
        other => panic!("unknown role {other}"),
    }
}

/// Starts a child running `role`, which takes a lock and says `<<<held>>>`, and returns once it
/// holds it (the child then holds it until killed).
fn child_holding(name: &str, role: &str) -> std::process::Child {
    use std::io::BufRead;
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["child_object_role", "--exact", "--ignored", "--nocapture"])
        .env("SHMQ_TEST_CHILD", "1")
        .env("SHMQ_SEG", name)
        .env("SHMQ_ROLE", role)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    while !lines
        .next()
        .expect("child exited")
        .unwrap()
        .contains("<<<held>>>")
    {}
    child
}

/// Turns each side takes in the condition ping-pong.
const COND_ROUNDS: u64 = 2_000;

fn run_children(name: &str, role: &str, n: usize) {
    let kids: Vec<_> = (0..n)
        .map(|i| {
            spawn_child(
                "child_object_role",
                &[
                    ("SHMQ_SEG", name.to_string()),
                    ("SHMQ_ROLE", role.to_string()),
                    ("SHMQ_ID", i.to_string()),
                ],
            )
        })
        .collect();
    for k in kids {
        finish(k);
    }
}

#[test]
fn four_processes_fetch_add_end_exactly_at_400k() {
    let name = unique("fetchadd");
    let seg = Segment::builder(&name)
        .value::<i64>("count", 0)
        .create()
        .unwrap();
    run_children(&name, "fetch_add", 4);
    assert_eq!(seg.value::<i64>("count").unwrap().load(), 4 * ADDS);
}

#[test]
fn lock_protected_two_step_increment_is_exact_across_processes() {
    let name = unique("lockedadd");
    let seg = Segment::builder(&name)
        .value::<i64>("count", 0)
        .create()
        .unwrap();
    run_children(&name, "locked_add", 4);
    let v = seg.value::<i64>("count").unwrap();
    assert_eq!(v.load(), 4 * LOCKED_ADDS);
    assert!(!v.get_lock().is_locked());
}

#[test]
fn event_set_in_parent_wakes_child() {
    let name = unique("event");
    let seg = Segment::builder(&name)
        .event("go")
        .value::<u32>("acked", 0)
        .create()
        .unwrap();
    let child = spawn_child(
        "child_object_role",
        &[
            ("SHMQ_SEG", name.clone()),
            ("SHMQ_ROLE", "event_wait".into()),
        ],
    );
    let acked = seg.value::<u32>("acked").unwrap();
    while acked.load() == 0 {
        std::thread::yield_now();
    }
    seg.event("go").unwrap().set();
    assert_eq!(payload(&finish(child)), b"woken");
}

#[test]
fn barrier_across_three_processes_has_one_leader_per_round() {
    let name = unique("barrier");
    let seg = Segment::builder(&name)
        .barrier("b", 3)
        .array::<u32>("leaders", 50)
        .create()
        .unwrap();
    run_children(&name, "barrier", 3);
    assert_eq!(seg.array::<u32>("leaders").unwrap().to_vec(), vec![1; 50]);
}

#[test]
fn joinable_join_returns_after_workers_finish_every_task() {
    let name = unique("joinable");
    let seg = Segment::builder(&name)
        .joinable_queue::<u64>("tasks", 16)
        .value::<u64>("sum", 0)
        .create()
        .unwrap();
    let q = seg.joinable_queue::<u64>("tasks").unwrap();
    let kids: Vec<_> = (0..2)
        .map(|_| {
            spawn_child(
                "child_object_role",
                &[("SHMQ_SEG", name.clone()), ("SHMQ_ROLE", "worker".into())],
            )
        })
        .collect();
    for v in 1..=1000u64 {
        q.put(v).unwrap();
    }
    q.join();
    // Every task was done, so every worker's addition happened before join returned.
    assert_eq!(seg.value::<u64>("sum").unwrap().load(), 1000 * 1001 / 2);
    assert_eq!(q.unfinished_tasks(), 0);
    q.close();
    for k in kids {
        finish(k);
    }
    assert!(q.task_done().is_err());
}

#[test]
fn list_pushed_by_three_processes_holds_every_element() {
    let name = unique("list");
    let seg = Segment::builder(&name)
        .list::<u32>("l", 300)
        .create()
        .unwrap();
    run_children(&name, "list_push", 3);
    let l = seg.list::<u32>("l").unwrap();
    let mut all = l.to_vec();
    all.sort_unstable();
    let expect: Vec<u32> = (0..3)
        .flat_map(|b| (0..100).map(move |i| b * 1000 + i))
        .collect();
    assert_eq!(all, expect);
    assert!(l.push(1).is_err());
}

#[test]
fn semaphore_of_two_admits_at_most_two_processes() {
    let name = unique("sem");
    let seg = Segment::builder(&name)
        .bounded_semaphore("s", 2, 2)
        .value::<i64>("inside", 0)
        .value::<i64>("max", 0)
        .create()
        .unwrap();
    run_children(&name, "sem_hold", 4);
    let max = seg.value::<i64>("max").unwrap().load();
    assert!((1..=2).contains(&max), "max inside = {max}");
    assert_eq!(seg.semaphore("s").unwrap().value(), 2);
}

#[test]
fn lock_timeout_expires_while_another_handle_holds_it() {
    let name = unique("locktimeout");
    let seg = Segment::builder(&name).lock("l").create().unwrap();
    let other = Segment::open(&name).unwrap();
    let a = seg.lock("l").unwrap();
    let b = other.lock("l").unwrap();
    let g = a.lock().unwrap();
    assert!(matches!(b.try_lock(), Err(shmq::LockError::WouldBlock)));
    assert!(matches!(
        b.lock_timeout(Duration::from_millis(20)),
        Err(shmq::LockError::Timeout)
    ));
    drop(g);
    assert!(b.lock_timeout(Duration::from_secs(5)).is_ok());
}

#[test]
fn objects_opened_with_wrong_kind_or_type_are_typed_errors() {
    let name = unique("objtypes");
    let seg = Segment::builder(&name)
        .value::<i64>("v", 0)
        .array::<f64>("a", 3)
        .list::<u32>("l", 4)
        .lock("lk")
        .event("e")
        .semaphore("s", 0)
        .barrier("b", 2)
        .joinable_queue::<u16>("j", 2)
        .create()
        .unwrap();
    assert!(matches!(
        seg.value::<i32>("v"),
        Err(OpenError::TypeMismatch { .. })
    ));
    assert!(matches!(
        seg.value::<u64>("v"),
        Err(OpenError::TypeMismatch { .. })
    ));
    assert!(matches!(
        seg.array::<f32>("a"),
        Err(OpenError::TypeMismatch { .. })
    ));
    assert!(matches!(
        seg.list::<i32>("l"),
        Err(OpenError::TypeMismatch { .. })
    ));
    assert!(matches!(
        seg.joinable_queue::<u32>("j"),
        Err(OpenError::TypeMismatch { .. })
    ));
    assert!(matches!(
        seg.queue::<u16>("j"),
        Err(OpenError::KindMismatch { .. })
    ));
    assert!(matches!(
        seg.event("lk"),
        Err(OpenError::KindMismatch { .. })
    ));
    assert!(matches!(seg.lock("e"), Err(OpenError::KindMismatch { .. })));
    assert!(matches!(
        seg.barrier("s"),
        Err(OpenError::KindMismatch { .. })
    ));
    assert!(matches!(
        seg.semaphore("b"),
        Err(OpenError::KindMismatch { .. })
    ));
    assert!(matches!(
        seg.value::<i64>("a"),
        Err(OpenError::KindMismatch { .. })
    ));
    // And the right lookups work.
    assert_eq!(seg.array::<f64>("a").unwrap().len(), 3);
    assert_eq!(seg.barrier("b").unwrap().parties(), 2);
}

#[test]
fn bad_object_parameters_are_refused_at_create() {
    let name = unique("objparams");
    for b in [
        Segment::builder(&name).bounded_semaphore("s", 3, 2),
        Segment::builder(&name).barrier("b", 0),
        Segment::builder(&name).list::<u8>("l", 0),
        Segment::builder(&name).joinable_queue::<u8>("j", 0),
    ] {
        assert!(matches!(
            b.create(),
            Err(shmq::CreateError::InvalidConfig(_))
        ));
    }
}

#[test]
fn value_types_round_trip_and_wrap() {
    let name = unique("valtypes");
    let seg = Segment::builder(&name)
        .value::<i8>("i8", -128)
        .value::<u16>("u16", 65535)
        .value::<f32>("f32", 1.5)
        .value::<bool>("flag", true)
        .create()
        .unwrap();
    let i = seg.value::<i8>("i8").unwrap();
    assert_eq!(i.fetch_sub(1), -128);
    assert_eq!(i.load(), 127); // wrapped
    let u = seg.value::<u16>("u16").unwrap();
    assert_eq!(u.fetch_add(2), 65535);
    assert_eq!(u.load(), 1);
    let f = seg.value::<f32>("f32").unwrap();
    f.fetch_add(0.25);
    assert_eq!(f.load(), 1.75);
    let b = seg.value::<bool>("flag").unwrap();
    assert!(b.swap(false));
    assert_eq!(b.compare_exchange(false, true), Ok(false));
}

/// A segment of lock `l` (made by `add`) and value `count`, whose lock a child process held
/// when it was SIGKILLed; the next `lock_timeout`'s result comes back with the segment.
fn lock_of_a_killed_holder(
    tag: &str,
    add: fn(shmq::SegmentBuilder) -> shmq::SegmentBuilder,
) -> (Segment, shmq::Lock) {
    let name = unique(tag);
    let seg = add(Segment::builder(&name))
        .value::<i64>("count", 0)
        .create()
        .unwrap();
    let mut child = child_holding(&name, "lock_hold");
    let lock = seg.lock("l").unwrap();
    assert!(matches!(lock.try_lock(), Err(shmq::LockError::WouldBlock)));
    child.kill().unwrap();
    child.wait().unwrap();
    (seg, lock)
}

#[test]
fn lock_holder_killed_gives_the_next_locker_owner_dead_in_bounded_time() {
    let (seg, lock) = lock_of_a_killed_holder("lockdead", |b| b.lock("l"));
    let t0 = std::time::Instant::now();
    let mut guard = match lock.lock_timeout(Duration::from_secs(10)) {
        Err(shmq::LockError::OwnerDead(g)) => g,
        other => panic!("expected OwnerDead, got {other:?}"),
    };
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t0.elapsed()
    );
    assert!(!guard.is_consistent());
    // Repair the half-done update, then declare the data consistent.
    seg.value::<i64>("count").unwrap().store(0);
    guard.make_consistent();
    drop(guard);
    assert!(lock.try_lock().is_ok());
}

#[test]
fn versioned_lookups_check_kind_and_type() {
    let name = unique("versioned-types");
    let seg = Segment::builder(&name)
        .versioned::<[u32; 5]>("v", [1, 2, 3, 4, 5])
        .value::<u64>("x", 0)
        .create()
        .unwrap();
    assert!(matches!(
        seg.versioned::<[u32; 4]>("v"),
        Err(OpenError::TypeMismatch { .. })
    ));
    assert!(matches!(
        seg.versioned::<u64>("x"),
        Err(OpenError::KindMismatch { .. })
    ));
    assert!(matches!(
        seg.value::<u64>("v"),
        Err(OpenError::KindMismatch { .. })
    ));
    let v = seg.versioned::<[u32; 5]>("v").unwrap();
    // 20 bytes: the last word is half padding, which must not leak into the value.
    assert_eq!(v.load(), [1, 2, 3, 4, 5]);
    v.store([6, 7, 8, 9, 10]);
    let other = Segment::open(&name)
        .unwrap()
        .versioned::<[u32; 5]>("v")
        .unwrap();
    assert_eq!(other.load(), [6, 7, 8, 9, 10]);
    assert_eq!(other.version(), 1);
}

#[test]
fn versioned_reads_stay_whole_and_finish_beside_a_writer_that_never_pauses() {
    // A writer that republishes a 32 KiB value back to back changes the version during many
    // lock-free copies; after a bounded number of retries a reader reads under the lock. (On a
    // 2-core machine the lock-free retries alone also finished here: the bound is there for
    // writers that publish faster than a copy takes, not for a starvation this test shows.)
    let name = unique("versioned-starve");
    let seg = Segment::builder(&name)
        .versioned::<[u64; 4096]>("v", [0; 4096])
        .create()
        .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let v = seg.versioned::<[u64; 4096]>("v").unwrap();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                v.store([n; 4096]);
            }
        })
    };
    let v = seg.versioned::<[u64; 4096]>("v").unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut last = 0;
        for _ in 0..2000 {
            let x = v.load();
            assert!(x.iter().all(|&w| w == x[0]), "torn read");
            assert!(x[0] >= last, "went back");
            last = x[0];
        }
        let _ = tx.send(last);
    });
    let r = rx.recv_timeout(Duration::from_secs(60));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    assert!(
        r.is_ok(),
        "2000 reads did not finish in 60 s beside a busy writer"
    );
}

#[test]
fn rlock_is_reentrant_for_its_owner_and_exclusive_for_others() {
    let name = unique("rlock");
    let seg = Segment::builder(&name).rlock("r").create().unwrap();
    let r = seg.rlock("r").unwrap();
    assert_eq!(r.depth(), 0);
    let a = r.lock().unwrap();
    let b = r.try_lock().unwrap();
    let c = r.lock_timeout(Duration::from_millis(1)).unwrap();
    assert_eq!(r.depth(), 3);
    // Another thread is shut out while any of the owner's guards lives.
    let other = seg.rlock("r").unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            assert!(matches!(other.try_lock(), Err(shmq::LockError::WouldBlock)));
            assert_eq!(other.depth(), 0);
        });
    });
    drop(c);
    drop(a); // out of order: the count, not the guard, decides
    assert_eq!(r.depth(), 1);
    assert!(r.is_locked());
    drop(b);
    assert!(!r.is_locked());
    std::thread::scope(|s| {
        s.spawn(|| {
            let g = other.try_lock().unwrap();
            assert_eq!(other.depth(), 1);
            drop(g);
        });
    });
}

#[test]
fn rlock_protected_nested_increment_is_exact_across_processes() {
    let name = unique("rlockedadd");
    let seg = Segment::builder(&name)
        .rlock("r")
        .value::<i64>("count", 0)
        .create()
        .unwrap();
    run_children(&name, "rlocked_add", 4);
    assert_eq!(seg.value::<i64>("count").unwrap().load(), 4 * LOCKED_ADDS);
    assert!(!seg.rlock("r").unwrap().is_locked());
}

#[test]
fn rlock_held_twice_by_a_killed_owner_gives_the_next_locker_owner_dead_once() {
    let name = unique("rlockdead");
    let seg = Segment::builder(&name).rlock("r").create().unwrap();
    let mut child = child_holding(&name, "rlock_hold_twice");
    let r = seg.rlock("r").unwrap();
    assert!(matches!(r.try_lock(), Err(shmq::LockError::WouldBlock)));
    child.kill().unwrap();
    child.wait().unwrap();
    let mut g = match r.lock_timeout(Duration::from_secs(10)) {
        Err(shmq::LockError::OwnerDead(g)) => g,
        other => panic!("expected OwnerDead, got {other:?}"),
    };
    // The dead owner's two levels are gone: one drop releases the lock.
    assert_eq!(r.depth(), 1);
    assert!(!g.is_consistent());
    g.make_consistent();
    drop(g);
    assert!(!r.is_locked());
    let again = r.try_lock().unwrap();
    assert!(again.is_consistent());
}

#[test]
fn condition_turn_taking_between_two_processes_loses_no_wake_up() {
    let name = unique("cond");
    let seg = Segment::builder(&name)
        .condition("c")
        .value::<u64>("n", 0)
        .create()
        .unwrap();
    let c = seg.condition("c").unwrap();
    let n = seg.value::<u64>("n").unwrap();
    let child = spawn_child(
        "child_object_role",
        &[
            ("SHMQ_SEG", name.clone()),
            ("SHMQ_ROLE", "cond_pingpong".into()),
        ],
    );
    let mut g = c.lock().unwrap();
    for _ in 0..COND_ROUNDS {
        // Our turn: make the count odd and hand over; then wait for it to be even again.
        n.store(n.load() + 1);
        c.notify_all().unwrap();
        while n.load() % 2 == 1 {
            // The child answers within microseconds: a wait that ends by its timeout, whatever
            // the count says then, is a wake-up that never came.
            let (g2, timed_out) = c.wait_timeout(g, Duration::from_secs(10)).unwrap();
            g = g2;
            assert!(!timed_out, "no wake-up within 10 s (count {})", n.load());
        }
    }
    n.store(2 * COND_ROUNDS + 1); // odd and past the end: the child stops
    c.notify_all().unwrap();
    drop(g);
    finish(child);
    assert_eq!(n.load(), 2 * COND_ROUNDS + 1);
}

#[test]
fn condition_wait_times_out_and_notify_needs_the_lock() {
    let name = unique("cond-timeout");
    let seg = Segment::builder(&name).condition("c").create().unwrap();
    let c = seg.condition("c").unwrap();
    assert_eq!(c.notify(1), Err(shmq::NotOwner));
    let g = c.lock().unwrap();
    let (g, timed_out) = c.wait_timeout(g, Duration::from_millis(20)).unwrap();
    assert!(timed_out);
    // The lock is held again after the wait, and at the depth it had.
    let inner = c.lock().unwrap();
    assert_eq!(c.rlock().depth(), 2);
    let (inner, _) = c.wait_timeout(inner, Duration::from_millis(1)).unwrap();
    assert_eq!(c.rlock().depth(), 2);
    assert!(c.notify(1).is_ok());
    drop(inner);
    drop(g);
    assert!(!c.rlock().is_locked());
    let g = c.lock().unwrap();
    let g = c
        .wait_for(g, || false, Some(Duration::from_millis(10)))
        .unwrap();
    drop(g);
}

#[test]
fn condition_waiter_killed_asleep_leaves_the_lock_free_and_notify_working() {
    let name = unique("cond-killed");
    let seg = Segment::builder(&name)
        .condition("c")
        .value::<u64>("n", 0)
        .create()
        .unwrap();
    let c = seg.condition("c").unwrap();
    let mut child = child_holding(&name, "cond_wait_forever");
    // The child said it holds the lock; once it waits, it has released it.
    let g = loop {
        match c.rlock().lock_timeout(Duration::from_millis(10)).ok() {
            Some(g) => break g,
            None => std::thread::yield_now(),
        }
    };
    drop(g);
    child.kill().unwrap();
    child.wait().unwrap();
    // The dead waiter held nothing: the lock is taken clean, and notifying still works.
    let g = c
        .lock()
        .expect("a waiter killed asleep does not hold the lock");
    c.notify_all().unwrap();
    drop(g);
    let n = seg.value::<u64>("n").unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            let g = c.lock().unwrap();
            n.store(1);
            c.notify_all().unwrap();
            drop(g);
        });
        let g = c.lock().unwrap();
        let _g = c
            .wait_for(g, || n.load() == 1, Some(Duration::from_secs(10)))
            .unwrap();
        assert_eq!(n.load(), 1);
    });
}

#[test]
fn force_unlock_from_another_thread_wakes_a_sleeping_contender() {
    let name = unique("forceunlock");
    let seg = Segment::builder(&name).lock("l").create().unwrap();
    let lock = seg.lock("l").unwrap();
    std::mem::forget(lock.lock().unwrap());
    assert!(lock.is_held_by_current_thread());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        // Asleep in the lock's futex (contended) until the release below.
        s.spawn(|| {
            let g = lock.lock_timeout(Duration::from_secs(60));
            tx.send(g.is_ok()).unwrap();
        });
        // The sleeper cannot have the lock while it is held.
        assert!(rx.recv_timeout(Duration::from_millis(50)).is_err());
        // Released by a third thread, which never took it.
        s.spawn(|| assert!(lock.force_unlock()));
        assert!(rx.recv_timeout(Duration::from_secs(30)).unwrap());
    });
    assert!(!lock.is_locked());
    assert!(!lock.force_unlock());
}

#[test]
fn unlock_one_releases_levels_of_the_owner_only() {
    let name = unique("unlockone");
    let seg = Segment::builder(&name).rlock("r").create().unwrap();
    let r = seg.rlock("r").unwrap();
    std::mem::forget(r.lock().unwrap());
    std::mem::forget(r.lock().unwrap());
    std::thread::scope(|s| {
        s.spawn(|| assert!(r.unlock_one().is_err()));
    });
    assert_eq!(r.depth(), 2);
    r.unlock_one().unwrap();
    assert!(r.is_locked());
    r.unlock_one().unwrap();
    assert!(!r.is_locked());
    assert!(r.unlock_one().is_err());
}

/// Descriptors of this process open on segment `name`'s file (its final name, or the build
/// name `name~init~...` a creator opened it under). Other tests of this binary run beside this
/// one and open descriptors of their own: only these are counted.
fn fds_on(name: &str) -> usize {
    let path = format!("/dev/shm/{name}");
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| {
        d.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|t| {
                let t = t.to_string_lossy();
                t == path || t.starts_with(&format!("{path}~"))
            })
            .count()
    })
}

#[test]
fn a_mapped_segment_costs_one_file_descriptor() {
    let name = unique("onefd");
    let seg = Segment::builder(&name).lock("l").create().unwrap();
    assert_eq!(fds_on(&name), 1);
    let opened = Segment::open(&name).unwrap();
    // Each mapping holds one descriptor (whose open file description carries its flock).
    assert_eq!(fds_on(&name), 2);
    drop(opened);
    drop(seg);
    assert_eq!(fds_on(&name), 0);
}

#[test]
fn release_claim_lets_the_name_go_while_the_memory_stays() {
    let name = unique("claim");
    let seg = Segment::builder(&name)
        .value::<u64>("v", 7)
        .keep(true)
        .create()
        .unwrap();
    let v = seg.value::<u64>("v").unwrap();
    assert!(!Segment::unlink_if_unused(&name).unwrap());
    seg.release_claim();
    assert!(Segment::unlink_if_unused(&name).unwrap());
    v.store(8);
    assert_eq!(v.load(), 8);
    assert!(matches!(Segment::open(&name), Err(OpenError::NotFound)));
}

#[test]
fn process_lock_is_taken_over_once_its_holders_process_is_killed() {
    let (_seg, lock) = lock_of_a_killed_holder("proclockdead", |b| b.process_lock("l"));
    match lock.lock_timeout(Duration::from_secs(30)) {
        Err(shmq::LockError::OwnerDead(mut g)) => g.make_consistent(),
        other => panic!("expected OwnerDead, got {other:?}"),
    }
    assert!(lock.try_lock().is_ok());
}

#[test]
fn process_lock_stays_held_when_its_thread_exits_and_its_process_lives() {
    let name = unique("proclockthread");
    let seg = Segment::builder(&name)
        .process_lock("l")
        .lock("t")
        .create()
        .unwrap();
    for (which, process_scoped) in [("l", true), ("t", false)] {
        let lock = seg.lock(which).unwrap();
        std::thread::scope(|s| {
            s.spawn(|| std::mem::forget(lock.lock().unwrap()));
        });
        // The thread that took it has exited: a thread-scoped lock is taken over, a
        // process-scoped one waits for a release (any thread's).
        let r = lock.lock_timeout(Duration::from_millis(300));
        if process_scoped {
            assert!(matches!(r, Err(shmq::LockError::Timeout)), "{r:?}");
            assert!(lock.force_unlock());
            assert!(lock.try_lock().is_ok());
        } else {
            assert!(matches!(r, Err(shmq::LockError::OwnerDead(_))), "{r:?}");
        }
    }
}

#[test]
fn event_flag_and_marks_follow_set_and_clear() {
    let seg = Segment::builder(&unique("ev-flag"))
        .event("e")
        .create()
        .unwrap();
    let e = seg.event("e").unwrap();
    assert!(!e.is_set());
    assert!(!e.wait_timeout(Duration::ZERO));
    e.set();
    assert!(e.is_set());
    assert!(e.wait_timeout(Duration::ZERO));
    e.clear();
    assert!(!e.is_set());
    // A mark taken after that pulse waits for the next set, not the earlier one.
    let mark = e.mark();
    assert!(!e.wait_since(mark, Duration::ZERO));
    e.set();
    e.clear();
    assert!(e.wait_since(mark, Duration::ZERO));
    assert!(!e.wait_timeout(Duration::ZERO));
}
