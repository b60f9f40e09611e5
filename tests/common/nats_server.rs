//! A nats-server with JetStream for the bridge's tests: the one at `SHMQ_NATS_URL` if set (CI
//! starts one on loopback), else one started here if `nats-server` is on PATH (with its store in
//! a temporary directory). Without either, `server` returns `None` (the test says so and
//! passes) unless `SHMQ_REQUIRE_NATS=1` (CI), where it panics. Shared by `tests/bridge.rs` and
//! the unit tests of the `shmq` binary's bridge, which include this file by path.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A child process killed (and reaped) when dropped.
pub struct Held(pub Child);

impl Drop for Held {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A server to talk to: its URL, and the process and store directory if this test started it.
pub struct Server {
    pub url: String,
    _process: Option<Held>,
    store: Option<std::path::PathBuf>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self._process.take();
        if let Some(dir) = &self.store {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

pub fn server(tag: &str) -> Option<Server> {
    if let Ok(url) = std::env::var("SHMQ_NATS_URL") {
        return Some(Server {
            url,
            _process: None,
            store: None,
        });
    }
    let required = std::env::var("SHMQ_REQUIRE_NATS").is_ok_and(|v| v == "1");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let store = std::env::temp_dir().join(format!("shmq-nats-{}-{tag}", std::process::id()));
    let child = Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(&store)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => Held(c),
        Err(e) => {
            assert!(
                !required,
                "SHMQ_REQUIRE_NATS=1 but nats-server cannot run: {e}"
            );
            eprintln!("skipped: no SHMQ_NATS_URL and no nats-server on PATH ({e})");
            return None;
        }
    };
    // It says when it listens.
    let err = child.0.stderr.take().expect("piped stderr");
    let mut lines = BufReader::new(err).lines();
    loop {
        match lines.next() {
            Some(Ok(l)) if l.contains("Server is ready") => break,
            Some(Ok(_)) => {}
            other => panic!("nats-server ended before it was ready: {other:?}"),
        }
    }
    // Keep draining its log so that it never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Some(Server {
        url: format!("nats://127.0.0.1:{port}"),
        _process: Some(child),
        store: Some(store),
    })
}
