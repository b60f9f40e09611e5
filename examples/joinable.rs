//! A `JoinableQueue`: the parent puts 10 tasks, two worker processes take them and call
//! `task_done()`, and the parent's `join()` returns once every task is done.
//!
//! `cargo run --example joinable`

use shmq::{process, GetError, Segment};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let Some(role) = process::role() {
        let seg = process::segment()?;
        let tasks = seg.joinable_queue::<u32>("tasks")?;
        let results = seg.array::<u32>("results")?;
        loop {
            match tasks.get() {
                Ok(t) => {
                    results.set(t as usize, t * t)?;
                    println!("{role} processed task {t}");
                    tasks.task_done()?;
                }
                Err(GetError::Closed) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
    }
    let name = format!("shmq-example-joinable-{}", std::process::id());
    let seg = Segment::builder(&name)
        .joinable_queue::<u32>("tasks", 4)
        .array::<u32>("results", 10)
        .create()?;
    let tasks = seg.joinable_queue::<u32>("tasks")?;
    let workers = [
        process::spawn(&seg, "worker-1")?,
        process::spawn(&seg, "worker-2")?,
    ];
    for t in 0..10 {
        tasks.put(t)?;
    }
    tasks.join();
    println!(
        "All tasks done: {:?}",
        seg.array::<u32>("results")?.to_vec()
    );
    tasks.close();
    for w in workers {
        assert_eq!(w.join()?, 0);
    }
    Ok(())
}
