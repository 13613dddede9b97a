use super::*;

const HEADER: IndexHeader = IndexHeader {
    root_ino: 42,
    watermark_ns: 1_700_000_000_123_456_789,
};

fn entry(path: &[u8], ino: u64) -> IndexEntry {
    IndexEntry {
        path: path.to_vec(),
        ino,
        ctime_ns: 1_700_000_000_000_000_000 + ino as i64,
        mtime_ns: -5,
        size: ino * 1000,
        mode: 0o100644,
        uid: 1000,
        gid: u32::MAX - 1,
        nlink: 1,
        ..IndexEntry::default()
    }
}

fn write(entries: &[IndexEntry]) -> Vec<u8> {
    let mut w = IndexWriter::new(Vec::new(), HEADER).unwrap();
    for e in entries {
        w.push(e).unwrap();
    }
    w.finish().unwrap()
}

fn read(bytes: &[u8]) -> Result<Vec<IndexEntry>, IndexError> {
    IndexReader::new(bytes)?.collect()
}

fn sample() -> Vec<IndexEntry> {
    let mut dir = entry(b"a", 1);
    dir.mode = 0o040755;
    dir.opaque = true;
    let mut wh = entry(b"a/gone", 3);
    wh.whiteout = true;
    wh.mode = 0o020000;
    let mut racy = entry(b"a.b", 4);
    racy.recheck = true;
    vec![
        dir,
        entry(b"a/b", 2),
        wh,
        racy,
        entry(b"\xff\xfe not utf-8", 5),
    ]
}

#[test]
fn entries_round_trip_with_flags_and_non_utf8_paths() {
    let entries = sample();
    let bytes = write(&entries);
    let mut reader = IndexReader::new(&bytes[..]).unwrap();
    assert_eq!(reader.header(), HEADER);
    let back: Vec<IndexEntry> = reader.by_ref().map(Result::unwrap).collect();
    assert_eq!(back, entries);
    assert!(reader.next_entry().unwrap().is_none());
}

#[test]
fn an_empty_index_round_trips() {
    assert_eq!(read(&write(&[])).unwrap(), []);
}

#[test]
fn paths_share_their_prefixes_on_disk() {
    let deep: Vec<IndexEntry> = (0..100)
        .map(|i| {
            entry(
                format!("usr/share/doc/package/file{i:03}").as_bytes(),
                i + 1,
            )
        })
        .collect();
    let bytes = write(&deep);
    assert!(
        bytes.len() < 100 * 50,
        "{} bytes for 100 entries",
        bytes.len()
    );
}

#[test]
fn walk_order_puts_a_directory_before_its_content_and_siblings() {
    assert_eq!(cmp_paths(b"a/b", b"a.b"), Ordering::Less);
    assert_eq!(cmp_paths(b"a", b"a/b"), Ordering::Less);
    assert_eq!(cmp_paths(b"a/z", b"ab"), Ordering::Less);
    assert_eq!(cmp_paths(b"b", b"a/z"), Ordering::Greater);
    assert_eq!(cmp_paths(b"x", b"x"), Ordering::Equal);
    assert!(is_within(b"a/b", b"a") && is_within(b"a", b"a"));
    assert!(!is_within(b"ab", b"a") && !is_within(b"a.b", b"a"));
}

#[test]
fn entries_out_of_walk_order_are_refused_when_written() {
    let mut w = IndexWriter::new(Vec::new(), HEADER).unwrap();
    w.push(&entry(b"a.b", 1)).unwrap();
    let err = w.push(&entry(b"a/b", 2)).unwrap_err();
    assert!(matches!(err, IndexError::OutOfOrder { .. }), "{err}");
    let err = w.push(&entry(b"a.b", 2)).unwrap_err();
    assert!(matches!(err, IndexError::OutOfOrder { .. }), "{err}");
    for bad in [
        &b""[..],
        b"/abs",
        b"a//b",
        b"a/./b",
        b"../x",
        b"a/",
        b"nul\0",
    ] {
        let err = w.push(&entry(bad, 3)).unwrap_err();
        assert!(matches!(err, IndexError::BadPath { .. }), "{bad:?}: {err}");
    }
}

#[test]
fn a_flipped_byte_anywhere_is_detected() {
    let bytes = write(&sample());
    for i in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[i] ^= 0x10;
        assert!(read(&bad).is_err(), "flipping byte {i} went unnoticed");
    }
}

#[test]
fn truncation_anywhere_is_detected() {
    let bytes = write(&sample());
    for len in 0..bytes.len() {
        assert!(read(&bytes[..len]).is_err(), "cut at {len} went unnoticed");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    let err = read(&longer).unwrap_err();
    assert!(err.to_string().contains("follow the end"), "{err}");
}

#[test]
fn another_format_is_refused_by_name() {
    let err = read(b"{\"entries\": []}                     ").unwrap_err();
    assert!(matches!(err, IndexError::NotAnIndex), "{err}");
    let mut future = write(&[]);
    future[8..12].copy_from_slice(&2u32.to_le_bytes());
    let err = read(&future).unwrap_err();
    assert!(matches!(err, IndexError::UnsupportedVersion { found: 2 }));
    assert!(err.to_string().contains("version 2"), "{err}");
}

#[test]
fn a_checksum_mismatch_is_reported_as_such() {
    let mut bytes = write(&sample());
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    assert!(matches!(read(&bytes), Err(IndexError::Checksum)));
}
