//! Unit tests of `index.rs`.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use super::*;
use crate::commit::tests::{fail_at, seen};

/// Every fault-injection point of [`EmbeddingIndex::write`], in commit order.
const STEPS: [&str; 7] = [
    "npy-write",
    "manifest-write",
    "manifest-sync",
    "npy-rename",
    "npy-sync",
    "manifest-cleanup",
    // Not a step: no fault.
    "none",
];
/// The first step at which the new index is the valid one.
const COMMITTED_FROM: usize = 4;
/// The first step whose failure the write does not report (the folder sync after the
/// rename is reported: the new index is in place, but maybe not on disk).
const SUCCEEDS_FROM: usize = 5;

fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

/// A normalised `[n, 2]` index whose rows depend on `seed`.
fn rows(seed: f32, n: usize) -> Vec<f32> {
    (0..n)
        .flat_map(|i| {
            let a = seed + i as f32;
            [a.cos(), a.sin()]
        })
        .collect()
}

fn litter(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect()
}

/// A write failing at each step leaves the previous index loading exactly as before
/// (or, once the `.npy` is renamed, the new one whole); never a mixed pair, never an
/// orphan; then a second write over that state succeeds.
#[test]
fn a_failed_write_at_any_step_keeps_a_whole_index() {
    let dir = tempfile::tempdir().unwrap();
    for (k, step) in STEPS.iter().enumerate() {
        let npy = dir.path().join(format!("idx{k}.npy"));
        let (old_names, new_names) = (names("old", 3), names("new", 5));
        let (old_rows, new_rows) = (rows(0.0, 3), rows(10.0, 5));
        EmbeddingIndex::write(&npy, 2, &old_rows, &old_names, true, &[]).unwrap();
        fail_at(Some(step));
        let result = EmbeddingIndex::write(&npy, 2, &new_rows, &new_names, true, &[]);
        let passed = seen();
        fail_at(None);
        if *step != "none" {
            assert_eq!(passed.last(), Some(step), "{passed:?}");
        }
        let committed = k >= COMMITTED_FROM;
        // The commit point is the .npy rename: a failure at the clean-up is no failure.
        assert_eq!(result.is_ok(), k >= SUCCEEDS_FROM, "{step}: {result:?}");
        let idx = EmbeddingIndex::load(&npy).unwrap();
        let (want_names, want_rows) = if committed {
            (&new_names, &new_rows)
        } else {
            (&old_names, &old_rows)
        };
        assert_eq!(&idx.names, want_names, "{step}");
        assert_eq!(idx.embeddings.as_slice().unwrap(), &want_rows[..], "{step}");
        assert!(litter(dir.path()).is_empty(), "{step}");
        // The manifest keeps two generations only while (or if) a swap was cut short.
        let m: Manifest =
            serde_json::from_slice(&std::fs::read(EmbeddingIndex::names_path(&npy)).unwrap())
                .unwrap();
        let swap_cut = (2..=5).contains(&k);
        assert_eq!(m.previous.is_some(), swap_cut, "{step}");
        // The next write over whatever was left.
        let third = names("third", 2);
        EmbeddingIndex::write(&npy, 2, &rows(20.0, 2), &third, false, &[]).unwrap();
        assert_eq!(EmbeddingIndex::load(&npy).unwrap().names, third, "{step}");
    }
}

/// A first write that fails leaves nothing a reader accepts: no `.npy` at all before the
/// commit point (so no orphan), and a missing manifest is refused anyway.
#[test]
fn a_failed_first_write_leaves_no_orphan() {
    let dir = tempfile::tempdir().unwrap();
    for step in &STEPS[..COMMITTED_FROM] {
        let npy = dir.path().join(format!("first-{step}.npy"));
        fail_at(Some(step));
        let result = EmbeddingIndex::write(&npy, 2, &rows(0.0, 2), &names("a", 2), true, &[]);
        fail_at(None);
        assert!(result.is_err(), "{step}");
        assert!(!npy.exists(), "{step}");
        assert!(EmbeddingIndex::load(&npy).is_err(), "{step}");
    }
    // An orphan .npy (no manifest): refused by load, read by load_plain.
    let npy = dir.path().join("orphan.npy");
    crate::npy::write_f32(&npy, &[2, 2], &rows(0.0, 2)).unwrap();
    let err = EmbeddingIndex::load(&npy).unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
    assert_eq!(EmbeddingIndex::load_plain(&npy).unwrap().names, ["0", "1"]);
    // An index is not loaded as a plain array.
    let idx = dir.path().join("idx.npy");
    EmbeddingIndex::write(&idx, 2, &rows(0.0, 2), &names("a", 2), true, &[]).unwrap();
    assert!(matches!(
        EmbeddingIndex::load_plain(&idx),
        Err(ClipError::Index { .. })
    ));
}

/// A manifest that claims normalised rows is checked: unnormalised rows with a matching
/// digest are refused, never scored as cosines.
#[test]
fn a_normalized_claim_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let npy = dir.path().join("idx.npy");
    let values = [3.0f32, 4.0, 0.0, 2.0];
    let bytes = crate::npy::encode_f32(&[2, 2], &values).unwrap();
    std::fs::write(&npy, &bytes).unwrap();
    let generation = Generation {
        rows: 2,
        dim: 2,
        normalized: true,
        npy_sha256: sha256_hex(&bytes),
        names: names("x", 2),
        skipped: Vec::new(),
    };
    let manifest = Manifest::new(generation.clone(), None).to_json().unwrap();
    std::fs::write(EmbeddingIndex::names_path(&npy), manifest).unwrap();
    let err = EmbeddingIndex::load(&npy).unwrap_err();
    assert!(err.to_string().contains("has norm 5"), "{err}");
    // The same rows declared raw are normalised.
    let raw = Generation {
        normalized: false,
        ..generation
    };
    let manifest = Manifest::new(raw, None).to_json().unwrap();
    std::fs::write(EmbeddingIndex::names_path(&npy), manifest).unwrap();
    let idx = EmbeddingIndex::load(&npy).unwrap();
    assert_eq!(idx.embeddings.as_slice().unwrap(), &[0.6, 0.8, 0.0, 1.0]);
}

/// Written through a link, the manifest goes beside the file the link points to, and
/// the index loads through the link and through its target.
#[test]
fn a_link_keeps_the_manifest_beside_its_target() {
    let dir = tempfile::tempdir().unwrap();
    let real_dir = dir.path().join("real");
    std::fs::create_dir(&real_dir).unwrap();
    let target = real_dir.join("idx.npy");
    std::fs::write(&target, b"").unwrap();
    let link = dir.path().join("link.npy");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let n = names("n", 2);
    EmbeddingIndex::write(&link, 2, &rows(0.0, 2), &n, true, &[]).unwrap();
    assert!(EmbeddingIndex::names_path(&target).exists());
    assert!(!EmbeddingIndex::names_path(&link).exists());
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(EmbeddingIndex::load(&link).unwrap().names, n);
    assert_eq!(EmbeddingIndex::load(&target).unwrap().names, n);
}
