//! Running the `taiyi` binary in the CLI tests: the command with a clean environment (no model
//! variables, hub offline with an empty cache), its output, scratch folders.
#![allow(dead_code, clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The tiny HF text tower of the fixtures (relative to [`root`], the commands' working folder).
pub const TEXT: &str = "fixtures/text/tiny";
/// The tiny open_clip checkpoint, safetensors.
pub const VISION_ST: &str = "fixtures/vision/open_clip_model.safetensors";
/// The tiny open_clip checkpoint, PyTorch pickle.
pub const VISION_BIN: &str = "fixtures/vision/open_clip_pytorch_model.bin";
/// A 300×200 PNG.
pub const PNG: &str = "fixtures/vision/gradient_300x200.png";

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `taiyi ARGS` run from [`root`] with a clean environment.
pub fn cmd(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_taiyi"));
    c.args(args)
        .current_dir(root())
        .env_remove("TAIYI_TEXT_MODEL")
        .env_remove("TAIYI_VISION_MODEL")
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_HUB_CACHE", "/nonexistent-taiyi-cache");
    c
}

/// Run `taiyi ARGS` to completion.
pub fn taiyi(args: &[&str]) -> Output {
    cmd(args).output().expect("run taiyi")
}

/// `taiyi embed-image` on the tiny open_clip tower with `extra` arguments.
pub fn embed_tiny(extra: &[&str]) -> Output {
    let mut args = vec![
        "embed-image",
        "--vision-model",
        VISION_ST,
        "--vision-arch",
        "tiny",
    ];
    args.extend_from_slice(extra);
    taiyi(&args)
}

/// The standard error of a run, as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Run `taiyi ARGS`, which must succeed; its standard output.
pub fn ok(args: &[&str]) -> String {
    let out = taiyi(args);
    assert!(
        out.status.success(),
        "taiyi {args:?} failed: {}",
        stderr(&out)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// Run `taiyi ARGS`, which must exit 1 with `needle` in its message and no panic; the message.
pub fn fails(args: &[&str], needle: &str) -> String {
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

/// A fresh temporary folder for one test (`name` unique per test), removed with everything in
/// it when the returned guard drops, also when the test fails.
pub fn scratch(name: &str) -> Scratch {
    Scratch(taiyi_testkit::scratch_dir(&format!("test-{name}-")))
}

/// [`scratch`]'s guard: derefs to the folder's path.
pub struct Scratch(taiyi_testkit::TempDir);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        self.0.path()
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        self.0.path()
    }
}

/// A path as a command-line argument.
pub fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Temporary files (`.NAME.tmp-PID`) left in `d`.
pub fn litter(d: &Path) -> Vec<String> {
    std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect()
}

/// Make a FIFO at `p`.
pub fn mkfifo(p: &Path) {
    let st = Command::new("mkfifo").arg(p).status().expect("mkfifo");
    assert!(st.success());
}

/// The manifest (`FILE.npy.names.json`) of an index written by `taiyi embed-image`.
pub fn manifest(npy: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(format!("{}.names.json", npy.display())).expect("manifest");
    serde_json::from_str(&text).expect("json")
}

/// `taiyi COMMAND --text-model TEXT --vision-model VISION --vision-arch tiny REST...`: the
/// arguments of a command run on the tiny towers.
pub fn tiny_clip<'a>(command: &'a str, vision: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        command,
        "--text-model",
        TEXT,
        "--vision-model",
        vision,
        "--vision-arch",
        "tiny",
    ];
    args.extend_from_slice(rest);
    args
}

/// A float32 `.npy` file: its shape and values (row-major).
pub fn npy_f32(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap();
    let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = String::from_utf8_lossy(&bytes[10..10 + len]).into_owned();
    assert!(header.contains("'<f4'"), "{header}");
    let shape = header.split('(').nth(1).unwrap().split(')').next().unwrap();
    let shape: Vec<usize> = shape
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse().unwrap())
        .collect();
    let values = bytes[10 + len..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    (shape, values)
}

/// A raw HTTP/1.1 request to 127.0.0.1:`port`; the whole answer (read until the server closes,
/// at most 60 s per read).
pub fn http(port: u16, request: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// `taiyi GLOBAL serve` on the tiny towers on a free port with `extra` flags, once `/health`
/// answers 200 (at most 120 s; 503 until then): the child and its port (from the
/// `listening on` line).
// The child is handed to the caller, which waits for it; only a failing assert drops it.
#[allow(clippy::zombie_processes)]
pub fn serve_tiny(global: &[&str], extra: &[&str]) -> (std::process::Child, u16) {
    let model = [
        "--text-model",
        TEXT,
        "--vision-model",
        VISION_ST,
        "--vision-arch",
        "tiny",
    ];
    serve(global, &model, extra)
}

/// `taiyi GLOBAL serve MODEL --port 0 EXTRA`, once healthy (as [`serve_tiny`]).
#[allow(clippy::zombie_processes)]
pub fn serve(global: &[&str], model: &[&str], extra: &[&str]) -> (std::process::Child, u16) {
    use std::io::BufRead;
    let mut child = cmd(global)
        .arg("serve")
        .args(model)
        .args(["--port", "0"])
        .args(extra)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let port: u16 = line
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    let start = std::time::Instant::now();
    loop {
        let r = http(
            port,
            "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        if r.starts_with("HTTP/1.1 200") {
            return (child, port);
        }
        assert!(r.starts_with("HTTP/1.1 503"), "{r}");
        assert!(
            start.elapsed() < std::time::Duration::from_secs(120),
            "never healthy"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
