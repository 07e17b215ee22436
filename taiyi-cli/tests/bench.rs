//! `taiyi bench` on the CPU with the tiny towers: its JSON report and its usage errors.

// Tests fail loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::process::{Command, Output};

fn taiyi(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_taiyi"))
        .args(args)
        .env_remove("TAIYI_TEXT_MODEL")
        .env_remove("TAIYI_VISION_MODEL")
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .expect("run taiyi")
}

fn positive(v: &serde_json::Value, key: &str) -> f64 {
    let x = v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"));
    assert!(x > 0.0 && x.is_finite(), "{key} = {x}");
    x
}

#[test]
fn bench_json_reports_both_towers() {
    let out = taiyi(&[
        "bench",
        "--text-arch",
        "tiny",
        "--vision-arch",
        "tiny",
        "--batch",
        "2",
        "--seq",
        "8",
        "--iters",
        "2",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(v["device"], "Cpu");
    assert_eq!(v["precision"], "f32");
    assert_eq!(v["tower"], "both");
    assert_eq!(v["batch"], 2);
    assert_eq!(v["seq"], 8);
    assert_eq!(v["iters"], 2);
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    for tower in ["text", "image"] {
        let t = &v[tower];
        assert_eq!(t["batch"], 2, "{tower}");
        assert_eq!(t["weights"], "random", "{tower}");
        assert_eq!(t["finite"], true, "{tower}");
        assert_eq!(t["iter_s"].as_array().map(Vec::len), Some(2), "{tower}");
        for key in ["load_s", "first_call_s", "min_s", "median_s", "mean_s"] {
            positive(t, key);
        }
        assert!(positive(t, "min_s") <= positive(t, "median_s"));
        assert!(t["params"].as_u64().unwrap_or(0) > 0, "{tower}");
    }
    let text = &v["text"];
    assert_eq!(text["seq"], 8);
    let texts = positive(text, "texts_per_s");
    let tokens = positive(text, "tokens_per_s");
    assert!(
        (tokens - texts * 8.0).abs() <= 1e-9 * tokens,
        "{tokens} vs {texts} x 8"
    );
    assert!((texts - 2.0 / positive(text, "median_s")).abs() <= 1e-9 * texts);
    let image = &v["image"];
    assert_eq!(image["image_size"], 224);
    let images = positive(image, "images_per_s");
    assert!((images - 2.0 / positive(image, "median_s")).abs() <= 1e-9 * images);
}

#[test]
fn bench_usage_errors() {
    for (args, needle) in [
        (&["bench", "--iters", "0"][..], "--iters"),
        (&["bench", "--batch", "0"][..], "--batch"),
        (&["bench", "--seq", "1"][..], "--seq"),
    ] {
        let out = taiyi(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?} should be a usage error"
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty());
    }
    // Longer than the tiny text tower's 96 positions: an error before anything is timed.
    let out = taiyi(&[
        "bench",
        "--tower",
        "text",
        "--text-arch",
        "tiny",
        "--seq",
        "97",
        "--json",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("96 positions"));
    assert!(out.stdout.is_empty());
}
