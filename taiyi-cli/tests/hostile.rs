//! The `taiyi` binary against hostile inputs (issue 10), files: nothing destroyed, nothing
//! silently wrong, nothing hung. Each test names the defect it guards against (inputs and
//! messages: `hostile_inputs.rs`).

// Tests fail loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const VISION: &str = VISION_ST;

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
    // 64 decodes of a 2000×2000 BMP, one at a time (a 1-byte decode budget lets one image
    // decode alone): seconds of work after the output's temporary file appears (preprocess
    // streams), so the signal arrives mid-write. (A FIFO as the image used to block here; it
    // is refused now, issue 25 item 3.)
    let slow = d.join("slow.bmp");
    let (w, h) = (2000u32, 2000u32);
    let mut bmp = Vec::new();
    for field in [
        &b"BM"[..],
        &(54 + 3 * w * h).to_le_bytes(),
        &0u32.to_le_bytes(),
        &54u32.to_le_bytes(),
        &40u32.to_le_bytes(),
        &w.to_le_bytes(),
        &h.to_le_bytes(),
        &1u16.to_le_bytes(),
        &24u16.to_le_bytes(),
        &[0u8; 24],
    ] {
        bmp.extend_from_slice(field);
    }
    bmp.resize(54 + (3 * w * h) as usize, 0x80);
    std::fs::write(&slow, &bmp).expect("bmp");
    let out = d.join("pixels.npy");
    let slow_s = s(&slow);
    let mut args = vec!["preprocess", PNG];
    args.extend(std::iter::repeat_n(slow_s.as_str(), 64));
    let out_s = s(&out);
    args.extend(["--out", &out_s]);
    let mut child = cmd(&args)
        .env("TAIYI_DECODE_MEMORY", "1")
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
