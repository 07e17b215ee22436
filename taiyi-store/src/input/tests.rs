//! Unit tests of `input.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("taiyi-input-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `read_input(path, kind)` on another thread: its result, or a failure after 10 s (a read
/// that blocks fails the test instead of hanging it).
fn read_within_10s(path: &Path, kind: InputKind) -> Result<Vec<u8>, InputError> {
    let (tx, rx) = mpsc::channel();
    let p = path.to_path_buf();
    std::thread::spawn(move || {
        let _ = tx.send(read_input(&p, kind));
    });
    rx.recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("reading {} blocked for 10 s", path.display()))
}

#[test]
fn input_regular_file_is_read() {
    let d = scratch("regular");
    let p = d.join("a.txt");
    std::fs::write(&p, "一只猫\n").unwrap();
    assert_eq!(
        read_within_10s(&p, InputKind::TEXTS_FILE).unwrap(),
        "一只猫\n".as_bytes()
    );
    assert_eq!(
        read_input_to_string(&p, InputKind::JSON_CONFIG).unwrap(),
        "一只猫\n"
    );
    // Exactly at the cap is fine.
    let n = "一只猫\n".len() as u64;
    assert!(read_input(&p, InputKind::TEXTS_FILE.with_cap(n)).is_ok());
    // A symbolic link to a regular file is followed.
    #[cfg(unix)]
    {
        let link = d.join("link.txt");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        assert_eq!(read_input(&link, InputKind::VOCAB).unwrap().len() as u64, n);
    }
    std::fs::write(&p, b"\xff\xfe").unwrap();
    let err = read_input_to_string(&p, InputKind::TEXTS_FILE).unwrap_err();
    assert!(matches!(err, InputError::NotUtf8 { .. }), "{err}");
}

#[test]
fn input_missing_file_is_not_found() {
    let d = scratch("missing");
    let err = read_input(&d.join("nope.json"), InputKind::JSON_CONFIG).unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(err.to_string().contains("nope.json"), "{err}");
}

#[test]
fn input_directory_is_refused() {
    let d = scratch("dir");
    let err = read_within_10s(&d, InputKind::JSON_CONFIG).unwrap_err();
    assert!(
        matches!(
            err,
            InputError::NotRegular {
                what: "a directory",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        format!("{} is a directory, not a regular file", d.display())
    );
}

#[cfg(unix)]
#[test]
fn input_fifo_is_refused_without_blocking() {
    let d = scratch("fifo");
    let p = d.join("texts.txt");
    let st = std::process::Command::new("mkfifo")
        .arg(&p)
        .status()
        .unwrap();
    assert!(st.success());
    let err = read_within_10s(&p, InputKind::TEXTS_FILE).unwrap_err();
    assert!(
        matches!(err, InputError::NotRegular { what: "a FIFO", .. }),
        "{err}"
    );
    assert!(err.to_string().contains(&*p.to_string_lossy()), "{err}");
    // Through a symbolic link too.
    let link = d.join("link.txt");
    std::os::unix::fs::symlink(&p, &link).unwrap();
    let err = read_within_10s(&link, InputKind::TEXTS_FILE).unwrap_err();
    assert!(matches!(err, InputError::NotRegular { .. }), "{err}");
}

#[cfg(unix)]
#[test]
fn input_dev_zero_is_refused_quickly() {
    let start = Instant::now();
    let err = read_within_10s(Path::new("/dev/zero"), InputKind::MANIFEST).unwrap_err();
    assert!(
        matches!(
            err,
            InputError::NotRegular {
                what: "a character device",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "/dev/zero is a character device, not a regular file"
    );
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn input_over_cap_is_refused_with_the_numbers() {
    let d = scratch("cap");
    let p = d.join("vocab.txt");
    std::fs::write(&p, vec![b'a'; 101]).unwrap();
    let kind = InputKind::VOCAB.with_cap(100);
    let err = read_within_10s(&p, kind).unwrap_err();
    assert!(
        matches!(
            err,
            InputError::TooLarge {
                size: 101,
                cap: 100,
                ..
            }
        ),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains(&*p.to_string_lossy())
            && msg.contains("101 bytes")
            && msg.contains("100 bytes allowed for a vocabulary"),
        "{msg}"
    );
    let err = read_input(&p, kind.raised_by("SOME_VAR")).unwrap_err();
    assert!(
        err.to_string().ends_with("(SOME_VAR raises the limit)"),
        "{err}"
    );
}

#[test]
fn input_read_stops_past_the_cap_of_a_growing_file() {
    // The length is checked when opened; a file that grew since is still cut at cap + 1.
    let d = scratch("grow");
    let p = d.join("grow.txt");
    std::fs::write(&p, b"abc").unwrap();
    let mut f = InputFile::open(&p).unwrap();
    assert_eq!(f.len(), 3);
    std::fs::write(&p, vec![b'x'; 1000]).unwrap();
    let mut buf = Vec::new();
    let err = f
        .read_capped(&mut buf, InputKind::new("test", 10))
        .unwrap_err();
    assert!(
        matches!(err, InputError::TooLarge { size: 11, .. }),
        "{err}"
    );
    assert_eq!(buf.len(), 11);
}
