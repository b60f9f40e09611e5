//! The `shmq` binary against live, dead and hostile segments: each test runs the built binary
//! and reads its `--json` output (docs/operations.md documents the fields and exit codes).

mod common;

use common::{child_var, recovery_log, spawn_child, unique};
use serde_json::Value;
use shmq::Segment;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output};

fn shmq(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shmq"))
        .args(args)
        .output()
        .expect("run the shmq binary")
}

/// Runs `shmq --json ARGS`, checks its exit code and parses its one JSON document.
fn json(args: &[&str], code: i32) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = shmq(&all);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(code),
        "shmq {all:?}: stdout {stdout}, stderr {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn object<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == name)
        .unwrap_or_else(|| panic!("no object {name} in {report}"))
}

/// A child that is SIGKILLed (and reaped) when dropped, so a failing test leaves no child
/// blocked for good.
struct Held(Child);

impl Drop for Held {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `child_test` and reads its stdout until it prints its ready marker (the harness prints
/// its own text first, on the same line).
fn start(child_test: &str, env: &[(&str, String)]) -> Held {
    let mut child = Held(spawn_child(child_test, env));
    let out = child.0.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(out).lines();
    loop {
        match lines.next() {
            Some(Ok(l)) if l.contains("<<<ready>>>") => break,
            Some(Ok(_)) => {}
            other => panic!("child ended before it was ready: {other:?}"),
        }
    }
    child
}

/// SIGKILLs the child and reaps it.
fn kill(child: Held) {
    drop(child);
}

#[test]
fn ls_lists_a_live_segment_with_its_objects() {
    let name = unique("cli-ls");
    let seg = Segment::builder(&name)
        .queue::<u64>("jobs", 16)
        .bytes_queue("logs", 4, 64)
        .event("go")
        .create_or_replace()
        .unwrap();
    let listed = json(&["ls"], 0);
    let me = listed["segments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name.as_str())
        .unwrap_or_else(|| panic!("{name} not listed: {listed}"));
    assert_eq!(me["status"], "ok");
    assert_eq!(me["mode"], "0600");
    assert_eq!(me["creator"]["pid"], std::process::id());
    assert_eq!(me["creator"]["alive"], "yes");
    assert!(me["attached"]
        .as_array()
        .unwrap()
        .contains(&Value::from(std::process::id())));
    let objects: Vec<(&str, &str)> = me["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["name"].as_str().unwrap(), o["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(
        objects,
        [("jobs", "queue"), ("logs", "bytes queue"), ("go", "event")]
    );
    assert!(me["size"].as_u64().unwrap() <= me["max_size"].as_u64().unwrap());
    drop(seg);
}

#[test]
fn stat_shows_a_queue_length_and_a_killed_producers_tombstone() {
    let _ = recovery_log(); // install the capture before anything is recovered
    let name = unique("cli-stat");
    let seg = Segment::builder(&name)
        .queue::<u64>("jobs", 8)
        .event("never")
        .create_or_replace()
        .unwrap();
    let q = seg.queue::<u64>("jobs").unwrap();
    q.put(1).unwrap();
    let report = json(&["stat", &name], 0);
    assert_eq!(object(&report, "jobs")["len"], 1);
    assert_eq!(object(&report, "jobs")["capacity"], 8);
    assert_eq!(object(&report, "jobs")["tombstones"], 0);

    // A producer that holds a claim (inside put_with) when it is killed.
    let child = start("child_holds_a_put_claim", &[("SHMQ_CLI_SEG", name.clone())]);
    let pid = child.0.id();
    let report = json(&["stat", &name], 0);
    let rec = report["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"] == pid)
        .unwrap_or_else(|| panic!("no record of the child: {report}"))
        .clone();
    assert_eq!(rec["alive"], "yes");
    assert_eq!(rec["put"]["object"], "jobs");
    assert_eq!(rec["put"]["pos"], 1);
    assert_eq!(rec["put"]["pending"], true);
    assert_eq!(rec["producer_of"], serde_json::json!(["jobs"]));
    kill(child);

    let report = json(&["stat", &name], 0);
    let rec = &report["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["index"] == rec["index"])
        .unwrap_or_else(|| panic!("the dead child's record went away: {report}"));
    assert_eq!(rec["pid"], pid);
    assert_eq!(rec["alive"], "no", "{report}");
    assert_eq!(rec["put"]["pending"], true);

    // The next consumer steps over the dead claim: a tombstone, counted and shown.
    q.put(3).unwrap();
    assert_eq!(q.get().unwrap(), 1);
    assert_eq!(q.get().unwrap(), 3);
    let report = json(&["stat", &name], 0);
    let jobs = object(&report, "jobs");
    assert_eq!(jobs["tombstones"], 1, "{report}");
    assert_eq!(report["recovery"]["tombstones"], 1);
    let logged = recovery_log();
    assert!(
        logged.iter().any(|l| l.contains(&name)
            && l.contains("position 1 tombstoned")
            && l.contains(&format!("pid {pid}"))),
        "{logged:?}"
    );
    assert_eq!(jobs["len"], 0);
    assert_eq!(jobs["puts"], 3);
    assert_eq!(jobs["gets"], 3);
    let out = shmq(&["stat", &name]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("jobs"), "{text}");
}

#[test]
#[ignore]
fn child_holds_a_put_claim() {
    let seg = Segment::open(&child_var("SHMQ_CLI_SEG")).unwrap();
    let q = seg.queue::<u64>("jobs").unwrap();
    let never = seg.event("never").unwrap();
    q.put_with(|v| {
        *v = 2;
        println!("<<<ready>>>");
        // Holds the claim until the parent kills this process (nobody sets the event).
        never.wait();
    })
    .unwrap();
    unreachable!("the parent kills this child inside put_with");
}

#[test]
fn a_lock_taken_over_and_a_record_reused_are_counted_and_logged() {
    let _ = recovery_log();
    let name = unique("cli-recovery");
    let seg = Segment::builder(&name)
        .queue::<u64>("q", 4)
        .lock("lk")
        .event("never")
        .participants(1)
        .create_or_replace()
        .unwrap();
    let child = start(
        "child_holds_a_lock_and_a_record",
        &[("SHMQ_CLI_SEG", name.clone())],
    );
    let pid = child.0.id();
    kill(child);
    let lk = seg.lock("lk").unwrap();
    assert!(matches!(lk.lock(), Err(shmq::LockError::OwnerDead(_))));
    // The only record belongs to the dead child: this get takes it over.
    assert_eq!(seg.queue::<u64>("q").unwrap().get().unwrap(), 1);
    let report = json(&["stat", &name], 0);
    assert_eq!(report["recovery"]["locks_taken_over"], 1, "{report}");
    assert_eq!(report["recovery"]["records_reused"], 1, "{report}");
    let logged: Vec<String> = recovery_log()
        .into_iter()
        .filter(|l| l.contains(&name))
        .collect();
    assert!(
        logged
            .iter()
            .any(|l| l.contains("a lock taken over") && l.contains(&format!("pid {pid}"))),
        "{logged:?}"
    );
    assert!(
        logged
            .iter()
            .any(|l| l.contains(&format!("record 0 of dead pid {pid} reused"))),
        "{logged:?}"
    );
    let stats = seg.stats().unwrap();
    assert_eq!((stats.locks_taken_over, stats.records_reused), (1, 1));
}

#[test]
#[ignore]
fn child_holds_a_lock_and_a_record() {
    let seg = Segment::open(&child_var("SHMQ_CLI_SEG")).unwrap();
    seg.queue::<u64>("q").unwrap().put(1).unwrap();
    let lk = seg.lock("lk").unwrap();
    std::mem::forget(lk.lock().unwrap());
    println!("<<<ready>>>");
    seg.event("never").unwrap().wait();
    unreachable!("the parent kills this child");
}

#[test]
fn rm_refuses_a_live_segment_and_removes_an_unused_one() {
    let name = unique("cli-rm");
    let seg = Segment::builder(&name)
        .queue::<u32>("q", 4)
        .keep(true)
        .create_or_replace()
        .unwrap();
    let refused = json(&["rm", &name], 4);
    assert_eq!(refused["removed"], false);
    assert!(refused["attached"]
        .as_array()
        .unwrap()
        .contains(&Value::from(std::process::id())));
    assert!(
        Segment::open(&name).is_ok(),
        "a refused rm removed the name"
    );
    drop(seg); // kept: the name stays
    let removed = json(&["rm", &name], 0);
    assert_eq!(removed["removed"], true);
    assert!(matches!(
        Segment::open(&name),
        Err(shmq::OpenError::NotFound)
    ));
    let missing = json(&["rm", &name], 3);
    assert_eq!(missing["error"]["kind"], "not_found");
}

#[test]
fn rm_force_removes_the_name_of_a_live_segment() {
    let name = unique("cli-rm-force");
    let seg = Segment::builder(&name)
        .queue::<u32>("q", 4)
        .create_or_replace()
        .unwrap();
    let q = seg.queue::<u32>("q").unwrap();
    assert_eq!(json(&["rm", &name, "--force"], 0)["removed"], true);
    assert!(matches!(
        Segment::open(&name),
        Err(shmq::OpenError::NotFound)
    ));
    // The live user keeps its mapping.
    q.put(5).unwrap();
    assert_eq!(q.get().unwrap(), 5);
}

#[test]
fn gc_removes_a_dead_creators_segment_and_leaves_live_and_kept_ones() {
    let prefix = unique("cli-gc");
    let dead = format!("{prefix}-dead");
    let live = format!("{prefix}-live");
    let kept = format!("{prefix}-kept");
    let child = start(
        "child_creates_and_waits",
        &[
            ("SHMQ_CLI_SEG", dead.clone()),
            ("SHMQ_CLI_KEEP", "0".into()),
        ],
    );
    let keeper = start(
        "child_creates_and_waits",
        &[
            ("SHMQ_CLI_SEG", kept.clone()),
            ("SHMQ_CLI_KEEP", "1".into()),
        ],
    );
    let seg = Segment::builder(&live)
        .queue::<u32>("q", 4)
        .create_or_replace()
        .unwrap();
    // While its creator lives, gc leaves it.
    assert_eq!(
        json(&["gc", "--prefix", &prefix], 0)["removed"],
        serde_json::json!([])
    );
    kill(child);
    kill(keeper);
    let stat = json(&["stat", &dead], 0);
    assert_eq!(stat["creator"]["alive"], "no");
    assert_eq!(stat["attached"], serde_json::json!([]));
    let gc = json(&["gc", "--prefix", &prefix], 0);
    assert_eq!(gc["removed"], serde_json::json!([dead]));
    assert!(matches!(
        Segment::open(&dead),
        Err(shmq::OpenError::NotFound)
    ));
    assert!(Segment::open(&live).is_ok());
    assert!(Segment::open(&kept).is_ok());
    assert_eq!(json(&["rm", &kept], 0)["removed"], true);
    drop(seg);
}

#[test]
#[ignore]
fn child_creates_and_waits() {
    let seg = Segment::builder(&child_var("SHMQ_CLI_SEG"))
        .queue::<u32>("q", 4)
        .event("never")
        .keep(child_var("SHMQ_CLI_KEEP") == "1")
        .create_or_replace()
        .unwrap();
    seg.queue::<u32>("q").unwrap().put(1).unwrap();
    println!("<<<ready>>>");
    // Until the parent kills this process (nobody sets the event).
    seg.event("never").unwrap().wait();
    unreachable!("the parent kills this child");
}

#[test]
fn hostile_and_foreign_files_are_clear_errors_never_a_panic() {
    let prefix = unique("cli-hostile");
    let path = |n: &str| format!("/dev/shm/{prefix}-{n}");
    // Not a shmq segment.
    std::fs::write(path("junk"), b"hello, not a segment").unwrap();
    let e = json(&["stat", &format!("{prefix}-junk")], 5);
    assert_eq!(e["error"]["kind"], "not_shmq");
    assert_eq!(
        json(&["rm", &format!("{prefix}-junk")], 5)["error"]["kind"],
        "not_shmq"
    );
    // The magic and nothing else: too short.
    std::fs::write(path("short"), b"SHMQSEG\0").unwrap();
    assert_eq!(
        json(&["stat", &format!("{prefix}-short")], 5)["error"]["kind"],
        "corrupt"
    );
    // A symlink under a segment's name.
    std::os::unix::fs::symlink("/etc/passwd", path("link")).unwrap();
    assert_eq!(
        json(&["stat", &format!("{prefix}-link")], 5)["error"]["kind"],
        "not_shmq"
    );
    // A segment whose header was forged: a directory far past the end of the file.
    let forged = format!("{prefix}-forged");
    let seg = Segment::builder(&forged)
        .queue::<u64>("q", 4)
        .keep(true)
        .create_or_replace()
        .unwrap();
    drop(seg);
    let mut bytes = std::fs::read(path("forged")).unwrap();
    bytes[40..44].copy_from_slice(&u32::MAX.to_le_bytes()); // dir_count
    std::fs::write(path("forged"), &bytes).unwrap();
    assert_eq!(json(&["stat", &forged], 5)["error"]["kind"], "corrupt");
    // Another layout version.
    bytes[40..44].copy_from_slice(&1u32.to_le_bytes());
    bytes[8..12].copy_from_slice(&999u32.to_le_bytes());
    std::fs::write(path("forged"), &bytes).unwrap();
    assert_eq!(json(&["stat", &forged], 5)["error"]["kind"], "incompatible");
    // World-writable: refused, unless --shared.
    let open = format!("{prefix}-open");
    let seg = Segment::builder(&open)
        .queue::<u64>("q", 4)
        .mode(0o666)
        .shared_mode(true)
        .create_or_replace()
        .unwrap();
    assert_eq!(json(&["stat", &open], 4)["error"]["kind"], "insecure_mode");
    assert_eq!(json(&["--shared", "stat", &open], 0)["name"], open.as_str());
    // Another user's segment (needs root to make one).
    let foreign = format!("{prefix}-foreign");
    let other = Segment::builder(&foreign)
        .queue::<u64>("q", 4)
        .keep(true)
        .create_or_replace()
        .unwrap();
    drop(other);
    let is_root = rustix::process::geteuid().is_root();
    if is_root {
        rustix::fs::chown(
            path("foreign").as_str(),
            Some(rustix::process::Uid::from_raw(65534)),
            None,
        )
        .unwrap();
        assert_eq!(json(&["stat", &foreign], 4)["error"]["kind"], "foreign");
        assert_eq!(json(&["rm", &foreign], 4)["error"]["kind"], "foreign");
    }
    // A bad name is a usage error.
    assert_eq!(
        json(&["stat", "../etc/passwd"], 2)["error"]["kind"],
        "invalid_name"
    );
    // ls lists what it can and says why for the rest, without failing.
    let listed = json(&["ls"], 0);
    let status = |n: &str| {
        listed["segments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == n)
            .map(|s| s["status"].as_str().unwrap().to_string())
    };
    assert_eq!(status(&format!("{prefix}-junk")), None);
    assert_eq!(status(&open).as_deref(), Some("insecure_mode"));
    assert_eq!(status(&forged).as_deref(), Some("incompatible"));
    if is_root {
        assert_eq!(status(&foreign).as_deref(), Some("foreign"));
    }
    for n in ["junk", "short", "link", "forged", "foreign"] {
        let _ = std::fs::remove_file(path(n));
    }
    drop(seg);
}

#[test]
fn watch_reports_rates_between_refreshes() {
    let name = unique("cli-watch");
    let seg = Segment::builder(&name)
        .queue::<u64>("q", 64)
        .create_or_replace()
        .unwrap();
    let q = seg.queue::<u64>("q").unwrap();
    for i in 0..10 {
        q.put(i).unwrap();
    }
    let out = shmq(&[
        "--json",
        "watch",
        &name,
        "--count",
        "2",
        "--interval",
        "0.01",
    ]);
    assert!(out.status.success(), "{out:?}");
    let docs: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(docs.len(), 2);
    assert_eq!(object(&docs[0], "q")["len"], 10);
    assert!(object(&docs[0], "q").get("puts_per_s").is_none());
    // Nothing moved between the two snapshots: both rates are 0.
    assert_eq!(object(&docs[1], "q")["puts_per_s"].as_f64(), Some(0.0));
    assert_eq!(object(&docs[1], "q")["gets_per_s"].as_f64(), Some(0.0));
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(shmq(&[]).status.code(), Some(2));
    assert_eq!(shmq(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(shmq(&["stat"]).status.code(), Some(2));
    assert_eq!(shmq(&["ls", "--bogus"]).status.code(), Some(2));
    assert_eq!(
        shmq(&["watch", "x", "--interval", "-1"]).status.code(),
        Some(2)
    );
    assert_eq!(shmq(&["--help"]).status.code(), Some(0));
}
