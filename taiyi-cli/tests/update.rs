//! `embed-image --update` (issue 27): only new and changed images are embedded, rows of gone
//! images dropped, a touched but unchanged file kept; the result has a full rebuild's rows;
//! an ANN graph follows (edited in place, or rebuilt once more than 10% of its rows changed);
//! a failed update leaves the previous index as it was.

// Tests fail loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::path::Path;

use common::*;

const CAT: &str = "examples/data/chelsea_cat.png";
const GREY: &str = "fixtures/vision/waves_grey_100x150.png";

fn embed(dir: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let (dir_s, out_s) = (s(dir), s(out));
    let mut args = vec!["--images-dir", &dir_s, "--out", &out_s];
    args.extend_from_slice(extra);
    embed_tiny(&args)
}

/// Row name → row values of an index.
fn rows(npy: &Path) -> HashMap<String, Vec<f32>> {
    let (shape, values) = npy_f32(npy);
    let names = manifest(npy)["names"].clone();
    let names: Vec<String> = serde_json::from_value(names).unwrap();
    assert_eq!(names.len(), shape[0]);
    names
        .into_iter()
        .zip(values.chunks(shape[1]).map(<[f32]>::to_vec))
        .collect()
}

fn copy(from: &str, to: &Path) {
    std::fs::copy(root().join(from), to).unwrap();
}

/// One file of 24 gone, one new: the graph is edited in place (2 edits of 24 rows), and a search
/// opens it (its stamp, row count and CRC checked against the new rows).
#[test]
fn a_small_update_edits_the_graph_in_place() {
    let t = scratch("update-in-place");
    let dir = t.join("photos");
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..24 {
        copy([PNG, GREY, CAT][i % 3], &dir.join(format!("p{i:02}.png")));
    }
    let idx = t.join("idx.npy");
    assert!(embed(&dir, &idx, &[]).status.success());
    ok(&["index", "build", &s(&idx)]);
    std::fs::remove_file(dir.join("p05.png")).unwrap();
    copy(CAT, &dir.join("p05b.png"));
    let r = embed(&dir, &idx, &["--update"]);
    let err = stderr(&r);
    assert!(r.status.success(), "{err}");
    assert!(
        err.contains("in place (24 rows: 1 added, 1 removed, 0 renumbered"),
        "{err}"
    );
    let found = ok(&["search", "--index", &s(&idx), "--query-vectors", &s(&idx)]);
    assert_eq!(found.lines().count(), 24);
}

#[test]
fn update_embeds_only_what_changed() {
    let t = scratch("update");
    let dir = t.join("photos");
    std::fs::create_dir_all(&dir).unwrap();
    copy(PNG, &dir.join("a.png"));
    copy(GREY, &dir.join("b.png"));
    copy(CAT, &dir.join("c.png"));
    let idx = t.join("idx.npy");
    let r = embed(&dir, &idx, &[]);
    assert!(r.status.success(), "{}", stderr(&r));
    assert!(t.join("idx.npy.files.json").is_file(), "stamps written");
    ok(&["index", "build", &s(&idx)]);

    // b gone, c changed (other contents), d new, a touched (same contents, new time).
    std::fs::remove_file(dir.join("b.png")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    copy(PNG, &dir.join("c.png"));
    copy(GREY, &dir.join("d.png"));
    let a = std::fs::read(dir.join("a.png")).unwrap();
    std::fs::write(dir.join("a.png"), a).unwrap();
    let r = embed(&dir, &idx, &["--update"]);
    let err = stderr(&r);
    assert!(r.status.success(), "{err}");
    assert!(
        err.contains("update: 2 image(s) embedded, 1 row(s) kept, 2 dropped"),
        "{err}"
    );
    assert!(
        err.contains("rebuilt") && err.contains("more than 10% of its rows changed"),
        "the graph follows the rows: {err}"
    );
    ok(&["search", "--index", &s(&idx), "--query-vectors", &s(&idx)]);

    // The rows of a full run over the same folder (same model, same images).
    let full = t.join("full.npy");
    assert!(embed(&dir, &full, &[]).status.success());
    let (got, want) = (rows(&idx), rows(&full));
    assert_eq!(
        {
            let mut k: Vec<_> = got.keys().collect();
            k.sort();
            k
        },
        {
            let mut k: Vec<_> = want.keys().collect();
            k.sort();
            k
        }
    );
    for (name, row) in &want {
        // The image tower's rows do not depend on their batch (row-invariant gemm), so the
        // kept and the fresh rows are the full run's, bit for bit.
        assert_eq!(&got[name], row, "{name}");
    }
    assert_eq!(
        std::fs::read(&idx).unwrap(),
        std::fs::read(&full).unwrap(),
        "same order too: the .npy files are the same bytes"
    );

    // Nothing changed: nothing embedded, the same index.
    let before = std::fs::read(&idx).unwrap();
    let err = stderr(&embed(&dir, &idx, &["--update"]));
    assert!(
        err.contains("update: 0 image(s) embedded, 3 row(s) kept, 0 dropped"),
        "{err}"
    );
    assert_eq!(std::fs::read(&idx).unwrap(), before);

    // A failed update (an unreadable new file) leaves the index as it was...
    std::fs::write(dir.join("e.png"), b"not a png").unwrap();
    let r = embed(&dir, &idx, &["--update"]);
    assert!(!r.status.success());
    assert_eq!(std::fs::read(&idx).unwrap(), before);
    ok(&["search", "--index", &s(&idx), "--query-vectors", &s(&idx)]);
    // ... and --skip-errors leaves the file out, listed in the manifest.
    let r = embed(&dir, &idx, &["--update", "--skip-errors"]);
    assert!(r.status.success(), "{}", stderr(&r));
    assert_eq!(manifest(&idx)["skipped"][0]["name"], s(&dir.join("e.png")));
    assert_eq!(rows(&idx).len(), 3);

    // The other normalisation cannot be mixed in.
    let r = embed(&dir, &idx, &["--update", "--raw"]);
    assert_eq!(r.status.code(), Some(1));
    assert!(stderr(&r).contains("raw"), "{}", stderr(&r));
    assert!(litter(&t).is_empty(), "{:?}", litter(&t));
}

#[test]
fn update_of_a_missing_index_embeds_everything() {
    let t = scratch("update-new");
    let dir = t.join("photos");
    std::fs::create_dir_all(&dir).unwrap();
    copy(PNG, &dir.join("a.png"));
    let idx = t.join("new.npy");
    let err = stderr(&embed(&dir, &idx, &["--update"]));
    assert!(
        err.contains("update: 1 image(s) embedded, 0 row(s) kept, 0 dropped"),
        "{err}"
    );
    assert_eq!(rows(&idx).len(), 1);
}
