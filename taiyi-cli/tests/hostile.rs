//! The `taiyi` binary against hostile inputs (issue 10): nothing destroyed, nothing silently
//! wrong, nothing hung. Each test names the defect it guards against.

// Tests fail loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn cmd(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_taiyi"));
    c.args(args)
        .current_dir(root())
        .env_remove("TAIYI_TEXT_MODEL")
        .env_remove("TAIYI_VISION_MODEL")
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_HUB_CACHE", "/nonexistent-taiyi-cache");
    c
}

fn taiyi(args: &[&str]) -> Output {
    cmd(args).output().expect("run taiyi")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(args: &[&str]) -> String {
    let out = taiyi(args);
    assert!(
        out.status.success(),
        "taiyi {args:?} failed: {}",
        stderr(&out)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

fn fails(args: &[&str], needle: &str) -> String {
    let out = taiyi(args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "taiyi {args:?}: {}",
        stderr(&out)
    );
    let err = stderr(&out);
    assert!(
        err.contains(needle),
        "taiyi {args:?}: {err:?} lacks {needle:?}"
    );
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// A fresh temporary folder for one test.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("taiyi-hostile-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("tmp dir");
    d
}

fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn litter(d: &Path) -> Vec<String> {
    std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect()
}

fn mkfifo(p: &Path) {
    let st = Command::new("mkfifo").arg(p).status().expect("mkfifo");
    assert!(st.success());
}

const TEXT: &str = "fixtures/text/tiny";
const VISION: &str = "fixtures/vision/open_clip_model.safetensors";
const PNG: &str = "fixtures/vision/gradient_300x200.png";

/// Item 1: `--out` replaced device nodes, FIFOs and read-only files.
#[test]
fn out_never_replaces_what_is_not_a_regular_writable_file() {
    let d = scratch("out");
    let fifo = d.join("fifo.npy");
    mkfifo(&fifo);
    fails(
        &["preprocess", PNG, "--out", &s(&fifo)],
        "not a regular file",
    );
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo()
    );
    // A link to /dev/null: followed, and /dev/null is refused (never replaced).
    let null = d.join("null.npy");
    std::os::unix::fs::symlink("/dev/null", &null).unwrap();
    fails(
        &["preprocess", PNG, "--out", &s(&null)],
        "not a regular file",
    );
    assert!(
        std::fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device()
    );
    let ro = d.join("ro.npy");
    std::fs::write(&ro, b"keep").unwrap();
    std::fs::set_permissions(&ro, std::os::unix::fs::PermissionsExt::from_mode(0o444)).unwrap();
    fails(&["preprocess", PNG, "--out", &s(&ro)], "read-only");
    assert_eq!(std::fs::read(&ro).unwrap(), b"keep");
    assert!(litter(&d).is_empty());
}

/// Item 1: an interrupt left `.NAME.tmp-PID` behind.
#[test]
fn sigterm_leaves_no_temporary_file() {
    let d = scratch("sigterm");
    // Reading this image blocks until someone writes the FIFO: the output's temporary file
    // exists by then (preprocess streams), so the signal arrives mid-write.
    let slow = d.join("slow.png");
    mkfifo(&slow);
    let out = d.join("pixels.npy");
    let mut child = cmd(&["preprocess", PNG, &s(&slow), "--out", &s(&out)])
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let start = Instant::now();
    while litter(&d).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no temporary file appeared"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(128 + 15), "exit status after SIGTERM");
    assert!(litter(&d).is_empty(), "{:?}", litter(&d));
    assert!(!out.exists());
}

fn manifest(npy: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(format!("{}.names.json", npy.display())).expect("manifest");
    serde_json::from_str(&text).expect("json")
}

fn search(index: &Path, query: &str) -> serde_json::Value {
    let out = ok(&[
        "search",
        "--text-model",
        TEXT,
        "--index",
        &s(index),
        "--query",
        query,
        "--json",
    ]);
    serde_json::from_str(&out).expect("json")
}

/// Items 2, 6, 10: names with a newline round-trip; link cycles, FIFOs and `._` files are not
/// walked into the index; raw indexes are searched by cosine; a stale manifest is refused.
#[test]
fn folder_index_is_one_consistent_unit() {
    let d = scratch("walk");
    let imgs = d.join("imgs");
    std::fs::create_dir_all(&imgs).unwrap();
    std::fs::copy(root().join(PNG), imgs.join("a\nb.png")).unwrap();
    std::fs::copy(
        root().join("fixtures/vision/waves_grey_100x150.png"),
        imgs.join("c.png"),
    )
    .unwrap();
    std::fs::write(imgs.join("._c.png"), b"AppleDouble").unwrap();
    std::os::unix::fs::symlink(&imgs, imgs.join("loop")).unwrap();
    mkfifo(&imgs.join("x.png"));
    let idx = d.join("idx.npy");
    let (imgs_s, idx_s) = (s(&imgs), s(&idx));
    let common = [
        "--vision-model",
        VISION,
        "--vision-arch",
        "tiny",
        "--images-dir",
        &imgs_s,
    ];
    let mut args = vec!["embed-image", "--out", &idx_s];
    args.extend(common);
    ok(&args);
    let m = manifest(&idx);
    let names: Vec<String> = m["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, [s(&imgs.join("a\nb.png")), s(&imgs.join("c.png"))]);
    let hits = search(&idx, "一只猫");
    let found: Vec<&str> = hits
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap())
        .collect();
    assert!(found.contains(&names[0].as_str()), "{found:?}");

    // --raw: stored unnormalised, searched as cosines (the same scores).
    let raw = d.join("raw.npy");
    let raw_s = s(&raw);
    let mut args = vec!["embed-image", "--raw", "--out", &raw_s];
    args.extend(common);
    ok(&args);
    let raw_hits = search(&raw, "一只猫");
    for (a, b) in hits
        .as_array()
        .unwrap()
        .iter()
        .zip(raw_hits.as_array().unwrap())
    {
        let (a, b) = (a["score"].as_f64().unwrap(), b["score"].as_f64().unwrap());
        assert!((a - b).abs() < 1e-5 && b <= 1.0 + 1e-6, "{a} vs {b}");
    }
    // The manifest of another index: refused, not paired with the wrong rows.
    std::fs::copy(
        format!("{}.names.json", raw.display()),
        format!("{}.names.json", idx.display()),
    )
    .unwrap();
    fails(
        &[
            "search",
            "--text-model",
            TEXT,
            "--index",
            &s(&idx),
            "--query",
            "猫",
        ],
        "written with another",
    );
}

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
    let out = ok(&[
        "zero-shot",
        "--text-model",
        TEXT,
        "--vision-model",
        VISION,
        "--vision-arch",
        "tiny",
        "--json",
        "--image",
        PNG,
        "Cargo.toml",
        "一只猫",
    ]);
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
