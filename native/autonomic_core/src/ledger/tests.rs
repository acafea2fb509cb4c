//! Tests of the ledger on real files: chain building, reopening, segment changes, readers and
//! proofs, tamper detection at every byte, and torn-write recovery at every truncation point.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::merkle::{leaf_hash, verify_consistency, verify_inclusion};
use super::record::{receipt_hash, Fields};
use super::*;

fn open_dir(dir: &Path) -> (Ledger, Writer, OpenReport) {
    open(dir, Options::default()).expect("open")
}

fn entries(n: usize, tag: &str) -> Vec<Entry> {
    (0..n)
        .map(|i| Entry::new(format!("{tag}-{}", i % 3), format!("result {i}")))
        .collect()
}

fn append_each(w: &mut Writer, es: &[Entry]) -> Vec<Appended> {
    es.iter()
        .flat_map(|e| w.append(std::slice::from_ref(e)).expect("append"))
        .collect()
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    v.sort();
    v
}

/// Byte ranges of each record's frame in a single-segment ledger: (seq, start, end).
fn frame_ranges(ledger: &Ledger) -> Vec<(u64, u64, u64)> {
    let st = ledger.shared.state.read();
    let size = st.tree.size();
    let seg_len = st.segments[0].len;
    (0..size)
        .map(|seq| {
            let (_, start) = unpack(st.locs.get(seq as usize).expect("loc"));
            let end = if seq + 1 < size {
                unpack(st.locs.get(seq as usize + 1).expect("loc")).1
            } else {
                seg_len
            };
            (seq, start, end)
        })
        .collect()
}

fn flip(path: &Path, offset: u64) {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .expect("open for tamper");
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, offset).expect("read byte");
    b[0] ^= 0x01;
    f.write_all_at(&b, offset).expect("write byte");
}

#[test]
fn builds_a_hash_chain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ledger, mut w, report) = open_dir(dir.path());
    assert_eq!(report.records, 0);
    assert_eq!(ledger.root(), (0, merkle::empty_root()));

    let es = entries(10, "act");
    let mut appended = w.append(&es[..4]).expect("batch");
    appended.extend(append_each(&mut w, &es[4..]));
    assert_eq!(ledger.size(), 10);

    let mut prev = ZERO_HASH;
    for (i, (a, e)) in appended.iter().zip(&es).enumerate() {
        assert_eq!(a.seq, i as u64);
        assert_eq!(a.prev_hash, prev, "record {i} links to its predecessor");
        let expected = receipt_hash(&Fields {
            seq: a.seq,
            id: &a.id,
            prev_hash: &a.prev_hash,
            timestamp: a.timestamp,
            action: e.action(),
            result: e.result(),
        });
        assert_eq!(a.hash, expected);
        prev = a.hash;
        let r = ledger.read(a.seq).expect("read");
        assert_eq!(r, a.into_receipt(e.action().to_vec(), e.result().to_vec()));
    }
    let ids: Vec<_> = appended.iter().map(|a| a.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase");
    assert_eq!(
        ledger.verify().expect("verify"),
        Verification::Intact { records: 10 }
    );
}

#[test]
fn reopening_restores_records_root_and_chain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (before, root, last) = {
        let (ledger, mut w, _) = open_dir(dir.path());
        let a = w.append(&entries(25, "x")).expect("append");
        (ledger.tail(100).expect("tail"), ledger.root(), a[24])
    };
    let (ledger, mut w, report) = open_dir(dir.path());
    assert_eq!(report.records, 25);
    assert_eq!(report.truncated, None);
    assert_eq!(ledger.root(), root);
    assert_eq!(ledger.tail(100).expect("tail"), before);
    let next = w.append(&entries(1, "y")).expect("append")[0];
    assert_eq!(next.seq, 25);
    assert_eq!(next.prev_hash, last.hash);
    assert!(next.id > last.id);
    assert_eq!(
        ledger.verify().expect("verify"),
        Verification::Intact { records: 26 }
    );
}

#[test]
fn readers_get_tail_and_by_action() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ledger, mut w, _) = open_dir(dir.path());
    let es = entries(9, "op");
    let appended = w.append(&es).expect("append");
    let got = ledger.get(&appended[4].id).expect("get").expect("found");
    assert_eq!(got.seq, 4);
    assert_eq!(got.result, b"result 4");
    let unknown = RecordId([0x42; 16]);
    assert_eq!(ledger.get(&unknown).expect("get"), None);

    let tail = ledger.tail(3).expect("tail");
    assert_eq!(tail.iter().map(|r| r.seq).collect::<Vec<_>>(), [6, 7, 8]);
    assert_eq!(ledger.tail(0).expect("tail"), vec![]);
    assert_eq!(ledger.tail(1000).expect("tail").len(), 9);

    let op1 = ledger.by_action(b"op-1").expect("by_action");
    assert_eq!(op1.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 4, 7]);
    assert!(op1.iter().all(|r| r.action == b"op-1"));
    assert_eq!(ledger.by_action(b"nothing").expect("by_action"), vec![]);
    assert!(matches!(
        ledger.read(9),
        Err(LedgerError::NoSuchRecord { seq: 9, size: 9 })
    ));
}

#[test]
fn proofs_from_the_ledger_verify() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ledger, mut w, _) = open_dir(dir.path());
    let mut roots = vec![ledger.root()];
    for _ in 0..13 {
        w.append(&entries(3, "p")).expect("append");
        roots.push(ledger.root());
    }
    let (size, root) = ledger.root();
    assert_eq!(size, 39);
    for seq in 0..size {
        let r = ledger.read(seq).expect("read");
        let p = ledger.inclusion_proof(seq).expect("inclusion");
        assert_eq!((p.seq, p.size, p.root), (seq, size, root));
        assert_eq!(
            verify_inclusion(&leaf_hash(&r.hash), seq, size, &p.path, &root),
            Ok(())
        );
        let mut changed = r.clone();
        changed.result.push(b'!');
        let changed_hash = receipt_hash(&Fields {
            seq: changed.seq,
            id: &changed.id,
            prev_hash: &changed.prev_hash,
            timestamp: changed.timestamp,
            action: &changed.action,
            result: &changed.result,
        });
        assert!(verify_inclusion(&leaf_hash(&changed_hash), seq, size, &p.path, &root).is_err());
    }
    for (old_size, old_root) in roots.iter().skip(1) {
        let c = ledger.consistency_proof(*old_size).expect("consistency");
        assert_eq!(
            (c.old_size, c.old_root, c.size, c.root),
            (*old_size, *old_root, size, root)
        );
        assert_eq!(
            verify_consistency(*old_size, size, old_root, &root, &c.path),
            Ok(())
        );
    }
    assert!(matches!(
        ledger.inclusion_proof(size),
        Err(LedgerError::Proof(ProofError::IndexOutOfRange { .. }))
    ));
    assert!(matches!(
        ledger.consistency_proof(0),
        Err(LedgerError::Proof(ProofError::BadOldSize { .. }))
    ));
}

#[test]
fn segments_roll_over_and_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = Options { segment_bytes: 600 };
    let (ledger, mut w, _) = open(dir.path(), options).expect("open");
    let es = entries(40, "seg");
    w.append(&es[..17]).expect("batch across segments");
    append_each(&mut w, &es[17..]);
    let files = segments(dir.path());
    assert!(files.len() > 5, "{} segments", files.len());
    assert_eq!(
        ledger.verify().expect("verify"),
        Verification::Intact { records: 40 }
    );
    let tail = ledger.tail(40).expect("tail");
    assert_eq!(tail.len(), 40);
    let by = ledger.by_action(b"seg-2").expect("by_action");
    assert_eq!(by.len(), 13);
    let root = ledger.root();
    drop((ledger, w));

    let (ledger, mut w, report) = open(dir.path(), options).expect("reopen");
    assert_eq!(report.records, 40);
    assert_eq!(report.segments, files.len());
    assert_eq!(ledger.root(), root);
    assert_eq!(ledger.tail(40).expect("tail"), tail);
    w.append(&entries(5, "more")).expect("append");
    assert_eq!(
        ledger.verify().expect("verify"),
        Verification::Intact { records: 45 }
    );

    // A missing middle segment is refused, naming the first missing record.
    drop((ledger, w));
    fs::remove_file(&files[2]).expect("remove");
    match open(dir.path(), options) {
        Err(LedgerError::Corrupt {
            what: Corruption::SegmentSequence,
            ..
        }) => {}
        other => panic!("expected a segment sequence error, got {other:?}"),
    }
}

#[test]
fn a_second_open_of_the_directory_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_ledger, w, _) = open_dir(dir.path());
    assert!(matches!(
        open(dir.path(), Options::default()),
        Err(LedgerError::Locked(_))
    ));
    drop(w);
    let (_ledger, _w, _) = open_dir(dir.path());
}

#[test]
fn oversized_payloads_are_refused_without_stopping_the_writer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ledger, mut w, _) = open_dir(dir.path());
    let big = Entry::new(vec![1u8; MAX_PAYLOAD], vec![2u8]);
    assert!(matches!(
        w.append(&[big]),
        Err(LedgerError::PayloadTooLarge { size, max: MAX_PAYLOAD }) if size == MAX_PAYLOAD + 1
    ));
    let exactly = Entry::new(vec![1u8; MAX_PAYLOAD - 1], vec![2u8]);
    w.append(&[exactly])
        .expect("a payload of exactly the limit is fine");
    assert!(!w.failed());
    assert_eq!(ledger.read(0).expect("read").action.len(), MAX_PAYLOAD - 1);
}

/// Tamper detection: flip every byte of a small ledger, one at a time, on a closed ledger. Either
/// open refuses with an error naming the record the byte belongs to, or open succeeds and verify
/// names that record. Never is the change silently accepted.
#[test]
fn every_flipped_byte_is_detected_and_attributed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pristine = tempfile::tempdir().expect("tempdir");
    let (ranges, seg) = {
        let (ledger, mut w, _) = open_dir(pristine.path());
        w.append(&entries(3, "t")).expect("append");
        append_each(&mut w, &[Entry::new("", ""), Entry::new("last", "x")]);
        (frame_ranges(&ledger), segments(pristine.path())[0].clone())
    };
    let original = fs::read(&seg).expect("read segment");
    let name = seg.file_name().expect("name");
    let target = dir.path().join(name);
    let owner = |offset: u64| {
        ranges
            .iter()
            .find(|(_, s, e)| (*s..*e).contains(&offset))
            .map(|(seq, _, _)| *seq)
    };
    let (mut refused, mut verified) = (0, 0);
    for offset in 0..original.len() as u64 {
        fs::write(&target, &original).expect("restore");
        flip(&target, offset);
        match open(dir.path(), Options::default()) {
            Err(LedgerError::Corrupt { seq, what, .. }) => {
                refused += 1;
                match owner(offset) {
                    Some(expected) => assert_eq!(seq, expected, "byte {offset}: {what:?}"),
                    None => assert_eq!(what, Corruption::SegmentHeader, "byte {offset}"),
                }
            }
            Ok((ledger, _w, report)) => {
                verified += 1;
                assert_eq!(
                    report.truncated, None,
                    "byte {offset}: nothing may be truncated"
                );
                let expected = owner(offset).expect("header bytes never open");
                match ledger.verify().expect("verify") {
                    Verification::Broken { seq, .. } => assert_eq!(seq, expected, "byte {offset}"),
                    Verification::Intact { .. } => panic!("byte {offset} flip went unnoticed"),
                }
            }
            Err(other) => panic!("byte {offset}: unexpected error {other}"),
        }
    }
    assert!(
        refused > 0 && verified > 0,
        "{refused} refused, {verified} verified"
    );
}

/// The same flips made while the ledger is open (the files changed under a running node): verify
/// names the record, whatever part of it changed.
#[test]
fn every_byte_changed_under_an_open_ledger_is_named_by_verify() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ledger, mut w, _) = open_dir(dir.path());
    w.append(&entries(4, "live")).expect("append");
    let ranges = frame_ranges(&ledger);
    let seg = segments(dir.path())[0].clone();
    let len = fs::metadata(&seg).expect("stat").len();
    for offset in 0..len {
        flip(&seg, offset);
        let expected = ranges
            .iter()
            .find(|(_, s, e)| (*s..*e).contains(&offset))
            .map_or(0, |(seq, _, _)| *seq);
        match ledger.verify().expect("verify") {
            Verification::Broken { seq, .. } => assert_eq!(seq, expected, "byte {offset}"),
            Verification::Intact { .. } => panic!("byte {offset} flip went unnoticed"),
        }
        flip(&seg, offset);
    }
    assert_eq!(
        ledger.verify().expect("verify"),
        Verification::Intact { records: 4 }
    );
}

/// A record rewritten with a consistent hash while the ledger is open is still caught: its hash
/// differs from the one the ledger served in roots and proofs.
#[test]
fn a_rehashed_record_is_caught_against_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ledger, mut w, _) = open_dir(dir.path());
    let appended = w.append(&entries(3, "r")).expect("append");
    let ranges = frame_ranges(&ledger);
    let seg = segments(dir.path())[0].clone();
    let (_, start, end) = ranges[2];
    let mut frame = Vec::new();
    let forged = record::encode_frame(
        &mut frame,
        &Fields {
            seq: 2,
            id: &appended[2].id,
            prev_hash: &appended[1].hash,
            timestamp: appended[2].timestamp,
            action: b"r-2",
            result: b"result X",
        },
    );
    assert_ne!(forged, appended[2].hash);
    assert_eq!(frame.len() as u64, end - start);
    let f = OpenOptions::new().write(true).open(&seg).expect("open");
    f.write_all_at(&frame, start).expect("forge");
    assert_eq!(
        ledger.verify().expect("verify"),
        Verification::Broken {
            seq: 2,
            problem: Problem::Memory
        }
    );
}

/// Torn writes: cut the last record at every length from 0 to one byte short of whole. Open
/// truncates exactly the torn frame, reports it, keeps every earlier record and the chain goes
/// on from the last whole record.
#[test]
fn torn_last_record_is_truncated_at_every_cut() {
    let pristine = tempfile::tempdir().expect("tempdir");
    let (ranges, seg, kept_root, kept_tail) = {
        let (ledger, mut w, _) = open_dir(pristine.path());
        w.append(&entries(4, "k")).expect("append");
        let kept = (ledger.root(), ledger.tail(10).expect("tail"));
        w.append(&[Entry::new("torn", vec![7u8; 200])])
            .expect("append");
        (
            frame_ranges(&ledger),
            segments(pristine.path())[0].clone(),
            kept.0,
            kept.1,
        )
    };
    let original = fs::read(&seg).expect("read");
    let (_, start, end) = ranges[4];
    assert_eq!(end, original.len() as u64);
    for cut in start..end {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join(seg.file_name().expect("name"));
        fs::write(&target, &original[..cut as usize]).expect("write");
        let (ledger, mut w, report) = open_dir(dir.path());
        assert_eq!(report.records, 4, "cut at {cut}");
        let expected = (cut > start).then(|| Truncation {
            segment: target.clone(),
            offset: start,
            bytes: cut - start,
            zero_fill: false,
        });
        assert_eq!(report.truncated, expected, "cut at {cut}");
        assert_eq!(fs::metadata(&target).expect("stat").len(), start);
        assert_eq!(ledger.root(), kept_root);
        assert_eq!(ledger.tail(10).expect("tail"), kept_tail);
        let next = w.append(&entries(1, "after")).expect("append")[0];
        assert_eq!((next.seq, next.prev_hash), (4, kept_tail[3].hash));
        assert_eq!(
            ledger.verify().expect("verify"),
            Verification::Intact { records: 5 }
        );
    }
}

/// A tail of zeros (the file system extended the file but the data never reached the disk) is
/// torn too; a torn frame in a segment that is not the last is corruption.
#[test]
fn zero_filled_tail_is_torn_but_damage_before_the_last_segment_is_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (_l, mut w, _) = open_dir(dir.path());
        w.append(&entries(2, "z")).expect("append");
    }
    let seg = segments(dir.path())[0].clone();
    let len = fs::metadata(&seg).expect("stat").len();
    let f = OpenOptions::new().write(true).open(&seg).expect("open");
    f.write_all_at(&[0u8; 300], len).expect("zeros");
    let (ledger, _w, report) = open_dir(dir.path());
    assert_eq!(report.records, 2);
    assert_eq!(
        report.truncated,
        Some(Truncation {
            segment: seg.clone(),
            offset: len,
            bytes: 300,
            zero_fill: true
        })
    );
    assert_eq!(
        ledger.verify().expect("verify"),
        Verification::Intact { records: 2 }
    );
    drop((ledger, _w));

    let options = Options { segment_bytes: 300 };
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (_l, mut w, _) = open(dir.path(), options).expect("open");
        append_each(&mut w, &entries(6, "s"));
    }
    let files = segments(dir.path());
    assert!(files.len() >= 2);
    let first_len = fs::metadata(&files[0]).expect("stat").len();
    OpenOptions::new()
        .write(true)
        .open(&files[0])
        .expect("open")
        .set_len(first_len - 5)
        .expect("truncate");
    assert!(matches!(
        open(dir.path(), options),
        Err(LedgerError::Corrupt {
            what: Corruption::TruncatedFrame,
            ..
        })
    ));
}

#[test]
fn leftover_temporary_segment_is_removed() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (_l, mut w, _) = open_dir(dir.path());
        w.append(&entries(2, "t")).expect("append");
    }
    let tmp = dir.path().join("00000000000000000002.seg.tmp");
    fs::write(&tmp, b"partial").expect("write");
    let (ledger, _w, report) = open_dir(dir.path());
    assert_eq!(report.removed_temp_files, 1);
    assert!(!tmp.exists());
    assert_eq!(ledger.size(), 2);
}

#[test]
fn verify_reports_a_segment_cut_short_while_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ledger, mut w, _) = open_dir(dir.path());
    w.append(&entries(5, "c")).expect("append");
    let ranges = frame_ranges(&ledger);
    let seg = segments(dir.path())[0].clone();
    OpenOptions::new()
        .write(true)
        .open(&seg)
        .expect("open")
        .set_len(ranges[3].1 + 3)
        .expect("cut");
    assert_eq!(
        ledger.verify().expect("verify"),
        Verification::Broken {
            seq: 3,
            problem: Problem::Missing
        }
    );
}

/// Ids are strictly increasing in an untouched ledger, and `get` relies on that for a binary
/// search; a changed id (out of order) must not make `get` miss a record: it falls back to a scan.
#[test]
fn get_finds_records_even_when_a_changed_id_breaks_the_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let appended = {
        let (_l, mut w, _) = open_dir(dir.path());
        w.append(&entries(6, "o")).expect("append")
    };
    let seg = segments(dir.path())[0].clone();
    let bytes = fs::read(&seg).expect("read");
    // The first byte of record 2's id: move it far into the future.
    let pos = bytes
        .windows(16)
        .position(|w| w == appended[2].id.0)
        .expect("id on disk");
    let f = OpenOptions::new().write(true).open(&seg).expect("open");
    f.write_all_at(&[0xff], pos as u64).expect("write");
    let (ledger, _w, _) = open_dir(dir.path());
    assert!(!ledger.shared.state.read().ids_sorted);
    for a in appended.iter().filter(|a| a.seq != 2) {
        assert_eq!(ledger.get(&a.id).expect("get").map(|r| r.seq), Some(a.seq));
    }
    let mut changed = appended[2].id;
    changed.0[0] = 0xff;
    assert_eq!(ledger.get(&changed).expect("get").map(|r| r.seq), Some(2));
    assert_eq!(ledger.get(&appended[2].id).expect("get"), None);
    assert!(matches!(
        ledger.verify().expect("verify"),
        Verification::Broken { seq: 2, .. }
    ));
}
