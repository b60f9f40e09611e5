//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/`) through the same entry points the
//! fuzz targets call, so `cargo test` on stable checks every input the fuzzer kept.

use std::path::Path;

fn replay(target: &str, f: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        f(&data);
        n += 1;
    }
    assert!(n > 0, "no corpus files in {}", dir.display());
}

#[test]
fn open_segment_corpus_gives_typed_errors_only() {
    replay("open_segment", shmq::fuzzing::open_segment);
}

#[test]
fn ring_ops_corpus_matches_the_model() {
    replay("ring_ops", shmq::fuzzing::ring_ops);
}

#[test]
fn bytes_messages_corpus_matches_the_model() {
    replay("bytes_messages", shmq::fuzzing::bytes_messages);
}

#[test]
fn heap_metadata_corpus_gives_typed_errors_only() {
    replay("heap_metadata", shmq::fuzzing::heap_metadata);
}

#[test]
fn segment_layout_corpus_gives_typed_errors_only() {
    replay("segment_layout", shmq::fuzzing::segment_layout);
}

#[test]
fn hostile_peer_corpus_gives_typed_errors_only() {
    replay("hostile_peer", shmq::fuzzing::hostile_peer);
}
