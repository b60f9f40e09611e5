//! Three processes share a `Value` and an `Array`: each increments the value 5 times and fills its
//! third of the array with `i + 1`. Final: value 15, array `[1, 2, ..., 15]`.
//!
//! `cargo run --example shared_value_array`

use shmq::{process, Segment};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let Some(role) = process::role() {
        let seg = process::segment()?;
        let (count, arr) = (seg.value::<i64>("count")?, seg.array::<f64>("arr")?);
        let k: usize = role.trim_start_matches("worker-").parse()?;
        for i in k * 5..(k + 1) * 5 {
            // `count.value += 1` in Python races between processes; fetch_add cannot.
            count.fetch_add(1);
            arr.set(i, (i + 1) as f64)?;
        }
        return Ok(());
    }
    let name = format!("shmq-example-va-{}", std::process::id());
    let seg = Segment::builder(&name)
        .value::<i64>("count", 0)
        .array::<f64>("arr", 15)
        .create()?;
    let workers = (0..3)
        .map(|k| process::spawn(&seg, &format!("worker-{k}")))
        .collect::<Result<Vec<_>, _>>()?;
    for w in workers {
        assert_eq!(w.join()?, 0);
    }
    let count = seg.value::<i64>("count")?.load();
    let arr = seg.array::<f64>("arr")?.to_vec();
    println!("Value: {count}");
    println!("Array: {arr:?}");
    assert_eq!(count, 15);
    assert_eq!(arr, (1..=15).map(|i| i as f64).collect::<Vec<_>>());
    Ok(())
}
