//! Issue 25, items 4–6 through the binary: indexes and shards replaced as one unit, manifests
//! checked instead of trusted, and the poor behaviours of item 6 (empty shards, `--dtype`
//! without `--out-dir`, a bad `TAIYI_DECODE_MEMORY`, no `HOME`, `--out` through a link,
//! `tokenize` vs `embed-text`). Each test names the defect it guards against.

// Tests fail loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

const VISION: &str = VISION_ST;
const GREY: &str = "fixtures/vision/waves_grey_100x150.png";

/// `embed-image --out OUT IMAGES...` on the tiny tower.
fn embed_args<'a>(out: &'a str, images: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "embed-image",
        "--vision-model",
        VISION,
        "--vision-arch",
        "tiny",
        "--out",
        out,
    ];
    args.extend_from_slice(images);
    args
}

/// The names `search --json` returns for `index`, in rank order.
fn searched_names(index: &Path, extra: &[&str]) -> Vec<String> {
    let idx = s(index);
    let mut args = vec![
        "search",
        "--text-model",
        TEXT,
        "--index",
        &idx,
        "--query",
        "一只猫",
        "--json",
    ];
    args.extend_from_slice(extra);
    let hits: serde_json::Value = serde_json::from_str(&ok(&args)).expect("json");
    let mut names: Vec<String> = hits
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

/// Item 4: a failed update (the manifest cannot be replaced) renamed the new `.npy` over the
/// old one first, so the old index was gone; an orphan `.npy` was searched with numbered
/// names. Now the old index still searches exactly as before, and an orphan is refused unless
/// `--plain-npy` says it is a plain array.
#[test]
fn a_failed_index_update_keeps_the_previous_index() {
    let d = scratch("unit-update");
    let idx = d.join("idx.npy");
    let idx_s = s(&idx);
    ok(&embed_args(&idx_s, &[PNG, GREY]));
    let before = std::fs::read(&idx).unwrap();
    let names = searched_names(&idx, &[]);
    assert_eq!(names, [PNG, GREY]);
    // The manifest cannot be replaced (read-only): the update fails at its manifest step.
    let manifest = format!("{idx_s}.names.json");
    std::fs::set_permissions(
        &manifest,
        std::os::unix::fs::PermissionsExt::from_mode(0o444),
    )
    .unwrap();
    fails(&embed_args(&idx_s, &[GREY]), "read-only");
    assert_eq!(
        std::fs::read(&idx).unwrap(),
        before,
        "the .npy was replaced"
    );
    assert_eq!(searched_names(&idx, &[]), names);
    assert!(litter(&d).is_empty(), "{:?}", litter(&d));

    // An orphan .npy (no manifest): refused; --plain-npy reads it with numbered rows.
    let orphan = d.join("orphan.npy");
    std::fs::copy(&idx, &orphan).unwrap();
    fails(
        &[
            "search",
            "--text-model",
            TEXT,
            "--index",
            &s(&orphan),
            "--query",
            "猫",
        ],
        "has no manifest",
    );
    assert_eq!(searched_names(&orphan, &["--plain-npy"]), ["0", "1"]);
    // An index is not read as a plain array (its names and digest would be ignored).
    fails(
        &[
            "search",
            "--text-model",
            TEXT,
            "--index",
            &idx_s,
            "--query",
            "猫",
            "--plain-npy",
        ],
        "it has a manifest",
    );
}

/// The SHA-256 of a file, by `sha256sum`.
fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// Item 5: `"normalized": true` was believed, so unnormalised rows with a matching digest
/// gave raw dot products reported as cosines. Now the rows are checked when the index loads.
#[test]
fn a_false_normalized_claim_is_refused() {
    let d = scratch("unit-norms");
    let idx = d.join("idx.npy");
    let idx_s = s(&idx);
    ok(&embed_args(&idx_s, &[PNG, GREY]));
    // Scale every row by 3 (float32 data after the 64-byte-aligned header), then fix the
    // manifest's digest so that only the norms are wrong.
    let (shape, values) = npy_f32(&idx);
    let mut bytes = std::fs::read(&idx).unwrap();
    let data = bytes.len() - values.len() * 4;
    for (i, v) in values.iter().enumerate() {
        bytes[data + 4 * i..data + 4 * i + 4].copy_from_slice(&(3.0 * v).to_le_bytes());
    }
    std::fs::write(&idx, &bytes).unwrap();
    let mut m = manifest(&idx);
    assert_eq!(m["normalized"], true);
    m["npy_sha256"] = serde_json::Value::String(sha256(&idx));
    std::fs::write(format!("{idx_s}.names.json"), m.to_string()).unwrap();
    let err = fails(
        &[
            "search",
            "--text-model",
            TEXT,
            "--index",
            &idx_s,
            "--query",
            "猫",
        ],
        "the manifest says the rows are L2-normalised",
    );
    assert!(
        err.contains("has norm 2.99") || err.contains("has norm 3"),
        "{err}"
    );
    assert_eq!(shape, [2, 16]);
}

/// Item 6: `--out` through a symbolic link wrote the manifest beside the link, so searching
/// the link's target showed numbered names. Now the manifest goes beside the target and both
/// paths search with the real names.
#[test]
fn an_index_written_through_a_link_searches_through_both_paths() {
    let d = scratch("unit-link");
    std::fs::create_dir(d.join("real")).unwrap();
    let target = d.join("real/idx.npy");
    std::fs::write(&target, b"").unwrap();
    let link = d.join("link.npy");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    ok(&embed_args(&s(&link), &[PNG, GREY]));
    assert!(Path::new(&format!("{}.names.json", target.display())).is_file());
    assert!(!Path::new(&format!("{}.names.json", link.display())).exists());
    assert_eq!(searched_names(&link, &[]), [PNG, GREY]);
    assert_eq!(searched_names(&target, &[]), [PNG, GREY]);
}

/// Item 6: more shards than images made the empty shard exit 1 ("empty input"), failing
/// array jobs. Now it writes a `[0, d]` array, an empty table and its manifest, and exits 0;
/// the shard manifest binds the pair (`shard::verify`).
#[test]
fn an_empty_shard_writes_empty_valid_outputs() {
    let d = scratch("unit-empty-shard");
    let out = d.join("emb");
    let out_s = s(&out);
    let shard_args = |shard: &'static str| -> Vec<String> {
        [
            "embed-image",
            "--vision-model",
            VISION,
            "--vision-arch",
            "tiny",
            "--dtype",
            "float32",
            "--out-dir",
            &out_s,
            "--shard",
            shard,
            PNG,
        ]
        .iter()
        .map(|a| a.to_string())
        .collect()
    };
    for shard in ["0/3", "1/3", "2/3"] {
        let args = shard_args(shard);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ok(&args);
    }
    let mut rows = 0;
    for i in 0..3 {
        let shard = taiyi_core::shard::Shard::new(i, 3).unwrap();
        let info = taiyi_core::shard::verify(&out, shard).expect("a whole shard");
        let (shape, _) = npy_f32(&info.files.embeddings);
        assert_eq!(shape, [info.rows, 16], "shard {i}");
        rows += info.rows;
    }
    assert_eq!(rows, 1);
    let (shape, values) = npy_f32(&out.join("img_emb/img_emb_0.npy"));
    assert_eq!((shape, values.len()), (vec![0, 16], 0));
    let meta = std::fs::read(out.join("metadata/metadata_0.parquet")).unwrap();
    assert!(meta.starts_with(b"PAR1") && meta.ends_with(b"PAR1"));
}

/// Item 6: `--dtype` was silently ignored without `--out-dir` (an `--out` index is float32).
/// Now it is refused, as is `--shard` without `--out-dir`.
#[test]
fn dtype_without_out_dir_is_refused() {
    let d = scratch("unit-dtype");
    let out = s(&d.join("idx.npy"));
    let mut args = embed_args(&out, &[PNG]);
    args.extend(["--dtype", "float16"]);
    fails(&args, "--dtype applies to --out-dir only");
    let mut args = embed_args(&out, &[PNG]);
    args.extend(["--shard", "0/2"]);
    fails(&args, "--shard needs --out-dir");
    assert!(!d.join("idx.npy").exists());
}

/// Item 6: a bad `TAIYI_DECODE_MEMORY` was reported as an error of "batch image 0" with a
/// doubled prefix (and with `--skip-errors` every image was skipped for it). Now it is one
/// configuration error naming the variable and its value.
#[test]
fn a_bad_decode_memory_setting_is_one_configuration_error() {
    let d = scratch("unit-decode-memory");
    let out = s(&d.join("idx.npy"));
    for extra in [&[][..], &["--skip-errors"][..]] {
        let mut args = embed_args(&out, &[PNG, GREY]);
        args.extend_from_slice(extra);
        let o = cmd(&args)
            .env("TAIYI_DECODE_MEMORY", "lots")
            .output()
            .unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{err}");
        let want = "invalid environment variable TAIYI_DECODE_MEMORY=\"lots\"";
        assert_eq!(err.matches(want).count(), 1, "{err}");
        assert!(!err.contains("batch image"), "{err}");
        assert!(!err.contains("configuration: invalid"), "{err}");
    }
    let o = cmd(&["preprocess", PNG, "--out", &s(&d.join("px.npy"))])
        .env("TAIYI_DECODE_MEMORY", "lots")
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("TAIYI_DECODE_MEMORY=\"lots\"") && !err.contains("batch image"),
        "{err}"
    );
}

/// Item 6: with `HOME` unset the hub cache became `./.cache/…` under the working directory.
/// Now a hub look-up without `HF_HUB_CACHE`, `HF_HOME` and `HOME` is an error, and nothing is
/// created in the working directory; explicit model paths still work.
#[test]
fn no_home_means_no_cache_in_the_working_directory() {
    let d = scratch("unit-no-home");
    let bin = env!("CARGO_BIN_EXE_taiyi");
    let o = Command::new(bin)
        .args(["embed-text", "一只猫", "--out"])
        .arg(d.join("t.npy"))
        .current_dir(&d)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("none of HF_HUB_CACHE, HF_HOME, HOME is set"),
        "{err}"
    );
    assert!(!d.join(".cache").exists());
    let text = root().join(TEXT);
    let o = Command::new(bin)
        .args(["embed-text", "一只猫", "--text-model"])
        .arg(&text)
        .arg("--out")
        .arg(d.join("t.npy"))
        .current_dir(&d)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!d.join(".cache").exists());
}

/// Item 6: `tokenize` truncated to `model_max_length` (512) while `embed-text` truncated to
/// the model's positions (96 in the tiny tower), so the printed ids were not the embedded
/// ones. Now `tokenize --mode M` prints exactly the ids the text encoder embeds in mode M.
#[test]
fn tokenize_prints_the_ids_embed_text_embeds() {
    use burn::tensor::Int;
    use taiyi_core::{CpuBackend, TextEncoder, TextMode};
    let long = "一只猫在海边看日落。".repeat(30);
    let texts = [long.as_str(), "猫"];
    let device = Default::default();
    let encoder = TextEncoder::<CpuBackend>::from_dir(root().join(TEXT), &device).unwrap();
    let rows = |t: burn::tensor::Tensor<CpuBackend, 2, Int>| -> Vec<Vec<i64>> {
        let [_, seq] = t.dims();
        let flat: Vec<i64> = t.into_data().iter::<i64>().collect();
        flat.chunks(seq).map(<[i64]>::to_vec).collect()
    };
    for (mode, name) in [
        (TextMode::ModelCard, "card"),
        (TextMode::Fixed77, "fixed77"),
        (TextMode::Masked, "masked"),
    ] {
        let enc = encoder.clone().with_mode(mode);
        let batch = enc.tokenize(&texts).unwrap();
        let (ids, mask) = (rows(batch.ids), rows(batch.mask));
        let out = ok(&[
            "tokenize",
            "--model-dir",
            TEXT,
            "--mode",
            name,
            texts[0],
            texts[1],
        ]);
        let printed: Vec<Vec<i64>> = out
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_i64().unwrap())
                    .collect()
            })
            .collect();
        assert_eq!(printed.len(), 2, "{name}");
        // The long text is truncated to what the tower embeds (at most its 96 positions).
        assert_eq!(
            printed[0].len(),
            enc.max_tokens().min(ids[0].len()),
            "{name}"
        );
        assert!(printed[0].len() <= 96, "{name}: {}", printed[0].len());
        for r in 0..2 {
            // In masked mode the padding is masked out: the embedded ids are the unmasked ones.
            let embedded: Vec<i64> = ids[r]
                .iter()
                .zip(&mask[r])
                .filter(|&(_, &m)| mode != TextMode::Masked || m == 1)
                .map(|(&i, _)| i)
                .collect();
            assert_eq!(printed[r], embedded, "{name}, text {r}");
        }
    }
}
