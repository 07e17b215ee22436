//! Issue 25 item 3: input files were read to their end whatever they were (a character device
//! as `search --index` grew the process to 24 GB), and a FIFO given as an index, a texts file
//! or an image blocked forever. Every input file now goes through `taiyi_store::input`: each
//! test here runs the binary under a 60 s deadline, so a regression fails instead of hanging.

// Tests fail loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

/// How long one run may take before it counts as blocked.
const DEADLINE: Duration = Duration::from_secs(60);

/// Run `taiyi ARGS` (with `env` set) under [`DEADLINE`]: it is killed and the test fails if it
/// runs longer. It must exit 1 with every one of `needles` in its message and no panic.
fn refused_in_time(args: &[&str], env: &[(&str, &str)], needles: &[&str]) -> String {
    let mut c = cmd(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run taiyi");
    let start = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("taiyi {args:?} still ran after {DEADLINE:?}: blocked on its input");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "taiyi {args:?}: {err}");
    for needle in needles {
        assert!(
            err.contains(needle),
            "taiyi {args:?}: {err:?} lacks {needle:?}"
        );
    }
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// An index of the PNG fixture, written by `embed-image` in `d`.
fn index(d: &Path) -> std::path::PathBuf {
    let idx = d.join("idx.npy");
    ok(&[
        "embed-image",
        "--vision-model",
        VISION_ST,
        "--vision-arch",
        "tiny",
        PNG,
        "--out",
        &s(&idx),
    ]);
    idx
}

fn search_args(idx: &str) -> Vec<&str> {
    vec![
        "search",
        "--text-model",
        TEXT,
        "--index",
        idx,
        "--query",
        "猫",
    ]
}

/// `search --index` a device, a FIFO beside a valid manifest, a link to a device beside one.
#[test]
fn input_search_index_special_files_are_refused() {
    let d = scratch("input-search");
    refused_in_time(&search_args("/dev/zero"), &[], &["/dev/zero"]);
    let idx = index(&d);
    let manifest = names_json(&idx);
    // The .npy replaced by a FIFO, its manifest kept.
    std::fs::remove_file(&idx).unwrap();
    mkfifo(&idx);
    let idx_s = s(&idx);
    refused_in_time(&search_args(&idx_s), &[], &[&idx_s, "is a FIFO"]);
    // A link to /dev/zero with a manifest beside it.
    let zero = d.join("zero.npy");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    std::fs::copy(&manifest, names_json(&zero)).unwrap();
    let zero_s = s(&zero);
    refused_in_time(&search_args(&zero_s), &[], &[&zero_s, "character device"]);
    // The manifest itself a FIFO (beside a good .npy).
    let d2 = scratch("input-search-manifest");
    let idx2 = index(&d2);
    let manifest2 = names_json(&idx2);
    std::fs::remove_file(&manifest2).unwrap();
    mkfifo(&manifest2);
    refused_in_time(&search_args(&s(&idx2)), &[], &[&s(&manifest2), "is a FIFO"]);
}

/// An `.npy` index whose file is longer or shorter than its header declares.
#[test]
fn input_search_index_of_the_wrong_length_is_refused() {
    let d = scratch("input-npy-len");
    let idx = index(&d);
    let good = std::fs::read(&idx).unwrap();
    let idx_s = s(&idx);
    for bytes in [
        [good.as_slice(), &[0u8; 4]].concat(),
        good[..good.len() - 4].to_vec(),
    ] {
        std::fs::write(&idx, &bytes).unwrap();
        refused_in_time(
            &search_args(&idx_s),
            &[],
            &[
                &idx_s,
                &format!(
                    "the file holds {} bytes, its header declares {}",
                    bytes.len(),
                    good.len()
                ),
            ],
        );
    }
}

/// `--texts-file` a FIFO, a device, a directory, or over its cap.
#[test]
fn input_texts_file_special_files_are_refused() {
    let d = scratch("input-texts");
    let fifo = d.join("texts.txt");
    mkfifo(&fifo);
    let out = s(&d.join("t.npy"));
    let args = |f: &str| -> Vec<String> {
        [
            "embed-text",
            "--text-model",
            TEXT,
            "--texts-file",
            f,
            "--out",
            &out,
        ]
        .map(String::from)
        .to_vec()
    };
    let run = |f: &str, env: &[(&str, &str)], needles: &[&str]| {
        let a = args(f);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        refused_in_time(&a, env, needles)
    };
    let fifo_s = s(&fifo);
    run(&fifo_s, &[], &[&fifo_s, "is a FIFO, not a regular file"]);
    run("/dev/zero", &[], &["/dev/zero is a character device"]);
    let d_s = s(&d);
    run(&d_s, &[], &[&d_s, "is a directory"]);
    let big = d.join("big.txt");
    std::fs::write(&big, "一只猫\n熊猫\n").unwrap();
    let big_s = s(&big);
    run(
        &big_s,
        &[("TAIYI_MAX_TEXTS_FILE_BYTES", "16")],
        &[
            &big_s,
            "holds 17 bytes, more than the 16 bytes allowed for a texts file",
            "TAIYI_MAX_TEXTS_FILE_BYTES",
        ],
    );
    run(
        &big_s,
        &[("TAIYI_MAX_TEXTS_FILE_BYTES", "lots")],
        &["TAIYI_MAX_TEXTS_FILE_BYTES"],
    );
    // At the cap it is read.
    let ok_run = cmd(&[
        "embed-text",
        "--text-model",
        TEXT,
        "--texts-file",
        &big_s,
        "--out",
        &out,
    ])
    .env("TAIYI_MAX_TEXTS_FILE_BYTES", "17")
    .output()
    .unwrap();
    assert!(ok_run.status.success(), "{}", stderr(&ok_run));
}

/// A FIFO or a device as a positional image of `embed-image` and `preprocess`, and as
/// `--vision-arch FILE.json`.
#[test]
fn input_images_and_arch_json_special_files_are_refused() {
    let d = scratch("input-images");
    let fifo = d.join("cat.png");
    mkfifo(&fifo);
    let fifo_s = s(&fifo);
    let out = s(&d.join("x.npy"));
    for image in [fifo_s.as_str(), "/dev/zero"] {
        let needle = if image == "/dev/zero" {
            "/dev/zero is a character device"
        } else {
            "is a FIFO, not a regular file"
        };
        refused_in_time(
            &[
                "embed-image",
                "--vision-model",
                VISION_ST,
                "--vision-arch",
                "tiny",
                image,
                "--out",
                &out,
            ],
            &[],
            &[image, needle],
        );
        refused_in_time(
            &["preprocess", PNG, image, "--out", &out],
            &[],
            &[image, needle],
        );
    }
    let arch = d.join("my-vit.json");
    mkfifo(&arch);
    let arch_s = s(&arch);
    refused_in_time(
        &[
            "embed-image",
            "--vision-model",
            VISION_ST,
            "--vision-arch",
            &arch_s,
            PNG,
            "--out",
            &out,
        ],
        &[],
        &[&arch_s, "is a FIFO"],
    );
}

/// A text model folder whose `vocab.txt` or `config.json` is a FIFO; a FIFO or a device as
/// the vision checkpoint.
#[test]
fn input_model_files_special_files_are_refused() {
    let d = scratch("input-ckpt");
    let fifo = d.join("open_clip_model.safetensors");
    mkfifo(&fifo);
    let fifo_s = s(&fifo);
    let zero = d.join("zero.bin");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let zero_s = s(&zero);
    let out = s(&d.join("x.npy"));
    for (ckpt, what) in [(&fifo_s, "is a FIFO"), (&zero_s, "is a character device")] {
        refused_in_time(
            &[
                "embed-image",
                "--vision-model",
                ckpt,
                "--vision-arch",
                "tiny",
                PNG,
                "--out",
                &out,
            ],
            &[],
            &[ckpt, what],
        );
    }
    for (i, name) in ["vocab.txt", "config.json"].iter().enumerate() {
        let d = scratch(&format!("input-model-{i}"));
        let model = d.join("tiny");
        std::fs::create_dir_all(&model).unwrap();
        for entry in std::fs::read_dir(root().join(TEXT)).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), model.join(entry.file_name())).unwrap();
        }
        let special = model.join(name);
        std::fs::remove_file(&special).unwrap();
        mkfifo(&special);
        let special_s = s(&special);
        refused_in_time(
            &[
                "embed-text",
                "--text-model",
                &s(&model),
                "--out",
                &s(&d.join("t.npy")),
                "猫",
            ],
            &[],
            &[&special_s, "is a FIFO"],
        );
    }
}

/// The manifest path of an index: `FILE.npy.names.json`.
fn names_json(npy: &Path) -> std::path::PathBuf {
    std::path::PathBuf::from(format!("{}.names.json", npy.display()))
}
