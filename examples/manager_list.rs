//! The `Manager().list()` program, without a manager: three processes each increment a shared
//! counter five times and append its new value to a shared growable list, under one lock. The
//! parent prints the list, which must be `[1, 2, ..., 15]`.
//!
//! `cargo run --release --example manager_list`

use shmq::{process, Segment};

const WORKERS: u64 = 3;
const EACH: u64 = 5;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let Some(role) = process::role() {
        let seg = process::segment()?;
        let (lock, count) = (seg.lock("lock")?, seg.value::<u64>("count")?);
        let list = seg.shared_vec::<u64>("list")?;
        for _ in 0..EACH {
            let _held = lock.lock().map_err(|e| format!("{role}: {e}"))?;
            let n = count.load() + 1;
            count.store(n);
            list.push(n)?;
        }
        return Ok(());
    }
    let name = format!("shmq-example-mlist-{}", std::process::id());
    let seg = Segment::builder(&name)
        .lock("lock")
        .value::<u64>("count", 0)
        .shared_vec::<u64>("list")
        .create()?;
    let workers = (0..WORKERS)
        .map(|i| process::spawn(&seg, &format!("worker-{i}")))
        .collect::<Result<Vec<_>, _>>()?;
    for w in workers {
        assert_eq!(w.join()?, 0, "a worker failed");
    }
    let list = seg.shared_vec::<u64>("list")?.to_vec()?;
    println!("{list:?}");
    assert_eq!(list, (1..=WORKERS * EACH).collect::<Vec<_>>());
    Ok(())
}
