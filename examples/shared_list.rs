//! Three processes append to one shared `List` (like `manager.list().append(x)`); the parent prints
//! the sorted contents: 1..=15.
//!
//! `cargo run --example shared_list`

use shmq::{process, Segment};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let Some(role) = process::role() {
        let list = process::segment()?.list::<u32>("items")?;
        let k: u32 = role.trim_start_matches("worker-").parse()?;
        for i in 0..5 {
            list.push(k * 5 + i + 1).map_err(|_| "list full")?;
        }
        return Ok(());
    }
    let name = format!("shmq-example-list-{}", std::process::id());
    let seg = Segment::builder(&name).list::<u32>("items", 15).create()?;
    let workers = (0..3)
        .map(|k| process::spawn(&seg, &format!("worker-{k}")))
        .collect::<Result<Vec<_>, _>>()?;
    for w in workers {
        assert_eq!(w.join()?, 0);
    }
    let mut items = seg.list::<u32>("items")?.to_vec();
    items.sort_unstable();
    println!("Shared list: {items:?}");
    assert_eq!(items, (1..=15).collect::<Vec<_>>());
    Ok(())
}
