//! Crash survival with real kills: a child process stops itself at a named protocol step
//! (feature `fault-injection`), the test SIGKILLs it there, and checks that the survivors go on.
//! Run with `cargo test --features fault-injection --test crash`.

mod common;

use common::*;
use shmq::{GetError, Segment};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Starts a child running `role` that will stop at `fault` after passing it `skip` times, and
/// returns once it has stopped there.
fn child_stopped_at(seg: &str, role: &str, fault: &str, skip: u32, resume: bool) -> Child {
    let skip = skip.to_string();
    let mut env = vec![("SHMQ_FAULT", fault), ("SHMQ_FAULT_SKIP", skip.as_str())];
    if resume {
        env.push(("SHMQ_FAULT_RESUME", "1"));
    }
    let mut child = spawn_role(seg, role, &env);
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    loop {
        let line = lines
            .next()
            .expect("child exited before its crash point")
            .unwrap();
        if line.starts_with("SHMQ_FAULT_HIT") {
            break;
        }
    }
    // Keep draining stderr so the child never blocks on it.
    std::thread::spawn(move || for _ in lines {});
    child
}

/// Starts a child running `role` on segment `seg` with `env` added, its stdin and stderr piped,
/// and returns at once.
fn spawn_role(seg: &str, role: &str, env: &[(&str, &str)]) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["child_crash_role", "--exact", "--ignored", "--nocapture"])
        .env("SHMQ_TEST_CHILD", "1")
        .env("SHMQ_SEG", seg)
        .env("SHMQ_ROLE", role)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd.envs(env.iter().copied());
    cmd.spawn().unwrap()
}

/// Lets a child started with `resume` go on from its crash point. Its stdin stays open (until
/// `wait`, which closes it), so a role that ends in `hold_alive` then holds there.
fn let_go(child: &mut Child) {
    use std::io::Write;
    child.stdin.as_mut().unwrap().write_all(b"g").unwrap();
}

fn kill(mut child: Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Stops a child that reached the end of its role, alive, until its stdin is written or closed
/// (the parent kills it there, or lets it exit).
fn hold_alive() {
    eprintln!("SHMQ_FAULT_HIT held");
    let mut byte = [0u8; 1];
    let _ = std::io::Read::read(&mut std::io::stdin(), &mut byte);
}

#[test]
#[ignore = "child process of the crash tests"]
fn child_crash_role() {
    let name = child_var("SHMQ_SEG");
    let role = child_var("SHMQ_ROLE");
    if let Some(keep) = role.strip_prefix("creator") {
        // Creates the segment (or stops inside `create` at its fault point), then stays alive.
        let _seg = Segment::builder(&name)
            .queue::<u64>("q", 4)
            .keep(keep == "-keep")
            .create()
            .unwrap();
        hold_alive();
        return;
    }
    let seg = Segment::open(&name).unwrap();
    if role == "list-writer" {
        // Pushes 30 items to the bytes list "l" (growing its array twice), replaces a few,
        // removes from the end and the middle, inserts in the middle.
        let l = seg.bytes_list("l").unwrap();
        for i in 0..30 {
            l.push(&dict_value(i, 1)).unwrap();
        }
        for i in (0..30).step_by(5) {
            l.set(i as usize, &dict_value(i, 2)).unwrap();
        }
        l.pop().unwrap();
        l.pop_at(3).unwrap();
        l.insert(7, &dict_value(99, 1)).unwrap();
        l.remove(&dict_value(10, 2)).unwrap();
        l.splice(2..6, [&dict_value(98, 1)[..], &dict_value(97, 1)])
            .unwrap();
        hold_alive();
        return;
    }
    if role == "dict-writer" {
        // Inserts 40 keys into the bytes dictionary "d" (growing its table twice), replaces the
        // even ones and removes every fourth odd one.
        let d = seg.bytes_dict("d").unwrap();
        for i in 0..DICT_KEYS {
            d.insert(&dict_key(i), &dict_value(i, 1)).unwrap();
        }
        for i in (0..DICT_KEYS).step_by(2) {
            d.insert(&dict_key(i), &dict_value(i, 2)).unwrap();
        }
        for i in (1..DICT_KEYS).step_by(4) {
            d.remove(&dict_key(i)).unwrap();
        }
        hold_alive();
        return;
    }
    if role == "versioned-writer" {
        // Stops half-way through writing the new value (crash point `versioned-writing`).
        seg.versioned::<[u64; 8]>("v").unwrap().store([2; 8]);
        return;
    }
    if role == "lock-hold" {
        // Takes lock "l" and holds it, alive, until killed.
        let l = seg.lock("l").unwrap();
        let _g = l.lock().unwrap();
        hold_alive();
        return;
    }
    if role == "locker-report" {
        // One lock of "l"; its outcome on stderr.
        let l = seg.lock("l").unwrap();
        let r = l.lock_timeout(Duration::from_secs(3600));
        eprintln!(
            "SHMQ_RESULT {}",
            r.map_or_else(|e| format!("{e:?}"), |_| "Ok".into())
        );
        return;
    }
    if role == "joiner-report" {
        // One join of "j"; its outcome on stderr.
        let j = seg.joinable_queue::<u64>("j").unwrap();
        eprintln!(
            "SHMQ_RESULT {:?}",
            j.join_timeout(Duration::from_secs(3600))
        );
        return;
    }
    if role == "joinable-producer" {
        // One put to the joinable queue "j" (blocks while it is full).
        seg.joinable_queue::<u64>("j").unwrap().put(2).unwrap();
        hold_alive();
        return;
    }
    if role == "long-producer" {
        // Puts long messages (through the heap) to "b", one per value of the fault's skip count.
        let b = seg.bytes_queue("b").unwrap();
        for i in 0..3u8 {
            b.put(&[i; 10_000]).unwrap();
        }
        hold_alive();
        return;
    }
    if role == "unbounded-producer" {
        // Puts 0..3000 to the unbounded queue "u" (its first link holds 1024).
        let u = seg.queue::<u64>("u").unwrap();
        for v in 0..3000 {
            u.put(v).unwrap();
        }
        hold_alive();
        return;
    }
    if role == "unbounded-consumer" {
        // Gets from "u" until it is empty (crossing from the first link to the second frees the
        // first).
        let u = seg.queue::<u64>("u").unwrap();
        while u.try_get().is_ok() {}
        hold_alive();
        return;
    }
    if role == "long-consumer" {
        seg.bytes_queue("b").unwrap().get().unwrap();
        hold_alive();
        return;
    }
    let q = seg.queue::<u64>("q").unwrap();
    match role.as_str() {
        "producer" => {
            for v in 1..=3 {
                q.put(v).unwrap();
            }
        }
        "producer-then-hold" => {
            for v in 1..=3 {
                q.put(v).unwrap();
            }
            hold_alive();
        }
        "consumer" => {
            q.get().unwrap();
        }
        "batch-producer" => {
            q.put_many(&[1, 2, 3]).unwrap();
        }
        "batch-producer-1024" => {
            let items: Vec<u64> = (0..1024).collect();
            q.put_many(&items).unwrap();
        }
        "nested-producer" => {
            // Claims position 0 of "q" and, inside the closure, puts to "q2" in full; then stops
            // there, alive, still holding the outer claim, until the test kills it.
            let q2 = seg.queue::<u64>("q2").unwrap();
            q.put_with(|v| {
                *v = 1;
                q2.put(5).unwrap();
                hold_alive();
            })
            .unwrap();
        }
        "claim-then-hold" => {
            // Claims position 0 of "q" and stops inside the closure, alive, holding the claim.
            q.put_with(|v| {
                *v = 1;
                hold_alive();
            })
            .unwrap();
        }
        "getter-report" => {
            // One blocking get; its outcome on stderr.
            eprintln!("SHMQ_RESULT {:?}", q.get());
        }
        "try-consumer-then-hold" => {
            // One non-blocking get; reports its outcome through event "tried", then stays alive.
            let empty = q.try_get().is_err();
            assert!(empty, "expected an empty queue");
            seg.event("tried").unwrap().set();
            hold_alive();
        }
        "try-producer-then-hold" => {
            // One non-blocking put; reports its outcome through event "tried", then stays alive.
            let full = q.try_put(7).is_err();
            assert!(full, "expected a full queue");
            seg.event("tried").unwrap().set();
            hold_alive();
        }
        other => panic!("unknown role {other}"),
    }
}

/// Opens segment `name` anew (as another process would) and takes one value from its queue.
fn get_from(name: &str) -> Result<u64, GetError> {
    Segment::open(name)
        .unwrap()
        .queue::<u64>("q")
        .unwrap()
        .get()
}

/// A child that runs `role` to its end and holds there alive (no crash point).
fn child_holding(seg: &str, role: &str) -> Child {
    child_stopped_at(seg, role, "none", 0, false)
}

#[test]
fn producer_killed_between_claim_and_publish_is_skipped_and_later_messages_arrive() {
    let name = unique("deadprod");
    let seg = Segment::builder(&name)
        .queue::<u64>("q", 8)
        .create()
        .unwrap();
    let q = seg.queue::<u64>("q").unwrap();
    // The child puts 1 and 2, then stops holding the claim of its third put (position 2).
    let child = child_stopped_at(&name, "producer", "put-claimed", 2, false);
    kill(child);
    q.put(10).unwrap();
    q.put(11).unwrap();
    let t0 = Instant::now();
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(q.get_timeout(Duration::from_secs(10)).unwrap());
    }
    assert_eq!(got, vec![1, 2, 10, 11]);
    assert_eq!(q.stats().tombstones, 1);
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "recovery took {:?}",
        t0.elapsed()
    );
    // Producers go on after the ring wraps past the tombstone.
    for v in 0..8 {
        q.put(v).unwrap();
        assert_eq!(q.get().unwrap(), v);
    }
}

#[test]
fn try_get_and_a_short_get_timeout_recover_a_dead_producers_claim() {
    // Neither call sleeps a whole recovery slice, so neither used to look for a dead claimant: a
    // consumer polling with them waited for ever behind the dead claim.
    for mode in ["try_get", "get_timeout"] {
        let name = unique(&format!("deadprod-{mode}"));
        let seg = Segment::builder(&name)
            .queue::<u64>("q", 8)
            .create()
            .unwrap();
        let q = seg.queue::<u64>("q").unwrap();
        // The child claims position 0 and is killed before publishing it.
        kill(child_stopped_at(&name, "producer", "put-claimed", 0, false));
        q.put(10).unwrap();
        let got = if mode == "try_get" {
            q.try_get()
        } else {
            q.get_timeout(Duration::from_millis(10))
        };
        assert_eq!(got, Ok(10), "{mode}");
        assert_eq!(q.stats().tombstones, 1, "{mode}");
    }
}

#[test]
fn producer_killed_holding_a_batch_of_1024_is_recovered_in_one_pass() {
    // One recovery per 50 ms sleep slice, as before, would take 51 s for the 1024 positions.
    batch_claim_of_a_killed_producer_is_skipped("deadbatch1024", "batch-producer-1024", 2048, 1024);
}

#[test]
fn producer_killed_inside_a_put_with_closure_that_used_another_queue_is_recovered() {
    let name = unique("nested");
    let seg = Segment::builder(&name)
        .queue::<u64>("q", 4)
        .queue::<u64>("q2", 4)
        .create()
        .unwrap();
    let q = seg.queue::<u64>("q").unwrap();
    // The child's put on q2, made inside its put_with closure on q, used to overwrite the
    // record of the outer claim (and clear it once settled): killed there, the outer claim was
    // named by no record and never recovered.
    kill(child_holding(&name, "nested-producer"));
    q.put(10).unwrap();
    assert_eq!(q.get_timeout(Duration::from_secs(10)), Ok(10));
    assert_eq!(q.stats().tombstones, 1);
    // The inner put went through whole.
    assert_eq!(seg.queue::<u64>("q2").unwrap().try_get(), Ok(5));
}

/// A segment with a joinable queue "j" of capacity 1 holding one task.
fn joinable_with_one_task(tag: &str) -> (String, Segment, shmq::JoinableQueue<u64>) {
    let name = unique(tag);
    let seg = Segment::builder(&name)
        .joinable_queue::<u64>("j", 1)
        .create()
        .unwrap();
    let j = seg.joinable_queue::<u64>("j").unwrap();
    j.put(1).unwrap();
    (name, seg, j)
}

#[test]
fn joinable_producer_killed_blocked_in_put_leaves_no_task_behind() {
    let (name, _seg, j) = joinable_with_one_task("joinblocked");
    // The child's put blocks on the full queue; it is killed there. It used to count its task
    // before putting, so join waited for a task nobody could ever finish.
    let mut child = spawn_role(&name, "joinable-producer", &[("SHMQ_FAULT", "none")]);
    let watchdog = Instant::now() + Duration::from_secs(60);
    while j.stats().waiting_putters == 0 {
        assert!(Instant::now() < watchdog, "the producer never blocked");
        assert!(child.try_wait().unwrap().is_none(), "the producer exited");
        std::thread::yield_now();
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(j.get(), Ok(1));
    j.task_done().unwrap();
    assert_eq!(j.join_timeout(Duration::from_secs(10)), Ok(()));
    assert_eq!(j.unfinished_tasks(), 0);
}

/// A joinable queue of capacity 1 whose one task is done and whose free slot a child claimed and
/// was killed holding: one unfinished task, the dead claim.
fn joinable_with_a_dead_claim(tag: &str) -> (String, Segment, shmq::JoinableQueue<u64>) {
    let (name, seg, j) = joinable_with_one_task(tag);
    assert_eq!(j.get(), Ok(1));
    kill(child_stopped_at(
        &name,
        "joinable-producer",
        "put-claimed",
        0,
        false,
    ));
    j.task_done().unwrap();
    assert_eq!(j.unfinished_tasks(), 1);
    (name, seg, j)
}

#[test]
fn joinable_producer_killed_between_claim_and_publish_leaves_no_task_behind() {
    // The child's task is counted (the claim), then given up when recovery tombstones the
    // position.
    let (_name, _seg, j) = joinable_with_a_dead_claim("joinclaimed");
    // A getter recovers the dead claim (it finds the queue otherwise empty).
    assert_eq!(
        j.get_timeout(Duration::from_millis(300)),
        Err(GetError::Timeout)
    );
    assert_eq!(j.stats().tombstones, 1);
    assert_eq!(j.join_timeout(Duration::from_secs(10)), Ok(()));
    assert_eq!(j.unfinished_tasks(), 0);
}

/// Waits for a child's `SHMQ_RESULT` line on its stderr (60 s watchdog) and reaps it.
fn result_of(mut child: Child) -> Option<String> {
    let out = child.stderr.take().unwrap();
    let line = within(Duration::from_secs(60), move || {
        BufReader::new(out)
            .lines()
            .map_while(Result::ok)
            .find(|l| l.starts_with("SHMQ_RESULT"))
    });
    child.wait().unwrap();
    line
}

#[test]
fn joiner_asleep_is_woken_by_the_tombstone_that_finishes_the_last_task() {
    let (name, _seg, j) = joinable_with_a_dead_claim("jointomb");
    // A joiner in another process, its backstop slice an hour: only a notification wakes it.
    let joiner = spawn_role(
        &name,
        "joiner-report",
        &[("SHMQ_FAULT_WATCHED_SLICE_MS", "3600000")],
    );
    let watchdog = Instant::now() + Duration::from_secs(60);
    while !all_threads_asleep(joiner.id()) || context_switches(joiner.id()) == 0 {
        assert!(Instant::now() < watchdog, "the joiner never slept");
        std::thread::yield_now();
    }
    // The getter recovers the dead claim: the tombstone finishes the last task. Joiners used to
    // notice only at their next 50 ms slice.
    assert_eq!(
        j.get_timeout(Duration::from_millis(300)),
        Err(GetError::Timeout)
    );
    assert_eq!(j.stats().tombstones, 1);
    assert_eq!(result_of(joiner).as_deref(), Some("SHMQ_RESULT Ok(())"));
}

#[test]
fn try_put_recovers_a_dead_consumers_claim() {
    let name = unique("deadcons-try");
    let seg = Segment::builder(&name)
        .queue::<u64>("q", 2)
        .create()
        .unwrap();
    let q = seg.queue::<u64>("q").unwrap();
    q.put(1).unwrap();
    q.put(2).unwrap();
    // The child claims position 0 (message 1) and is killed before releasing its slot.
    kill(child_stopped_at(&name, "consumer", "get-claimed", 0, false));
    assert_eq!(q.get().unwrap(), 2);
    // The queue is empty, but position 2 needs the dead consumer's slot.
    assert_eq!(q.try_put(3), Ok(()));
    assert_eq!(q.stats().lost, 1);
    assert_eq!(q.get().unwrap(), 3);
}

/// A child running `role` claims `claimed` positions with one CAS (`put_many`) and is killed
/// before publishing any; every position of the batch is recovered from the same record and the
/// message put behind it arrives.
fn batch_claim_of_a_killed_producer_is_skipped(tag: &str, role: &str, capacity: u64, claimed: u64) {
    let name = unique(tag);
    let seg = Segment::builder(&name)
        .queue::<u64>("q", capacity)
        .create()
        .unwrap();
    let q = seg.queue::<u64>("q").unwrap();
    kill(child_stopped_at(&name, role, "put-claimed", 0, false));
    q.put(10).unwrap();
    assert_eq!(q.get_timeout(Duration::from_secs(10)), Ok(10));
    assert_eq!(q.stats().tombstones, claimed);
}

#[test]
fn producer_killed_holding_a_batch_claim_has_every_position_of_it_skipped() {
    // Positions 0..3.
    batch_claim_of_a_killed_producer_is_skipped("deadbatch", "batch-producer", 8, 3);
}

#[test]
fn consumer_killed_between_claim_and_release_frees_the_slot_and_counts_the_loss() {
    let name = unique("deadcons");
    let seg = Segment::builder(&name)
        .queue::<u64>("q", 2)
        .create()
        .unwrap();
    let q = seg.queue::<u64>("q").unwrap();
    q.put(1).unwrap();
    q.put(2).unwrap();
    // The child claims message 1 and stops before releasing its slot.
    let child = child_stopped_at(&name, "consumer", "get-claimed", 0, false);
    kill(child);
    // The ring is full behind the dead consumer's slot: this put must still get through.
    q.put_timeout(3, Duration::from_secs(10)).unwrap();
    assert_eq!(q.stats().lost, 1);
    assert_eq!(q.get().unwrap(), 2);
    assert_eq!(q.get().unwrap(), 3);
}

#[test]
fn consumer_killed_while_stepping_over_a_tombstone_does_not_block_producers() {
    let name = unique("deadtomb");
    let seg = Segment::builder(&name)
        .queue::<u64>("q", 2)
        .create()
        .unwrap();
    let q = seg.queue::<u64>("q").unwrap();
    // A producer dies holding position 0 (slot 0).
    kill(child_stopped_at(&name, "producer", "put-claimed", 0, false));
    // A consumer blocks on the empty queue, turns position 0 into a tombstone after a sleep slice,
    // claims the tombstone to step over it, and is killed before releasing slot 0.
    kill(child_stopped_at(&name, "consumer", "get-claimed", 0, false));
    assert_eq!(q.stats().tombstones, 1);
    // Positions 1 (slot 1) and 2 (slot 0, held by the dead consumer) must both go in.
    q.put_timeout(10, Duration::from_secs(10)).unwrap();
    q.put_timeout(11, Duration::from_secs(10)).unwrap();
    assert_eq!(q.get().unwrap(), 10);
    assert_eq!(q.get().unwrap(), 11);
    // A tombstone carries no message: nothing was lost.
    assert_eq!(q.stats().lost, 0);
}

#[test]
fn get_timeout_whose_only_producer_died_returns_disconnected_within_its_deadline() {
    let name = unique("deadonly");
    let seg = Segment::builder(&name)
        .queue::<u64>("q", 4)
        .create()
        .unwrap();
    let q = seg.queue::<u64>("q").unwrap();
    let child = child_stopped_at(&name, "producer", "put-claimed", 0, false);
    kill(child);
    let t0 = Instant::now();
    let wait = Duration::from_secs(5);
    // The dead producer's claim is turned into a tombstone, then the get learns that no
    // producer is left instead of sleeping to its deadline.
    assert_eq!(q.get_timeout(wait), Err(GetError::Disconnected));
    assert!(t0.elapsed() < wait, "returned late: {:?}", t0.elapsed());
    assert_eq!(q.stats().tombstones, 1);
    assert!(!q.producers_alive());
}

#[test]
fn get_timeout_returns_timeout_at_its_deadline_while_a_producer_lives() {
    let name = unique("idleprod");
    let seg = Segment::builder(&name)
        .queue::<u64>("q", 4)
        .create()
        .unwrap();
    let q = seg.queue::<u64>("q").unwrap();
    let child = child_holding(&name, "producer-then-hold");
    for v in 1..=3 {
        assert_eq!(q.get().unwrap(), v);
    }
    assert!(q.producers_alive());
    let t0 = Instant::now();
    let wait = Duration::from_millis(300);
    assert_eq!(q.get_timeout(wait), Err(GetError::Timeout));
    let took = t0.elapsed();
    assert!(took >= wait, "returned early: {took:?}");
    assert!(
        took < wait + Duration::from_secs(2),
        "returned late: {took:?}"
    );
    kill(child);
}

/// Runs `f` on a thread and fails the test if it has not returned within `limit`.
fn within<R: Send + 'static>(limit: Duration, f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .expect("watchdog: the call did not return in time")
}

#[test]
fn blocked_get_without_deadline_returns_disconnected_once_every_producer_is_killed() {
    let name = unique("alldead");
    let seg = Segment::builder(&name)
        .queue::<u64>("q", 8)
        .create()
        .unwrap();
    let q = seg.queue::<u64>("q").unwrap();
    let a = child_holding(&name, "producer-then-hold");
    let b = child_holding(&name, "producer-then-hold");
    let mut got: Vec<u64> = (0..6).map(|_| q.get().unwrap()).collect();
    got.sort_unstable();
    assert_eq!(got, vec![1, 1, 2, 2, 3, 3]);
    assert_eq!(q.stats().producers, 2);
    kill(a);
    // One producer is still alive: the queue is empty but not disconnected.
    assert_eq!(
        q.get_timeout(Duration::from_millis(200)),
        Err(GetError::Timeout)
    );
    assert!(q.producers_alive());
    kill(b);
    let q2 = q.clone();
    let t0 = Instant::now();
    let r = within(Duration::from_secs(20), move || q2.get());
    assert_eq!(r, Err(GetError::Disconnected));
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert_eq!(q.stats().producers, 0);
}

#[test]
fn full_participant_table_takes_over_a_dead_record_but_keeps_one_that_names_a_claim() {
    let name = unique("fulltable");
    let seg = Segment::builder(&name)
        .queue::<u64>("q", 8)
        .participants(2)
        .create()
        .unwrap();
    let q = seg.queue::<u64>("q").unwrap();
    // Record 0: a producer killed holding the claim of position 0 (the evidence recovery needs).
    kill(child_stopped_at(&name, "producer", "put-claimed", 0, false));
    // Record 1: a producer killed after its puts of 1, 2, 3 completed (names no claim).
    kill(child_holding(&name, "producer-then-hold"));
    assert_eq!(q.stats().participants, 0);
    // Both records belong to dead processes: this thread's first put must take over record 1,
    // and must leave record 0 alone, or the dead claim could no longer be traced.
    q.put(10).unwrap();
    assert_eq!(q.stats().participants, 1);
    let got: Vec<u64> = (0..4)
        .map(|_| q.get_timeout(Duration::from_secs(10)).unwrap())
        .collect();
    assert_eq!(got, vec![1, 2, 3, 10]);
    assert_eq!(q.stats().tombstones, 1);
}

#[test]
fn record_of_a_process_killed_before_its_claim_cas_is_reused() {
    let name = unique("precas");
    let seg = Segment::builder(&name)
        .queue::<u64>("q", 4)
        .participants(1)
        .create()
        .unwrap();
    let q = seg.queue::<u64>("q").unwrap();
    // The only record names a put of position 0 that never happened: its owner was killed after
    // writing the record and before the claim CAS.
    kill(child_stopped_at(
        &name,
        "producer",
        "put-recorded",
        0,
        false,
    ));
    assert_eq!(q.stats().participants, 0);
    assert!(q.is_empty());
    // The record is no evidence of anything: this thread's first put takes it over.
    q.put(10).unwrap();
    assert_eq!(q.stats().participants, 1);
    assert_eq!(q.get().unwrap(), 10);
    // And it attributes this thread's claims like any record: a queue it puts to can report
    // that a producer lives.
    assert!(q.producers_alive());
}

#[test]
fn full_table_of_live_participants_lets_operations_run_and_frees_up_when_one_dies() {
    let name = unique("livetable");
    let seg = Segment::builder(&name)
        .queue::<u64>("q", 8)
        .participants(1)
        .create()
        .unwrap();
    let q = seg.queue::<u64>("q").unwrap();
    let child = child_holding(&name, "producer-then-hold");
    // The only record is the live child's: this thread goes on without one.
    q.put(10).unwrap();
    let got: Vec<u64> = (0..4).map(|_| q.get().unwrap()).collect();
    assert_eq!(got, vec![1, 2, 3, 10]);
    assert_eq!(q.stats().participants, 1);
    kill(child);
    assert_eq!(q.stats().participants, 0);
    // Once the child is dead this thread takes its record over, within a bounded time (it looks
    // again at most every 100 ms while it has none).
    let t0 = Instant::now();
    let mut v = 0;
    while q.stats().participants == 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no record taken over"
        );
        q.put(v).unwrap();
        assert_eq!(q.get().unwrap(), v);
        v += 1;
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(q.stats().participants, 1);
}

/// A segment with a queue "q" of 2 and an event "tried" (set by the `try-*-then-hold` roles).
fn queue_of_two_with_event(tag: &str) -> (String, Segment, shmq::Queue<u64>) {
    let name = unique(tag);
    let seg = Segment::builder(&name)
        .queue::<u64>("q", 2)
        .event("tried")
        .create()
        .unwrap();
    let q = seg.queue::<u64>("q").unwrap();
    (name, seg, q)
}

/// Lets a child held at its crash point go on, and waits until its role has tried its operation
/// (event "tried"). Its stdin stays open, so it then holds, alive, in `hold_alive`.
fn let_go_until_tried(seg: &Segment, child: &mut Child) {
    let_go(child);
    assert!(seg
        .event("tried")
        .unwrap()
        .wait_timeout(Duration::from_secs(10)));
}

#[test]
fn producer_that_lost_a_claim_race_and_found_the_queue_full_does_not_shield_the_winners_claim() {
    let (name, seg, q) = queue_of_two_with_event("lostrace");
    // Position 0, left in the queue.
    q.put(100).unwrap();
    // B writes its record for position 1 and is held just before its claim CAS.
    let mut b = child_stopped_at(&name, "try-producer-then-hold", "put-recorded", 0, true);
    // A claims position 1 and is killed holding it.
    kill(child_stopped_at(&name, "producer", "put-claimed", 0, false));
    // B goes on: its CAS fails, the queue is full (slot of position 2 holds position 0), so its
    // try_put reports Full and B stays alive. Its record must not go on naming position 1.
    let_go_until_tried(&seg, &mut b);
    assert_eq!(q.get().unwrap(), 100);
    // A's dead claim on position 1 is recovered although B, alive, once wrote a record for it.
    q.put(5).unwrap();
    assert_eq!(q.get_timeout(Duration::from_secs(10)), Ok(5));
    assert_eq!(q.stats().tombstones, 1);
    assert_eq!(b.try_wait().unwrap(), None, "B must still be alive");
    kill(b);
}

#[test]
fn consumer_that_lost_a_claim_race_and_found_the_queue_empty_does_not_shield_the_winners_claim() {
    let (name, seg, q) = queue_of_two_with_event("lostgetrace");
    // Position 0.
    q.put(10).unwrap();
    // B writes its record for position 0 and is held just before its claim CAS.
    let mut b = child_stopped_at(&name, "try-consumer-then-hold", "get-recorded", 0, true);
    // A claims position 0 and is killed holding it.
    kill(child_stopped_at(&name, "consumer", "get-claimed", 0, false));
    // B goes on: its CAS fails, position 1 is not published, so its try_get reports Empty and B
    // stays alive. Its record must not go on naming position 0.
    let_go_until_tried(&seg, &mut b);
    // Position 2 needs slot 0, which A's dead claim holds: it is released although B, alive,
    // once wrote a record for it, and A's message is counted lost.
    q.put(11).unwrap();
    q.put_timeout(12, Duration::from_secs(10)).unwrap();
    assert_eq!(q.stats().lost, 1);
    assert_eq!((q.get().unwrap(), q.get().unwrap()), (11, 12));
    assert_eq!(b.try_wait().unwrap(), None, "B must still be alive");
    kill(b);
}

/// A segment with a queue "q" of 8 and `participants` records, one of which the calling thread
/// has taken (by a put and a get); nothing is in flight.
fn with_a_record_taken(tag: &str, participants: u32) -> (String, Segment, shmq::Queue<u64>) {
    let name = unique(tag);
    let seg = Segment::builder(&name)
        .queue::<u64>("q", 8)
        .participants(participants)
        .create()
        .unwrap();
    let q = seg.queue::<u64>("q").unwrap();
    q.put(100).unwrap();
    assert_eq!(q.get().unwrap(), 100);
    let s = q.stats();
    assert_eq!((s.participants, s.unattributed_claims), (1, 0));
    (name, seg, q)
}

#[test]
fn claim_of_a_thread_without_a_record_is_never_tombstoned_under_a_dead_stale_record() {
    let (name, _seg, q) = with_a_record_taken("stalerec", 2);
    // X takes the other, writes it for position 1 and stops before its claim CAS.
    let x = child_stopped_at(&name, "producer", "put-recorded", 0, false);
    // Y finds the table full of live participants and claims position 1 without a record.
    let mut y = child_stopped_at(&name, "producer", "put-claimed", 0, true);
    kill(x);
    // The only record naming position 1 is now a dead process's, but the claim is Y's, alive:
    // sleep slices come and go without a recovery.
    assert_eq!(
        q.get_timeout(Duration::from_millis(300)),
        Err(GetError::Timeout)
    );
    let s = q.stats();
    assert_eq!((s.tombstones, s.unattributed_claims), (0, 1));
    let_go(&mut y);
    let got: Vec<_> = (0..3)
        .map(|_| q.get_timeout(Duration::from_secs(10)))
        .collect();
    assert_eq!(got, vec![Ok(1), Ok(2), Ok(3)]);
    assert!(y.wait().unwrap().success());
    assert_eq!(q.stats().unattributed_claims, 0);
}

#[test]
fn thread_without_a_record_killed_holding_a_claim_turns_recovery_off_and_shows_in_stats() {
    // This thread takes the only record; the child then works without one.
    let (name, _seg, q) = with_a_record_taken("unattributed", 1);
    kill(child_stopped_at(&name, "producer", "put-claimed", 0, false));
    let s = q.stats();
    assert_eq!((s.len, s.unattributed_claims), (1, 1));
    // Its claim names no record, so nobody can tell it from a live one: the get waits to its
    // deadline and nothing is tombstoned (a stale record of some other dead process naming that
    // position must not be taken for its claimant either).
    let wait = Duration::from_millis(300);
    let t0 = Instant::now();
    assert_eq!(q.get_timeout(wait), Err(GetError::Timeout));
    assert!(t0.elapsed() >= wait);
    assert_eq!(q.stats().tombstones, 0);
}

#[test]
fn producer_that_exits_normally_leaves_its_messages_then_disconnected() {
    let name = unique("cleanexit");
    let seg = Segment::builder(&name)
        .queue::<u64>("q", 4)
        .create()
        .unwrap();
    let q = seg.queue::<u64>("q").unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap());
    child
        .args(["child_crash_role", "--exact", "--ignored", "--nocapture"])
        .env("SHMQ_TEST_CHILD", "1")
        .env("SHMQ_SEG", &name)
        .env("SHMQ_ROLE", "producer")
        .stdout(Stdio::null());
    let status = child.status().unwrap();
    assert!(status.success());
    // Everything it put before exiting is delivered, then the get reports the disconnect.
    let q2 = q.clone();
    let r = within(Duration::from_secs(20), move || {
        let got: Vec<_> = (0..3).map(|_| q2.get()).collect();
        (got, q2.get())
    });
    assert_eq!(r, (vec![Ok(1), Ok(2), Ok(3)], Err(GetError::Disconnected)));
}

#[test]
fn killed_creator_segment_is_reclaimed_by_the_next_create() {
    let name = unique("deadcreator");
    let creator = child_holding(&name, "creator");
    assert!(matches!(
        Segment::builder(&name).queue::<u64>("q", 4).create(),
        Err(shmq::CreateError::AlreadyExists)
    ));
    kill(creator);
    // Its creator is dead and nobody maps it: the name is reclaimed.
    let seg = Segment::builder(&name)
        .queue::<u64>("q", 4)
        .create()
        .unwrap();
    let q = seg.queue::<u64>("q").unwrap();
    q.put(5).unwrap();
    assert_eq!(get_from(&name), Ok(5));
}

#[test]
fn killed_creator_segment_still_mapped_by_a_live_process_is_never_reclaimed() {
    let name = unique("heldseg");
    let creator = child_holding(&name, "creator");
    let opened = Segment::open(&name).unwrap();
    let q = opened.queue::<u64>("q").unwrap();
    q.put(7).unwrap();
    kill(creator);
    // We still map it: a create must not take the name away from us.
    assert!(matches!(
        Segment::builder(&name).queue::<u64>("q", 4).create(),
        Err(shmq::CreateError::AlreadyExists)
    ));
    // And another opener still finds our segment, message included.
    assert_eq!(get_from(&name), Ok(7));
    drop(q);
    drop(opened);
    // Now nobody maps it: reclaimed.
    let fresh = Segment::builder(&name)
        .queue::<u64>("q", 4)
        .create()
        .unwrap();
    assert_eq!(fresh.queue::<u64>("q").unwrap().len(), 0);
}

#[test]
fn killed_creator_segment_created_with_keep_is_never_reclaimed() {
    let name = unique("keptseg");
    let creator = child_holding(&name, "creator-keep");
    kill(creator);
    assert!(matches!(
        Segment::builder(&name).queue::<u64>("q", 4).create(),
        Err(shmq::CreateError::AlreadyExists)
    ));
    assert!(Segment::open(&name).is_ok());
    Segment::unlink(&name).unwrap();
}

#[test]
fn creator_killed_mid_init_leaves_nothing_visible_and_the_next_create_cleans_up() {
    let name = unique("midinit");
    let creator = child_stopped_at(&name, "creator", "create-building", 0, false);
    let prefix = format!("{name}~init~");
    let temps = || -> Vec<String> {
        std::fs::read_dir("/dev/shm")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|f| f.starts_with(&prefix))
            .collect()
    };
    assert_eq!(
        temps().len(),
        1,
        "the half-built file lives under a temporary name"
    );
    kill(creator);
    assert!(matches!(
        Segment::open(&name),
        Err(shmq::OpenError::NotFound)
    ));
    let seg = Segment::builder(&name)
        .queue::<u64>("q", 4)
        .create()
        .unwrap();
    assert!(temps().is_empty(), "leftover: {:?}", temps());
    seg.queue::<u64>("q").unwrap().put(1).unwrap();
}

#[test]
fn slow_but_live_producer_is_never_tombstoned() {
    let name = unique("slowprod");
    let seg = Segment::builder(&name)
        .queue::<u64>("q", 4)
        .create()
        .unwrap();
    let q = seg.queue::<u64>("q").unwrap();
    // Held at its crash point with a claim: alive, just not making progress.
    let mut child = child_stopped_at(&name, "producer", "put-claimed", 0, true);
    assert_eq!(
        q.get_timeout(Duration::from_millis(300)),
        Err(GetError::Timeout)
    );
    assert_eq!(q.stats().tombstones, 0);
    // Let it go on: its message arrives.
    let_go(&mut child);
    assert_eq!(q.get_timeout(Duration::from_secs(10)).unwrap(), 1);
    assert!(child.wait().unwrap().success());
}

#[test]
fn writer_killed_mid_write_of_a_versioned_value_leaves_it_whole_and_writable() {
    let name = unique("midwrite");
    let seg = Segment::builder(&name)
        .versioned::<[u64; 8]>("v", [1; 8])
        .create()
        .unwrap();
    let v = seg.versioned::<[u64; 8]>("v").unwrap();
    let child = child_stopped_at(&name, "versioned-writer", "versioned-writing", 0, false);
    kill(child);
    // Readers see the last published value, whole, without waiting for anyone.
    let v2 = v.clone();
    assert_eq!(within(Duration::from_secs(10), move || v2.load()), [1; 8]);
    assert_eq!(v.version(), 0);
    // The next writer takes the dead writer's lock over and publishes a whole new value.
    let t0 = Instant::now();
    v.store_timeout([3; 8], Duration::from_secs(10)).unwrap();
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert_eq!(v.load(), [3; 8]);
    assert_eq!(v.version(), 1);
    assert_eq!(v.update(|x| x[7] = 4)[..], [3, 3, 3, 3, 3, 3, 3, 4]);
}

#[test]
fn getter_behind_a_live_claim_sleeps_until_the_kernel_reports_the_claimant_dead() {
    // Case 10 of the liveness work: an idle blocked getter does not poll, yet learns of its
    // claimant's death at once. The backstop slice is set to an hour, so only the death watch
    // (a pidfd the kernel makes readable at exit) can wake the getter in time.
    let name = unique("deathwatch");
    let seg = Segment::builder(&name)
        .queue::<u64>("q", 4)
        .create()
        .unwrap();
    let q = seg.queue::<u64>("q").unwrap();
    let claimer = child_holding(&name, "claim-then-hold");
    let mut getter = spawn_role(
        &name,
        "getter-report",
        &[("SHMQ_FAULT_WATCHED_SLICE_MS", "3600000")],
    );
    let pid = getter.id();
    let watchdog = Instant::now() + Duration::from_secs(60);
    while q.stats().waiting_getters == 0 || !all_threads_asleep(pid) {
        assert!(getter.try_wait().unwrap().is_none(), "the getter exited");
        assert!(Instant::now() < watchdog, "the getter never slept");
        std::thread::yield_now();
    }
    // Idle: the getter waits behind a live claimant. Polling every 50 ms (as before the death
    // watch) shows as ~20 switches here; a sleeper that is left alone shows none.
    let before = context_switches(pid);
    std::thread::sleep(Duration::from_secs(1)); // the observation window, not a synchronisation
    let idle = context_switches(pid) - before;
    assert!(
        idle <= 3,
        "an idle blocked getter switched {idle} times in 1 s"
    );
    kill(claimer);
    assert_eq!(
        result_of(getter).as_deref(),
        Some("SHMQ_RESULT Err(Disconnected)"),
        "the getter was not woken by its claimant's death"
    );
    assert_eq!(q.stats().tombstones, 1);
}

#[test]
fn lock_contender_asleep_is_woken_by_the_owners_death() {
    // The contender's backstop slice is an hour: only the death watch (a pidfd for the owner's
    // thread) can wake it when the owner is SIGKILLed. Contenders used to poll every 50 ms.
    let name = unique("lockwatch");
    let _seg = Segment::builder(&name).lock("l").create().unwrap();
    let owner = child_holding(&name, "lock-hold");
    let locker = spawn_role(
        &name,
        "locker-report",
        &[("SHMQ_FAULT_WATCHED_SLICE_MS", "3600000")],
    );
    let watchdog = Instant::now() + Duration::from_secs(60);
    while !all_threads_asleep(locker.id()) || context_switches(locker.id()) == 0 {
        assert!(Instant::now() < watchdog, "the contender never slept");
        std::thread::yield_now();
    }
    let before = context_switches(locker.id());
    std::thread::sleep(Duration::from_millis(500)); // the observation window
    let idle = context_switches(locker.id()) - before;
    assert!(
        idle <= 2,
        "an idle lock contender switched {idle} times in 0.5 s"
    );
    kill(owner);
    let r = result_of(locker);
    assert!(
        r.as_deref()
            .is_some_and(|l| l.starts_with("SHMQ_RESULT OwnerDead")),
        "{r:?}"
    );
}

#[test]
fn an_unreaped_dead_peer_does_not_keep_a_sleeper_awake() {
    // A killed producer that its parent (this test) has not reaped yet is a zombie: its pidfd
    // is readable at once. Watching it anew after every wake-up made each sleeper of the
    // watching process spin through rescans until the zombie was reaped.
    let name = unique("zombie");
    let seg = Segment::builder(&name)
        .queue::<u64>("q", 8)
        .create()
        .unwrap();
    let q = seg.queue::<u64>("q").unwrap();
    let alive = child_holding(&name, "producer-then-hold");
    let mut zombie = child_holding(&name, "producer-then-hold");
    let mut got: Vec<u64> = (0..6).map(|_| q.get().unwrap()).collect();
    got.sort_unstable();
    assert_eq!(got, vec![1, 1, 2, 2, 3, 3]);
    let getter = spawn_role(
        &name,
        "getter-report",
        &[("SHMQ_FAULT_WATCHED_SLICE_MS", "3600000")],
    );
    let watchdog = Instant::now() + Duration::from_secs(60);
    while q.stats().waiting_getters == 0 || !all_threads_asleep(getter.id()) {
        assert!(Instant::now() < watchdog, "the getter never slept");
        std::thread::yield_now();
    }
    // From the kill on: the getter wakes for the death, rescans once, and sleeps again.
    let before = context_switches(getter.id());
    zombie.kill().unwrap(); // not reaped yet
    std::thread::sleep(Duration::from_millis(500)); // the observation window
    let idle = context_switches(getter.id()) - before;
    // A sleeper that rescans after every wake-up switches hundreds of times in the window (it
    // spins through rescans and is preempted every tick); one that wakes once for the death
    // switches a few times, more when the machine is busy (preemptions count too: 6 was
    // seen with the other core loaded).
    assert!(
        idle <= 20,
        "a sleeper beside a zombie peer switched {idle} times in 0.5 s"
    );
    zombie.wait().unwrap();
    kill(alive);
    assert_eq!(
        result_of(getter).as_deref(),
        Some("SHMQ_RESULT Err(Disconnected)")
    );
}

/// A segment with a byte queue "b" of `capacity` whose messages above 240 bytes go through the
/// heap.
fn long_queue(tag: &str, capacity: u64) -> (String, Segment, shmq::BytesQueue) {
    let name = unique(tag);
    let seg = Segment::builder(&name)
        .bytes_queue("b", capacity, usize::MAX)
        .max_size(64 << 20)
        .create()
        .unwrap();
    let b = seg.bytes_queue("b").unwrap();
    (name, seg, b)
}

fn heap_blocks(seg: &Segment) -> (u64, u64) {
    let s = seg.stats().unwrap();
    (s.heap_blocks, s.reclaimed)
}

#[test]
fn producer_killed_holding_a_filled_long_message_leaks_no_heap_block() {
    let (name, seg, b) = long_queue("heap-filled", 4);
    // The child allocates and fills its second message's block, then is killed before any claim.
    let child = child_stopped_at(&name, "long-producer", "put-heap-filled", 1, false);
    assert_eq!(
        heap_blocks(&seg).0,
        2,
        "one message queued, one block held by the child"
    );
    kill(child);
    assert_eq!(
        heap_blocks(&seg),
        (1, 1),
        "the dead holder's block comes back"
    );
    assert_eq!(b.get().unwrap(), vec![0u8; 10_000]);
    assert_eq!(heap_blocks(&seg), (0, 1));
}

#[test]
fn producer_killed_after_handing_a_block_to_an_unpublished_slot_leaks_nothing() {
    let (name, seg, b) = long_queue("heap-handed", 4);
    let child = child_stopped_at(&name, "long-producer", "put-heap-handed", 0, false);
    kill(child);
    // The get steps over the dead claim (a tombstone) and recovery frees the block it named.
    assert_eq!(
        b.get_timeout(Duration::from_millis(200)),
        Err(GetError::Disconnected)
    );
    assert_eq!(b.stats().tombstones, 1);
    assert_eq!(heap_blocks(&seg), (0, 1));
    b.put(&[5u8; 3000]).unwrap();
    assert_eq!(b.get().unwrap(), vec![5u8; 3000]);
}

#[test]
fn consumer_killed_before_taking_a_long_message_leaks_no_heap_block() {
    // Once at position 0, once at position 1 (after a message went through): the dead claim's
    // slot is its position modulo the capacity, which the two tell apart from others.
    for warm in 0..2 {
        let (name, seg, b) = long_queue(&format!("heap-claimed-{warm}"), 2);
        for _ in 0..warm {
            b.put(&[9u8; 5000]).unwrap();
            assert_eq!(b.get().unwrap(), vec![9u8; 5000]);
        }
        b.put(&[1u8; 5000]).unwrap();
        b.put(&[2u8; 5000]).unwrap();
        // The child claims message 1 and is killed before it takes the block.
        let child = child_stopped_at(&name, "long-consumer", "get-claimed", 0, false);
        kill(child);
        // The full ring makes this put recover the dead claim: message 1 is lost, its block
        // freed (and not message 2's).
        b.put_timeout(&[3u8; 5000], Duration::from_secs(10))
            .unwrap();
        assert_eq!(b.stats().lost, 1);
        assert_eq!(heap_blocks(&seg), (2, 1));
        assert_eq!(b.get().unwrap(), vec![2u8; 5000]);
        assert_eq!(b.get().unwrap(), vec![3u8; 5000]);
        assert_eq!(heap_blocks(&seg), (0, 1));
    }
}

#[test]
fn consumer_killed_after_taking_a_long_message_leaks_no_heap_block() {
    let (name, seg, b) = long_queue("heap-taken", 2);
    b.put(&[1u8; 5000]).unwrap();
    b.put(&[2u8; 5000]).unwrap();
    // The child takes message 1's block (it owns it now) and is killed before releasing the slot.
    let child = child_stopped_at(&name, "long-consumer", "get-heap-taken", 0, false);
    kill(child);
    b.put_timeout(&[3u8; 5000], Duration::from_secs(10))
        .unwrap();
    assert_eq!(b.stats().lost, 1);
    // Recovery freed the block the dead consumer had taken, and counted the message once.
    assert_eq!(heap_blocks(&seg), (2, 1));
    assert_eq!(b.stats().lost, 1);
    assert_eq!(b.get().unwrap(), vec![2u8; 5000]);
    assert_eq!(b.get().unwrap(), vec![3u8; 5000]);
    assert_eq!(heap_blocks(&seg), (0, 1));
}

#[test]
fn heap_lock_owner_killed_mid_allocation_leaves_a_heap_the_next_process_can_use() {
    let (name, seg, b) = long_queue("heap-lock", 4);
    // The child holds the heap lock in the middle of growing the segment (file grown, size not
    // yet recorded) when it is killed.
    let child = child_stopped_at(&name, "long-producer", "heap-grown-file", 0, false);
    kill(child);
    let big = vec![9u8; 2 << 20];
    b.put(&big).unwrap();
    assert!(b.get().unwrap() == big);
    let (blocks, _) = heap_blocks(&seg);
    assert_eq!(blocks, 0);
}

fn unbounded_queue(tag: &str) -> (String, Segment, shmq::Queue<u64>) {
    let name = unique(tag);
    let seg = Segment::builder(&name)
        .unbounded_queue::<u64>("u")
        .max_size(64 << 20)
        .create()
        .unwrap();
    let u = seg.queue::<u64>("u").unwrap();
    (name, seg, u)
}

#[test]
fn unbounded_producer_killed_between_claim_and_publish_leaves_a_tombstone_in_its_link() {
    let (name, _seg, u) = unbounded_queue("unb-claim");
    // The child stops holding the claim of its 1500th put (in the second link).
    let child = child_stopped_at(&name, "unbounded-producer", "put-claimed", 1500, false);
    kill(child);
    u.put(u64::MAX).unwrap();
    let mut got = Vec::new();
    loop {
        match u.get_timeout(Duration::from_secs(10)) {
            Ok(u64::MAX) => break,
            Ok(v) => got.push(v),
            Err(e) => panic!("after {} items: {e:?}", got.len()),
        }
    }
    assert!(got == (0..1500).collect::<Vec<_>>(), "{} items", got.len());
    assert_eq!(u.stats().tombstones, 1);
}

#[test]
fn unbounded_producer_killed_right_after_installing_a_link_leaves_the_link_to_the_queue() {
    let (name, seg, u) = unbounded_queue("unb-link");
    // The child installs the second link (its 1025th put) and is killed before it hands the
    // link's block over to the queue: the block still names the dead child as its holder.
    let child = child_stopped_at(&name, "unbounded-producer", "chain-installed", 0, false);
    kill(child);
    // A sweep (stats runs one) must see the link is installed and keep it.
    let before = seg.stats().unwrap();
    assert_eq!(before.reclaimed, 0, "{before:?}");
    for v in 5000..8000 {
        u.put(v).unwrap();
    }
    let mut got = Vec::new();
    while let Ok(v) = u.try_get() {
        got.push(v);
    }
    let want: Vec<u64> = (0..1024).chain(5000..8000).collect();
    assert!(got == want, "{} items", got.len());
    assert_eq!(seg.stats().unwrap().reclaimed, 0);
}

#[test]
fn consumer_killed_reading_a_long_message_in_place_has_it_counted_lost_once_and_its_block_freed() {
    let (name, seg, b) = long_queue("heap-reading", 2);
    b.put(&[1u8; 5000]).unwrap();
    b.put(&[2u8; 5000]).unwrap();
    // The child took message 1 and is killed reading it in place (its slot still claimed).
    let child = child_stopped_at(&name, "long-consumer", "get-heap-reading", 0, false);
    kill(child);
    // A sweep alone gives the block back (its holder is gone) and counts nothing.
    assert_eq!(heap_blocks(&seg), (1, 1));
    assert_eq!(b.stats().lost, 0);
    // The full ring makes this put recover the dead claim: message 1 counted lost, once.
    b.put_timeout(&[3u8; 5000], Duration::from_secs(10))
        .unwrap();
    assert_eq!(b.stats().lost, 1);
    assert_eq!(b.get().unwrap(), vec![2u8; 5000]);
    assert_eq!(b.get().unwrap(), vec![3u8; 5000]);
    assert_eq!(heap_blocks(&seg), (0, 1));
    assert_eq!(b.stats().lost, 1);
}

#[test]
fn consumer_killed_freeing_a_drained_link_leaves_it_to_the_next_heap_user() {
    let (name, seg, u) = unbounded_queue("unb-free");
    for v in 0..3000 {
        u.put(v).unwrap();
    }
    // The child drains: leaving the first link it frees it, and is killed holding the heap lock
    // after taking the link out of the table, before freeing its block.
    let child = child_stopped_at(&name, "unbounded-consumer", "chain-link-unlisted", 0, false);
    kill(child);
    // The next heap user takes the lock over, rebuilds, and its sweep frees the orphaned link.
    let s = seg.stats().unwrap();
    assert!(s.reclaimed >= 1, "{s:?}");
    // The queue goes on: what the child did not take is still there, and new items flow.
    let mut left = Vec::new();
    while let Ok(v) = u.try_get() {
        left.push(v);
    }
    for v in 0..5000 {
        u.put(v).unwrap();
    }
    for v in 0..5000 {
        assert_eq!(u.get(), Ok(v));
    }
    let after = seg.stats().unwrap();
    assert!(after.heap_blocks <= 2, "{after:?}");
}

#[test]
fn producer_killed_the_instant_it_took_the_heap_lock_does_not_stop_the_heap() {
    let (name, seg, b) = long_queue("heap-locked", 4);
    // The child is killed right after its CAS on the heap lock, before any other store: the lock
    // word names its participant record, so the next heap user proves it dead and takes over.
    let child = child_stopped_at(&name, "long-producer", "heap-locked", 0, false);
    kill(child);
    let t0 = Instant::now();
    b.put(&[4u8; 3000]).unwrap();
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t0.elapsed()
    );
    assert_eq!(b.get().unwrap(), vec![4u8; 3000]);
    assert_eq!(heap_blocks(&seg).0, 0);
}

// ---- The shared dictionary ----

const DICT_KEYS: u32 = 40;

fn dict_key(i: u32) -> Vec<u8> {
    format!("key-{i}").into_bytes()
}

/// Version `v` of key `i`'s value: its own text repeated, so a torn value shows.
fn dict_value(i: u32, v: u32) -> Vec<u8> {
    format!("{i}/{v};")
        .into_bytes()
        .into_iter()
        .cycle()
        .take(100 + i as usize)
        .collect()
}

#[test]
fn dict_writer_killed_at_any_step_leaves_whole_entries_a_usable_lock_and_no_lost_block() {
    // (crash point, passes before stopping there): inserts, the first table's growths, a
    // replacement, a removal, and a writer holding the lock between changes.
    let points = [
        ("dict-entry-written", 5),
        ("dict-entry-written", 45),
        ("dict-committed", 5),
        ("dict-table-filled", 0),
        ("dict-table-filled", 1),
        ("dict-grown", 0),
        ("dict-replaced", 3),
        ("dict-removed", 2),
        ("dict-locked", 7),
    ];
    for (point, skip) in points {
        let name = unique(&format!("dict-{point}-{skip}"));
        let seg = Segment::builder(&name).bytes_dict("d").create().unwrap();
        let d = seg.bytes_dict("d").unwrap();
        let child = child_stopped_at(&name, "dict-writer", point, skip, false);
        kill(child);
        // The lock is taken over (the dead writer held it); every entry reads whole, old or
        // new.
        let start = Instant::now();
        let mut present = 0;
        for i in 0..DICT_KEYS {
            if let Some(v) = d.get(&dict_key(i)).unwrap() {
                assert!(
                    v == dict_value(i, 1) || v == dict_value(i, 2),
                    "{point}/{skip}: key {i} reads {:?}",
                    String::from_utf8_lossy(&v)
                );
                present += 1;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{point}: lock not taken over"
        );
        assert_eq!(d.len().unwrap(), present, "{point}/{skip}: len");
        // Nothing the dead writer allocated stays lost: after a sweep the heap holds the table
        // and the entries, no more (no table at all if the writer died making the first one).
        let blocks = seg.stats().unwrap().heap_blocks;
        let table = u64::from(present > 0);
        assert_eq!(
            blocks,
            present as u64 + table,
            "{point}/{skip}: heap blocks"
        );
        // And the dictionary goes on.
        for i in 0..DICT_KEYS {
            d.insert(&dict_key(i), &dict_value(i, 3)).unwrap();
        }
        assert_eq!(d.len().unwrap(), DICT_KEYS as usize);
        for i in 0..DICT_KEYS {
            assert_eq!(d.get(&dict_key(i)).unwrap(), Some(dict_value(i, 3)));
        }
        assert_eq!(seg.stats().unwrap().heap_blocks, DICT_KEYS as u64 + 1);
    }
}

#[test]
fn list_writer_killed_at_any_step_leaves_whole_items_a_usable_lock_and_no_lost_block() {
    let points = [
        ("list-item-written", 3),
        ("list-pushed", 8),
        ("list-array-filled", 0),
        ("list-array-filled", 1),
        ("list-array-replaced", 1),
        ("list-set", 2),
        ("list-popped", 0),
        ("list-array-filled", 3),
        ("list-array-replaced", 4),
        ("list-locked", 33),
        // The splice: its new array filled, then committed.
        ("list-array-filled", 6),
        ("list-array-replaced", 5),
    ];
    for (point, skip) in points {
        let name = unique(&format!("list-{point}-{skip}"));
        let seg = Segment::builder(&name).bytes_list("l").create().unwrap();
        let l = seg.bytes_list("l").unwrap();
        let child = child_stopped_at(&name, "list-writer", point, skip, false);
        kill(child);
        let items = l.to_vec().unwrap();
        let whole =
            |v: &[u8]| (0..100).any(|i| (1..=2).any(|ver| v == dict_value(i, ver).as_slice()));
        for (k, v) in items.iter().enumerate() {
            assert!(
                whole(v),
                "{point}/{skip}: item {k} reads {:?}",
                String::from_utf8_lossy(v)
            );
        }
        assert_eq!(l.len().unwrap(), items.len(), "{point}/{skip}");
        // After a sweep the heap holds the array and the items, no more (nothing at all if the
        // writer died making the first array).
        let blocks = seg.stats().unwrap().heap_blocks;
        assert!(
            blocks == items.len() as u64 + 1 || (items.is_empty() && blocks == 0),
            "{point}/{skip}: {blocks} heap blocks for {} items",
            items.len()
        );
        // And the list goes on.
        l.clear().unwrap();
        for i in 0..20 {
            l.push(&dict_value(i, 3)).unwrap();
        }
        assert_eq!(l.len().unwrap(), 20);
        assert_eq!(seg.stats().unwrap().heap_blocks, 21);
    }
}
