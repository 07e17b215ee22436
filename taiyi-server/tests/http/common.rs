//! Shared by the HTTP tests: the tiny fixture model, servers on loopback, a blocking client.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use burn::backend::Flex;
use taiyi_core::{ClipError, ClipModel, ClipOptions, ModelPaths, TextMode, VisionConfig};
use taiyi_server::{RunningServer, ServerConfig};

pub type B = Flex;

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The tiny fixture model (text dir fixtures/text/tiny, vision fixture, arch "tiny") in
/// `masked` mode, as the server runs it by default.
pub fn tiny_model() -> Result<ClipModel<B>, ClipError> {
    let paths = ModelPaths {
        text_dir: root().join("fixtures/text/tiny"),
        vision_file: root().join("fixtures/vision/open_clip_model.safetensors"),
    };
    let options = ClipOptions {
        vision: VisionConfig::tiny(),
        text_mode: TextMode::Masked,
        ..ClipOptions::default()
    };
    ClipModel::load(&paths, &options, &Default::default())
}

/// A config on a free loopback port.
pub fn config() -> ServerConfig {
    ServerConfig {
        addr: "127.0.0.1:0".parse().expect("addr"),
        ..ServerConfig::default()
    }
}

/// Start a server with the tiny model and wait until `/health` answers 200.
pub fn start(config: ServerConfig) -> RunningServer {
    let server = taiyi_server::spawn(config, tiny_model).expect("server starts");
    wait_ready(&server);
    server
}

pub fn wait_ready(server: &RunningServer) {
    for _ in 0..600 {
        if get(server, "/health").0 == 200 {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("server not ready after 6 s");
}

pub fn url(server: &RunningServer, path: &str) -> String {
    format!("http://{}{path}", server.local_addr())
}

/// Status, `Retry-After`, body.
pub type Reply = (u16, Option<String>, String);

fn reply(r: Result<ureq::Response, ureq::Error>) -> Reply {
    let resp = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("transport error: {e}"),
    };
    let status = resp.status();
    let retry = resp.header("retry-after").map(str::to_string);
    (status, retry, resp.into_string().expect("body"))
}

pub fn get(server: &RunningServer, path: &str) -> Reply {
    reply(ureq::get(&url(server, path)).call())
}

/// POST `body` as JSON (with `extra` headers).
pub fn post(server: &RunningServer, path: &str, body: &str, extra: &[(&str, &str)]) -> Reply {
    let mut req = ureq::post(&url(server, path)).set("Content-Type", "application/json");
    for (k, v) in extra {
        req = req.set(k, v);
    }
    reply(req.send_string(body))
}

pub fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// Decode OpenAI's base64 embeddings into exact f32 rows.
pub fn base64_rows(v: &serde_json::Value) -> Vec<Vec<f32>> {
    v["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|d| {
            let bytes = STANDARD
                .decode(d["embedding"].as_str().expect("base64 embedding"))
                .expect("valid base64");
            bytes
                .chunks(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        })
        .collect()
}

pub use taiyi_testkit::json_rows as float_rows;

/// A committed fixture image as base64.
pub fn image_b64(name: &str) -> String {
    STANDARD.encode(std::fs::read(root().join(name)).expect("fixture image"))
}

/// A small PNG of one colour, distinct per `seed`.
pub fn png_b64(seed: u8) -> String {
    let img = image::RgbImage::from_fn(24 + u32::from(seed % 5), 20, |x, y| {
        image::Rgb([seed.wrapping_mul(37), (x * 9) as u8, (y * 11) as u8 ^ seed])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("png");
    STANDARD.encode(out.into_inner())
}

/// Rows of a `[n, d]` tensor on the host.
pub fn host_rows(t: burn::tensor::Tensor<B, 2>) -> Vec<Vec<f32>> {
    let a = taiyi_core::to_array2(t).expect("host");
    a.outer_iter().map(|r| r.to_vec()).collect()
}
