//! Four processes count the words of a generated text into one shared dictionary (each takes
//! every fourth line and adds 1 per word with an atomic `update`); the parent counts the same
//! text alone with a `HashMap` and checks that both agree. Prints both totals.
//!
//! `cargo run --release --example word_count`

use shmq::{process, Segment};
use std::collections::HashMap;
use std::time::Instant;

const WORKERS: usize = 4;
const LINES: usize = 4000;

/// Line `i` of the text: twelve words from a small vocabulary, so that many processes hit the
/// same keys at once.
fn line(i: usize) -> String {
    const WORDS: [&str; 16] = [
        "shared", "memory", "queue", "lock", "futex", "ring", "heap", "segment", "process",
        "python", "rust", "loom", "crash", "kill", "dict", "list",
    ];
    (0..12)
        .map(|j| WORDS[(i * 7 + j * j * 3 + j) % WORDS.len()])
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let Some(role) = process::role() {
        let me: usize = role
            .strip_prefix("worker-")
            .ok_or("unknown role")?
            .parse()?;
        let counts = process::segment()?.dict::<[u8; 16], u64>("counts")?;
        for i in (me..LINES).step_by(WORKERS) {
            for w in line(i).split_whitespace() {
                let mut key = [0u8; 16];
                key[..w.len()].copy_from_slice(w.as_bytes());
                counts.update(&key, |n| Some(n.unwrap_or(0) + 1))?;
            }
        }
        return Ok(());
    }

    let name = format!("shmq-example-words-{}", std::process::id());
    let seg = Segment::builder(&name)
        .dict::<[u8; 16], u64>("counts")
        .create()?;
    let t = Instant::now();
    let workers = (0..WORKERS)
        .map(|i| process::spawn(&seg, &format!("worker-{i}")))
        .collect::<Result<Vec<_>, _>>()?;
    for w in workers {
        assert_eq!(w.join()?, 0, "a worker failed");
    }
    let shared_time = t.elapsed();

    let mut alone: HashMap<String, u64> = HashMap::new();
    for i in 0..LINES {
        for w in line(i).split_whitespace() {
            *alone.entry(w.to_string()).or_default() += 1;
        }
    }
    let counts = seg.dict::<[u8; 16], u64>("counts")?;
    let mut shared: HashMap<String, u64> = HashMap::new();
    for (k, n) in counts.items()? {
        let end = k.iter().position(|&b| b == 0).unwrap_or(k.len());
        shared.insert(String::from_utf8(k[..end].to_vec())?, n);
    }
    let total = |m: &HashMap<String, u64>| m.values().sum::<u64>();
    println!(
        "{WORKERS} processes counted {} words ({} distinct) into one shmq Dict in {:.1} ms",
        total(&shared),
        shared.len(),
        shared_time.as_secs_f64() * 1e3
    );
    println!(
        "one process counted {} words ({} distinct) with a HashMap",
        total(&alone),
        alone.len()
    );
    assert_eq!(shared, alone, "the shared count differs");
    println!("the counts agree word for word");
    Ok(())
}
