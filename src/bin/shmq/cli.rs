//! The commands of the `shmq` binary (see `main.rs`).

use crate::bridge::{self, BridgeError, BridgeOpts};
use crate::json::Json;
use shmq::inspect::{self, Listed, ObjectReport, ParticipantReport, Removed, SegmentReport};
use shmq::OpenError;
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

const USAGE: &str = "\
usage: shmq [--json] [--shared] COMMAND [ARGS]

commands:
  ls                     every shmq segment: owner, mode, size, creator, attached processes, objects
  stat NAME              each object's figures and the participant table of segment NAME
  watch NAME [--interval SECS] [--count N]
                         stat, refreshed every SECS (default 1), with put/get rates per second
  rm NAME [--force]      remove NAME unless processes map it (--force: remove the name anyway)
  bridge out SEGMENT QUEUE SUBJECT [--server URL] [--stream S] [--count N] [--window W]
                         forward a local byte queue to a NATS subject (a JetStream stream)
  bridge in SUBJECT SEGMENT QUEUE [--server URL] [--stream S] [--durable D] [--count N]
          [--window W] [--ack-wait SECS]
                         forward a NATS subject (its JetStream stream) into a local byte queue
  gc [--prefix P]        remove every segment (whose name starts with P) whose users are all
                         gone: no process maps it, its creator is dead; kept ones stay

options:
  --json                 one JSON document per command (watch: one per refresh, one per line)
  --shared               also read segments whose group or others may write them
  -h, --help             this text
  -V, --version          the version

exit codes: 0 ok, 1 error, 2 usage, 3 not found, 4 refused (in use, another user's, writable by
others), 5 not a readable shmq segment (not shmq, corrupt, another layout version, being built)";

/// Exit codes (documented in docs/operations.md and in `--help`).
mod exit {
    pub const OK: u8 = 0;
    pub const ERROR: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const NOT_FOUND: u8 = 3;
    pub const REFUSED: u8 = 4;
    pub const UNREADABLE: u8 = 5;
}

struct Opts {
    json: bool,
    shared: bool,
    force: bool,
    interval: Duration,
    count: Option<u64>,
    prefix: Option<String>,
    server: Option<String>,
    stream: Option<String>,
    durable: Option<String>,
    window: usize,
    ack_wait: Duration,
    args: Vec<String>,
}

fn parse(argv: Vec<String>) -> Result<Opts, String> {
    let mut o = Opts {
        json: false,
        shared: false,
        force: false,
        interval: Duration::from_secs(1),
        count: None,
        prefix: None,
        server: None,
        stream: None,
        durable: None,
        window: 256,
        ack_wait: Duration::from_secs(30),
        args: Vec::new(),
    };
    let mut it = argv.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--json" => o.json = true,
            "--shared" => o.shared = true,
            "--force" | "-f" => o.force = true,
            "--interval" | "-n" => {
                let v = it.next().ok_or("--interval needs a number of seconds")?;
                let secs: f64 = v
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s > 0.0 && *s <= 86_400.0)
                    .ok_or_else(|| format!("--interval: {v:?} is not a number of seconds"))?;
                o.interval = Duration::from_secs_f64(secs);
            }
            "--count" | "-c" => {
                let v = it.next().ok_or("--count needs a number")?;
                o.count = Some(
                    v.parse()
                        .map_err(|_| format!("--count: {v:?} is not a number"))?,
                );
            }
            "--server" => o.server = Some(it.next().ok_or("--server needs a URL")?),
            "--stream" => o.stream = Some(it.next().ok_or("--stream needs a name")?),
            "--durable" => o.durable = Some(it.next().ok_or("--durable needs a name")?),
            "--window" => {
                let v = it.next().ok_or("--window needs a number")?;
                o.window = v
                    .parse()
                    .ok()
                    .filter(|w| (1..=65_536).contains(w))
                    .ok_or_else(|| format!("--window: {v:?} is not a number in 1..=65536"))?;
            }
            "--ack-wait" => {
                let v = it.next().ok_or("--ack-wait needs a number of seconds")?;
                let secs: f64 = v
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s >= 0.001 && *s <= 86_400.0)
                    .ok_or_else(|| format!("--ack-wait: {v:?} is not a number of seconds"))?;
                o.ack_wait = Duration::from_secs_f64(secs);
            }
            "--prefix" => {
                o.prefix = Some(it.next().ok_or("--prefix needs a name prefix")?);
            }
            s if s.starts_with('-') && s.len() > 1 => return Err(format!("unknown option {s}")),
            _ => o.args.push(a),
        }
    }
    Ok(o)
}

pub fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return ExitCode::from(exit::OK);
    }
    if argv.iter().any(|a| a == "-V" || a == "--version") {
        println!("shmq {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::from(exit::OK);
    }
    let o = match parse(argv) {
        Ok(o) => o,
        Err(e) => return usage(&e),
    };
    let args: Vec<&str> = o.args.iter().map(String::as_str).collect();
    let code = match args.as_slice() {
        ["ls"] => ls(&o),
        ["stat", name] => stat(&o, name),
        ["watch", name] => watch(&o, name),
        ["rm", name] => rm(&o, name),
        ["gc"] => gc(&o),
        ["bridge", "out", segment, queue, subject] => run_bridge(&o, segment, || {
            bridge::out(segment, queue, subject, &bridge_opts(&o))
        }),
        ["bridge", "in", subject, segment, queue] => run_bridge(&o, segment, || {
            bridge::into(subject, segment, queue, &bridge_opts(&o))
        }),
        [] => return usage("no command"),
        [cmd, ..] => return usage(&format!("bad use of {cmd:?}")),
    };
    ExitCode::from(code)
}

fn usage(why: &str) -> ExitCode {
    eprintln!("shmq: {why}\n{USAGE}");
    ExitCode::from(exit::USAGE)
}

/// The exit code and the JSON `kind` of an error.
fn classify(e: &OpenError) -> (u8, &'static str) {
    match e {
        OpenError::NotFound => (exit::NOT_FOUND, "not_found"),
        OpenError::InvalidName(_) => (exit::USAGE, "invalid_name"),
        OpenError::PermissionDenied => (exit::REFUSED, "foreign"),
        OpenError::InsecureMode { .. } => (exit::REFUSED, "insecure_mode"),
        OpenError::NotReady => (exit::UNREADABLE, "not_ready"),
        OpenError::BadMagic | OpenError::NotRegularFile => (exit::UNREADABLE, "not_shmq"),
        OpenError::VersionMismatch { .. } | OpenError::LayoutMismatch { .. } => {
            (exit::UNREADABLE, "incompatible")
        }
        OpenError::Corrupt(_) | OpenError::TooSmall { .. } => (exit::UNREADABLE, "corrupt"),
        _ => (exit::ERROR, "error"),
    }
}

fn fail(o: &Opts, name: &str, e: &OpenError) -> u8 {
    let (code, kind) = classify(e);
    let hint = match e {
        OpenError::InsecureMode { .. } => " (pass --shared to read it anyway)",
        OpenError::PermissionDenied => " (owned by another user, or unreadable)",
        _ => "",
    };
    if o.json {
        let doc = Json::Obj(vec![(
            "error",
            Json::Obj(vec![
                ("name", Json::str(name)),
                ("kind", Json::str(kind)),
                ("message", Json::str(e.to_string())),
            ]),
        )]);
        println!("{}", doc.render());
    }
    eprintln!("shmq: {name}: {e}{hint}");
    code
}

fn io_fail(o: &Opts, e: &std::io::Error) -> u8 {
    if o.json {
        let doc = Json::Obj(vec![(
            "error",
            Json::Obj(vec![
                ("kind", Json::str("error")),
                ("message", Json::str(e.to_string())),
            ]),
        )]);
        println!("{}", doc.render());
    }
    eprintln!("shmq: {e}");
    exit::ERROR
}

// ---- ls ----

fn ls(o: &Opts) -> u8 {
    let listed = match inspect::list(o.shared) {
        Ok(l) => l,
        Err(e) => return io_fail(o, &e),
    };
    if o.json {
        let doc = Json::Obj(vec![(
            "segments",
            Json::Arr(listed.iter().map(listed_json).collect()),
        )]);
        println!("{}", doc.render());
        return exit::OK;
    }
    let mut out = String::from(
        "NAME  OWNER  MODE  SIZE  MAX_SIZE  CREATOR  ATTACHED  OBJECTS\n"
            .replace("  ", "\t")
            .as_str(),
    );
    for l in &listed {
        let line = match &l.report {
            Ok(r) => format!(
                "{}\t{}\t{:04o}\t{}\t{}\t{} ({})\t{}\t{}",
                l.name,
                l.uid,
                l.mode,
                bytes(r.size),
                bytes(r.max_size),
                r.creator.pid,
                alive_word(r.creator.alive),
                pids(&r.attached),
                r.objects
                    .iter()
                    .map(|ob| format!("{} ({})", ob.name, ob.kind))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Err(e) => format!(
                "{}\t{}\t{:04o}\t{}\t-\t-\t-\t[{}: {e}]",
                l.name,
                l.uid,
                l.mode,
                bytes(l.file_size),
                classify(e).1
            ),
        };
        out.push_str(&line);
        out.push('\n');
    }
    print!("{}", table(&out));
    exit::OK
}

fn listed_json(l: &Listed) -> Json {
    let mut fields = vec![
        ("name", Json::str(&l.name)),
        ("uid", Json::Int(u64::from(l.uid))),
        ("mode", Json::str(format!("{:04o}", l.mode))),
        ("file_size", Json::Int(l.file_size)),
    ];
    match &l.report {
        Ok(r) => {
            fields.push(("status", Json::str("ok")));
            fields.push(("error", Json::Null));
            fields.extend(summary_fields(r));
            fields.push((
                "objects",
                Json::Arr(
                    r.objects
                        .iter()
                        .map(|ob| {
                            Json::Obj(vec![
                                ("name", Json::str(&ob.name)),
                                ("kind", Json::str(&ob.kind)),
                            ])
                        })
                        .collect(),
                ),
            ));
        }
        Err(e) => {
            fields.push(("status", Json::str(classify(e).1)));
            fields.push(("error", Json::str(e.to_string())));
        }
    }
    Json::Obj(fields)
}

/// The fields `ls` and `stat` share, in their documented order.
fn summary_fields(r: &SegmentReport) -> Vec<(&'static str, Json)> {
    vec![
        ("size", Json::Int(r.size)),
        ("max_size", Json::Int(r.max_size)),
        (
            "creator",
            Json::Obj(vec![
                ("pid", Json::Int(u64::from(r.creator.pid))),
                ("alive", Json::str(r.creator.alive.as_str())),
            ]),
        ),
        ("keep", Json::Bool(r.keep)),
        (
            "attached",
            Json::Arr(
                r.attached
                    .iter()
                    .map(|&p| Json::Int(u64::from(p)))
                    .collect(),
            ),
        ),
    ]
}

// ---- stat and watch ----

fn stat(o: &Opts, name: &str) -> u8 {
    match inspect::inspect(name, o.shared) {
        Ok(r) => {
            if o.json {
                println!("{}", report_json(&r, None).render());
            } else {
                print!("{}", report_text(&r, None));
            }
            exit::OK
        }
        Err(e) => fail(o, name, &e),
    }
}

/// Put and get rates per second of each object, from two snapshots `secs` apart.
type Rates = Vec<Option<(f64, f64)>>;

fn rates(before: &SegmentReport, now: &SegmentReport, secs: f64) -> Rates {
    now.objects
        .iter()
        .map(|ob| {
            let q = ob.queue?;
            let was = before.objects.iter().find(|b| b.name == ob.name)?.queue?;
            Some((
                q.puts.saturating_sub(was.puts) as f64 / secs,
                q.gets.saturating_sub(was.gets) as f64 / secs,
            ))
        })
        .collect()
}

fn watch(o: &Opts, name: &str) -> u8 {
    let mut last: Option<(SegmentReport, Instant)> = None;
    let mut shown = 0u64;
    loop {
        let report = match inspect::inspect(name, o.shared) {
            Ok(r) => r,
            Err(e) => return fail(o, name, &e),
        };
        let now = Instant::now();
        let r = last
            .as_ref()
            .map(|(b, t)| rates(b, &report, now.duration_since(*t).as_secs_f64().max(1e-9)));
        if o.json {
            println!("{}", report_json(&report, r.as_ref()).render());
        } else {
            // A terminal gets the screen redrawn; a pipe gets one block after the other.
            let clear = if is_terminal() { "\x1b[H\x1b[2J" } else { "" };
            println!("{clear}{}", report_text(&report, r.as_ref()));
        }
        let _ = std::io::stdout().flush();
        shown += 1;
        if o.count.is_some_and(|c| shown >= c) {
            return exit::OK;
        }
        last = Some((report, now));
        // The refresh period of a display, not a synchronisation.
        std::thread::sleep(o.interval);
    }
}

fn is_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stdout().is_terminal()
}

fn report_json(r: &SegmentReport, rates: Option<&Rates>) -> Json {
    let mut fields = vec![
        ("name", Json::str(&r.name)),
        ("uid", Json::Int(u64::from(r.uid))),
        ("mode", Json::str(format!("{:04o}", r.mode))),
    ];
    fields.extend(summary_fields(r));
    fields.push((
        "heap",
        Json::Obj(vec![
            ("bytes", Json::Int(r.heap.bytes)),
            ("in_use", Json::Int(r.heap.in_use)),
            ("blocks", Json::Int(r.heap.blocks)),
            ("growths", Json::Int(r.heap.growths)),
            ("reclaimed", Json::Int(r.heap.reclaimed)),
        ]),
    ));
    let rc = &r.recovery;
    fields.push((
        "recovery",
        Json::Obj(vec![
            ("tombstones", Json::Int(rc.tombstones)),
            ("slots_released", Json::Int(rc.slots_released)),
            ("lost", Json::Int(rc.lost)),
            ("locks_taken_over", Json::Int(rc.locks_taken_over)),
            ("records_reused", Json::Int(rc.records_reused)),
            ("heap_blocks_reclaimed", Json::Int(rc.heap_blocks_reclaimed)),
        ]),
    ));
    fields.push((
        "objects",
        Json::Arr(
            r.objects
                .iter()
                .enumerate()
                .map(|(i, ob)| object_json(ob, rates.and_then(|r| r.get(i).copied().flatten())))
                .collect(),
        ),
    ));
    fields.push((
        "participant_slots",
        Json::Int(u64::from(r.participant_slots)),
    ));
    fields.push((
        "participants",
        Json::Arr(r.participants.iter().map(participant_json).collect()),
    ));
    Json::Obj(fields)
}

fn object_json(ob: &ObjectReport, rate: Option<(f64, f64)>) -> Json {
    let mut f = vec![
        ("name", Json::str(&ob.name)),
        ("kind", Json::str(&ob.kind)),
        ("type", Json::str(&ob.type_name)),
        ("elem_size", Json::Int(ob.elem_size)),
        ("capacity", Json::opt(ob.capacity, Json::Int)),
        ("error", Json::opt(ob.error.clone(), Json::Str)),
    ];
    let q = ob.queue;
    let num = |g: fn(&shmq::QueueStats) -> u64| Json::opt(q.as_ref().map(g), Json::Int);
    f.push(("len", num(|q| q.len as u64)));
    f.push(("closed", Json::opt(q.map(|q| q.closed), Json::Bool)));
    f.push(("waiting_getters", num(|q| u64::from(q.waiting_getters))));
    f.push(("waiting_putters", num(|q| u64::from(q.waiting_putters))));
    f.push(("tombstones", num(|q| q.tombstones)));
    f.push(("lost", num(|q| q.lost)));
    f.push((
        "unattributed_claims",
        num(|q| u64::from(q.unattributed_claims)),
    ));
    f.push(("producers_alive", num(|q| u64::from(q.producers))));
    f.push(("puts", num(|q| q.puts)));
    f.push(("gets", num(|q| q.gets)));
    if let Some((p, g)) = rate {
        f.push(("puts_per_s", Json::Float(p)));
        f.push(("gets_per_s", Json::Float(g)));
    }
    Json::Obj(f)
}

fn participant_json(p: &ParticipantReport) -> Json {
    let claim = |c: &Option<inspect::ClaimReport>| {
        Json::opt(c.as_ref(), |c| {
            Json::Obj(vec![
                ("object", Json::str(&c.object)),
                ("pos", Json::Int(c.pos)),
                ("len", Json::Int(c.len)),
                ("pending", Json::Bool(c.pending)),
            ])
        })
    };
    Json::Obj(vec![
        ("index", Json::Int(u64::from(p.index))),
        ("pid", Json::Int(u64::from(p.pid))),
        ("tid", Json::Int(u64::from(p.tid))),
        ("alive", Json::str(p.alive.as_str())),
        ("put", claim(&p.put)),
        ("get", claim(&p.get)),
        (
            "producer_of",
            Json::Arr(p.producer_of.iter().map(Json::str).collect()),
        ),
        ("waiting_on", Json::opt(p.waiting_on.clone(), Json::Str)),
    ])
}

fn report_text(r: &SegmentReport, rates: Option<&Rates>) -> String {
    let mut s = format!(
        "segment {}: owner {}, mode {:04o}, size {} of at most {}, creator {} ({}){}\n",
        r.name,
        r.uid,
        r.mode,
        bytes(r.size),
        bytes(r.max_size),
        r.creator.pid,
        alive_word(r.creator.alive),
        if r.keep { ", kept" } else { "" }
    );
    s.push_str(&format!("attached: {}\n", pids(&r.attached)));
    s.push_str(&format!(
        "heap: {} in use in {} blocks, of {}; grown {} times; {} blocks reclaimed\n\n",
        bytes(r.heap.in_use),
        r.heap.blocks,
        bytes(r.heap.bytes),
        r.heap.growths,
        r.heap.reclaimed
    ));
    let rc = &r.recovery;
    s.insert_str(
        s.len() - 1,
        &format!(
            "recovery: tombstones {}, slots released {} (messages lost {}), locks taken over \
             {}, records reused {}, heap blocks reclaimed {}\n",
            rc.tombstones,
            rc.slots_released,
            rc.lost,
            rc.locks_taken_over,
            rc.records_reused,
            rc.heap_blocks_reclaimed
        ),
    );
    let mut t = String::from(
        "OBJECT\tKIND\tTYPE\tCAPACITY\tLEN\tWAITERS(get/put)\tTOMBSTONES\tLOST\tPRODUCERS\tCLOSED",
    );
    if rates.is_some() {
        t.push_str("\tPUT/S\tGET/S");
    }
    t.push('\n');
    for (i, ob) in r.objects.iter().enumerate() {
        let ty = if ob.type_name.is_empty() {
            "-"
        } else {
            &ob.type_name
        };
        let cap = match (ob.capacity, ob.queue) {
            (Some(c), _) => c.to_string(),
            (None, Some(_)) => "unbounded".into(),
            (None, None) => "-".into(),
        };
        match (ob.queue, &ob.error) {
            (Some(q), _) => {
                t.push_str(&format!(
                    "{}\t{}\t{ty}\t{cap}\t{}\t{}/{}\t{}\t{}\t{}\t{}",
                    ob.name,
                    ob.kind,
                    q.len,
                    q.waiting_getters,
                    q.waiting_putters,
                    q.tombstones,
                    q.lost,
                    q.producers,
                    if q.closed { "yes" } else { "no" }
                ));
                if let Some(r) = rates {
                    match r.get(i).copied().flatten() {
                        Some((p, g)) => t.push_str(&format!("\t{p:.0}\t{g:.0}")),
                        None => t.push_str("\t-\t-"),
                    }
                }
            }
            (None, Some(e)) => t.push_str(&format!("{}\t{}\t{ty}\t[{e}]", ob.name, ob.kind)),
            (None, None) => t.push_str(&format!("{}\t{}\t{ty}\t-", ob.name, ob.kind)),
        }
        t.push('\n');
    }
    s.push_str(&table(&t));
    s.push_str(&format!(
        "\nparticipants: {} of {} records in use\n",
        r.participants.len(),
        r.participant_slots
    ));
    if !r.participants.is_empty() {
        let mut t = String::from("RECORD\tPID\tTID\tALIVE\tHOLDS\n");
        for p in &r.participants {
            t.push_str(&format!(
                "{}\t{}\t{}\t{}\t{}\n",
                p.index,
                p.pid,
                p.tid,
                p.alive.as_str(),
                holds(p)
            ));
        }
        s.push_str(&table(&t));
    }
    s
}

fn holds(p: &ParticipantReport) -> String {
    let mut parts = Vec::new();
    let claim = |what: &str, c: &inspect::ClaimReport| {
        format!(
            "{what} claim on {} at {}{}{}",
            c.object,
            c.pos,
            if c.len > 1 {
                format!("+{}", c.len)
            } else {
                String::new()
            },
            if c.pending { " (pending)" } else { "" }
        )
    };
    if let Some(c) = &p.put {
        parts.push(claim("put", c));
    }
    if let Some(c) = &p.get {
        parts.push(claim("get", c));
    }
    if !p.producer_of.is_empty() {
        parts.push(format!("producer of {}", p.producer_of.join(", ")));
    }
    if let Some(w) = &p.waiting_on {
        parts.push(format!("waiting on {w}"));
    }
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join("; ")
    }
}

fn alive_word(a: inspect::Alive) -> &'static str {
    match a {
        inspect::Alive::Yes => "alive",
        inspect::Alive::No => "dead",
        inspect::Alive::Unknown => "unknown",
    }
}

fn pids(p: &[u32]) -> String {
    if p.is_empty() {
        "-".into()
    } else {
        p.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
    }
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Aligns tab-separated columns with two spaces between them.
fn table(t: &str) -> String {
    let rows: Vec<Vec<&str>> = t.lines().map(|l| l.split('\t').collect()).collect();
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let width: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in &rows {
        let last = r.len().saturating_sub(1);
        for (c, cell) in r.iter().enumerate() {
            out.push_str(cell);
            if c < last {
                let pad = width[c] - cell.chars().count() + 2;
                out.extend(std::iter::repeat(' ').take(pad));
            }
        }
        out.push('\n');
    }
    out
}

// ---- rm and gc ----

fn rm(o: &Opts, name: &str) -> u8 {
    match inspect::remove(name, o.force) {
        Ok(Removed::Removed) => {
            if o.json {
                let doc = Json::Obj(vec![
                    ("name", Json::str(name)),
                    ("removed", Json::Bool(true)),
                    ("attached", Json::Arr(Vec::new())),
                ]);
                println!("{}", doc.render());
            } else {
                println!("removed {name}");
            }
            exit::OK
        }
        Ok(Removed::InUse(p)) => {
            if o.json {
                let doc = Json::Obj(vec![
                    ("name", Json::str(name)),
                    ("removed", Json::Bool(false)),
                    (
                        "attached",
                        Json::Arr(p.iter().map(|&p| Json::Int(u64::from(p))).collect()),
                    ),
                ]);
                println!("{}", doc.render());
            }
            eprintln!(
                "shmq: {name}: in use by {} (--force removes the name anyway; they keep their \
                 mapping)",
                if p.is_empty() {
                    "a process this user cannot see".to_string()
                } else {
                    format!("pid {}", pids(&p))
                }
            );
            exit::REFUSED
        }
        Err(e) => fail(o, name, &e),
    }
}

fn gc(o: &Opts) -> u8 {
    match inspect::gc(o.prefix.as_deref().unwrap_or("")) {
        Ok(removed) => {
            if o.json {
                let doc = Json::Obj(vec![(
                    "removed",
                    Json::Arr(removed.iter().map(Json::str).collect()),
                )]);
                println!("{}", doc.render());
            } else {
                for n in &removed {
                    println!("removed {n}");
                }
                if removed.is_empty() {
                    println!("nothing to remove");
                }
            }
            exit::OK
        }
        Err(e) => io_fail(o, &e),
    }
}

// ---- bridge ----

fn bridge_opts(o: &Opts) -> BridgeOpts {
    BridgeOpts {
        server: o
            .server
            .clone()
            .or_else(|| std::env::var("NATS_URL").ok())
            .unwrap_or_else(|| "nats://127.0.0.1:4222".into()),
        stream: o.stream.clone(),
        durable: o.durable.clone(),
        count: o.count,
        window: o.window,
        ack_wait: o.ack_wait,
    }
}

fn run_bridge(
    o: &Opts,
    segment: &str,
    f: impl FnOnce() -> Result<bridge::Moved, BridgeError>,
) -> u8 {
    match f() {
        Ok(m) => {
            let per_s = m.messages as f64 / m.secs.max(1e-9);
            if o.json {
                let doc = Json::Obj(vec![
                    ("messages", Json::Int(m.messages)),
                    ("bytes", Json::Int(m.bytes)),
                    ("secs", Json::Float(m.secs)),
                    ("per_s", Json::Float(per_s)),
                    ("retried", Json::Int(m.retried)),
                ]);
                println!("{}", doc.render());
            } else {
                println!(
                    "moved {} messages ({}) in {:.3} s: {per_s:.0} messages/s, {} retried",
                    m.messages,
                    bytes(m.bytes),
                    m.secs,
                    m.retried
                );
            }
            exit::OK
        }
        Err(BridgeError::Open(e)) => fail(o, segment, &e),
        Err(BridgeError::Nats(e)) => {
            eprintln!("shmq: bridge: {e}");
            exit::ERROR
        }
        Err(BridgeError::Queue(e)) => {
            eprintln!("shmq: bridge: {segment}: {e}");
            exit::ERROR
        }
    }
}
