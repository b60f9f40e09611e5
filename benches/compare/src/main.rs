//! `compare`: cross-process shmq vs iceoryx2 vs ipc-channel, in one run of one binary.
//!
//! Two measurements, each between this process (the parent) and one child process that is this
//! same binary re-executed with `SHMQ_COMPARE_ROLE` set:
//!
//! * round-trip latency: the parent sends a `u64`, the child echoes it back; recorded per round
//!   trip in an HDR histogram;
//! * one-way throughput: the child sends `0..M` as fast as it can, the parent receives all of
//!   them; timed from the first message received to the last.
//!
//! Every throughput run checks the order of the values received, their count, and an
//! order-sensitive checksum against the one the sender reports when it is done.
//!
//! Usage: `compare [--quick] [--out FILE]`. See README.md.

use std::error::Error;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use iceoryx2::port::backpressure_strategy::BackpressureStrategy;
use iceoryx2::prelude::{
    ipc, set_log_level, LogLevel, NodeBuilder, PortFactory as _, ServiceName, SignalHandlingMode,
};
use ipc_channel::ipc::{self as ipcc, IpcOneShotServer, IpcReceiver, IpcSender};

type Res<T> = Result<T, Box<dyn Error>>;

/// Environment variables that turn the binary into a child.
const ENV_ROLE: &str = "SHMQ_COMPARE_ROLE";
const ENV_NAME: &str = "SHMQ_COMPARE_NAME";
const ENV_QUEUE: &str = "SHMQ_COMPARE_QUEUE";
const ENV_COUNT: &str = "SHMQ_COMPARE_COUNT";

/// Value the parent sends to tell an iceoryx2 echo child to stop (round-trip values are
/// `0..N`, so this never occurs as a payload).
const STOP: u64 = u64::MAX;

/// How long a busy-polling parent waits without any message before giving up.
const STALL: Duration = Duration::from_secs(30);

/// Full-size counts; `--quick` divides every one of them by 100.
const WARMUP: u64 = 10_000;
const LAT_N: u64 = 200_000;
const LAT_N_IPC: u64 = 200_000;
const THR_M: u64 = 2_000_000;
const THR_M_IPC: u64 = 2_000_000;

// ---------------------------------------------------------------------------------------------
// Small shared helpers

/// Order-sensitive checksum over the message values (FNV-1a style over whole words).
#[derive(Clone, Copy)]
struct Checksum(u64);

impl Checksum {
    fn new() -> Self {
        Checksum(0xcbf2_9ce4_8422_2325)
    }

    #[inline(always)]
    fn add(&mut self, v: u64) {
        self.0 = (self.0 ^ v).wrapping_mul(0x0000_0100_0000_01b3);
    }

    fn of_range(m: u64) -> Self {
        let mut c = Checksum::new();
        for v in 0..m {
            c.add(v);
        }
        c
    }
}

/// Busy-wait bookkeeping: spins, and every 65 536 empty polls checks (off the hot path) whether
/// it has waited too long (parent) or whether its parent is gone (child).
struct Idle {
    spins: u64,
    since: Option<Instant>,
    stall: Option<Duration>,
    parent: Option<u32>,
}

impl Idle {
    fn parent_side() -> Self {
        Idle {
            spins: 0,
            since: None,
            stall: Some(STALL),
            parent: None,
        }
    }

    fn child_side() -> Self {
        Idle {
            spins: 0,
            since: None,
            stall: None,
            parent: Some(std::os::unix::process::parent_id()),
        }
    }

    #[inline(always)]
    fn got(&mut self) {
        self.spins = 0;
        self.since = None;
    }

    #[inline(always)]
    fn wait(&mut self, what: &str) -> Res<()> {
        std::hint::spin_loop();
        self.spins += 1;
        if self.spins & 0xffff == 0 {
            self.check(what)?;
        }
        Ok(())
    }

    #[cold]
    #[inline(never)]
    fn check(&mut self, what: &str) -> Res<()> {
        let since = *self.since.get_or_insert_with(Instant::now);
        if let Some(stall) = self.stall {
            if since.elapsed() > stall {
                return Err(format!("{what}: nothing received for {stall:?}").into());
            }
        }
        if let Some(ppid) = self.parent {
            if std::os::unix::process::parent_id() != ppid {
                return Err(format!("{what}: parent process is gone").into());
            }
        }
        Ok(())
    }
}

fn env(key: &str) -> Res<String> {
    std::env::var(key).map_err(|e| format!("{key}: {e}").into())
}

fn env_u64(key: &str) -> Res<u64> {
    Ok(env(key)?.parse()?)
}

// ---------------------------------------------------------------------------------------------
// Watchdog: a phase that takes far longer than it should (a peer hung) kills the child and ends
// the run instead of hanging forever.

static START: OnceLock<Instant> = OnceLock::new();
/// Deadline of the current phase in milliseconds since START; 0 = disarmed.
static DEADLINE_MS: AtomicU64 = AtomicU64::new(0);
static CHILD_PID: AtomicU32 = AtomicU32::new(0);

fn start_watchdog() {
    let start = *START.get_or_init(Instant::now);
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(500));
        let deadline = DEADLINE_MS.load(Ordering::Relaxed);
        if deadline != 0 && start.elapsed().as_millis() as u64 > deadline {
            let pid = CHILD_PID.load(Ordering::Relaxed);
            eprintln!("compare: watchdog: a phase overran its deadline; killing child {pid}");
            if pid != 0 {
                let _ = Command::new("kill")
                    .arg("-KILL")
                    .arg(pid.to_string())
                    .status();
            }
            eprintln!(
                "compare: leftovers may remain in /dev/shm (shmq-compare-*, iox2_*) and \
                 /tmp/iceoryx2"
            );
            std::process::exit(3);
        }
    });
}

/// Arms the watchdog for a phase handling `count` messages: 120 s plus 100 µs per message.
fn arm(count: u64) {
    let start = *START.get_or_init(Instant::now);
    let budget = 120_000 + count / 10;
    DEADLINE_MS.store(
        start.elapsed().as_millis() as u64 + budget,
        Ordering::Relaxed,
    );
}

fn disarm() {
    DEADLINE_MS.store(0, Ordering::Relaxed);
}

// ---------------------------------------------------------------------------------------------
// Child processes

/// A running child. Dropping it without [`Peer::finish`] (an error or a panic in the parent)
/// kills the child.
struct Peer {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Peer {
    fn spawn(role: &str, vars: &[(&str, &str)]) -> Res<Peer> {
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.env(ENV_ROLE, role)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn()?;
        CHILD_PID.store(child.id(), Ordering::Relaxed);
        let stdin = child.stdin.take();
        Ok(Peer { child, stdin })
    }

    /// Tells a sending child to start.
    fn go(&mut self) -> Res<()> {
        let stdin = self.stdin.as_mut().ok_or("child stdin already closed")?;
        stdin.write_all(b"g")?;
        stdin.flush()?;
        Ok(())
    }

    /// Closes the child's stdin (its cue to exit), collects what it printed, and waits for it.
    fn finish(mut self) -> Res<String> {
        drop(self.stdin.take());
        let mut out = String::new();
        if let Some(mut so) = self.child.stdout.take() {
            so.read_to_string(&mut out)?;
        }
        let status = self.child.wait()?;
        CHILD_PID.store(0, Ordering::Relaxed);
        if !status.success() {
            return Err(format!("child exited with {status}").into());
        }
        Ok(out)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Child: blocks until the parent says go.
fn wait_go() -> Res<()> {
    let mut b = [0u8; 1];
    std::io::stdin().read_exact(&mut b)?;
    Ok(())
}

/// Child: reports what it sent, then stays alive until the parent closes our stdin, so that no
/// transport can drop messages still in flight because their sender went away.
fn report_and_linger(sent: u64, sum: Checksum) -> Res<()> {
    let mut so = std::io::stdout().lock();
    writeln!(so, "sent {sent} {:016x}", sum.0)?;
    so.flush()?;
    drop(so);
    let mut rest = Vec::new();
    std::io::stdin().read_to_end(&mut rest)?;
    Ok(())
}

fn child_main(role: &str) -> Res<()> {
    match role {
        "shmq-echo" | "shmq-echo-spin" => {
            let seg = shmq::Segment::open(&env(ENV_NAME)?)?;
            let sfx = env(ENV_QUEUE)?;
            let ping = seg.queue::<u64>(&format!("ping-{sfx}"))?;
            let pong = seg.queue::<u64>(&format!("pong-{sfx}"))?;
            if role == "shmq-echo" {
                loop {
                    match ping.get() {
                        Ok(v) => pong.put(v)?,
                        Err(shmq::GetError::Closed) => break,
                        Err(e) => return Err(e.into()),
                    }
                }
            } else {
                let mut idle = Idle::child_side();
                loop {
                    match ping.try_get() {
                        Ok(v) => {
                            idle.got();
                            pong.put(v)?;
                        }
                        Err(shmq::GetError::Empty) => idle.wait("shmq echo")?,
                        Err(shmq::GetError::Closed) => break,
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        "shmq-send" => {
            let seg = shmq::Segment::open(&env(ENV_NAME)?)?;
            let data = seg.queue::<u64>(&format!("data-{}", env(ENV_QUEUE)?))?;
            let m = env_u64(ENV_COUNT)?;
            let mut sum = Checksum::new();
            wait_go()?;
            for v in 0..m {
                data.put(v)?;
                sum.add(v);
            }
            report_and_linger(m, sum)?;
        }
        "iox-echo" => {
            let prefix = env(ENV_NAME)?;
            let node = iox_node()?;
            let ping = node
                .service_builder(&iox_name(&prefix, "ping")?)
                .publish_subscribe::<u64>()
                .open()?;
            let pong = node
                .service_builder(&iox_name(&prefix, "pong")?)
                .publish_subscribe::<u64>()
                .open()?;
            let sub = ping.subscriber_builder().create()?;
            let publ = pong
                .publisher_builder()
                .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
                .create()?;
            let mut idle = Idle::child_side();
            loop {
                match sub.receive()? {
                    Some(sample) => {
                        idle.got();
                        let v = *sample;
                        drop(sample);
                        if v == STOP {
                            break;
                        }
                        if publ.send_copy(v)? != 1 {
                            return Err("iceoryx2 echo: pong reached no subscriber".into());
                        }
                    }
                    None => idle.wait("iceoryx2 echo")?,
                }
            }
        }
        "iox-send" => {
            let prefix = env(ENV_NAME)?;
            let m = env_u64(ENV_COUNT)?;
            let node = iox_node()?;
            let svc = node
                .service_builder(&iox_name(&prefix, "data")?)
                .publish_subscribe::<u64>()
                .open()?;
            let publ = svc
                .publisher_builder()
                .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
                .create()?;
            let mut sum = Checksum::new();
            let mut delivered = 0u64;
            wait_go()?;
            for v in 0..m {
                // Returns the number of subscribers the sample was delivered to.
                delivered += publ.send_copy(v)? as u64;
                sum.add(v);
            }
            report_and_linger(delivered, sum)?;
        }
        "ipc-echo" => {
            let boot = IpcSender::<(IpcSender<u64>, IpcReceiver<u64>)>::connect(env(ENV_NAME)?)?;
            let (ping_tx, ping_rx) = ipcc::channel::<u64>()?;
            let (pong_tx, pong_rx) = ipcc::channel::<u64>()?;
            boot.send((ping_tx, pong_rx))?;
            drop(boot);
            // Ends when the parent drops its ping sender.
            while let Ok(v) = ping_rx.recv() {
                pong_tx.send(v)?;
            }
        }
        "ipc-send" => {
            let m = env_u64(ENV_COUNT)?;
            let tx = IpcSender::<u64>::connect(env(ENV_NAME)?)?;
            let mut sum = Checksum::new();
            wait_go()?;
            for v in 0..m {
                tx.send(v)?;
                sum.add(v);
            }
            report_and_linger(m, sum)?;
        }
        other => return Err(format!("unknown role {other:?}").into()),
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// iceoryx2 setup

fn iox_node() -> Res<iceoryx2::node::Node<ipc::Service>> {
    // No signal handlers: the busy loops never look at the node, and Ctrl-C must still work.
    Ok(NodeBuilder::new()
        .signal_handling_mode(SignalHandlingMode::Disabled)
        .create::<ipc::Service>()?)
}

fn iox_name(prefix: &str, what: &str) -> Res<ServiceName> {
    Ok(ServiceName::new(&format!("{prefix}/{what}"))?)
}

/// Waits until a service has the given number of publishers and subscribers (the child's ports
/// are registered), so that no message is sent before its receiver exists.
fn iox_wait_ports<F>(svc: &F, count: impl Fn(&F) -> bool, what: &str) -> Res<()> {
    let t = Instant::now();
    while !count(svc) {
        if t.elapsed() > Duration::from_secs(30) {
            return Err(format!("iceoryx2: the child's {what} never appeared").into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Measurement loops

struct Counts {
    warmup: u64,
    lat_n: u64,
    lat_n_ipc: u64,
    thr_m: u64,
    thr_m_ipc: u64,
}

struct Latency {
    peer: &'static str,
    wait: &'static str,
    n: u64,
    hist: Histogram<u64>,
}

struct Throughput {
    peer: &'static str,
    wait: &'static str,
    m: u64,
    elapsed: Duration,
}

/// Runs `warmup` unrecorded then `n` recorded round trips; `rt(v)` sends `v` and returns the
/// echoed value.
fn pingpong(warmup: u64, n: u64, mut rt: impl FnMut(u64) -> Res<u64>) -> Res<Histogram<u64>> {
    let mut hist = Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3)?;
    for v in 0..warmup {
        let back = rt(v)?;
        if back != v {
            return Err(format!("warm-up: sent {v}, got {back} back").into());
        }
    }
    for v in warmup..warmup + n {
        let t0 = Instant::now();
        let back = rt(v)?;
        let dt = t0.elapsed();
        if back != v {
            return Err(format!("sent {v}, got {back} back").into());
        }
        hist.saturating_record(dt.as_nanos() as u64);
    }
    Ok(hist)
}

/// Receives `m` messages with `recv`, checking they are `0..m` in order; returns the time from
/// the first to the last and the checksum of what was received.
fn drain(m: u64, mut recv: impl FnMut() -> Res<u64>) -> Res<(Duration, Checksum)> {
    let mut sum = Checksum::new();
    if m == 0 {
        return Ok((Duration::ZERO, sum));
    }
    let first = recv()?;
    let t0 = Instant::now();
    if first != 0 {
        return Err(format!("first message is {first}, expected 0").into());
    }
    sum.add(first);
    for i in 1..m {
        let v = recv()?;
        if v != i {
            return Err(format!("message #{i} is {v} (lost, reordered or duplicated)").into());
        }
        sum.add(v);
    }
    Ok((t0.elapsed(), sum))
}

/// Checks the sender's report ("sent COUNT CHECKSUM") against what was received.
fn verify(peer: &str, m: u64, received: Checksum, report: &str, extra: bool) -> Res<()> {
    let expect = format!("sent {m} {:016x}", Checksum::of_range(m).0);
    let report = report.trim();
    if report != expect {
        return Err(format!("{peer}: sender reported {report:?}, expected {expect:?}").into());
    }
    if received.0 != Checksum::of_range(m).0 {
        return Err(format!("{peer}: checksum of received messages differs").into());
    }
    if extra {
        return Err(format!("{peer}: more than {m} messages arrived").into());
    }
    Ok(())
}

fn shmq_latency(
    seg_name: &str,
    seg: &shmq::Segment,
    sfx: &str,
    spin: bool,
    c: &Counts,
) -> Res<Histogram<u64>> {
    let ping = seg.queue::<u64>(&format!("ping-{sfx}"))?;
    let pong = seg.queue::<u64>(&format!("pong-{sfx}"))?;
    let role = if spin { "shmq-echo-spin" } else { "shmq-echo" };
    let peer = Peer::spawn(role, &[(ENV_NAME, seg_name), (ENV_QUEUE, sfx)])?;
    arm(c.warmup + c.lat_n);
    let hist = if spin {
        let mut idle = Idle::parent_side();
        pingpong(c.warmup, c.lat_n, |v| {
            ping.put(v)?;
            loop {
                match pong.try_get() {
                    Ok(back) => {
                        idle.got();
                        return Ok(back);
                    }
                    Err(shmq::GetError::Empty) => idle.wait("shmq pong")?,
                    Err(e) => return Err(e.into()),
                }
            }
        })?
    } else {
        pingpong(c.warmup, c.lat_n, |v| {
            ping.put(v)?;
            Ok(pong.get()?)
        })?
    };
    ping.close();
    peer.finish()?;
    disarm();
    Ok(hist)
}

fn shmq_throughput(
    seg_name: &str,
    seg: &shmq::Segment,
    sfx: &str,
    spin: bool,
    m: u64,
) -> Res<Duration> {
    let data = seg.queue::<u64>(&format!("data-{sfx}"))?;
    let mut peer = Peer::spawn(
        "shmq-send",
        &[
            (ENV_NAME, seg_name),
            (ENV_QUEUE, sfx),
            (ENV_COUNT, &m.to_string()),
        ],
    )?;
    arm(m);
    peer.go()?;
    let (elapsed, sum) = if spin {
        let mut idle = Idle::parent_side();
        drain(m, || loop {
            match data.try_get() {
                Ok(v) => {
                    idle.got();
                    return Ok(v);
                }
                Err(shmq::GetError::Empty) => idle.wait("shmq data")?,
                Err(e) => return Err(e.into()),
            }
        })?
    } else {
        drain(m, || Ok(data.get()?))?
    };
    let report = peer.finish()?;
    disarm();
    verify("shmq", m, sum, &report, data.try_get().is_ok())?;
    Ok(elapsed)
}

fn iox_latency(
    node: &iceoryx2::node::Node<ipc::Service>,
    prefix: &str,
    c: &Counts,
) -> Res<Histogram<u64>> {
    // One service each way; a 1-sample buffer (as shmq's capacity-1 queues), no overwriting.
    let mk = |what: &str| -> Res<_> {
        Ok(node
            .service_builder(&iox_name(prefix, what)?)
            .publish_subscribe::<u64>()
            .subscriber_max_buffer_size(1)
            .history_size(0)
            .enable_safe_overflow(false)
            .max_publishers(1)
            .max_subscribers(1)
            .create()?)
    };
    let ping = mk("ping")?;
    let pong = mk("pong")?;
    let publ = ping
        .publisher_builder()
        .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
        .create()?;
    let sub = pong.subscriber_builder().create()?;
    let peer = Peer::spawn("iox-echo", &[(ENV_NAME, prefix)])?;
    arm(c.warmup + c.lat_n);
    iox_wait_ports(
        &ping,
        |s| s.dynamic_config().number_of_subscribers() >= 1,
        "ping subscriber",
    )?;
    iox_wait_ports(
        &pong,
        |s| s.dynamic_config().number_of_publishers() >= 1,
        "pong publisher",
    )?;
    let mut idle = Idle::parent_side();
    let hist = pingpong(c.warmup, c.lat_n, |v| {
        if publ.send_copy(v)? != 1 {
            return Err("iceoryx2: ping reached no subscriber".into());
        }
        loop {
            match sub.receive()? {
                Some(sample) => {
                    idle.got();
                    return Ok(*sample);
                }
                None => idle.wait("iceoryx2 pong")?,
            }
        }
    })?;
    publ.send_copy(STOP)?;
    peer.finish()?;
    disarm();
    Ok(hist)
}

fn iox_throughput(
    node: &iceoryx2::node::Node<ipc::Service>,
    prefix: &str,
    m: u64,
) -> Res<Duration> {
    // A 1024-sample subscriber buffer (as shmq's 1024-slot queue), overwriting disabled, and the
    // publisher retries until delivered: a full buffer makes the sender wait, never drop.
    let svc = node
        .service_builder(&iox_name(prefix, "data")?)
        .publish_subscribe::<u64>()
        .subscriber_max_buffer_size(1024)
        .history_size(0)
        .enable_safe_overflow(false)
        .max_publishers(1)
        .max_subscribers(1)
        .create()?;
    let sub = svc.subscriber_builder().create()?;
    let mut peer = Peer::spawn(
        "iox-send",
        &[(ENV_NAME, prefix), (ENV_COUNT, &m.to_string())],
    )?;
    arm(m);
    iox_wait_ports(
        &svc,
        |s| s.dynamic_config().number_of_publishers() >= 1,
        "publisher",
    )?;
    peer.go()?;
    let mut idle = Idle::parent_side();
    let (elapsed, sum) = drain(m, || loop {
        match sub.receive()? {
            Some(sample) => {
                idle.got();
                return Ok(*sample);
            }
            None => idle.wait("iceoryx2 data")?,
        }
    })?;
    let report = peer.finish()?;
    disarm();
    let extra = matches!(sub.receive(), Ok(Some(_)));
    verify("iceoryx2", m, sum, &report, extra)?;
    Ok(elapsed)
}

fn ipc_latency(c: &Counts) -> Res<Histogram<u64>> {
    let (server, name) = IpcOneShotServer::<(IpcSender<u64>, IpcReceiver<u64>)>::new()?;
    let peer = Peer::spawn("ipc-echo", &[(ENV_NAME, &name)])?;
    arm(c.warmup + c.lat_n_ipc);
    let (_boot, (ping, pong)) = server.accept()?;
    let hist = pingpong(c.warmup, c.lat_n_ipc, |v| {
        ping.send(v)?;
        Ok(pong.recv()?)
    })?;
    drop(ping);
    peer.finish()?;
    disarm();
    Ok(hist)
}

fn ipc_throughput(m: u64) -> Res<Duration> {
    // accept() waits for the first message, so with nothing sent it would wait forever.
    if m == 0 {
        return Err("ipc-channel throughput needs at least one message".into());
    }
    let (server, name) = IpcOneShotServer::<u64>::new()?;
    let mut peer = Peer::spawn(
        "ipc-send",
        &[(ENV_NAME, &name), (ENV_COUNT, &m.to_string())],
    )?;
    arm(m);
    peer.go()?;
    // The one-shot server's receiver is the data channel; accept() hands over message 0.
    let (rx, v0) = server.accept()?;
    let mut first = Some(v0);
    let (elapsed, sum) = drain(m, || match first.take() {
        Some(v) => Ok(v),
        None => Ok(rx.recv()?),
    })?;
    let report = peer.finish()?;
    disarm();
    let extra = rx.try_recv().is_ok();
    verify("ipc-channel", m, sum, &report, extra)?;
    Ok(elapsed)
}

// ---------------------------------------------------------------------------------------------
// Report

fn machine_info() -> (String, String, String) {
    let nproc = Command::new("nproc")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.to_string())
                .unwrap_or_else(|_| "?".into())
        });
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "?".into());
    (nproc, kernel, cpu)
}

/// A table rendered either as aligned plain text or as markdown.
struct Table {
    head: Vec<&'static str>,
    /// Columns that are numbers (right-aligned).
    numeric: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn plain(&self) -> String {
        let mut w: Vec<usize> = self.head.iter().map(|h| h.len()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate() {
                w[i] = w[i].max(c.chars().count());
            }
        }
        let mut out = String::new();
        let line = |cells: Vec<&str>, out: &mut String| {
            let mut s = String::new();
            for (i, c) in cells.iter().enumerate() {
                if i > 0 {
                    s.push_str("  ");
                }
                if self.numeric[i] {
                    let _ = write!(s, "{c:>width$}", width = w[i]);
                } else {
                    let _ = write!(s, "{c:<width$}", width = w[i]);
                }
            }
            out.push_str(s.trim_end());
            out.push('\n');
        };
        line(self.head.clone(), &mut out);
        let total = w.iter().sum::<usize>() + 2 * (w.len() - 1);
        out.push_str(&"-".repeat(total));
        out.push('\n');
        for r in &self.rows {
            line(r.iter().map(String::as_str).collect(), &mut out);
        }
        out
    }

    fn markdown(&self) -> String {
        let mut out = format!("| {} |\n|", self.head.join(" | "));
        for &n in &self.numeric {
            out.push_str(if n { " ---: |" } else { " --- |" });
        }
        out.push('\n');
        for r in &self.rows {
            let _ = writeln!(out, "| {} |", r.join(" | "));
        }
        out
    }
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn latency_table(rows: &[Latency]) -> Table {
    Table {
        head: vec![
            "peer",
            "receive wait",
            "round trips",
            "p50 ns",
            "p99 ns",
            "p99.9 ns",
            "mean ns",
        ],
        numeric: vec![false, false, true, true, true, true, true],
        rows: rows
            .iter()
            .map(|r| {
                vec![
                    r.peer.to_string(),
                    r.wait.to_string(),
                    thousands(r.n),
                    thousands(r.hist.value_at_quantile(0.50)),
                    thousands(r.hist.value_at_quantile(0.99)),
                    thousands(r.hist.value_at_quantile(0.999)),
                    thousands(r.hist.mean().round() as u64),
                ]
            })
            .collect(),
    }
}

fn throughput_table(rows: &[Throughput]) -> Table {
    Table {
        head: vec![
            "peer",
            "receive wait",
            "messages",
            "msgs/s",
            "first-to-last ms",
        ],
        numeric: vec![false, false, true, true, true],
        rows: rows
            .iter()
            .map(|r| {
                let secs = r.elapsed.as_secs_f64();
                let rate = if secs > 0.0 {
                    (r.m.saturating_sub(1)) as f64 / secs
                } else {
                    0.0
                };
                vec![
                    r.peer.to_string(),
                    r.wait.to_string(),
                    thousands(r.m),
                    thousands(rate.round() as u64),
                    format!("{:.1}", secs * 1e3),
                ]
            })
            .collect(),
    }
}

fn notes(c: &Counts, quick: bool) -> Vec<String> {
    let mut n = vec![
        "All messages are one u64 (8 bytes); one parent and one child process (this binary \
         re-executed); no CPU pinning."
            .to_string(),
        format!(
            "Latency: {} unrecorded warm-up round trips, then every round trip timed \
             (Instant::now() before the send and after the echo came back).",
            thousands(c.warmup)
        ),
        "shmq: two Queue<u64> of capacity 1 (latency), one of capacity 1024 (throughput). \
         'adaptive' = blocking get()/put() (spin, then yield, then futex sleep); 'busy-poll' = \
         try_get() in a loop with spin_loop() on the receiving side(s)."
            .to_string(),
        "iceoryx2: publish-subscribe over ipc::Service, one service each way for latency; \
         subscriber buffer 1 (latency) / 1024 (throughput), safe overflow disabled, publisher \
         backpressure RetryUntilDelivered (no loss). A plain subscriber has no blocking \
         receive, so every receiver busy-polls receive(): compare it with the shmq busy-poll \
         rows. Samples are sent with send_copy (loan + write + send). No config file: iceoryx2's \
         built-in defaults apart from the settings named here."
            .to_string(),
        "ipc-channel: IpcSender<u64>/IpcReceiver<u64> each way (Unix-domain sockets + \
         serialization, blocking recv() in the kernel), bootstrapped with IpcOneShotServer."
            .to_string(),
        "Throughput: the child sends 0..M as fast as it can; the parent times from the first \
         message received to the last; msgs/s = (M - 1) / that time. Every run checks order, \
         count and an order-sensitive checksum against the sender's own report."
            .to_string(),
    ];
    if c.lat_n_ipc != c.lat_n || c.thr_m_ipc != c.thr_m {
        n.push(format!(
            "ipc-channel uses fewer messages: {} round trips, {} throughput messages.",
            thousands(c.lat_n_ipc),
            thousands(c.thr_m_ipc)
        ));
    }
    if quick {
        n.push(
            "QUICK MODE: every count divided by 100. These are smoke-test numbers, not results."
                .to_string(),
        );
    }
    n
}

// ---------------------------------------------------------------------------------------------
// Parent

fn parent_main() -> Res<()> {
    let mut quick = false;
    let mut out: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--out" => out = Some(args.next().ok_or("--out needs a file name")?),
            "-h" | "--help" => {
                println!("usage: compare [--quick] [--out FILE]");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?} (try --help)").into()),
        }
    }
    let div = if quick { 100 } else { 1 };
    let c = Counts {
        warmup: WARMUP / div,
        lat_n: LAT_N / div,
        lat_n_ipc: LAT_N_IPC / div,
        thr_m: THR_M / div,
        thr_m_ipc: THR_M_IPC / div,
    };

    let (nproc, kernel, cpu) = machine_info();
    let mode = if quick {
        "QUICK (counts / 100; smoke test only, not results)"
    } else {
        "full"
    };
    let header = format!(
        "shmq vs iceoryx2 vs ipc-channel: cross-process, 8-byte messages\n\
         nproc: {nproc}   kernel: {kernel}   cpu: {cpu}\nmode: {mode}\n"
    );
    println!("{header}");

    start_watchdog();

    let pid = std::process::id();
    let seg_name = format!("shmq-compare-{pid}");
    let seg = shmq::Segment::builder(&seg_name)
        .queue::<u64>("ping-a", 1)
        .queue::<u64>("pong-a", 1)
        .queue::<u64>("ping-s", 1)
        .queue::<u64>("pong-s", 1)
        .queue::<u64>("data-a", 1024)
        .queue::<u64>("data-s", 1024)
        .create_or_replace()?;
    let node = iox_node()?;
    let iox_prefix = format!("shmq-compare/{pid}");

    let step = |what: &str| {
        eprint!("  {what} ... ");
        let _ = std::io::stderr().flush();
    };
    let t_all = Instant::now();
    let mut lat = Vec::new();
    let mut thr = Vec::new();

    step("latency shmq adaptive");
    let t = Instant::now();
    let hist = shmq_latency(&seg_name, &seg, "a", false, &c)?;
    eprintln!("{:.1?}", t.elapsed());
    lat.push(Latency {
        peer: "shmq",
        wait: "adaptive get()",
        n: c.lat_n,
        hist,
    });

    step("latency shmq busy-poll");
    let t = Instant::now();
    let hist = shmq_latency(&seg_name, &seg, "s", true, &c)?;
    eprintln!("{:.1?}", t.elapsed());
    lat.push(Latency {
        peer: "shmq",
        wait: "busy-poll try_get()",
        n: c.lat_n,
        hist,
    });

    step("latency iceoryx2");
    let t = Instant::now();
    let hist = iox_latency(&node, &format!("{iox_prefix}/lat"), &c)?;
    eprintln!("{:.1?}", t.elapsed());
    lat.push(Latency {
        peer: "iceoryx2",
        wait: "busy-poll receive()",
        n: c.lat_n,
        hist,
    });

    step("latency ipc-channel");
    let t = Instant::now();
    let hist = ipc_latency(&c)?;
    eprintln!("{:.1?}", t.elapsed());
    lat.push(Latency {
        peer: "ipc-channel",
        wait: "blocking recv()",
        n: c.lat_n_ipc,
        hist,
    });

    step("throughput shmq adaptive");
    let t = Instant::now();
    let elapsed = shmq_throughput(&seg_name, &seg, "a", false, c.thr_m)?;
    eprintln!("{:.1?}", t.elapsed());
    thr.push(Throughput {
        peer: "shmq",
        wait: "adaptive put()/get()",
        m: c.thr_m,
        elapsed,
    });

    step("throughput shmq busy-poll");
    let t = Instant::now();
    let elapsed = shmq_throughput(&seg_name, &seg, "s", true, c.thr_m)?;
    eprintln!("{:.1?}", t.elapsed());
    thr.push(Throughput {
        peer: "shmq",
        wait: "put() / busy-poll try_get()",
        m: c.thr_m,
        elapsed,
    });

    step("throughput iceoryx2");
    let t = Instant::now();
    let elapsed = iox_throughput(&node, &format!("{iox_prefix}/thr"), c.thr_m)?;
    eprintln!("{:.1?}", t.elapsed());
    thr.push(Throughput {
        peer: "iceoryx2",
        wait: "send_copy() / busy-poll receive()",
        m: c.thr_m,
        elapsed,
    });

    step("throughput ipc-channel");
    let t = Instant::now();
    let elapsed = ipc_throughput(c.thr_m_ipc)?;
    eprintln!("{:.1?}", t.elapsed());
    thr.push(Throughput {
        peer: "ipc-channel",
        wait: "send() / blocking recv()",
        m: c.thr_m_ipc,
        elapsed,
    });
    eprintln!("  all measurements: {:.1?}\n", t_all.elapsed());

    let lat_t = latency_table(&lat);
    let thr_t = throughput_table(&thr);
    let notes = notes(&c, quick);

    println!("Round-trip latency (parent -> child -> parent), nanoseconds\n");
    println!("{}", lat_t.plain());
    println!("One-way throughput (child -> parent)\n");
    println!("{}", thr_t.plain());
    println!("Notes:");
    for n in &notes {
        println!("- {n}");
    }

    if let Some(path) = out {
        let mut md = String::new();
        let _ = writeln!(md, "# shmq vs iceoryx2 vs ipc-channel\n");
        let _ = writeln!(
            md,
            "- nproc: {nproc}\n- kernel: {kernel}\n- cpu: {cpu}\n- mode: {mode}\n"
        );
        let _ = writeln!(
            md,
            "## Round-trip latency (parent -> child -> parent), nanoseconds\n"
        );
        md.push_str(&lat_t.markdown());
        let _ = writeln!(md, "\n## One-way throughput (child -> parent)\n");
        md.push_str(&thr_t.markdown());
        let _ = writeln!(md, "\n## Notes\n");
        for n in &notes {
            let _ = writeln!(md, "- {n}");
        }
        std::fs::write(&path, md)?;
        println!("\nwrote {path}");
    }
    drop(node);
    drop(seg);
    Ok(())
}

fn main() {
    // iceoryx2 warns (in every process) that it found no config file and uses its defaults;
    // that is intended here, so only errors are shown.
    set_log_level(LogLevel::Error);
    let result = match std::env::var(ENV_ROLE) {
        Ok(role) => child_main(&role).map_err(|e| format!("child {role}: {e}").into()),
        Err(_) => parent_main(),
    };
    if let Err(e) = result {
        eprintln!("compare: error: {e}");
        std::process::exit(1);
    }
}
