//! Runs one queue operation in a loop, for counting its instructions with callgrind:
//!
//! ```sh
//! cargo build --release --example op_cost
//! for n in 1000 101000; do
//!   valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/examples/op_cost putget $n 2>&1 | grep refs
//! done
//! ```
//!
//! The difference of the two totals divided by 100 000 is the cost of one iteration, with the
//! setup (segment creation, first-touch page faults) cancelled out; `scripts/op-instructions.sh`
//! prints every operation's. Operations, all on one thread and uncontended: `putget` (`put` then
//! `get`), `try_putget`, `try_get_empty` (`try_get` on an empty queue), `try_put_full` (`try_put`
//! on a full queue), `get_timeout_zero` on an empty queue, `bytes_try_putget` (`try_put_with` then
//! `try_get_with` of 8 bytes on a `BytesQueue` of 64 slots of 256 bytes, as the Python binding
//! calls them), `ubytes_try_putget` (the same on an unbounded `BytesQueue`, the Python default);
//! and for comparison
//! `crossbeam_sendrecv` (`send` then `recv` on a `crossbeam_channel::bounded(64)`) and
//! `crossbeam_pushpop` (`push` then `pop` on a `crossbeam_queue::ArrayQueue` of 64).

use shmq::{GetError, PutError, Segment};
use std::hint::black_box;
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let op = args.next().unwrap_or_else(|| "putget".into());
    let n: u64 = args.next().map_or(Ok(1_000_000), |s| s.parse())?;
    let name = format!("shmq-opcost-{}", std::process::id());
    let seg = Segment::builder(&name)
        .queue::<u64>("q", 64)
        .bytes_queue("b", 64, 256)
        .unbounded_bytes_queue("u")
        .create()?;
    let q = seg.queue::<u64>("q")?;
    match op.as_str() {
        "putget" => {
            for i in 0..n {
                q.put(i)?;
                black_box(q.get()?);
            }
        }
        "try_putget" => {
            for i in 0..n {
                q.try_put(i)?;
                black_box(q.try_get()?);
            }
        }
        "try_get_empty" => {
            for _ in 0..n {
                assert_eq!(black_box(q.try_get()), Err(GetError::Empty));
            }
        }
        "get_timeout_zero" => {
            for _ in 0..n {
                assert_eq!(
                    black_box(q.get_timeout(Duration::ZERO)),
                    Err(GetError::Timeout)
                );
            }
        }
        "try_put_full" => {
            while q.try_put(0).is_ok() {}
            for i in 0..n {
                assert_eq!(black_box(q.try_put(i)), Err(PutError::Full(i)));
            }
        }
        "bytes_try_putget" => {
            // As the Python binding calls it: non-blocking, in place.
            let bq = seg.bytes_queue("b")?;
            for i in 0..n {
                bq.try_put_with(8, |b| b.copy_from_slice(&i.to_le_bytes()))?;
                black_box(bq.try_get_with(|m| m.len())?);
            }
        }
        "ubytes_try_putget" => {
            // The same on an unbounded queue (a chain of links: the Python default).
            let bq = seg.bytes_queue("u")?;
            for i in 0..n {
                bq.try_put_with(8, |b| b.copy_from_slice(&i.to_le_bytes()))?;
                black_box(bq.try_get_with(|m| m.len())?);
            }
        }
        "crossbeam_sendrecv" => {
            let (tx, rx) = crossbeam_channel::bounded::<u64>(64);
            for i in 0..n {
                tx.send(i)?;
                black_box(rx.recv()?);
            }
        }
        "crossbeam_pushpop" => {
            let q = crossbeam_queue::ArrayQueue::<u64>::new(64);
            for i in 0..n {
                q.push(i).map_err(|_| "full")?;
                black_box(q.pop().ok_or("empty")?);
            }
        }
        other => return Err(format!("unknown operation {other:?}").into()),
    }
    Ok(())
}
