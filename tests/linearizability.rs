//! Linearizability of `Queue<u64>`, checked on short random concurrent histories.
//!
//! # What is checked
//!
//! A *history* is a set of completed operations on one queue, each with the thread that ran it,
//! its result, and an interval: an invocation and a response timestamp, both taken from one
//! global counter (`fetch_add(1, SeqCst)`) just before the call and just after it returned. The
//! history is *linearizable* if its operations can be put in one sequential order that
//!
//! * respects real time: if A's response stamp is below B's invocation stamp, A comes first;
//! * is accepted by the sequential specification, a bounded FIFO of capacity `C`: a put succeeds
//!   iff fewer than `C` values are queued (`try_put` returns `Full` iff exactly `C` are), a get
//!   returns the oldest value (`try_get` returns `Empty`, and `get_timeout` `Timeout`, iff none is
//!   queued), and `len()` returns the number queued.
//!
//! The recorded intervals contain the true ones (the stamps are taken outside the call), so they
//! can only allow more orders than the real execution did: a rejection is always a real violation.
//!
//! # How
//!
//! The checker is the backtracking search of Wing and Gong (1993, "Testing and verifying concurrent
//! objects"): from the empty prefix, it tries as the next operation each not yet linearized one that
//! was invoked before every other pending operation's response (nothing still pending had to come
//! before it), applies it to the specification, and goes deeper if the specification accepts it;
//! when nothing can be added it backtracks. As in Lowe's refinement (2017, "Testing for
//! linearizability", also the basis of the porcupine checker), it remembers each pair (set of
//! linearized operations, specification state) already explored and never explores one twice:
//! two orders of the same operations that leave the same queue contents have the same futures.
//! The set is a 64-bit mask, so a history has at most 64 operations; the ones here have about 30,
//! and a check takes microseconds.
//!
//! On failure the test prints the history per thread with its stamps, the longest linearizable
//! prefix the search found (with the queue contents after each step), and the operations that
//! real time would have allowed next, none of which the specification accepts there.
//!
//! # Histories
//!
//! Two kinds, each planned from a seed by a splitmix64 generator (the seed is printed on failure;
//! the plan replays exactly, the interleaving is up to the scheduler):
//!
//! * non-blocking: 2 to 4 threads each run a few random `try_put`, `try_get`, `get_timeout` (tens
//!   of microseconds) and, in the tests that include it, `len`;
//! * blocking: producer threads run blocking puts, consumer threads blocking gets, as many of each
//!   in total, so every blocking call completes; producers also run `try_get` and consumers
//!   `try_put`, and each success is paid back by one more blocking put (or get) by the same thread,
//!   which keeps the totals equal. Some puts and gets go through `put_with`/`get_with` with a
//!   `yield_now` inside the closure, so a claimed position stays unpublished (or unreleased) while
//!   the other threads run: this is what makes the windows between claiming and publishing visible
//!   on a machine with few cores.
//!
//! Threads start together from a `std::sync::Barrier` (and a spin until all are past it). After
//! they are joined, the queue is drained with `try_get` until `Empty`; the drain is recorded as one
//! more, sequential, thread of the history, so a value that was put and then lost (the final
//! `Empty` would be wrong) or delivered twice is caught too.
//!
//! # Tests
//!
//! * `checker_*`: hand-built histories the checker must accept or reject.
//! * `random_histories_are_linearizable`: both kinds on shmq, without `len`.
//! * `random_histories_with_len_are_linearizable`: both kinds with `len`. `len()` reads the
//!   tail, the head and the tail again until the tail held still across the head's read (both
//!   only grow), so it returns the length the queue had at that instant; a single read of each
//!   could return a length the queue never had (this test failed now and then before).
//! * `reference_queue_histories_are_linearizable`: the same recording and checking on a mutex
//!   around a `VecDeque`, linearizable by construction: shows that neither the recording nor the
//!   checker raises false alarms.
//! * `long_random_run` (ignored): `SHMQ_LIN_HISTORIES` histories (default 100 000) of each kind,
//!   with and without `len`.
//!
//! `SHMQ_LIN_SEED` sets the first seed (history `i` uses seed + `i`); with `SHMQ_LIN_REPLAY=1`
//! every history uses that one seed; with `SHMQ_LIN_KEEP_GOING=1` every failing history is
//! reported and the test fails at the end, instead of at the first.

mod common;

use shmq::{GetError, PutError, Queue, Segment};
use std::collections::{HashSet, VecDeque};
use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Barrier, Condvar, Mutex};
use std::time::Duration;

// ---------------------------------------------------------------------------------------------
// Histories
// ---------------------------------------------------------------------------------------------

/// One completed operation and its result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    /// Blocking put (`put` or `put_with`); it returned `Ok`.
    Put(u64),
    /// `try_put(v)`: `true` if it returned `Ok`, `false` for `Full`.
    TryPut(u64, bool),
    /// Blocking get (`get` or `get_with`) that returned this value.
    Get(u64),
    /// `try_get()`: the value, or `None` for `Empty`.
    TryGet(Option<u64>),
    /// `get_timeout(d)`: the value, or `None` for `Timeout`.
    GetTimeout(Option<u64>),
    /// `len()` and what it returned.
    Len(usize),
}

/// An operation with its thread and its interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Event {
    thread: usize,
    /// Stamp taken just before the call.
    call: u64,
    /// Stamp taken just after it returned.
    ret: u64,
    op: Op,
}

/// A value put by thread `t` as its `seq`-th: unique within a history, and readable in reports.
fn value(t: usize, seq: u64) -> u64 {
    ((t as u64 + 1) << 32) | seq
}

struct Val(u64);

impl fmt::Display for Val {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (t, seq) = (self.0 >> 32, self.0 & 0xffff_ffff);
        if t == 0 || t > 64 {
            write!(f, "{:#x}", self.0)
        } else {
            write!(f, "t{}.{}", t - 1, seq)
        }
    }
}

fn show_opt(v: Option<u64>, none: &str) -> String {
    v.map_or_else(|| none.to_string(), |v| Val(v).to_string())
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Op::Put(v) => write!(f, "put({}) -> Ok", Val(v)),
            Op::TryPut(v, ok) => {
                write!(
                    f,
                    "try_put({}) -> {}",
                    Val(v),
                    if ok { "Ok" } else { "Full" }
                )
            }
            Op::Get(v) => write!(f, "get() -> {}", Val(v)),
            Op::TryGet(v) => write!(f, "try_get() -> {}", show_opt(v, "Empty")),
            Op::GetTimeout(v) => write!(f, "get_timeout() -> {}", show_opt(v, "Timeout")),
            Op::Len(n) => write!(f, "len() -> {n}"),
        }
    }
}

fn show_queue(q: &VecDeque<u64>) -> String {
    let items: Vec<String> = q.iter().map(|&v| Val(v).to_string()).collect();
    format!("[{}]", items.join(", "))
}

// ---------------------------------------------------------------------------------------------
// Sequential specification
// ---------------------------------------------------------------------------------------------

/// Applies `op` with its recorded result to a bounded FIFO of capacity `cap` holding `q`.
/// Returns whether the specification allows that result here (and then `q` is the new state).
fn step(cap: usize, q: &mut VecDeque<u64>, op: Op) -> bool {
    match op {
        Op::Put(v) | Op::TryPut(v, true) => {
            if q.len() < cap {
                q.push_back(v);
                true
            } else {
                false
            }
        }
        Op::TryPut(_, false) => q.len() == cap,
        Op::Get(v) | Op::TryGet(Some(v)) | Op::GetTimeout(Some(v)) => {
            if q.front() == Some(&v) {
                q.pop_front();
                true
            } else {
                false
            }
        }
        Op::TryGet(None) | Op::GetTimeout(None) => q.is_empty(),
        Op::Len(n) => q.len() == n,
    }
}

// ---------------------------------------------------------------------------------------------
// Checker
// ---------------------------------------------------------------------------------------------

/// Why a history is not linearizable: the deepest prefix the search reached.
#[derive(Debug)]
struct Failure {
    /// Indices into the history, in linearization order.
    longest: Vec<usize>,
    /// (set, state) pairs explored.
    explored: usize,
}

struct Search<'a> {
    cap: usize,
    h: &'a [Event],
    all: u64,
    seen: HashSet<(u64, VecDeque<u64>)>,
    path: Vec<usize>,
    longest: Vec<usize>,
}

impl Search<'_> {
    /// Whether the operations not in `done` can be linearized after a prefix that left `state`.
    fn extend(&mut self, done: u64, state: &VecDeque<u64>) -> bool {
        if done == self.all {
            return true;
        }
        let pending = |i: &usize| done & (1 << i) == 0;
        // An operation can go next iff it was invoked before every pending response: otherwise
        // some pending operation returned before it started and must come first.
        let first_ret = (0..self.h.len())
            .filter(pending)
            .map(|i| self.h[i].ret)
            .min()
            .expect("something is pending");
        for i in (0..self.h.len()).filter(pending) {
            if self.h[i].call > first_ret {
                continue;
            }
            let mut next = state.clone();
            if !step(self.cap, &mut next, self.h[i].op) {
                continue;
            }
            let d = done | 1 << i;
            if !self.seen.insert((d, next.clone())) {
                continue;
            }
            self.path.push(i);
            if self.path.len() > self.longest.len() {
                self.longest.clone_from(&self.path);
            }
            if self.extend(d, &next) {
                return true;
            }
            self.path.pop();
        }
        false
    }
}

/// Checks that `h` is linearizable with respect to a bounded FIFO of capacity `cap` that starts
/// empty. Every event must have `call < ret`, and all stamps must be distinct.
/// On success returns the number of (set, state) pairs explored.
fn check(cap: usize, h: &[Event]) -> Result<usize, Failure> {
    assert!(h.len() <= 64, "history of {} ops: at most 64", h.len());
    let mut stamps = HashSet::new();
    for e in h {
        assert!(e.call < e.ret, "bad interval {e:?}");
        assert!(
            stamps.insert(e.call) && stamps.insert(e.ret),
            "stamp reused in {e:?}"
        );
    }
    let mut s = Search {
        cap,
        h,
        all: if h.len() == 64 {
            u64::MAX
        } else {
            (1 << h.len()) - 1
        },
        seen: HashSet::new(),
        path: Vec::new(),
        longest: Vec::new(),
    };
    if s.extend(0, &VecDeque::new()) {
        Ok(s.seen.len())
    } else {
        Err(Failure {
            longest: s.longest,
            explored: s.seen.len(),
        })
    }
}

/// A readable account of a history that failed the check.
fn report(cap: usize, h: &[Event], f: &Failure, drain_thread: Option<usize>) -> String {
    let t0 = h.iter().map(|e| e.call).min().unwrap_or(0);
    let name = |t: usize| {
        if Some(t) == drain_thread {
            "drain".to_string()
        } else {
            format!("t{t}")
        }
    };
    let line = |e: &Event| {
        format!(
            "{:>5} [{:>3}, {:>3}] {}",
            name(e.thread),
            e.call - t0,
            e.ret - t0,
            e.op
        )
    };
    let mut out = String::new();
    let threads: std::collections::BTreeSet<usize> = h.iter().map(|e| e.thread).collect();
    let _ = writeln!(
        out,
        "history not linearizable (capacity {cap}, {} ops; stamps relative to the first call):",
        h.len()
    );
    for t in threads {
        let mut evs: Vec<&Event> = h.iter().filter(|e| e.thread == t).collect();
        evs.sort_by_key(|e| e.call);
        for e in evs {
            let _ = writeln!(out, "  {}", line(e));
        }
    }
    let _ = writeln!(
        out,
        "longest linearizable prefix ({} of {} ops; {} states explored):",
        f.longest.len(),
        h.len(),
        f.explored
    );
    let mut q = VecDeque::new();
    let mut done = 0u64;
    for (k, &i) in f.longest.iter().enumerate() {
        assert!(step(cap, &mut q, h[i].op));
        done |= 1 << i;
        let _ = writeln!(
            out,
            "  {:>2}. {}   queue {}",
            k + 1,
            line(&h[i]),
            show_queue(&q)
        );
    }
    let pending: Vec<usize> = (0..h.len()).filter(|i| done & (1 << i) == 0).collect();
    if let Some(first_ret) = pending.iter().map(|&i| h[i].ret).min() {
        let _ = writeln!(
            out,
            "after it the queue holds {}; real time allows next (the specification accepts none):",
            show_queue(&q)
        );
        for &i in pending.iter().filter(|&&i| h[i].call < first_ret) {
            let _ = writeln!(out, "      {}", line(&h[i]));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Checker tests: hand-built histories
// ---------------------------------------------------------------------------------------------

/// Builds a history from `(thread, call, ret, op)`.
fn hist(evs: &[(usize, u64, u64, Op)]) -> Vec<Event> {
    evs.iter()
        .map(|&(thread, call, ret, op)| Event {
            thread,
            call,
            ret,
            op,
        })
        .collect()
}

fn accepts(cap: usize, evs: &[(usize, u64, u64, Op)]) {
    let h = hist(evs);
    if let Err(f) = check(cap, &h) {
        panic!(
            "rejected a linearizable history\n{}",
            report(cap, &h, &f, None)
        );
    }
}

/// Asserts the history is rejected and returns the length of the longest prefix found.
fn rejects(cap: usize, evs: &[(usize, u64, u64, Op)]) -> usize {
    let h = hist(evs);
    match check(cap, &h) {
        Ok(_) => panic!("accepted a non-linearizable history: {h:#?}"),
        Err(f) => {
            // The report must render (it replays the prefix through the specification).
            let _ = report(cap, &h, &f, None);
            f.longest.len()
        }
    }
}

const A: u64 = 1;
const B: u64 = 2;
const C: u64 = 3;

#[test]
fn checker_accepts_sequential_fifo() {
    accepts(
        2,
        &[
            (0, 0, 1, Op::TryPut(A, true)),
            (0, 2, 3, Op::Put(B)),
            (0, 4, 5, Op::TryPut(C, false)),
            (0, 6, 7, Op::Len(2)),
            (0, 8, 9, Op::TryGet(Some(A))),
            (0, 10, 11, Op::Get(B)),
            (0, 12, 13, Op::TryGet(None)),
            (0, 14, 15, Op::GetTimeout(None)),
            (0, 16, 17, Op::Len(0)),
        ],
    );
}

#[test]
fn checker_accepts_empty_get_overlapping_a_put() {
    // The get may be linearized before the put.
    accepts(
        1,
        &[(0, 0, 3, Op::TryPut(A, true)), (1, 1, 2, Op::TryGet(None))],
    );
    // A get may even return a value whose put has not returned yet.
    accepts(1, &[(0, 0, 5, Op::Put(A)), (1, 1, 2, Op::TryGet(Some(A)))]);
}

#[test]
fn checker_accepts_overlapping_puts_in_either_order() {
    // The first order tried (A before B) fails at the first get: the search must backtrack.
    accepts(
        2,
        &[
            (0, 0, 10, Op::Put(A)),
            (1, 1, 11, Op::Put(B)),
            (2, 12, 13, Op::TryGet(Some(B))),
            (2, 14, 15, Op::TryGet(Some(A))),
        ],
    );
    accepts(
        2,
        &[
            (0, 0, 10, Op::Put(A)),
            (1, 1, 11, Op::Put(B)),
            (2, 12, 13, Op::TryGet(Some(A))),
            (2, 14, 15, Op::TryGet(Some(B))),
        ],
    );
}

#[test]
fn checker_accepts_full_and_len_during_overlap() {
    // Capacity 1: B's try_put is Full because it is linearized between A's put and C's get.
    accepts(
        1,
        &[
            (0, 0, 1, Op::Put(A)),
            (1, 2, 9, Op::TryPut(B, false)),
            (2, 3, 8, Op::TryGet(Some(A))),
            (2, 10, 11, Op::Len(0)),
        ],
    );
    // len overlapping a put and a get may see 0 or 1.
    for n in [0, 1] {
        accepts(
            2,
            &[
                (0, 0, 6, Op::Put(A)),
                (1, 1, 7, Op::TryGet(Some(A))),
                (2, 2, 5, Op::Len(n)),
            ],
        );
    }
}

#[test]
fn checker_rejects_empty_after_a_completed_put() {
    // A's put returned before B's try_get was called, and nothing else ran.
    let prefix = rejects(
        1,
        &[(0, 0, 1, Op::TryPut(A, true)), (1, 2, 3, Op::TryGet(None))],
    );
    assert_eq!(prefix, 1);
    // Same through get_timeout and with a second value put by another thread: still wrong.
    rejects(
        2,
        &[
            (0, 0, 1, Op::Put(A)),
            (1, 2, 3, Op::Put(B)),
            (1, 4, 5, Op::GetTimeout(None)),
        ],
    );
}

#[test]
fn checker_rejects_value_got_twice() {
    rejects(
        2,
        &[
            (0, 0, 1, Op::Put(A)),
            (1, 2, 5, Op::TryGet(Some(A))),
            (2, 3, 6, Op::Get(A)),
        ],
    );
}

#[test]
fn checker_rejects_value_never_put() {
    rejects(2, &[(0, 0, 3, Op::Put(A)), (1, 1, 2, Op::TryGet(Some(B)))]);
}

#[test]
fn checker_rejects_fifo_violation() {
    // A's put returned before B's started, so A must come out first.
    let prefix = rejects(
        2,
        &[
            (0, 0, 1, Op::Put(A)),
            (0, 2, 3, Op::Put(B)),
            (1, 4, 5, Op::TryGet(Some(B))),
            (1, 6, 7, Op::TryGet(Some(A))),
        ],
    );
    assert_eq!(prefix, 2);
}

#[test]
fn checker_rejects_wrong_len() {
    rejects(4, &[(0, 0, 1, Op::Len(3))]);
    // len 2 while at most one value was ever in the queue.
    rejects(
        2,
        &[
            (0, 0, 1, Op::Put(A)),
            (1, 2, 9, Op::Len(2)),
            (0, 3, 4, Op::TryGet(Some(A))),
            (0, 5, 6, Op::Put(B)),
        ],
    );
}

#[test]
fn checker_rejects_bad_full_and_overfill() {
    // Full on an empty queue.
    rejects(2, &[(0, 0, 1, Op::TryPut(A, false))]);
    // Full though the only value was taken before the call.
    rejects(
        1,
        &[
            (0, 0, 1, Op::Put(A)),
            (1, 2, 3, Op::TryGet(Some(A))),
            (0, 4, 5, Op::TryPut(B, false)),
        ],
    );
    // Two values in a queue of capacity 1.
    rejects(1, &[(0, 0, 1, Op::Put(A)), (1, 2, 3, Op::TryPut(B, true))]);
}

#[test]
fn checker_rejects_when_every_order_fails() {
    // Overlapping puts leave both values queued; after B is taken, A remains, so Empty is wrong
    // whichever order the puts took.
    rejects(
        2,
        &[
            (0, 0, 10, Op::Put(A)),
            (1, 1, 11, Op::Put(B)),
            (2, 12, 13, Op::TryGet(Some(B))),
            (2, 14, 15, Op::TryGet(None)),
            (2, 16, 17, Op::TryGet(Some(A))),
        ],
    );
}

#[test]
fn checker_memoisation_keeps_commuting_ops_cheap() {
    // Twelve mutually overlapping reads that leave the state alone, then a violation: without the
    // memo the search would try all 12! orders of the reads before giving up; with it, each of
    // the 2^12 sets once.
    let mut evs = Vec::new();
    for k in 0..12u64 {
        let op = if k % 2 == 0 {
            Op::Len(0)
        } else {
            Op::TryGet(None)
        };
        evs.push((k as usize, k, 100 + k, op));
    }
    evs.push((0, 200, 201, Op::Put(A)));
    let explored = check(1, &hist(&evs)).unwrap();
    assert!(explored < 2 * 4096, "explored {explored}");
    evs.push((1, 202, 203, Op::TryGet(None)));
    let f = check(1, &hist(&evs)).unwrap_err();
    assert_eq!(f.longest.len(), 13);
    assert!(f.explored < 2 * 4096, "explored {}", f.explored);
}

// ---------------------------------------------------------------------------------------------
// Recording histories on the real queue
// ---------------------------------------------------------------------------------------------

/// The global clock for invocation and response stamps.
static CLOCK: AtomicU64 = AtomicU64::new(0);

fn tick() -> u64 {
    CLOCK.fetch_add(1, Ordering::SeqCst)
}

/// splitmix64 (Steele, Lea and Flood).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    fn chance(&mut self, num: u64, den: u64) -> bool {
        self.next() % den < num
    }
}

/// A planned call.
#[derive(Clone, Copy, Debug)]
enum Step {
    TryPut,
    TryGet,
    GetTimeout(Duration),
    Len,
    /// Not a call: `yield_now`, to vary the interleavings when threads outnumber cores.
    Yield,
    /// Blocking put; `slow` goes through `put_with` and yields while holding the claim.
    Put {
        slow: bool,
    },
    /// Blocking get; `slow` goes through `get_with` and yields while holding the claim.
    Get {
        slow: bool,
    },
}

/// Which calls a history may contain.
#[derive(Clone, Copy, Debug)]
struct Mix {
    /// Blocking puts and gets (balanced), with `try_get` in producers and `try_put` in consumers;
    /// otherwise only non-blocking calls.
    blocking: bool,
    /// Include `len()`.
    len: bool,
}

/// What a thread of a blocking history does with the values its non-blocking calls move.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// Non-blocking history: nothing to pay back.
    Any,
    /// Puts one more value (blocking) for each value its `try_get` takes.
    Producer,
    /// Takes one more value (blocking) for each value its `try_put` adds.
    Consumer,
}

/// A planned history.
#[derive(Debug)]
struct Plan {
    seed: u64,
    /// Capacity of the queue, 1 to 4.
    cap: usize,
    threads: Vec<(Role, Vec<Step>)>,
}

fn plan(seed: u64, mix: Mix) -> Plan {
    let mut r = Rng(seed);
    let cap = r.range(1, 4) as usize;
    let n = r.range(2, 4) as usize;
    let mut threads = vec![(Role::Any, Vec::new()); n];
    if !mix.blocking {
        let per = 24 / n as u64;
        for (_, t) in &mut threads {
            for _ in 0..r.range(2, per) {
                if r.chance(1, 4) {
                    t.push(Step::Yield);
                }
                let x = r.range(0, 99);
                let s = match x {
                    0..=34 => Step::TryPut,
                    35..=69 => Step::TryGet,
                    70..=79 => Step::GetTimeout(Duration::from_micros(r.range(5, 50))),
                    _ if mix.len => Step::Len,
                    _ if x % 2 == 0 => Step::TryPut,
                    _ => Step::TryGet,
                };
                t.push(s);
            }
        }
    } else {
        // Threads 0..producers put, the others get; as many blocking puts as gets.
        let producers = r.range(1, n as u64 - 1) as usize;
        let total = r.range(1, 10);
        let mut puts = vec![0u64; n];
        let mut gets = vec![0u64; n];
        for _ in 0..total {
            puts[r.range(0, producers as u64 - 1) as usize] += 1;
            gets[r.range(producers as u64, n as u64 - 1) as usize] += 1;
        }
        for (t, (role, steps)) in threads.iter_mut().enumerate() {
            let producer = t < producers;
            *role = if producer {
                Role::Producer
            } else {
                Role::Consumer
            };
            for _ in 0..(if producer { puts[t] } else { gets[t] }) {
                let slow = r.chance(1, 3);
                steps.push(if producer {
                    Step::Put { slow }
                } else {
                    Step::Get { slow }
                });
            }
            // A few extra non-blocking calls at random places.
            for _ in 0..r.range(0, 3) {
                let s = if mix.len && r.chance(1, 3) {
                    Step::Len
                } else if producer {
                    Step::TryGet
                } else {
                    Step::TryPut
                };
                let at = r.range(0, steps.len() as u64) as usize;
                steps.insert(at, s);
            }
        }
    }
    Plan { seed, cap, threads }
}

/// A queue under test: the calls a history makes.
trait Target: Sync {
    fn try_put(&self, v: u64) -> Result<(), PutError<u64>>;
    fn try_get(&self) -> Result<u64, GetError>;
    fn get_timeout(&self, d: Duration) -> Result<u64, GetError>;
    fn len(&self) -> usize;
    /// Blocking put; `slow` yields to other threads while the put is under way.
    fn put(&self, v: u64, slow: bool) -> Result<(), PutError<u64>>;
    /// Blocking get; `slow` yields to other threads while the get is under way.
    fn get(&self, slow: bool) -> Result<u64, GetError>;
}

impl Target for Queue<u64> {
    fn try_put(&self, v: u64) -> Result<(), PutError<u64>> {
        Queue::try_put(self, v)
    }
    fn try_get(&self) -> Result<u64, GetError> {
        Queue::try_get(self)
    }
    fn get_timeout(&self, d: Duration) -> Result<u64, GetError> {
        Queue::get_timeout(self, d)
    }
    fn len(&self) -> usize {
        Queue::len(self)
    }
    fn put(&self, v: u64, slow: bool) -> Result<(), PutError<u64>> {
        if slow {
            // The closure runs between claiming the slot and publishing it.
            self.put_with(|slot| {
                std::thread::yield_now();
                *slot = v;
            })
            .map_err(|e| match e {
                PutError::Full(()) => PutError::Full(v),
                PutError::Closed(()) => PutError::Closed(v),
                PutError::Timeout(()) => PutError::Timeout(v),
                PutError::Corrupt(()) => PutError::Corrupt(v),
                PutError::NoSpace(()) => PutError::NoSpace(v),
            })
        } else {
            Queue::put(self, v)
        }
    }
    fn get(&self, slow: bool) -> Result<u64, GetError> {
        if slow {
            // The closure runs between claiming the slot and releasing it.
            self.get_with(|v| {
                std::thread::yield_now();
                *v
            })
        } else {
            Queue::get(self)
        }
    }
}

/// A queue that is linearizable by construction (a `VecDeque` under a mutex), recorded and checked
/// the same way as shmq's: it must pass, or the recording or the checker is wrong.
struct Locked {
    cap: usize,
    q: Mutex<VecDeque<u64>>,
    changed: Condvar,
}

impl Locked {
    fn new(cap: usize) -> Self {
        Self {
            cap,
            q: Mutex::new(VecDeque::new()),
            changed: Condvar::new(),
        }
    }
}

impl Target for Locked {
    fn try_put(&self, v: u64) -> Result<(), PutError<u64>> {
        let mut q = self.q.lock().unwrap();
        if q.len() == self.cap {
            return Err(PutError::Full(v));
        }
        q.push_back(v);
        self.changed.notify_all();
        Ok(())
    }
    fn try_get(&self) -> Result<u64, GetError> {
        let v = self.q.lock().unwrap().pop_front().ok_or(GetError::Empty)?;
        self.changed.notify_all();
        Ok(v)
    }
    fn get_timeout(&self, d: Duration) -> Result<u64, GetError> {
        let q = self.q.lock().unwrap();
        let (mut q, _) = self
            .changed
            .wait_timeout_while(q, d, |q| q.is_empty())
            .unwrap();
        let v = q.pop_front().ok_or(GetError::Timeout)?;
        self.changed.notify_all();
        Ok(v)
    }
    fn len(&self) -> usize {
        self.q.lock().unwrap().len()
    }
    fn put(&self, v: u64, slow: bool) -> Result<(), PutError<u64>> {
        let q = self.q.lock().unwrap();
        let mut q = self.changed.wait_while(q, |q| q.len() == self.cap).unwrap();
        if slow {
            std::thread::yield_now();
        }
        q.push_back(v);
        self.changed.notify_all();
        Ok(())
    }
    fn get(&self, slow: bool) -> Result<u64, GetError> {
        let q = self.q.lock().unwrap();
        let mut q = self.changed.wait_while(q, |q| q.is_empty()).unwrap();
        if slow {
            std::thread::yield_now();
        }
        let v = q.pop_front().ok_or(GetError::Corrupt)?;
        self.changed.notify_all();
        Ok(v)
    }
}

/// One queue of each capacity 1..=4 (`qs[c - 1]` has capacity `c`), and what keeps them alive.
struct Queues<Q> {
    qs: Vec<Q>,
    _seg: Option<Segment>,
}

/// shmq queues, in one segment per test.
fn shmq_queues(tag: &str) -> Queues<Queue<u64>> {
    let name = common::unique(&format!("lin-{tag}"));
    let mut b = Segment::builder(&name);
    for c in 1..=4u64 {
        b = b.queue::<u64>(&format!("q{c}"), c);
    }
    let seg = b.create_or_replace().unwrap();
    let qs: Vec<Queue<u64>> = (1..=4)
        .map(|c| seg.queue::<u64>(&format!("q{c}")).unwrap())
        .collect();
    // This thread (alive while every history runs) becomes a producer of each queue, so none
    // is ever `Disconnected`: the producers of a history come and go, and between one leaving
    // and the next putting, a getter may rightly report that every producer is gone.
    for q in &qs {
        q.put(0).unwrap();
        assert_eq!(q.try_get(), Ok(0));
    }
    Queues {
        qs,
        _seg: Some(seg),
    }
}

fn locked_queues() -> Queues<Locked> {
    Queues {
        qs: (1..=4).map(Locked::new).collect(),
        _seg: None,
    }
}

/// Starts the threads of a history together: a [`Barrier`], then a spin until every thread is
/// past it. The barrier alone releases them one futex wake at a time, microseconds apart, long
/// enough for a thread's short run of non-blocking calls to end before the next one starts.
struct Start {
    barrier: Barrier,
    arrived: AtomicUsize,
    n: usize,
}

impl Start {
    fn new(n: usize) -> Self {
        Self {
            barrier: Barrier::new(n),
            arrived: AtomicUsize::new(0),
            n,
        }
    }

    fn go(&self) {
        self.barrier.wait();
        self.arrived.fetch_add(1, Ordering::SeqCst);
        while self.arrived.load(Ordering::SeqCst) < self.n {
            // More threads than cores: let the ones not yet running get there.
            std::thread::yield_now();
        }
    }
}

/// Runs one thread's steps and records them.
fn run_thread(
    q: &impl Target,
    t: usize,
    (role, steps): &(Role, Vec<Step>),
    seed: u64,
    start: &Start,
) -> Vec<Event> {
    let mut todo: VecDeque<Step> = steps.iter().copied().collect();
    let mut out = Vec::with_capacity(todo.len() + 4);
    let mut seq = 0u64;
    let mut fresh = || {
        seq += 1;
        value(t, seq)
    };
    let fail = |what: &str| -> ! { panic!("seed {seed:#x}, thread {t}: {what}") };
    start.go();
    while let Some(s) = todo.pop_front() {
        let (call, op, ret);
        match s {
            Step::TryPut => {
                let v = fresh();
                call = tick();
                let r = q.try_put(v);
                ret = tick();
                op = match r {
                    Ok(()) => Op::TryPut(v, true),
                    Err(PutError::Full(x)) if x == v => Op::TryPut(v, false),
                    Err(e) => fail(&format!("try_put: {e:?}")),
                };
                if op == Op::TryPut(v, true) && *role == Role::Consumer {
                    // A consumer's extra value: take one more to keep puts and gets equal.
                    todo.push_back(Step::Get { slow: false });
                }
            }
            Step::TryGet => {
                call = tick();
                let r = q.try_get();
                ret = tick();
                op = match r {
                    Ok(v) => Op::TryGet(Some(v)),
                    Err(GetError::Empty) => Op::TryGet(None),
                    Err(e) => fail(&format!("try_get: {e:?}")),
                };
                if matches!(op, Op::TryGet(Some(_))) && *role == Role::Producer {
                    // A producer took a value: put one more.
                    todo.push_back(Step::Put { slow: false });
                }
            }
            Step::GetTimeout(d) => {
                call = tick();
                let r = q.get_timeout(d);
                ret = tick();
                op = match r {
                    Ok(v) => Op::GetTimeout(Some(v)),
                    Err(GetError::Timeout) => Op::GetTimeout(None),
                    Err(e) => fail(&format!("get_timeout: {e:?}")),
                };
            }
            Step::Yield => {
                std::thread::yield_now();
                continue;
            }
            Step::Len => {
                call = tick();
                let n = q.len();
                ret = tick();
                op = Op::Len(n);
            }
            Step::Put { slow } => {
                let v = fresh();
                call = tick();
                let r = q.put(v, slow);
                ret = tick();
                if let Err(e) = r {
                    fail(&format!("put: {e:?}"));
                }
                op = Op::Put(v);
            }
            Step::Get { slow } => {
                call = tick();
                let r = q.get(slow);
                ret = tick();
                op = match r {
                    Ok(v) => Op::Get(v),
                    Err(e) => fail(&format!("get: {e:?}")),
                };
            }
        }
        out.push(Event {
            thread: t,
            call,
            ret,
            op,
        });
    }
    out
}

/// Runs a planned history on `qs` and returns it, the drain included (as thread
/// `plan.threads.len()`). The queue must be empty on entry; it is empty again on return.
fn record<Q: Target>(qs: &Queues<Q>, p: &Plan) -> Vec<Event> {
    let q = &qs.qs[p.cap - 1];
    let n = p.threads.len();
    let start = Start::new(n);
    let mut h: Vec<Event> = std::thread::scope(|s| {
        let handles: Vec<_> = p
            .threads
            .iter()
            .enumerate()
            .map(|(t, steps)| {
                let start = &start;
                s.spawn(move || run_thread(q, t, steps, p.seed, start))
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|j| j.join().unwrap())
            .collect()
    });
    // Every thread is joined, so no claim is in flight: try_get until Empty drains exactly. A
    // correct queue needs at most `capacity + 1` calls; allow one more, for the check to reject.
    for _ in 0..p.cap + 2 {
        let call = tick();
        let r = q.try_get();
        let ret = tick();
        let op = match r {
            Ok(v) => Op::TryGet(Some(v)),
            Err(GetError::Empty) => Op::TryGet(None),
            Err(e) => panic!("seed {:#x}, drain: {e:?}", p.seed),
        };
        h.push(Event {
            thread: n,
            call,
            ret,
            op,
        });
        if op == Op::TryGet(None) {
            break;
        }
    }
    h
}

/// Counts, to show that the histories exercise what they should.
#[derive(Default, Debug)]
struct Tally {
    histories: u64,
    ops: u64,
    /// Histories where some two operations of different threads overlap.
    overlapping: u64,
    empty: u64,
    full: u64,
    got: u64,
    max_explored: usize,
    /// Histories that failed the check (only with `SHMQ_LIN_KEEP_GOING`).
    failed: u64,
}

fn overlaps(h: &[Event]) -> bool {
    h.iter().any(|a| {
        h.iter()
            .any(|b| a.thread != b.thread && a.call < b.call && b.call < a.ret)
    })
}

fn env_u64(k: &str) -> Option<u64> {
    std::env::var(k).ok().map(|v| {
        let v = v.trim();
        match v.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16),
            None => v.parse(),
        }
        .unwrap_or_else(|_| panic!("{k}={v:?} is not a number"))
    })
}

const DEFAULT_SEED: u64 = 0x5eed_0000;

/// A hang (a blocking call that never returns) fails the process instead of hanging it: if no
/// history starts for `limit`, prints the last seed and aborts.
fn watchdog(tag: &'static str, limit: Duration) -> mpsc::Sender<u64> {
    let (tx, rx) = mpsc::channel::<u64>();
    std::thread::spawn(move || {
        let mut last = None;
        loop {
            match rx.recv_timeout(limit) {
                Ok(seed) => last = Some(seed),
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    eprintln!("{tag}: no progress for {limit:?}; stuck in history seed {last:#x?}");
                    std::process::abort();
                }
            }
        }
    });
    tx
}

/// Records and checks `count` histories of `mix`, seeds from `first` (or all `first` if
/// `replay`). Panics at the first one that fails, with its report and seed; with
/// `SHMQ_LIN_KEEP_GOING=1`, prints every failing history and panics at the end.
fn run<Q: Target>(
    qs: &Queues<Q>,
    tag: &'static str,
    mix: Mix,
    first: u64,
    count: u64,
    replay: bool,
) -> Tally {
    let progress = watchdog(tag, Duration::from_secs(60));
    let keep_going = env_u64("SHMQ_LIN_KEEP_GOING").unwrap_or(0) != 0;
    let mut tally = Tally::default();
    for i in 0..count {
        let seed = if replay { first } else { first.wrapping_add(i) };
        let _ = progress.send(seed);
        let p = plan(seed, mix);
        let h = record(qs, &p);
        tally.histories += 1;
        tally.ops += h.len() as u64;
        tally.overlapping += overlaps(&h) as u64;
        for e in &h {
            match e.op {
                Op::TryGet(None) | Op::GetTimeout(None) if e.thread < p.threads.len() => {
                    tally.empty += 1
                }
                Op::TryPut(_, false) => tally.full += 1,
                Op::Get(_) | Op::TryGet(Some(_)) | Op::GetTimeout(Some(_)) => tally.got += 1,
                _ => {}
            }
        }
        match check(p.cap, &h) {
            Ok(explored) => tally.max_explored = tally.max_explored.max(explored),
            Err(f) => {
                let msg = format!(
                    "{tag}: seed {seed:#x} ({mix:?}, {} threads): {}\nplan: {:?}\nreplay the plan: \
                     SHMQ_LIN_SEED={seed:#x} SHMQ_LIN_REPLAY=1 SHMQ_LIN_HISTORIES=<n> cargo test \
                     --test linearizability -- --ignored long_random_run",
                    p.threads.len(),
                    report(p.cap, &h, &f, Some(p.threads.len())),
                    p.threads
                );
                if !keep_going {
                    panic!("{msg}");
                }
                eprintln!("{msg}\n");
                tally.failed += 1;
            }
        }
    }
    println!("{tag}: {tally:?}");
    tally
}

fn assert_all_passed(tallies: &[(&str, &Tally)]) {
    for (tag, t) in tallies {
        assert_eq!(
            t.failed, 0,
            "{tag}: histories not linearizable (reports above)"
        );
    }
}

const NON_BLOCKING: Mix = Mix {
    blocking: false,
    len: false,
};
const BLOCKING: Mix = Mix {
    blocking: true,
    len: false,
};
const NON_BLOCKING_LEN: Mix = Mix {
    blocking: false,
    len: true,
};
const BLOCKING_LEN: Mix = Mix {
    blocking: true,
    len: true,
};

fn first_seed() -> u64 {
    env_u64("SHMQ_LIN_SEED").unwrap_or(DEFAULT_SEED)
}

#[test]
fn random_histories_are_linearizable() {
    let qs = shmq_queues("plain");
    let nb = run(&qs, "nb", NON_BLOCKING, first_seed(), 2000, false);
    assert!(nb.overlapping > 0 && nb.empty > 0 && nb.full > 0 && nb.got > 0);
    let bl = run(&qs, "bl", BLOCKING, first_seed(), 1000, false);
    assert!(bl.overlapping > 0 && bl.empty > 0 && bl.full > 0);
    assert_all_passed(&[("nb", &nb), ("bl", &bl)]);
}

#[test]
fn random_histories_with_len_are_linearizable() {
    let qs = shmq_queues("len");
    let nb = run(&qs, "nb-len", NON_BLOCKING_LEN, first_seed(), 2000, false);
    let bl = run(&qs, "bl-len", BLOCKING_LEN, first_seed(), 1000, false);
    assert!(nb.overlapping > 0 && bl.overlapping > 0);
    assert_all_passed(&[("nb-len", &nb), ("bl-len", &bl)]);
}

/// The same histories on a queue that is linearizable by construction: the recording and the
/// checker raise no false alarm (and the tallies show the histories are as concurrent there).
#[test]
fn reference_queue_histories_are_linearizable() {
    let qs = locked_queues();
    let mut tallies = Vec::new();
    for (tag, mix) in [("ref-nb", NON_BLOCKING_LEN), ("ref-bl", BLOCKING_LEN)] {
        tallies.push((tag, run(&qs, tag, mix, first_seed(), 1000, false)));
    }
    for (tag, t) in &tallies {
        assert!(
            t.overlapping > 0 && t.empty > 0 && t.full > 0,
            "{tag}: {t:?}"
        );
    }
    let refs: Vec<(&str, &Tally)> = tallies.iter().map(|(t, x)| (*t, x)).collect();
    assert_all_passed(&refs);
}

#[test]
#[ignore = "long: run by hand, SHMQ_LIN_HISTORIES sets the number of histories per kind"]
fn long_random_run() {
    let n = env_u64("SHMQ_LIN_HISTORIES").unwrap_or(100_000);
    let replay = env_u64("SHMQ_LIN_REPLAY").unwrap_or(0) != 0;
    let qs = shmq_queues("long");
    let mut tallies = Vec::new();
    for (tag, mix) in [
        ("long-nb", NON_BLOCKING),
        ("long-bl", BLOCKING),
        ("long-nb-len", NON_BLOCKING_LEN),
        ("long-bl-len", BLOCKING_LEN),
    ] {
        tallies.push((tag, run(&qs, tag, mix, first_seed(), n, replay)));
    }
    let refs: Vec<(&str, &Tally)> = tallies.iter().map(|(t, x)| (*t, x)).collect();
    assert_all_passed(&refs);
}
