//! Output files, embedding indexes and folder walks (issue 10): nothing replaced that is not a
//! regular writable file, no temporary litter, an index is one consistent unit, walks survive
//! link cycles and special files.

// Tests fail loudly on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::Permissions;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ndarray::ArrayView1;
use taiyi_core::ClipError;
use taiyi_core::outfile::{AtomicFile, write_atomic};
use taiyi_core::retrieval::EmbeddingIndex;
use taiyi_core::walk::{WalkOptions, image_files};

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("taiyi-files-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn litter(d: &Path) -> Vec<String> {
    std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect()
}

#[test]
fn replaces_regular_files_keeping_their_mode() {
    let d = dir("mode");
    let p = d.join("a.bin");
    write_atomic(&p, b"one").unwrap();
    std::fs::set_permissions(&p, Permissions::from_mode(0o640)).unwrap();
    write_atomic(&p, b"two").unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), b"two");
    let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    assert!(litter(&d).is_empty());
}

#[test]
fn refuses_what_is_not_a_regular_file() {
    let d = dir("special");
    // A directory, /dev/null (a character device) and a FIFO are never replaced.
    assert!(matches!(
        write_atomic(&d, b"x"),
        Err(ClipError::NotRegularFile { .. })
    ));
    assert!(matches!(
        AtomicFile::create(Path::new("/dev/null")),
        Err(ClipError::NotRegularFile { .. })
    ));
    let fifo = d.join("fifo.npy");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if made {
        assert!(matches!(
            write_atomic(&fifo, b"x"),
            Err(ClipError::NotRegularFile { .. })
        ));
        let kind = std::fs::symlink_metadata(&fifo).unwrap().file_type();
        assert!(kind.is_fifo(), "the FIFO is still a FIFO");
    }
    assert!(litter(&d).is_empty());
}

#[test]
fn follows_links_and_refuses_read_only_and_dangling_targets() {
    let d = dir("links");
    let real = d.join("real.npy");
    std::fs::write(&real, b"old").unwrap();
    let link = d.join("link.npy");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    write_atomic(&link, b"new").unwrap();
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(std::fs::read(&real).unwrap(), b"new");
    let dangling = d.join("dangling.npy");
    std::os::unix::fs::symlink(d.join("nowhere"), &dangling).unwrap();
    assert!(matches!(
        write_atomic(&dangling, b"x"),
        Err(ClipError::DanglingLink { .. })
    ));
    std::fs::set_permissions(&real, Permissions::from_mode(0o444)).unwrap();
    assert!(matches!(
        write_atomic(&real, b"x"),
        Err(ClipError::ReadOnly { .. })
    ));
    assert_eq!(std::fs::read(&real).unwrap(), b"new");
    assert!(litter(&d).is_empty());
}

// The signal path (remove_temporary_files) is tested through the CLI with a real SIGTERM:
// here it would race with other tests writing files in this process.
#[test]
fn abandoned_writes_leave_nothing() {
    let d = dir("abandon");
    let p = d.join("out.npy");
    std::fs::write(&p, b"keep").unwrap();
    {
        let mut f = AtomicFile::create(&p).unwrap();
        f.write(b"partial").unwrap();
        assert_eq!(litter(&d).len(), 1);
    }
    assert!(litter(&d).is_empty());
    assert_eq!(std::fs::read(&p).unwrap(), b"keep");
}

#[test]
fn round_trips_names_losslessly_and_normalises_raw_rows() {
    let d = dir("roundtrip");
    let npy = d.join("idx.npy");
    let names = vec!["a\nb.png".to_string(), "猫 cat.jpg".to_string()];
    EmbeddingIndex::write(&npy, 2, &[3.0, 4.0, 0.0, 2.0], &names, false, &[]).unwrap();
    let idx = EmbeddingIndex::load(&npy).unwrap();
    assert_eq!(idx.names, names);
    assert_eq!(idx.embeddings.row(0).to_vec(), vec![0.6, 0.8]);
    assert_eq!(idx.embeddings.row(1).to_vec(), vec![0.0, 1.0]);
    let hits = idx.search(ArrayView1::from(&[0.0f32, 1.0]), 1).unwrap();
    assert_eq!((hits[0].index, hits[0].score), (1, 1.0));
}

#[test]
fn a_npy_from_another_write_is_refused() {
    let d = dir("mismatch");
    let npy = d.join("idx.npy");
    let names = vec!["x".to_string(), "y".to_string()];
    EmbeddingIndex::write(&npy, 2, &[1.0, 0.0, 0.0, 1.0], &names, true, &[]).unwrap();
    let manifest = std::fs::read(EmbeddingIndex::names_path(&npy)).unwrap();
    // A second writer replaced the .npy, then died before its manifest.
    EmbeddingIndex::write(&npy, 2, &[0.0, 1.0, 1.0, 0.0], &names, true, &[]).unwrap();
    std::fs::write(EmbeddingIndex::names_path(&npy), manifest).unwrap();
    assert!(matches!(
        EmbeddingIndex::load(&npy),
        Err(ClipError::Index { .. })
    ));
    // A manifest that is a directory, or an old names.txt sidecar, are errors too.
    std::fs::remove_file(EmbeddingIndex::names_path(&npy)).unwrap();
    std::fs::create_dir(EmbeddingIndex::names_path(&npy)).unwrap();
    assert!(EmbeddingIndex::load(&npy).is_err());
    std::fs::remove_dir(EmbeddingIndex::names_path(&npy)).unwrap();
    std::fs::write(d.join("idx.npy.names.txt"), "x\ny\n").unwrap();
    assert!(matches!(
        EmbeddingIndex::load(&npy),
        Err(ClipError::Index { .. })
    ));
}

#[test]
fn zero_rows_are_refused() {
    let d = dir("zero");
    let npy = d.join("idx.npy");
    taiyi_core::npy::write_f32(&npy, &[2, 2], &[1.0, 0.0, 0.0, 0.0]).unwrap();
    assert!(matches!(
        EmbeddingIndex::load_plain(&npy),
        Err(ClipError::Index { .. })
    ));
}

#[test]
fn skips_cycles_specials_and_hidden_files() {
    let d = std::env::temp_dir().join(format!("taiyi-walk-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("sub")).unwrap();
    for f in ["a.png", "B.JPG", "sub/c.webp", "._a.jpg", "notes.txt"] {
        std::fs::write(d.join(f), b"x").unwrap();
    }
    // A link to its own folder and a pair of links to each other's folders.
    std::os::unix::fs::symlink(&d, d.join("self")).unwrap();
    std::os::unix::fs::symlink(&d, d.join("sub/up")).unwrap();
    std::os::unix::fs::symlink(d.join("gone.png"), d.join("dangling.png")).unwrap();
    let fifo = d.join("fifo.png");
    let _ = std::process::Command::new("mkfifo").arg(&fifo).status();
    let names: Vec<String> = image_files(&d, WalkOptions::default())
        .unwrap()
        .iter()
        .map(|p| p.strip_prefix(&d).unwrap().display().to_string())
        .collect();
    assert_eq!(names, ["B.JPG", "a.png", "sub/c.webp"]);
    let all = image_files(
        &d,
        WalkOptions {
            include_hidden: true,
        },
    )
    .unwrap();
    assert_eq!(all.len(), 4);
    assert!(image_files(&d.join("missing"), WalkOptions::default()).is_err());
}
