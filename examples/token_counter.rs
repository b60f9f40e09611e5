//! Two processes pass one integer token through a queue, each adding 1 to it 50 times.
//! The final value is 100.
//!
//! `cargo run --example token_counter`

use shmq::{process, Segment};

const ROUNDS: u64 = 50;

fn player(
    seg: &Segment,
    me: &str,
    inbox: &str,
    outbox: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let (inbox, outbox) = (seg.queue::<u64>(inbox)?, seg.queue::<u64>(outbox)?);
    for _ in 0..ROUNDS {
        let token = inbox.get()?;
        outbox.put(token + 1)?;
    }
    println!("{me} done");
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let Some(role) = process::role() {
        let seg = process::segment()?;
        return match role.as_str() {
            "ping" => player(&seg, "ping", "to_ping", "to_pong"),
            "pong" => player(&seg, "pong", "to_pong", "to_ping"),
            other => Err(format!("unknown role {other}").into()),
        };
    }
    let name = format!("shmq-example-token-{}", std::process::id());
    let seg = Segment::builder(&name)
        .queue::<u64>("to_ping", 1)
        .queue::<u64>("to_pong", 1)
        .create()?;
    let ping = process::spawn(&seg, "ping")?;
    let pong = process::spawn(&seg, "pong")?;
    seg.queue::<u64>("to_ping")?.put(0)?;
    assert_eq!(ping.join()?, 0);
    assert_eq!(pong.join()?, 0);
    // After ping's 50th pass the token went back to ping's inbox with pong's last addition.
    let token = seg.queue::<u64>("to_ping")?.get()?;
    println!("Final value: {token}");
    assert_eq!(token, 2 * ROUNDS);
    Ok(())
}
