//! A small blocking NATS client: the text protocol over one TCP connection (CONNECT, PING/PONG,
//! SUB, PUB and HPUB, MSG and HMSG), enough for the bridge's JetStream use (a stream, publishes
//! acknowledged by the stream, a durable pull consumer, acks). Hand-written so that the binary
//! needs no async runtime and no dependency; docs/bridge.md says what it does not do (TLS,
//! authentication, reconnection).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Why talking to the server failed.
#[derive(Debug)]
pub enum NatsError {
    Io(std::io::Error),
    /// The server said `-ERR ...`, or sent something this client does not understand.
    Protocol(String),
    /// A JetStream API call answered with an error.
    Api(String),
    /// No answer in time.
    Timeout(&'static str),
}

impl std::fmt::Display for NatsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NatsError::Io(e) => write!(f, "NATS connection: {e}"),
            NatsError::Protocol(m) => write!(f, "NATS protocol: {m}"),
            NatsError::Api(m) => write!(f, "JetStream: {m}"),
            NatsError::Timeout(what) => write!(f, "NATS: no answer in time ({what})"),
        }
    }
}

impl From<std::io::Error> for NatsError {
    fn from(e: std::io::Error) -> Self {
        match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                NatsError::Timeout("read")
            }
            _ => NatsError::Io(e),
        }
    }
}

/// A message delivered on a subscription.
pub struct Msg {
    pub subject: String,
    /// The subscription it came on.
    pub sid: u64,
    pub reply: Option<String>,
    /// The status code of a header-only status message (`NATS/1.0 404 No Messages`), if any.
    pub status: Option<u16>,
    pub payload: Vec<u8>,
}

pub struct Client {
    reader: BufReader<TcpStream>,
    writer: std::io::BufWriter<TcpStream>,
    next_sid: u64,
    line: String,
    /// `line` holds the start of a line whose read timed out: the next read goes on with it.
    partial: bool,
}

/// `nats://host:port` or `host:port` to `host:port`.
fn address(url: &str) -> &str {
    url.strip_prefix("nats://").unwrap_or(url)
}

impl Client {
    /// Connects, sends CONNECT and waits for the server's PONG.
    pub fn connect(url: &str) -> Result<Self, NatsError> {
        let stream = TcpStream::connect(address(url))?;
        stream.set_nodelay(true)?;
        let mut c = Client {
            reader: BufReader::with_capacity(1 << 16, stream.try_clone()?),
            writer: std::io::BufWriter::with_capacity(1 << 16, stream),
            next_sid: 1,
            line: String::new(),
            partial: false,
        };
        c.read_line()?;
        if !c.line.starts_with("INFO ") {
            return Err(NatsError::Protocol(format!(
                "expected INFO, got {:?}",
                c.line
            )));
        }
        c.writer.write_all(
            b"CONNECT {\"verbose\":false,\"pedantic\":false,\"lang\":\"rust\",\"version\":\"0.1\",\
              \"protocol\":1,\"headers\":true,\"no_responders\":true,\"name\":\"shmq bridge\"}\r\n\
              PING\r\n",
        )?;
        c.writer.flush()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match c.next(deadline)? {
                Some(_) => continue,
                None if c.line == "PONG" => return Ok(c),
                None => {}
            }
        }
    }

    /// Subscribes to `subject`; returns the subscription id.
    pub fn subscribe(&mut self, subject: &str) -> Result<u64, NatsError> {
        let sid = self.next_sid;
        self.next_sid += 1;
        write!(self.writer, "SUB {subject} {sid}\r\n")?;
        Ok(sid)
    }

    /// Queues a publish (sent at the next [`flush`](Self::flush)), with a `Nats-Msg-Id` header
    /// (JetStream drops a second publish of the same id within its duplicate window) if `id`.
    pub fn publish(
        &mut self,
        subject: &str,
        reply: Option<&str>,
        id: Option<&str>,
        payload: &[u8],
    ) -> Result<(), NatsError> {
        let reply = reply.map(|r| format!(" {r}")).unwrap_or_default();
        match id {
            None => write!(self.writer, "PUB {subject}{reply} {}\r\n", payload.len())?,
            Some(id) => {
                let headers = format!("NATS/1.0\r\nNats-Msg-Id: {id}\r\n\r\n");
                write!(
                    self.writer,
                    "HPUB {subject}{reply} {} {}\r\n{headers}",
                    headers.len(),
                    headers.len() + payload.len()
                )?;
            }
        }
        self.writer.write_all(payload)?;
        self.writer.write_all(b"\r\n")?;
        Ok(())
    }

    pub fn flush(&mut self) -> Result<(), NatsError> {
        self.writer.flush()?;
        Ok(())
    }

    /// The next message, answering the server's PINGs meanwhile; `Timeout` after `deadline`.
    pub fn next_msg(&mut self, deadline: Instant) -> Result<Msg, NatsError> {
        loop {
            if let Some(m) = self.next(deadline)? {
                return Ok(m);
            }
        }
    }

    fn read_line(&mut self) -> Result<(), NatsError> {
        if !self.partial {
            self.line.clear();
        }
        // A timeout may cut a line: keep what was read, and go on with it next time.
        self.partial = true;
        if self.reader.read_line(&mut self.line)? == 0 {
            return Err(NatsError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        self.partial = !self.line.ends_with('\n');
        if self.partial {
            return Err(NatsError::Timeout("line"));
        }
        let n = self.line.trim_end_matches(['\r', '\n']).len();
        self.line.truncate(n);
        Ok(())
    }

    /// Reads one protocol line (and its payload): a message, or `None` for anything else
    /// (`self.line` then holds it).
    fn next(&mut self, deadline: Instant) -> Result<Option<Msg>, NatsError> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() && self.reader.buffer().is_empty() {
            return Err(NatsError::Timeout("message"));
        }
        // A zero timeout means "none" to the socket: keep at least a millisecond.
        self.reader
            .get_ref()
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
        self.read_line()?;
        let mut f = self.line.split_ascii_whitespace();
        let op = f.next().unwrap_or("");
        let bad = |l: &str| NatsError::Protocol(format!("cannot read {l:?}"));
        match op {
            "MSG" | "HMSG" => {
                let parts: Vec<String> = f.map(str::to_string).collect();
                let headers = op == "HMSG";
                // MSG subject sid [reply] len; HMSG subject sid [reply] hlen tlen
                let fixed = if headers { 4 } else { 3 };
                let reply = (parts.len() == fixed + 1).then(|| parts[2].clone());
                if parts.len() != fixed && parts.len() != fixed + 1 {
                    return Err(bad(&self.line));
                }
                let total: usize = parts[parts.len() - 1]
                    .parse()
                    .map_err(|_| bad(&self.line))?;
                let hlen: usize = if headers {
                    parts[parts.len() - 2]
                        .parse()
                        .map_err(|_| bad(&self.line))?
                } else {
                    0
                };
                if hlen > total {
                    return Err(bad(&self.line));
                }
                let sid: u64 = parts[1].parse().map_err(|_| bad(&self.line))?;
                // The payload follows its line at once: wait for it whatever the deadline.
                self.reader
                    .get_ref()
                    .set_read_timeout(Some(Duration::from_secs(30)))?;
                let mut body = vec![0; total + 2];
                self.reader.read_exact(&mut body)?;
                body.truncate(total);
                let status = headers
                    .then(|| {
                        let h = std::str::from_utf8(&body[..hlen]).ok()?;
                        h.lines()
                            .next()?
                            .split_ascii_whitespace()
                            .nth(1)?
                            .parse()
                            .ok()
                    })
                    .flatten();
                let payload = body.split_off(hlen);
                Ok(Some(Msg {
                    subject: parts[0].clone(),
                    sid,
                    reply,
                    status,
                    payload,
                }))
            }
            "PING" => {
                self.writer.write_all(b"PONG\r\n")?;
                self.writer.flush()?;
                Ok(None)
            }
            "-ERR" => Err(NatsError::Protocol(self.line.clone())),
            _ => Ok(None), // +OK, PONG, INFO
        }
    }

    /// A JetStream API request: publishes `body` to `subject` with a reply inbox and waits for
    /// the answer. An answer with an `"error"` is `Api`, unless its code is in `accept`.
    pub fn request(
        &mut self,
        inbox: &str,
        subject: &str,
        body: &str,
        accept: &[u32],
    ) -> Result<String, NatsError> {
        let reply = format!("{inbox}.api");
        self.publish(subject, Some(&reply), None, body.as_bytes())?;
        self.flush()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let m = self.next_msg(deadline)?;
            if m.subject != reply {
                continue;
            }
            if m.status == Some(503) {
                return Err(NatsError::Api(format!(
                    "no JetStream answers {subject} (is the server run with -js?)"
                )));
            }
            let text = String::from_utf8_lossy(&m.payload).into_owned();
            if text.contains("\"error\"")
                && !accept
                    .iter()
                    .any(|c| text.contains(&format!("\"err_code\":{c}")))
            {
                return Err(NatsError::Api(text));
            }
            return Ok(text);
        }
    }
}
