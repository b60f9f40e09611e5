//! Writes the seed corpora for the fuzz targets into `fuzz/corpus/` (run by hand:
//! `cargo test --test make_seeds -- --ignored`). The seeds are committed; this keeps them
//! reproducible.

use std::path::Path;

fn write(target: &str, name: &str, data: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), data).unwrap();
}

#[test]
#[ignore = "writes files into the source tree; run by hand"]
fn make_seeds() {
    // A real segment with one object of every kind, and cut-down versions of it.
    let name = format!("shmq-seed-{}", std::process::id());
    let seg = shmq::Segment::builder(&name)
        .queue::<u64>("q", 4)
        .queue::<u8>("q8", 3)
        .bytes_queue("b", 2, 16)
        .joinable_queue::<u64>("j", 2)
        .value::<i64>("v", 5)
        .value::<f64>("f", 1.5)
        .array::<u32>("a", 4)
        .list::<u64>("l", 3)
        .lock("lk")
        .rlock("rl")
        .condition("cv")
        .event("e")
        .semaphore("s", 1)
        .barrier("br", 2)
        .versioned::<[u64; 3]>("vv", [1, 2, 3])
        .participants(2)
        .create()
        .unwrap();
    seg.queue::<u64>("q").unwrap().put(7).unwrap();
    seg.bytes_queue("b").unwrap().put(b"seed").unwrap();
    let bytes = std::fs::read(format!("/dev/shm/{name}")).unwrap();
    write("open_segment", "full", &bytes);
    write("open_segment", "header_only", &bytes[..128]);
    write("open_segment", "half", &bytes[..bytes.len() / 2]);
    write("open_segment", "empty", &[]);

    // Ring ops: capacity byte, then ops (see shmq::fuzzing::ring_ops).
    write("ring_ops", "fill_drain", &[2, 0, 0, 0, 2, 2, 2, 6, 7]);
    write(
        "ring_ops",
        "batches_close",
        &[4, 24, 24, 26, 3, 4, 0, 2, 2, 2],
    );
    write("ring_ops", "blocking_paths", &[0, 1, 1, 3, 3, 6]);
    let mut forge = vec![3, 0, 0, 5, 1];
    forge.extend_from_slice(&(999u64 << 2).to_le_bytes());
    forge.extend_from_slice(&[2, 2, 0, 1, 3]);
    write("ring_ops", "forged_stamp", &forge);

    // Byte messages: capacity, max, then ops (see shmq::fuzzing::bytes_messages).
    write(
        "bytes_messages",
        "lengths",
        &[3, 16, 0, 0, 0, 5, 0, 16, 0, 30, 2, 2, 2, 2],
    );
    let mut forged = vec![2, 8, 0, 4, 3];
    forged.extend_from_slice(&77u64.to_le_bytes());
    forged.extend_from_slice(&[2, 2]);
    write("bytes_messages", "forged_len", &forged);

    // Heap metadata: ops (see shmq::fuzzing::heap_metadata): long puts, gets, forged words, a
    // forced rebuild, stats, unbounded puts.
    let mut heap = vec![0];
    heap.extend_from_slice(&5000u64.to_le_bytes());
    heap.extend_from_slice(&[1]);
    heap.extend_from_slice(&70_000u64.to_le_bytes());
    heap.extend_from_slice(&[2, 6, 7, 3]);
    heap.extend_from_slice(&300u64.to_le_bytes());
    heap.extend_from_slice(&(1u64 << 40).to_le_bytes());
    heap.extend_from_slice(&[5, 6, 2, 0]);
    heap.extend_from_slice(&100u64.to_le_bytes());
    heap.extend_from_slice(&[15, 6]);
    write("heap_metadata", "forge_and_rebuild", &heap);
    write(
        "heap_metadata",
        "plain",
        &[0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 6, 7, 6],
    );
    // Dictionary writes (op 8: 25 inserts of colliding keys, values up to 4 KiB), reads and
    // removals (op 9), a forged heap word, a forced rebuild, more writes, a clear (op 39 % 10).
    let mut dict = vec![8];
    for i in 0..25u64 {
        dict.push((i * 7 % 32) as u8);
        dict.extend_from_slice(&(i * 397 % 4096).to_le_bytes());
    }
    dict.extend_from_slice(&[9, 3, 6, 3]);
    dict.extend_from_slice(&4200u64.to_le_bytes());
    dict.extend_from_slice(&7u64.to_le_bytes());
    dict.extend_from_slice(&[5, 9, 4, 18]);
    for i in 0..17u64 {
        dict.push((i * 5 % 32) as u8);
        dict.extend_from_slice(&(i * 91).to_le_bytes());
    }
    dict.extend_from_slice(&[39, 1, 6]);
    // Forged header words of the dictionary (op 145) and the list (op 135): a table or array
    // block moved, a count changed; then reads and writes over them.
    for (op, at, v) in [
        (145u8, 0u64, 4200u64),
        (135, 0, 4096),
        (145, 1, u64::MAX),
        (135, 5, 3),
    ] {
        dict.push(op);
        dict.extend_from_slice(&at.to_le_bytes());
        dict.extend_from_slice(&v.to_le_bytes());
        dict.extend_from_slice(&[9, 2, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 6]);
    }
    write("heap_metadata", "dict", &dict);

    // Segment layouts (see shmq::fuzzing::segment_layout): 8 objects per seed, three seeds
    // covering every kind; the last with forged words (a directory offset, a ring word, a
    // participant record, a heap word).
    for (seed, kinds) in [("kinds_a", 0u8..8), ("kinds_b", 8..16), ("kinds_c", 16..24)] {
        let mut d = vec![7 | 0x10];
        for k in kinds {
            d.extend_from_slice(&[k, 3 + k]);
        }
        write("segment_layout", seed, &d);
    }
    let mut forged = vec![7];
    for k in [0u8, 2, 3, 4, 6, 19, 20, 13] {
        forged.extend_from_slice(&[k, 5]);
    }
    for (area, at, how, v) in [
        (1u8, 3u64, 2u8, 200u64),
        (3, 1 << 48 | 2, 0, 0xdead),
        (2, 1, 1, 7),
        (4, 40, 4, 1),
        (3, 5 << 48, 5, 0),
    ] {
        forged.push(area);
        forged.extend_from_slice(&at.to_le_bytes());
        forged.push(how);
        forged.extend_from_slice(&v.to_le_bytes());
    }
    write("segment_layout", "forged", &forged);

    // A hostile peer (see shmq::fuzzing::hostile_peer): every object used once (ops 4i),
    // then forged words between uses, and a second open.
    let mut peer: Vec<u8> = (0..18u8).map(|i| i * 4).collect();
    for (area, at, how, v, then) in [
        (3u8, 0u64, 3u8, 5u64, [0u8, 4]),
        (3, 4 << 48 | 1, 0, u64::MAX, [16, 20]),
        (4, 9, 2, 300, [8, 12]),
        (0, 2, 5, 0, [3, 3]),
        (1, 7, 1, 3, [3, 64]),
    ] {
        peer.push(2);
        peer.push(area);
        peer.extend_from_slice(&at.to_le_bytes());
        peer.push(how);
        peer.extend_from_slice(&v.to_le_bytes());
        peer.extend_from_slice(&then);
    }
    write("hostile_peer", "every_object_and_forgeries", &peer);
}
