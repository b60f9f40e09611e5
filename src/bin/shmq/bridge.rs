//! `shmq bridge`: a local byte queue to a NATS subject (`out`), and a NATS subject to a local
//! byte queue (`in`), through a JetStream stream, so that a pipeline that outgrows one host keeps
//! its shape (docs/bridge.md).
//!
//! `out` takes messages from the local queue in batches of up to `--window`, publishes each
//! with a `Nats-Msg-Id` (`PID-START-SEQ`, so a publish repeated after a lost acknowledgement is
//! dropped by the stream's duplicate window), and takes the next batch once the stream has
//! acknowledged every message of this one. `in` pulls batches from a durable consumer, puts
//! each message into the local queue, then acknowledges it: a bridge that dies in between gets
//! the message again after the consumer's `ack_wait` (at-least-once: a duplicate, never a loss).

use crate::nats::{Client, NatsError};
use shmq::{BytesQueue, GetError, Segment};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// What both directions are told.
pub struct BridgeOpts {
    pub server: String,
    pub stream: Option<String>,
    pub durable: Option<String>,
    pub count: Option<u64>,
    pub window: usize,
    /// How long the durable consumer waits for an acknowledgement before it delivers a message
    /// again (`in`; used when the consumer is created).
    pub ack_wait: Duration,
}

/// Why a bridge stopped with an error.
pub enum BridgeError {
    Open(shmq::OpenError),
    Nats(NatsError),
    Queue(String),
}

impl From<NatsError> for BridgeError {
    fn from(e: NatsError) -> Self {
        BridgeError::Nats(e)
    }
}

impl From<shmq::OpenError> for BridgeError {
    fn from(e: shmq::OpenError) -> Self {
        BridgeError::Open(e)
    }
}

/// What a bridge did.
pub struct Moved {
    pub messages: u64,
    pub bytes: u64,
    pub secs: f64,
    /// Publishes repeated after an acknowledgement did not come in time (out), or messages
    /// the stream delivered again (in: seen with a delivery count above 1).
    pub retried: u64,
}

/// The stream a subject's bridges use unless told: `SHMQ_` and the subject, with every byte
/// outside `[A-Za-z0-9_-]` as `_`.
fn stream_of(subject: &str, o: &BridgeOpts) -> String {
    o.stream.clone().unwrap_or_else(|| {
        let s: String = subject
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        format!("SHMQ_{s}")
    })
}

fn inbox() -> String {
    let (pid, nanos) = (
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos()),
    );
    format!("_INBOX.shmq.{pid}.{nanos}")
}

/// Creates the stream if it does not exist (an existing one is used as it is).
fn ensure_stream(
    c: &mut Client,
    inbox: &str,
    stream: &str,
    subject: &str,
) -> Result<(), NatsError> {
    let body = format!(
        "{{\"name\":\"{stream}\",\"subjects\":[\"{subject}\"],\"storage\":\"file\",\
         \"retention\":\"limits\",\"duplicate_window\":120000000000}}"
    );
    // 10058: a stream of that name exists already. 10065, "subjects overlap", is also what
    // the server answers the loser of two creates of one new stream racing each other (two
    // bridges of a subject starting together): then the stream now exists under our name with
    // our subject, which its description says. Any other overlap is a real conflict.
    let answer = c.request(
        inbox,
        &format!("$JS.API.STREAM.CREATE.{stream}"),
        &body,
        &[10058, 10065],
    )?;
    if answer.contains("\"err_code\":10065") {
        let ours = c
            .request(inbox, &format!("$JS.API.STREAM.INFO.{stream}"), "", &[])
            .is_ok_and(|info| info.contains(&format!("\"{subject}\"")));
        if !ours {
            return Err(NatsError::Api(format!(
                "subject {subject} overlaps a stream other than {stream} (name it with --stream): \
                 {answer}"
            )));
        }
    }
    Ok(())
}

fn open_queue(segment: &str, queue: &str) -> Result<(Segment, BytesQueue), BridgeError> {
    let seg = Segment::open(segment)?;
    let q = seg.bytes_queue(queue)?;
    Ok((seg, q))
}

/// `shmq bridge out SEGMENT QUEUE SUBJECT`.
pub fn out(
    segment: &str,
    queue: &str,
    subject: &str,
    o: &BridgeOpts,
) -> Result<Moved, BridgeError> {
    let (_seg, q) = open_queue(segment, queue)?;
    let mut c = Client::connect(&o.server)?;
    let inbox = inbox();
    c.subscribe(&format!("{inbox}.>"))?;
    let stream = stream_of(subject, o);
    ensure_stream(&mut c, &inbox, &stream, subject)?;
    let (pid, start) = (std::process::id(), Instant::now());
    let id_base = format!(
        "{pid}-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    let mut moved = Moved {
        messages: 0,
        bytes: 0,
        secs: 0.0,
        retried: 0,
    };
    let mut seq: u64 = 0;
    let mut batch: Vec<Vec<u8>> = Vec::with_capacity(o.window);
    let mut closed = false;
    while !closed && o.count.map_or(true, |n| moved.messages < n) {
        let room = o.count.map_or(o.window, |n| {
            (n - moved.messages).min(o.window as u64) as usize
        });
        batch.clear();
        // Wait for the first message a little at a time (the queue may be idle), then take
        // what is there, up to the window.
        match q.get_timeout(Duration::from_millis(200)) {
            Ok(m) => batch.push(m),
            Err(GetError::Closed) => break,
            Err(GetError::Timeout) | Err(GetError::Empty) => continue,
            // No live producer: nothing comes until one starts. Its puts are polled for (the
            // disconnect is reported at once, so a blocking get would spin).
            Err(GetError::Disconnected) => {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            Err(e) => return Err(BridgeError::Queue(e.to_string())),
        }
        while batch.len() < room {
            match q.try_get() {
                Ok(m) => batch.push(m),
                Err(GetError::Closed) => {
                    closed = true;
                    break;
                }
                Err(_) => break,
            }
        }
        // Publish the batch; every message waits for the stream's acknowledgement.
        let first = seq;
        let mut pending: HashMap<u64, usize> = HashMap::with_capacity(batch.len());
        for (i, m) in batch.iter().enumerate() {
            c.publish(
                subject,
                Some(&format!("{inbox}.{seq}")),
                Some(&format!("{id_base}-{seq}")),
                m,
            )?;
            pending.insert(seq, i);
            seq += 1;
        }
        c.flush()?;
        let mut tries = 0;
        while !pending.is_empty() {
            let deadline = Instant::now() + Duration::from_secs(5);
            let got = loop {
                match c.next_msg(deadline) {
                    Ok(m) => {
                        let Some(n) = m
                            .subject
                            .strip_prefix(&inbox)
                            .and_then(|s| s.strip_prefix('.'))
                            .and_then(|s| s.parse::<u64>().ok())
                        else {
                            continue;
                        };
                        if n < first || !pending.contains_key(&n) {
                            continue; // a late answer to an earlier try
                        }
                        let text = String::from_utf8_lossy(&m.payload);
                        if m.status == Some(503) {
                            return Err(NatsError::Api(format!(
                                "no stream takes subject {subject}"
                            ))
                            .into());
                        }
                        if text.contains("\"error\"") {
                            return Err(NatsError::Api(text.into_owned()).into());
                        }
                        pending.remove(&n);
                        if pending.is_empty() {
                            break true;
                        }
                    }
                    Err(NatsError::Timeout(_)) => break false,
                    Err(e) => return Err(e.into()),
                }
            };
            if got {
                break;
            }
            tries += 1;
            if tries > 5 {
                return Err(NatsError::Timeout("the stream's acknowledgements").into());
            }
            // Publish again what was not acknowledged: the same ids, so the stream keeps one.
            for (&n, &i) in &pending {
                c.publish(
                    subject,
                    Some(&format!("{inbox}.{n}")),
                    Some(&format!("{id_base}-{n}")),
                    &batch[i],
                )?;
                moved.retried += 1;
            }
            c.flush()?;
        }
        moved.messages += batch.len() as u64;
        moved.bytes += batch.iter().map(|m| m.len() as u64).sum::<u64>();
    }
    moved.secs = start.elapsed().as_secs_f64();
    Ok(moved)
}

/// `shmq bridge in SUBJECT SEGMENT QUEUE`.
pub fn into(
    subject: &str,
    segment: &str,
    queue: &str,
    o: &BridgeOpts,
) -> Result<Moved, BridgeError> {
    let (_seg, q) = open_queue(segment, queue)?;
    q.register_producer();
    let mut c = Client::connect(&o.server)?;
    let inbox = inbox();
    c.subscribe(&format!("{inbox}.api"))?;
    let pulls = c.subscribe(&format!("{inbox}.next"))?;
    let stream = stream_of(subject, o);
    ensure_stream(&mut c, &inbox, &stream, subject)?;
    let durable = o.durable.clone().unwrap_or_else(|| format!("{stream}_IN"));
    let config = format!(
        "{{\"stream_name\":\"{stream}\",\"config\":{{\"durable_name\":\"{durable}\",\
         \"ack_policy\":\"explicit\",\"deliver_policy\":\"all\",\"ack_wait\":{},\
         \"max_ack_pending\":{},\"filter_subject\":\"{subject}\"}}}}",
        o.ack_wait.as_nanos(),
        (o.window * 4).max(1024)
    );
    c.request(
        &inbox,
        &format!("$JS.API.CONSUMER.DURABLE.CREATE.{stream}.{durable}"),
        &config,
        &[],
    )?;
    let start = Instant::now();
    let mut moved = Moved {
        messages: 0,
        bytes: 0,
        secs: 0.0,
        retried: 0,
    };
    let next = format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}");
    let reply = format!("{inbox}.next");
    while o.count.map_or(true, |n| moved.messages < n) {
        let want = o.count.map_or(o.window, |n| {
            (n - moved.messages).min(o.window as u64) as usize
        });
        let body = format!("{{\"batch\":{want},\"expires\":500000000}}");
        c.publish(&next, Some(&reply), None, body.as_bytes())?;
        c.flush()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut got = 0;
        while got < want {
            let m = c.next_msg(deadline)?;
            if m.sid != pulls {
                continue;
            }
            match m.status {
                // No messages, the pull's time ran out, or it was ended: the batch is over.
                Some(404) | Some(408) | Some(409) => break,
                Some(code) => {
                    return Err(NatsError::Api(format!("pull answered status {code}")).into())
                }
                None => {}
            }
            let Some(ack) = m.reply else {
                continue;
            };
            q.put(&m.payload)
                .map_err(|e| BridgeError::Queue(e.to_string()))?;
            // The ack reply subject carries the delivery count: $JS.ACK.<stream>.<consumer>.
            // <delivered>.<stream seq>.<consumer seq>.<time>.<pending>.
            if ack.split('.').nth(4).is_some_and(|d| d != "1") {
                moved.retried += 1;
            }
            c.publish(&ack, None, None, b"")?;
            got += 1;
            moved.messages += 1;
            moved.bytes += m.payload.len() as u64;
        }
        c.flush()?;
    }
    moved.secs = start.elapsed().as_secs_f64();
    Ok(moved)
}

#[cfg(test)]
#[path = "../../../tests/common/nats_server.rs"]
mod nats_server;

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier};

    /// Two bridges of one subject start together and both create its stream: the server may
    /// answer one of two racing creates with "subjects overlap" (10065) rather than with the
    /// stream, which once stopped a receiving bridge at its start. Eight clients create each
    /// of 200 new streams at once (released by a barrier); every create must succeed.
    #[test]
    fn racing_creates_of_one_stream_all_succeed() {
        let Some(server) = nats_server::server("race") else {
            return;
        };
        const CLIENTS: usize = 8;
        const ROUNDS: usize = 200;
        let barrier = Arc::new(Barrier::new(CLIENTS));
        let pid = std::process::id();
        let threads: Vec<_> = (0..CLIENTS)
            .map(|t| {
                let (barrier, url) = (barrier.clone(), server.url.clone());
                std::thread::spawn(move || -> Vec<String> {
                    let mut c = Client::connect(&url).unwrap();
                    let inbox = format!("_INBOX.shmq.race.{pid}.{t}");
                    c.subscribe(&format!("{inbox}.>")).unwrap();
                    // Every round runs to the barrier whatever happened before: a thread that
                    // left early would leave the others waiting for it.
                    let mut failures = Vec::new();
                    for round in 0..ROUNDS {
                        let subject = format!("shmq.race.{pid}.{round}");
                        let stream = format!("SHMQ_RACE_{pid}_{round}");
                        barrier.wait();
                        if let Err(e) = ensure_stream(&mut c, &inbox, &stream, &subject) {
                            failures.push(format!("round {round}, client {t}: {e}"));
                        }
                    }
                    failures
                })
            })
            .collect();
        let failures: Vec<String> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        assert!(failures.is_empty(), "creates failed: {failures:#?}");
    }

    /// A subject already taken by a stream of another name stays an error, and says so.
    #[test]
    fn a_subject_taken_by_another_stream_is_an_error() {
        let Some(server) = nats_server::server("taken") else {
            return;
        };
        let pid = std::process::id();
        let mut c = Client::connect(&server.url).unwrap();
        let inbox = format!("_INBOX.shmq.taken.{pid}");
        c.subscribe(&format!("{inbox}.>")).unwrap();
        let subject = format!("shmq.taken.{pid}");
        ensure_stream(&mut c, &inbox, &format!("SHMQ_A_{pid}"), &subject).unwrap();
        let e = ensure_stream(&mut c, &inbox, &format!("SHMQ_B_{pid}"), &subject)
            .expect_err("a second stream on the same subject");
        assert!(e.to_string().contains("overlap"), "{e}");
    }
}
