//! `--precision bf16` on the CPU through the binary, with every bf16 kernel this CPU runs
//! (`TAIYI_CPU_KERNEL`, one process each): the tiny towers' zero-shot answers and embeddings
//! against `--precision f32`, the kernel in `bench`'s report, and the refusals.
//!
//! Tolerances: bf16 keeps 8 significant bits, so each product of a linear layer moves by
//! ≤ 2⁻⁷ relative; through the tiny towers (2 layers each) the normalised features stay at
//! cosine ≥ 0.9999 per row (measured 0.99998), zero-shot top-1 equal, probabilities within
//! 0.05. A wrong kernel or layout gives cosines near 0.

// Tests fail loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use common::{PNG, TEXT, VISION_BIN, VISION_ST, cmd, fails, npy_f32, scratch, tiny_clip};
use taiyi_cli::bench_report::min_row_cosine;

/// The kernels to force: `f32` always, `avx512bf16` where the CPU has it.
fn kernels() -> Vec<&'static str> {
    let mut k = vec!["f32"];
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512bf16") {
        k.push("avx512bf16");
    }
    k
}

/// `taiyi --precision PRECISION ARGS` with `TAIYI_CPU_KERNEL` = `kernel` (when given).
fn run(precision: &str, kernel: Option<&str>, args: &[&str]) -> String {
    let mut c = cmd(&[&["--precision", precision], args].concat());
    match kernel {
        Some(k) => c.env("TAIYI_CPU_KERNEL", k),
        None => c.env_remove("TAIYI_CPU_KERNEL"),
    };
    let out = c.output().expect("run taiyi");
    assert!(
        out.status.success(),
        "taiyi {precision} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn zero_shot_in_bf16_keeps_the_answers() {
    let labels = ["一只猫", "一只狗", "两只猫", "两只老虎", "一只老虎"];
    let images = [PNG, "fixtures/vision/waves_grey_100x150.png"];
    let mut args = tiny_clip("zero-shot", VISION_BIN, &["--json"]);
    for img in images {
        args.extend(["--image", img]);
    }
    args.extend(labels);
    let parse = |s: String| -> Vec<Vec<f64>> {
        let v: serde_json::Value = serde_json::from_str(&s).expect("json");
        v.as_array()
            .expect("rows")
            .iter()
            .map(|r| {
                r["probs"]
                    .as_array()
                    .expect("probs")
                    .iter()
                    .map(|p| p.as_f64().expect("p"))
                    .collect()
            })
            .collect()
    };
    let argmax = |row: &[f64]| {
        (0..row.len())
            .max_by(|&i, &j| row[i].total_cmp(&row[j]))
            .expect("labels")
    };
    let f32_probs = parse(run("f32", None, &args));
    for kernel in kernels() {
        let bf16_probs = parse(run("bf16", Some(kernel), &args));
        for (a, b) in f32_probs.iter().zip(&bf16_probs) {
            assert_eq!(argmax(a), argmax(b), "{kernel}: {a:?} vs {b:?}");
            // Logits move by ≤ 0.1 here (tests/cpu_bf16.rs) and the softmax's Jacobian has
            // ∞-norm ≤ 1/2: probabilities move by ≤ 0.05 (measured ≤ 0.007).
            for (p, q) in a.iter().zip(b) {
                assert!((p - q).abs() <= 0.05, "{kernel}: {p} vs {q}");
            }
        }
    }
}

#[test]
fn embeddings_in_bf16_are_the_f32_directions() {
    let d = scratch("bf16-embed");
    for kernel in kernels() {
        for (precision, name) in [("f32", "f32"), ("bf16", kernel)] {
            let img = d.join(format!("img-{name}.npy"));
            let txt = d.join(format!("txt-{name}.npy"));
            let k = (precision == "bf16").then_some(kernel);
            run(
                precision,
                k,
                &[
                    "embed-image",
                    "--vision-model",
                    VISION_ST,
                    "--vision-arch",
                    "tiny",
                    "--out",
                    img.to_str().expect("utf-8"),
                    PNG,
                    "fixtures/vision/waves_grey_100x150.png",
                ],
            );
            run(
                precision,
                k,
                &[
                    "embed-text",
                    "--text-model",
                    TEXT,
                    "--out",
                    txt.to_str().expect("utf-8"),
                    "一只猫",
                    "海边的日落",
                    "两只老虎在草地上",
                ],
            );
        }
        for tower in ["img", "txt"] {
            let (shape, want) = npy_f32(&d.join(format!("{tower}-f32.npy")));
            let (shape_b, got) = npy_f32(&d.join(format!("{tower}-{kernel}.npy")));
            assert_eq!(shape, shape_b);
            let c = min_row_cosine(&want, &got, shape[1]);
            assert!(
                c.is_some_and(|c| c >= 0.9999),
                "{kernel} {tower}: cosine {c:?}"
            );
        }
    }
}

#[test]
fn bench_reports_the_bf16_kernel() {
    for kernel in kernels() {
        let out = run(
            "bf16",
            Some(kernel),
            &[
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
                "1",
                "--json",
            ],
        );
        let v: serde_json::Value = serde_json::from_str(&out).expect("json");
        assert_eq!(v["precision"], "bf16");
        assert_eq!(v["cpu_kernel"], kernel);
        for tower in ["text", "image"] {
            assert_eq!(v[tower]["finite"], true, "{tower}");
            let dtype = v[tower]["param_dtype"].as_str().expect("dtype");
            assert!(dtype.starts_with("bf16 linear weights"), "{dtype}");
        }
    }
    let f32_report: serde_json::Value = serde_json::from_str(&run(
        "f32",
        None,
        &[
            "bench",
            "--text-arch",
            "tiny",
            "--tower",
            "text",
            "--iters",
            "1",
            "--json",
        ],
    ))
    .expect("json");
    assert_eq!(f32_report["cpu_kernel"], serde_json::Value::Null);
}

#[test]
fn unknown_or_missing_kernels_are_refused() {
    let d = scratch("bf16-refused");
    let out = d.join("t.npy");
    let out = out.to_str().expect("utf-8");
    let args = [
        "--precision",
        "bf16",
        "embed-text",
        "--text-model",
        TEXT,
        "--out",
        out,
        "猫",
    ];
    for (kernel, needle) in [("fastest", "names no kernel"), ("amx", "no AMX kernel")] {
        let out = cmd(&args)
            .env("TAIYI_CPU_KERNEL", kernel)
            .output()
            .expect("run");
        assert_eq!(
            out.status.code(),
            Some(1),
            "{kernel}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{kernel}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    #[cfg(target_arch = "x86_64")]
    if !std::arch::is_x86_feature_detected!("avx512bf16") {
        let out = cmd(&args)
            .env("TAIYI_CPU_KERNEL", "avx512bf16")
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(1));
    }
    // f16 stays a GPU precision.
    let mut f16 = args;
    f16[1] = "f16";
    fails(&f16, "f32 or bf16");
    assert!(!d.join("t.npy").exists(), "no output on a refusal");
}
