//! Two producer processes each put the integers 0..10; two consumer processes take them until the
//! queue is closed. The parent checks that all 20 arrived exactly once.
//!
//! `cargo run --example two_by_two`

use shmq::{process, GetError, Segment};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    match process::role().as_deref() {
        Some(role) if role.starts_with("producer") => {
            let q = process::segment()?.queue::<i64>("numbers")?;
            for i in 0..10 {
                q.put(i)?;
                println!("{role} put {i}");
            }
            return Ok(());
        }
        Some(role) if role.starts_with("consumer") => {
            let seg = process::segment()?;
            let q = seg.queue::<i64>("numbers")?;
            let results = seg.queue::<i64>("results")?;
            loop {
                match q.get() {
                    Ok(v) => {
                        println!("{role} got {v}");
                        results.put(v)?;
                    }
                    Err(GetError::Closed) => return Ok(()),
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Some(other) => return Err(format!("unknown role {other}").into()),
        None => {}
    }

    let name = format!("shmq-example-2x2-{}", std::process::id());
    let seg = Segment::builder(&name)
        .queue::<i64>("numbers", 4)
        .queue::<i64>("results", 32)
        .create()?;
    // This process closes "numbers" once both producers are done: it counts as a producer until
    // then, so a consumer does not take the moment between one producer's exit and the other's
    // first put for the end (`Disconnected`).
    seg.queue::<i64>("numbers")?.register_producer();
    let consumers = [
        process::spawn(&seg, "consumer-1")?,
        process::spawn(&seg, "consumer-2")?,
    ];
    let producers = [
        process::spawn(&seg, "producer-1")?,
        process::spawn(&seg, "producer-2")?,
    ];
    for p in producers {
        assert_eq!(p.join()?, 0, "producer failed");
    }
    seg.queue::<i64>("numbers")?.close();
    for c in consumers {
        assert_eq!(c.join()?, 0, "consumer failed");
    }
    let results = seg.queue::<i64>("results")?;
    let mut got = Vec::new();
    while let Ok(v) = results.try_get() {
        got.push(v);
    }
    got.sort_unstable();
    let expected: Vec<i64> = (0..10).flat_map(|i| [i, i]).collect();
    println!("received {} numbers: {:?}", got.len(), got);
    assert_eq!(got, expected, "a number was lost or duplicated");
    println!("all 20 numbers arrived exactly once");
    Ok(())
}
