//! The `taiyi` binary against hostile inputs (issue 10), inputs and messages: unreadable
//! images, text files, labels, sizes, and what the errors say. Each test names the defect it
//! guards against.

// Tests fail loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use std::process::Stdio;

use common::*;

const VISION: &str = VISION_ST;

/// Item 6: one unreadable image lost a whole run; `--skip-errors` reports and skips it.
#[test]
fn skip_errors_reports_and_skips_unreadable_images() {
    let d = scratch("skip");
    let bad = d.join("broken.jpg");
    std::fs::write(&bad, b"\xff\xd8\xff\xe0 not really a jpeg").unwrap();
    let idx = d.join("idx.npy");
    let base = [
        "embed-image",
        "--vision-model",
        VISION,
        "--vision-arch",
        "tiny",
        PNG,
    ];
    let mut args = base.to_vec();
    let (bad_s, idx_s) = (s(&bad), s(&idx));
    args.extend([bad_s.as_str(), "--out", &idx_s]);
    fails(&args, "broken.jpg");
    args.push("--skip-errors");
    let out = taiyi(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("skipped"), "{}", stderr(&out));
    let m = manifest(&idx);
    assert_eq!(m["rows"], 1);
    assert_eq!(m["skipped"][0]["name"], bad_s);
}

/// Item 7: empty lines were dropped and CR-only files became one text.
#[test]
fn texts_file_gives_one_row_per_line() {
    let d = scratch("texts");
    let f = d.join("t.txt");
    std::fs::write(&f, "一只猫\n\n熊猫\r\n一只狗\r两只猫\n").unwrap();
    let out = d.join("t.npy");
    ok(&[
        "embed-text",
        "--text-model",
        TEXT,
        "--mode",
        "masked",
        "--texts-file",
        &s(&f),
        "--out",
        &s(&out),
    ]);
    let bytes = std::fs::read(&out).unwrap();
    let header = String::from_utf8_lossy(&bytes[10..80]).into_owned();
    assert!(header.contains("'shape': (5, 16)"), "{header}");
}

/// Item 8: a label equal to an existing file name became an image.
#[test]
fn zero_shot_labels_are_labels() {
    let out = ok(&tiny_clip(
        "zero-shot",
        VISION,
        &["--json", "--image", PNG, "Cargo.toml", "一只猫"],
    ));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1, "one image");
    assert_eq!(v[0]["labels"], serde_json::json!(["Cargo.toml", "一只猫"]));
}

/// Item 9: `tokenize --pad 100000000000` aborted (exit 134).
#[test]
fn huge_padding_is_an_error() {
    fails(
        &[
            "tokenize",
            "--vocab",
            "fixtures/tokenizer/vocab.txt",
            "--pad",
            "100000000000",
            "猫",
        ],
        "too much",
    );
}

/// Item 11: messages — closed stdout, bad precision, arch file path, empty env vars, a file
/// given as the text model.
#[test]
fn messages_say_what_is_wrong() {
    // `taiyi tokenize … | head -c 1`: a closed stdout ends quietly with success.
    let d = scratch("msg");
    let texts = d.join("many.txt");
    std::fs::write(&texts, "一只猫在沙发上睡觉\n".repeat(20_000)).unwrap();
    let mut child = cmd(&[
        "tokenize",
        "--vocab",
        "fixtures/tokenizer/vocab.txt",
        "--texts-file",
    ])
    .arg(&texts)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));

    fails(
        &[
            "--precision",
            "f64",
            "tokenize",
            "--vocab",
            "fixtures/tokenizer/vocab.txt",
            "猫",
        ],
        "invalid precision 'f64'",
    );
    let arch = d.join("my-vit.json");
    std::fs::write(
        &arch,
        r#"{"embed_dim": 16, "vision_cfg": {"width": 30, "head_width": 7}}"#,
    )
    .unwrap();
    let err = fails(
        &[
            "embed-image",
            "--vision-model",
            VISION,
            "--vision-arch",
            &s(&arch),
            PNG,
            "--out",
            &s(&d.join("x.npy")),
        ],
        "my-vit.json",
    );
    assert!(!err.contains("<json>"), "{err}");
    // An empty TAIYI_TEXT_MODEL is unset (not the current directory): the hub is tried.
    let out = cmd(&["embed-text", "--out", &s(&d.join("y.npy")), "猫"])
        .env("TAIYI_TEXT_MODEL", "")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("HF_HUB_OFFLINE"), "{}", stderr(&out));
    let out = cmd(&["embed-image", PNG, "--out", &s(&d.join("z.npy"))])
        .env("TAIYI_VISION_MODEL", "")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(!stderr(&out).contains("cannot read :"), "{}", stderr(&out));
    assert!(stderr(&out).contains("HF_HUB_OFFLINE"), "{}", stderr(&out));
    fails(
        &[
            "embed-text",
            "--text-model",
            "fixtures/text/tiny/config.json",
            "--out",
            &s(&d.join("w.npy")),
            "猫",
        ],
        "is a file",
    );
}
