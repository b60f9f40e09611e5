//! Helpers for tests that run real processes: the test binary re-executes itself with
//! `--exact <child test> --ignored`, and the child test reads its role from the environment.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};

/// A segment name unique to this process and test: the process id, a nonce drawn once per
/// process, and the tag. The nonce keeps a name that a killed run left in /dev/shm from colliding
/// with a later process that reuses its pid (`create` would find it there).
pub fn unique(tag: &str) -> String {
    format!("shmq-test-{}-{:08x}-{tag}", std::process::id(), nonce())
}

/// A random number drawn once per process (std's hasher keys come from the OS's randomness).
pub fn nonce() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    static NONCE: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *NONCE.get_or_init(|| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.finish() as u32
    })
}

/// Starts this test binary again, running only `child_test` (an `#[ignore]`d test), with the
/// given environment. Its stdout is piped.
pub fn spawn_child(child_test: &str, env: &[(&str, String)]) -> Child {
    let exe = std::env::current_exe().expect("current_exe");
    let mut cmd = Command::new(exe);
    cmd.args([
        child_test,
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("SHMQ_TEST_CHILD", "1")
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("spawn child")
}

/// The value of a variable the parent passed to a child (panics if absent: a child without it
/// was not started by a parent test).
pub fn child_var(k: &str) -> String {
    std::env::var(k)
        .unwrap_or_else(|_| panic!("child test run without {k}; run it through its parent test"))
}

/// Waits for a child and returns its stdout; panics if it failed.
pub fn finish(child: Child) -> Vec<u8> {
    let out = child.wait_with_output().expect("wait child");
    assert!(out.status.success(), "child failed: {:?}", out.status);
    out.stdout
}

/// Extracts the payload between the child's `<<<` and `>>>` markers (the test harness prints its
/// own lines around it).
pub fn payload(stdout: &[u8]) -> Vec<u8> {
    let start = find(stdout, b"<<<").expect("no payload start") + 3;
    let end = find(&stdout[start..], b">>>").expect("no payload end") + start;
    stdout[start..end].to_vec()
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

/// Encodes u64 values as hex text for the payload channel.
pub fn encode(vals: &[u64]) -> String {
    let mut s = String::with_capacity(vals.len() * 17);
    for v in vals {
        s.push_str(&format!("{v:x}\n"));
    }
    s
}

pub fn decode(p: &[u8]) -> Vec<u64> {
    std::str::from_utf8(p)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| u64::from_str_radix(l, 16).unwrap())
        .collect()
}

/// Whether every thread of process `pid` is asleep (state `S` in `/proc/PID/task/*/stat`).
pub fn all_threads_asleep(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.filter_map(Result::ok).all(|t| {
        std::fs::read_to_string(t.path().join("stat"))
            .ok()
            .and_then(|s| {
                s.rfind(')')
                    .map(|i| s[i + 1..].trim_start().starts_with('S'))
            })
            .unwrap_or(false)
    })
}

/// Context switches (voluntary and not) of every thread of process `pid` so far, from
/// `/proc/PID/task/*/status`.
pub fn context_switches(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
        .flat_map(|s| {
            s.lines()
                .filter(|l| l.contains("ctxt_switches"))
                .filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .sum()
}

/// Every log record of target `shmq::recovery` this test process emitted so far.
pub fn recovery_log() -> Vec<String> {
    use std::sync::{Mutex, OnceLock};
    struct Capture(Mutex<Vec<String>>);
    impl log::Log for Capture {
        fn enabled(&self, m: &log::Metadata<'_>) -> bool {
            m.target() == "shmq::recovery"
        }
        fn log(&self, r: &log::Record<'_>) {
            if self.enabled(r.metadata()) {
                self.0
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(r.args().to_string());
            }
        }
        fn flush(&self) {}
    }
    static LOGGER: OnceLock<&'static Capture> = OnceLock::new();
    let logger = LOGGER.get_or_init(|| {
        let l: &'static Capture = Box::leak(Box::new(Capture(Mutex::new(Vec::new()))));
        log::set_logger(l).expect("the only logger of this test binary");
        log::set_max_level(log::LevelFilter::Warn);
        l
    });
    logger.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
}
