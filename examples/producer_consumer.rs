//! A producer sends "Job-0".."Job-4" as byte messages; a consumer process prints them and stops
//! when the queue is closed (instead of a `None` sentinel).
//!
//! `cargo run --example producer_consumer`

use shmq::{process, GetError, Segment};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if process::role().as_deref() == Some("consumer") {
        let seg = process::segment()?;
        let jobs = seg.bytes_queue("jobs")?;
        loop {
            match jobs.get() {
                Ok(msg) => println!("Consumed {}", String::from_utf8_lossy(&msg)),
                Err(GetError::Closed) => break,
                Err(e) => return Err(e.into()),
            }
        }
        println!("Consumer done: queue closed");
        return Ok(());
    }

    let name = format!("shmq-example-pc-{}", std::process::id());
    let seg = Segment::builder(&name)
        .bytes_queue("jobs", 16, 64)
        .create()?;
    let jobs = seg.bytes_queue("jobs")?;
    let consumer = process::spawn(&seg, "consumer")?;
    for i in 0..5 {
        let job = format!("Job-{i}");
        jobs.put(job.as_bytes())?;
        println!("Produced {job}");
    }
    jobs.close();
    let code = consumer.join()?;
    println!("Consumer exited with code {code}");
    if code != 0 {
        return Err(format!("consumer failed with exit code {code}").into());
    }
    Ok(())
}
