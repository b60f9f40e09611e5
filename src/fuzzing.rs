//! Entry points for the fuzz targets in `fuzz/` and for the corpus replay test. Not public API.
//!
//! Each function takes arbitrary bytes and must return without panicking, hanging or undefined
//! behaviour, whatever they are. Where the bytes describe legal operations, the results are checked
//! against a model and a mismatch panics (that is a bug the fuzzer reports).

use crate::layout::SlotLayout;
use crate::ring::mem::HeapRing;
use crate::ring::{Ring, TryError, WaitError};
use crate::{BytesPutError, GetError, Segment};
use std::collections::VecDeque;
use std::io::Write;
use std::time::{Duration, Instant};

/// Arbitrary bytes as a segment file: opened through the same validation as `Segment::open`
/// (from an anonymous memory file), then every directory entry is looked up as every kind and
/// each object found gets a few non-blocking operations.
pub fn open_segment(data: &[u8]) {
    crate::sync::fuzzing::shorten_claim_waits();
    let Ok(mut file) = crate::os::anonymous() else {
        return;
    };
    if file.write_all(data).is_err() {
        return;
    }
    let seg = match Segment::from_file(&file, data.len() as u64, "fuzz", Duration::ZERO) {
        Ok(seg) => seg,
        Err(_) => return,
    };
    exercise(&seg);
}

/// Every object of `seg` looked up as every kind, with a few non-blocking operations on each
/// one found.
fn exercise(seg: &Segment) {
    for name in seg.object_names() {
        exercise_object(seg, &name);
    }
}

/// `name` looked up as every kind; each handle found gets a few non-blocking operations (or
/// blocking ones with a zero timeout).
fn exercise_object(seg: &Segment, name: &str) {
    let zero = Duration::ZERO;
    if let Ok(q) = seg.queue::<u64>(name) {
        let _ = q.try_get();
        let _ = q.try_put(1);
        let _ = q.get_timeout(zero);
        let mut buf = [0u64; 4];
        let _ = q.try_get_many(&mut buf);
        let _ = (q.len(), q.stats());
    }
    if let Ok(q) = seg.queue::<u8>(name) {
        let _ = q.try_get();
        let _ = q.try_put(1);
    }
    if let Ok(q) = seg.bytes_queue(name) {
        let _ = q.try_get();
        let _ = q.try_put(b"fuzz");
        let _ = q.put_timeout(b"x", zero);
        let _ = q.try_put(&[7u8; 300]);
        let _ = q.try_get();
    }
    if let Ok(q) = seg.joinable_queue::<u64>(name) {
        let _ = q.try_put(2);
        let _ = q.try_get();
        let _ = q.task_done();
        let _ = q.join_timeout(zero);
    }
    if let Ok(v) = seg.value::<i64>(name) {
        let _ = v.fetch_add(1);
        let _ = v.compare_exchange(0, 1);
    }
    if let Ok(v) = seg.value::<f64>(name) {
        let _ = v.fetch_update(|x| Some(x * 2.0));
    }
    if let Ok(a) = seg.array::<u32>(name) {
        let _ = a.to_vec();
        let _ = a.fetch_add(0, 1);
        let _ = a.set(a.len(), 1);
    }
    if let Ok(l) = seg.list::<u64>(name) {
        let _ = l.to_vec();
        let _ = l.push(3);
    }
    if let Ok(l) = seg.lock(name) {
        let _ = l.try_lock();
        let _ = l.lock_timeout(zero);
    }
    if let Ok(e) = seg.event(name) {
        let _ = e.wait_timeout(zero);
        e.set();
    }
    if let Ok(s) = seg.semaphore(name) {
        let _ = s.try_acquire();
        let _ = s.acquire_timeout(zero);
        let _ = s.release();
    }
    if let Ok(b) = seg.barrier(name) {
        let _ = b.wait_timeout(zero);
    }
    if let Ok(v) = seg.versioned::<[u64; 3]>(name) {
        let _ = v.load();
        let _ = v.store_timeout([1, 2, 3], zero);
        let _ = v.version();
    }
    if let Ok(l) = seg.rlock(name) {
        if let Ok(g) = l.try_lock() {
            let _ = l.try_lock();
            let _ = l.depth();
            drop(g);
        }
        let _ = l.lock_timeout(zero);
    }
    if let Ok(c) = seg.condition(name) {
        if let Ok(g) = c.rlock().try_lock() {
            let _ = c.notify(1);
            if let Ok((g, _)) = c.wait_timeout(g, zero) {
                let _ = c.notify_all();
                drop(g);
            }
        }
    }
    if let Ok(d) = seg.bytes_dict(name) {
        let _ = d.insert(b"k", b"v");
        let _ = (d.get(b"k"), d.len(), d.keys());
        let _ = d.remove(b"k");
    }
    if let Ok(l) = seg.bytes_list(name) {
        let _ = l.push(b"x");
        let _ = (l.get(0), l.len(), l.to_vec());
        let _ = l.pop();
    }
}

/// A new value for a word that held `old`, from a selector and 8 input bytes `v`: the raw
/// bytes, or a value near the ones layout checks compare against (small numbers, the segment's
/// size, the top of the range, the old value nudged or with one bit flipped), so that forged
/// words land on both sides of every bound.
fn forged(old: u64, how: u8, v: u64, size: u64) -> u64 {
    let small = v % 512;
    match how % 8 {
        0 => v,
        1 => small,
        2 => old.wrapping_add(small).wrapping_sub(256),
        3 => old ^ (1 << (v % 64)),
        4 => u64::MAX - small,
        5 => size.wrapping_add(small).wrapping_sub(256),
        6 => (old & !0xffff_ffff) | (v & 0xffff_ffff),
        _ => (old & 0xffff_ffff) | (v << 32),
    }
}

/// One forged word from the input (an area, a position, a selector and a value; see
/// `forge_word` and [`forged`]); `None` once the input ran out.
fn forge_one(seg: &Segment, input: &mut Input<'_>) -> Option<()> {
    let (area, at, how, v) = (input.byte()?, input.u64()?, input.byte()?, input.u64()?);
    let size = seg.size();
    seg.forge_word(area, at, |old| forged(old, how, v, size));
    Some(())
}

/// Adds object `i` to `b` from the input: one of every kind the builder makes, with
/// parameters from one input byte. `None` once the input ran out.
fn add_object(
    b: crate::SegmentBuilder,
    input: &mut Input<'_>,
    i: u8,
) -> Option<crate::SegmentBuilder> {
    let (kind, p) = (input.byte()?, input.byte()?);
    let (name, n) = (format!("o{i}"), u64::from(p));
    Some(match kind % 21 {
        0 => b.queue::<u64>(&name, n % 16 + 1),
        1 => b.queue::<u8>(&name, n % 16 + 1),
        2 => b.bytes_queue(&name, n % 8 + 1, (p as usize * 5) % 400),
        3 => b.bytes_queue_inline(&name, n % 4 + 1, usize::MAX, 16 + p as usize % 64),
        4 => b.unbounded_queue::<u64>(&name),
        5 => b.unbounded_bytes_queue(&name),
        6 => b.joinable_queue::<u64>(&name, n % 8 + 1),
        7 => b.value::<i64>(&name, i64::from(p)),
        8 => b.value::<f64>(&name, f64::from(p)),
        9 => b.array::<u32>(&name, n % 32),
        10 => b.list::<u64>(&name, n % 16),
        11 => b.lock(&name),
        12 => b.process_lock(&name),
        13 => b.rlock(&name),
        14 => b.condition(&name),
        15 => b.event(&name),
        16 => b.semaphore(&name, u32::from(p % 4)),
        17 => b.barrier(&name, u32::from(p % 4) + 1),
        18 => b.versioned::<[u64; 3]>(&name, [n, 1, 2]),
        19 => b.bytes_dict(&name),
        _ => b.bytes_list(&name),
    })
}

/// A valid segment built from a structured description (object kinds and parameters, the
/// number of participant records), then forged words in its header, directory, participant
/// table, regions or heap, then opened again through `Segment::open`'s validation, and every
/// object exercised as in [`open_segment`]. Mutated bytes of a raw file rarely get past the
/// header's checks; these inputs start past them, so the fuzzer's effort goes into the
/// directory, region and object code behind them.
///
/// Input: a byte `n` (`n % 8 + 1` objects, `n >> 4 & 3` + 1 participant records), two bytes
/// per object ([`add_object`]), then forged words of 18 bytes each ([`forge_one`]).
pub fn segment_layout(data: &[u8]) {
    crate::sync::fuzzing::shorten_claim_waits();
    let mut input = Input(data);
    let Some(n) = input.byte() else {
        return;
    };
    let mut b = Segment::builder("fuzz-layout")
        .participants(u32::from(n >> 4 & 3) + 1)
        .max_size(8 << 20);
    for i in 0..n % 8 + 1 {
        match add_object(b, &mut input, i) {
            Some(next) => b = next,
            None => return,
        }
    }
    let Ok((creator, file)) = b.create_anonymous() else {
        return;
    };
    for _ in 0..32 {
        if forge_one(&creator, &mut input).is_none() {
            break;
        }
    }
    let Ok(len) = file.metadata().map(|m| m.len()) else {
        return;
    };
    if let Ok(seg) = Segment::from_file(&file, len, "fuzz", Duration::ZERO) {
        exercise(&seg);
    }
}

/// A segment with an object of every kind, used while a hostile process writes into it: each
/// input byte is an operation on an object (looked up afresh, as every kind), a forged word
/// anywhere in the live segment ([`forge_one`]), or a second open of the segment as it now is
/// (validation over mid-run corruption) that exercises one object through the new mapping.
/// Every operation must end in a result or a typed error: no panic, no hang, no undefined
/// behaviour.
pub fn hostile_peer(data: &[u8]) {
    crate::sync::fuzzing::shorten_claim_waits();
    let mut input = Input(data);
    let Ok((seg, file)) = Segment::builder("fuzz-peer")
        .queue::<u64>("q", 4)
        .bytes_queue("b", 4, 64)
        .bytes_queue_inline("h", 2, usize::MAX, 16)
        .unbounded_queue::<u64>("u")
        .joinable_queue::<u64>("j", 2)
        .value::<i64>("v", 0)
        .array::<u32>("a", 4)
        .list::<u64>("l", 4)
        .lock("lk")
        .process_lock("pl")
        .rlock("rl")
        .condition("cv")
        .event("e")
        .semaphore("s", 1)
        .barrier("br", 2)
        .versioned::<[u64; 3]>("vv", [0; 3])
        .bytes_dict("d")
        .bytes_list("bl")
        .participants(3)
        // A forged word can make every put start a new link (or any allocation as large as the
        // heap allows): growth is bounded by the segment's maximum, kept small here so that
        // such inputs stay fast.
        .max_size(8 << 20)
        .create_anonymous()
    else {
        return;
    };
    let names = seg.object_names();
    for _ in 0..128 {
        let Some(op) = input.byte() else {
            return;
        };
        match op % 4 {
            0 | 1 => exercise_object(&seg, &names[usize::from(op >> 2) % names.len()]),
            2 => {
                if forge_one(&seg, &mut input).is_none() {
                    return;
                }
            }
            _ => {
                let Ok(len) = file.metadata().map(|m| m.len()) else {
                    return;
                };
                if let Ok(again) = Segment::from_file(&file, len, "fuzz", Duration::ZERO) {
                    exercise_object(&again, &names[usize::from(op >> 2) % names.len()]);
                }
            }
        }
    }
}

/// Reads bytes off the front of the fuzz input.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn u64(&mut self) -> Option<u64> {
        let mut v = [0u8; 8];
        for b in v.iter_mut() {
            *b = self.byte()?;
        }
        Some(u64::from_le_bytes(v))
    }
}

/// A blocking call with an expired deadline reports like a non-blocking one.
fn as_try(e: WaitError) -> TryError {
    match e {
        WaitError::Closed => TryError::Closed,
        // A heap ring has no liveness source, so it never reports `Disconnected`.
        WaitError::Timeout | WaitError::Disconnected => TryError::WouldBlock,
        WaitError::Corrupt => TryError::Corrupt,
    }
}

/// Arbitrary operation sequences against a `VecDeque` model, on a heap ring; including writes of
/// arbitrary values into slot stamps, after which only "no panic, no hang" is checked.
pub fn ring_ops(data: &[u8]) {
    let mut input = Input(data);
    let Some(cap) = input.byte().map(|b| (b % 8 + 1) as u64) else {
        return;
    };
    let Some(mem) = HeapRing::new(cap, SlotLayout::for_pod(8, 8).unwrap()) else {
        return;
    };
    let ring = Ring::new(mem);
    let mut model: VecDeque<u64> = VecDeque::new();
    let mut closed = false;
    let mut corrupted = false;
    let mut next = 0u64;
    let now = || Some(Instant::now());
    while let Some(op) = input.byte() {
        match op % 8 {
            0 | 1 => {
                // Put `k` values, non-blocking or with an expired deadline (the blocking path).
                let k = (op / 8 % 4 + 1) as usize;
                let vals: Vec<u64> = (0..k as u64).map(|i| next + i).collect();
                let r = if op % 8 == 0 {
                    ring.put_now(None, k, |crate::ring::Filling { k: j, .. }, b| {
                        b.copy_from_slice(&vals[j].to_le_bytes())
                    })
                } else {
                    ring.put_batch(None, k, now(), |crate::ring::Filling { k: j, .. }, b| {
                        b.copy_from_slice(&vals[j].to_le_bytes())
                    })
                    .map_err(as_try)
                };
                if corrupted {
                    continue;
                }
                let room = cap as usize - model.len();
                match r {
                    Ok(n) => {
                        assert!(
                            !closed && n >= 1 && n <= k.min(room),
                            "put {n} of {k}, room {room}"
                        );
                        model.extend(&vals[..n]);
                        next += n as u64;
                    }
                    Err(TryError::Closed) => assert!(closed),
                    Err(TryError::WouldBlock) => assert!(!closed && room == 0),
                    Err(TryError::Corrupt) => panic!("corrupt without corruption"),
                    Err(TryError::Pending) => panic!("put_now never reports Pending"),
                }
            }
            2 | 3 => {
                let k = (op / 8 % 4 + 1) as usize;
                let mut got = Vec::new();
                let r = if op % 8 == 2 {
                    ring.get_now(None, k, |_, b| {
                        got.push(u64::from_le_bytes(b.try_into().unwrap()))
                    })
                } else {
                    ring.get_batch(None, k, now(), |_, b| {
                        got.push(u64::from_le_bytes(b.try_into().unwrap()))
                    })
                    .map_err(as_try)
                };
                if corrupted {
                    continue;
                }
                match r {
                    Ok(n) => {
                        assert_eq!(n, got.len());
                        let want: Vec<u64> = model.drain(..n.min(model.len())).collect();
                        assert_eq!(got, want, "FIFO order");
                    }
                    Err(TryError::WouldBlock) => assert!(model.is_empty() && !closed),
                    Err(TryError::Closed) => assert!(model.is_empty() && closed),
                    Err(TryError::Corrupt) => panic!("corrupt without corruption"),
                    Err(TryError::Pending) => panic!("get_now never reports Pending"),
                }
            }
            4 => {
                let first = ring.close();
                if !corrupted {
                    assert_eq!(first, !closed, "close() reports whether it closed");
                }
                closed = true;
            }
            5 => {
                // Forge a stamp.
                let (Some(i), Some(v)) = (input.byte(), input.u64()) else {
                    return;
                };
                use crate::ring::RingMem;
                ring.mem
                    .stamp(i as u64 % cap)
                    .store(v, crate::sync::Ordering::Relaxed);
                corrupted = true;
            }
            6 => {
                if !corrupted {
                    assert_eq!(ring.len() as usize, model.len());
                }
            }
            _ => {
                if !corrupted {
                    assert_eq!(ring.is_closed(), closed);
                }
            }
        }
    }
}

/// Byte messages of arbitrary lengths (some over the maximum) through a real `BytesQueue` in an
/// anonymous segment, against a model; plus forged length words, which must read as `Corrupt`.
pub fn bytes_messages(data: &[u8]) {
    let mut input = Input(data);
    let (Some(cap), Some(max)) = (input.byte(), input.byte()) else {
        return;
    };
    let (cap, max) = ((cap % 8 + 1) as u64, max as usize % 64);
    let Ok((seg, _file)) = Segment::builder("fuzz-bytes")
        .bytes_queue("b", cap, max)
        .create_anonymous()
    else {
        return;
    };
    let q = seg.bytes_queue("b").expect("just created");
    let mut model: VecDeque<Option<Vec<u8>>> = VecDeque::new();
    while let Some(op) = input.byte() {
        match op % 4 {
            0 | 1 => {
                let len = input.byte().unwrap_or(0) as usize % (max + 8);
                let msg: Vec<u8> = (0..len).map(|i| (i as u8) ^ op).collect();
                match q.try_put(&msg) {
                    Ok(()) => model.push_back(Some(msg)),
                    Err(BytesPutError::TooLarge { len: l, max: m }) => {
                        assert!(l == len && m == max && len > max)
                    }
                    Err(BytesPutError::Full) => assert_eq!(model.len() as u64, cap),
                    Err(e) => panic!("unexpected {e:?}"),
                }
            }
            2 => match q.try_get() {
                Ok(m) => assert_eq!(Some(Some(m)), model.pop_front()),
                Err(GetError::Empty) => assert!(model.is_empty()),
                Err(GetError::Corrupt) => assert_eq!(model.pop_front(), Some(None)),
                Err(e) => panic!("unexpected {e:?}"),
            },
            _ => {
                // Forge the length word of the oldest message to a value above the maximum.
                let Some(v) = input.u64() else {
                    return;
                };
                let forged = (max as u32)
                    .saturating_add(1)
                    .saturating_add(v as u32 % 4096);
                if let Some(front) = model.front_mut() {
                    q.forge_front_len(forged);
                    *front = None;
                }
            }
        }
    }
}

/// A segment with a byte queue of any size, an unbounded queue, a dictionary and a growable
/// list, whose heap
/// metadata and blocks the bytes forge between operations (a hostile process writing the
/// segment): every operation
/// must end in a result or a typed error, with no panic, no hang and no undefined behaviour.
/// Nothing is checked against a model once anything was forged.
pub fn heap_metadata(data: &[u8]) {
    crate::sync::fuzzing::shorten_claim_waits();
    let mut input = Input(data);
    let Ok((seg, _file)) = Segment::builder("fuzz-heap")
        .bytes_queue("b", 4, usize::MAX)
        .unbounded_queue::<u64>("u")
        .bytes_dict("d")
        .bytes_list("l")
        .max_size(8 << 20)
        .create_anonymous()
    else {
        return;
    };
    let b = seg.bytes_queue("b").expect("just created");
    let u = seg.queue::<u64>("u").expect("just created");
    let d = seg.bytes_dict("d").expect("just created");
    let l = seg.bytes_list("l").expect("just created");
    let zero = Duration::ZERO;
    let mut steps = 0;
    while let Some(op) = input.byte() {
        steps += 1;
        if steps > 64 {
            return;
        }
        match op % 10 {
            0 | 1 => {
                let len = 241 + (input.u64().unwrap_or(0) % (96 << 10)) as usize;
                let _ = b.try_put(&vec![op; len]);
            }
            2 => {
                let _ = b.try_get();
                let _ = b.get_timeout(zero);
            }
            3 | 4 => {
                let (Some(at), Some(v)) = (input.u64(), input.u64()) else {
                    return;
                };
                seg.forge_heap(at, v, false);
            }
            5 if op >= 128 => {
                // A forged dictionary or list header word (its table or array block, counts).
                let (Some(at), Some(v)) = (input.u64(), input.u64()) else {
                    return;
                };
                let (name, kind) = if op & 1 == 0 {
                    ("d", crate::ObjectKind::Dict)
                } else {
                    ("l", crate::ObjectKind::BytesList)
                };
                seg.forge_region(name, kind, at, v);
            }
            5 => seg.forge_heap(0, 0, true),
            6 => {
                let _ = seg.stats();
                let _ = (b.len(), b.stats(), u.len(), u.stats(), d.len());
            }
            8 => {
                // Dictionary writes: keys from a small set (so they collide and replace), values
                // up to 4 KiB; enough of them to grow the table.
                for _ in 0..(op as u64 % 5) * 8 + 1 {
                    let k = [input.byte().unwrap_or(0) % 32];
                    let len = (input.u64().unwrap_or(0) % 4096) as usize;
                    let _ = d.insert(&k, &vec![op; len]);
                    let _ = l.push(&vec![op; len / 2]);
                }
                let _ = d.update(b"n", |v| Some(v.map_or(vec![0], |v| v.to_vec())));
            }
            9 => {
                let k = [input.byte().unwrap_or(0) % 32];
                let _ = (d.get(&k), d.contains_key(&k), d.remove(&k));
                let _ = (d.keys(), d.items());
                let i = k[0] as usize;
                let _ = (l.get(i), l.set(i, &k), l.pop_at(i), l.insert(i / 2, &k));
                let _ = (l.pop(), l.remove(&k), l.to_vec(), l.len());
                if op % 3 == 0 {
                    let _ = (d.clear(), l.clear());
                }
            }
            _ => {
                for i in 0..(op as u64 % 4) * 700 {
                    if u.try_put(i).is_err() {
                        break;
                    }
                }
                let _ = u.try_get();
                let mut buf = [0u64; 8];
                let _ = u.try_get_many(&mut buf);
            }
        }
    }
}
