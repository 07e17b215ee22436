//! Unit tests of `shard/mod.rs`.

#![allow(clippy::expect_used, clippy::panic)]

use super::*;

#[test]
fn shards_partition_the_list_in_order() -> Result<(), ClipError> {
    for len in [0usize, 1, 5, 7, 200] {
        for count in [1usize, 2, 3, 8, 13] {
            let items: Vec<usize> = (0..len).collect();
            let joined: Vec<usize> = (0..count)
                .flat_map(|i| Shard::new(i, count).map(|s| s.select(&items).to_vec()))
                .flatten()
                .collect();
            assert_eq!(joined, items, "len {len}, {count} shards");
            let sizes: Vec<usize> = (0..count)
                .map(|i| Shard::new(i, count).map(|s| s.range(len).len()))
                .collect::<Result<_, _>>()?;
            let (min, max) = (sizes.iter().min(), sizes.iter().max());
            assert!(max.zip(min).is_some_and(|(a, b)| a - b <= 1), "{sizes:?}");
        }
    }
    Ok(())
}

#[test]
fn parse_display_and_file_keys() -> Result<(), ClipError> {
    let s: Shard = "3/12".parse()?;
    assert_eq!(
        (s.index(), s.count(), s.to_string()),
        (3, 12, "3/12".to_string())
    );
    assert_eq!(s.file_key(), "03");
    assert_eq!(Shard::new(0, 3)?.file_key(), "0");
    assert_eq!(Shard::new(7, 1000)?.file_key(), "0007");
    for bad in ["3", "3/3", "0/0", "-1/2", "a/b", "1/2/3"] {
        assert!(bad.parse::<Shard>().is_err(), "{bad}");
    }
    Ok(())
}

#[test]
fn writes_the_clip_retrieval_layout() -> Result<(), ClipError> {
    let dir = std::env::temp_dir().join(format!("taiyi-shard-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let paths = vec![PathBuf::from("a.png"), PathBuf::from("b.png")];
    let feats = [0.5f32, -0.25, 1.0, 0.1];
    let files = write_clip_retrieval(
        &dir,
        Shard::new(1, 2)?,
        &feats,
        2,
        &paths,
        EmbeddingDtype::F16,
    )?;
    assert_eq!(files.embeddings, dir.join("img_emb/img_emb_1.npy"));
    assert_eq!(files.metadata, dir.join("metadata/metadata_1.parquet"));
    let npy = std::fs::read(&files.embeddings).expect("npy");
    assert!(String::from_utf8_lossy(&npy[..80]).contains("'descr': '<f2'"));
    // 0.1 is not representable in f16: the nearest, 0x2e66, as numpy rounds it.
    assert_eq!(&npy[npy.len() - 2..], &[0x66, 0x2e]);
    assert!(
        write_clip_retrieval(
            &dir,
            Shard::new(0, 2)?,
            &feats,
            3,
            &paths,
            EmbeddingDtype::F32
        )
        .is_err()
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Every fault-injection point of [`write_clip_retrieval`], in commit order.
const STEPS: [&str; 9] = [
    "npy-write",
    "parquet-write",
    "manifest-write",
    "manifest-sync",
    "npy-rename",
    "parquet-rename",
    "data-sync",
    "manifest-cleanup",
    "none",
];

fn paths(prefix: &str, n: usize) -> Vec<PathBuf> {
    (0..n)
        .map(|i| PathBuf::from(format!("{prefix}{i}.png")))
        .collect()
}

/// A shard rewritten with a failure at each step verifies as the previous shard (before
/// the renames), is refused (between the two renames: files of two generations), or
/// verifies as the new one; never a stale pair accepted. Then a rerun repairs it.
#[test]
fn a_failed_rewrite_at_any_step_is_whole_or_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let shard = Shard::new(1, 3).expect("shard");
    for (k, step) in STEPS.iter().enumerate() {
        let out = dir.path().join(format!("run{k}"));
        let old = write_clip_retrieval(
            &out,
            shard,
            &[1.0; 4],
            2,
            &paths("old", 2),
            EmbeddingDtype::F16,
        )
        .expect("first write");
        assert_eq!(verify(&out, shard).expect("old").rows, 2);
        crate::commit::tests::fail_at(Some(step));
        let result = write_clip_retrieval(
            &out,
            shard,
            &[0.5; 10],
            2,
            &paths("new", 5),
            EmbeddingDtype::F32,
        );
        crate::commit::tests::fail_at(None);
        assert_eq!(result.is_ok(), k >= 7, "{step}: {result:?}");
        match (k, verify(&out, shard)) {
            (0..=4, Ok(info)) => {
                assert_eq!((info.rows, info.dtype), (2, EmbeddingDtype::F16), "{step}");
                assert_eq!(info.files, old);
            }
            (5, Err(ClipError::Index { message, .. })) => {
                assert!(message.contains("not the pair"), "{message}");
            }
            (6.., Ok(info)) => {
                assert_eq!((info.rows, info.dtype), (5, EmbeddingDtype::F32), "{step}");
            }
            (_, other) => panic!("{step}: {other:?}"),
        }
        let litter = std::fs::read_dir(out.join("img_emb"))
            .expect("dir")
            .chain(std::fs::read_dir(out.join("metadata")).expect("dir"))
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            })
            .count();
        assert_eq!(litter, 0, "{step}");
        write_clip_retrieval(
            &out,
            shard,
            &[1.0; 2],
            2,
            &paths("x", 1),
            EmbeddingDtype::F16,
        )
        .expect("rerun");
        assert_eq!(verify(&out, shard).expect("rerun").rows, 1, "{step}");
    }
}

/// An orphan pair (no manifest), a stale `.parquet` beside a new `.npy`, another `i/N`
/// are refused; an empty shard is whole.
#[test]
fn verify_refuses_orphans_and_mixed_pairs() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path();
    let shard = Shard::new(0, 2).expect("shard");
    let files =
        write_clip_retrieval(out, shard, &[], 4, &[], EmbeddingDtype::F16).expect("empty shard");
    let info = verify(out, shard).expect("empty shard verifies");
    assert_eq!((info.rows, info.dim), (0, 4));
    let npy = std::fs::read(&files.embeddings).expect("npy");
    assert!(String::from_utf8_lossy(&npy).contains("'shape': (0, 4)"));
    // Another write's .parquet beside this .npy.
    let stale = std::fs::read(&files.metadata).expect("parquet");
    write_clip_retrieval(
        out,
        shard,
        &[1.0; 4],
        4,
        &paths("a", 1),
        EmbeddingDtype::F16,
    )
    .expect("write");
    std::fs::write(&files.metadata, &stale).expect("stale");
    assert!(matches!(verify(out, shard), Err(ClipError::Index { .. })));
    // Shard 0/3 has the same file names as 0/2: its manifest says 0/2.
    assert!(verify(out, Shard::new(0, 3).expect("shard")).is_err());
    // An orphan: no manifest.
    std::fs::remove_file(manifest_path(out, shard)).expect("rm");
    let err = verify(out, shard).expect_err("orphan");
    assert!(err.to_string().contains("missing"), "{err}");
}
