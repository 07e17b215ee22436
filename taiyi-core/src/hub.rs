//! Finding the published weights: local paths, environment variables, and the Hugging Face hub.
//!
//! The text tower comes from the HF repository [`TEXT_REPO`] (a transformers `BertModel`
//! directory: `config.json`, `vocab.txt`, `pytorch_model.bin`, …) and the image tower from the
//! open_clip repository [`VISION_REPO`] (`open_clip_model.safetensors`, or
//! `open_clip_pytorch_model.bin`). Hub access uses the standard cache layout
//! (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`), so files that the
//! Python `huggingface_hub` already downloaded are reused, and honours `HF_HUB_OFFLINE=1`
//! (cache only, never the network).

use std::path::{Path, PathBuf};

use crate::ClipError;

/// The Taiyi text tower on the hub.
pub const TEXT_REPO: &str = "IDEA-CCNL/Taiyi-CLIP-RoBERTa-326M-ViT-H-Chinese";
/// The open_clip ViT-H-14 (laion2b_s32b_b79k) image tower on the hub.
pub const VISION_REPO: &str = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K";
/// Environment variable naming a local text-tower directory.
pub const TEXT_ENV: &str = "TAIYI_TEXT_MODEL";
/// Environment variable naming a local open_clip checkpoint file.
pub const VISION_ENV: &str = "TAIYI_VISION_MODEL";

/// Files of the text repository that are always needed.
const TEXT_REQUIRED: &[&str] = &["config.json", "vocab.txt"];
/// Files of the text repository used when present.
const TEXT_OPTIONAL: &[&str] = &["tokenizer_config.json", "special_tokens_map.json"];
/// Text weights, in order of preference (the first one found wins).
const TEXT_WEIGHTS: &[&str] = &["model.safetensors", "pytorch_model.bin"];
/// Image weights, in order of preference (open_clip tries safetensors first too).
const VISION_WEIGHTS: &[&str] = &["open_clip_model.safetensors", "open_clip_pytorch_model.bin"];

/// Where both towers' weights are on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelPaths {
    /// The HF text directory (`config.json`, `vocab.txt`, weights).
    pub text_dir: PathBuf,
    /// The open_clip checkpoint file.
    pub vision_file: PathBuf,
}

/// The environment variables that name the hub cache, in order of precedence.
pub const HUB_CACHE_VARIABLES: &str = "HF_HUB_CACHE, HF_HOME, HOME";

/// The hub cache folder that `HF_HUB_CACHE`, `HF_HOME` and `HOME` give (empty values count as
/// unset): `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `$HOME/.cache/huggingface/hub`; `None`
/// when none is set (never the working directory).
pub fn hub_cache_dir(
    hf_hub_cache: Option<&std::ffi::OsStr>,
    hf_home: Option<&std::ffi::OsStr>,
    home: Option<&std::ffi::OsStr>,
) -> Option<PathBuf> {
    let set = |v: Option<&std::ffi::OsStr>| v.filter(|v| !v.is_empty()).map(PathBuf::from);
    set(hf_hub_cache)
        .or_else(|| set(hf_home).map(|h| h.join("hub")))
        .or_else(|| set(home).map(|h| h.join(".cache/huggingface/hub")))
}

/// How to reach the hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubOptions {
    /// The cache directory (the `hub` folder, holding `models--org--name`). Empty when the
    /// environment names none ([`hub_cache_dir`]): local paths still resolve, and a look-up
    /// on the hub fails with [`ClipError::NoCacheDir`].
    pub cache_dir: PathBuf,
    /// Never use the network; only files already in the cache.
    pub offline: bool,
    /// Show a progress bar while downloading.
    pub progress: bool,
}

impl HubOptions {
    /// Options from the environment: `HF_HUB_CACHE`, `HF_HOME` or `HOME` ([`hub_cache_dir`];
    /// an empty `cache_dir` when none is set), `HF_HUB_OFFLINE`.
    pub fn from_env() -> Self {
        let cache_dir = hub_cache_dir(
            std::env::var_os("HF_HUB_CACHE").as_deref(),
            std::env::var_os("HF_HOME").as_deref(),
            std::env::var_os("HOME").as_deref(),
        )
        .unwrap_or_default();
        let offline = std::env::var("HF_HUB_OFFLINE")
            .map(|v| {
                matches!(
                    v.trim().to_ascii_lowercase().as_str(),
                    "1" | "true" | "yes" | "on"
                )
            })
            .unwrap_or(false);
        Self {
            cache_dir,
            offline,
            progress: true,
        }
    }

    /// Fetch one file of `repo` (from the cache, else the network unless offline).
    /// Returns `Ok(None)` when the file does not exist in the repository / cache.
    fn fetch(&self, repo: &str, file: &str) -> Result<Option<PathBuf>, ClipError> {
        if self.cache_dir.as_os_str().is_empty() {
            return Err(ClipError::NoCacheDir {
                what: "Hugging Face hub cache (or give the model paths)",
                variables: HUB_CACHE_VARIABLES,
            });
        }
        let cache = hf_hub::Cache::new(self.cache_dir.clone());
        if let Some(p) = cache.model(repo.to_string()).get(file) {
            return Ok(Some(p));
        }
        if self.offline {
            return Ok(None);
        }
        self.download(repo, file)
    }

    #[cfg(feature = "hub")]
    fn download(&self, repo: &str, file: &str) -> Result<Option<PathBuf>, ClipError> {
        use hf_hub::api::sync::{ApiBuilder, ApiError};
        let api = ApiBuilder::from_cache(hf_hub::Cache::new(self.cache_dir.clone()))
            .with_progress(self.progress)
            .build()
            .map_err(|source| ClipError::Hub {
                repo: repo.to_string(),
                file: file.to_string(),
                source: Box::new(source),
            })?;
        match api.model(repo.to_string()).get(file) {
            Ok(p) => Ok(Some(p)),
            // A 404 means the repository has no such file: let the caller try the next name.
            Err(ApiError::RequestError(e)) if matches!(*e, ureq::Error::Status(404, _)) => Ok(None),
            Err(source) => Err(ClipError::Hub {
                repo: repo.to_string(),
                file: file.to_string(),
                source: Box::new(source),
            }),
        }
    }

    #[cfg(not(feature = "hub"))]
    fn download(&self, repo: &str, file: &str) -> Result<Option<PathBuf>, ClipError> {
        Err(ClipError::HubDisabled {
            repo: repo.to_string(),
            file: file.to_string(),
        })
    }

    fn first_of(&self, repo: &str, names: &[&str]) -> Result<PathBuf, ClipError> {
        for name in names {
            if let Some(p) = self.fetch(repo, name)? {
                return Ok(p);
            }
        }
        Err(ClipError::NotOnHub {
            repo: repo.to_string(),
            files: names.iter().map(|s| s.to_string()).collect(),
            offline: self.offline,
            cache_dir: self.cache_dir.clone(),
        })
    }

    /// The text-tower directory of [`TEXT_REPO`]: fetches the config, vocabulary, tokenizer
    /// files and weights into one snapshot directory and returns it.
    pub fn text_dir(&self) -> Result<PathBuf, ClipError> {
        let weights = self.first_of(TEXT_REPO, TEXT_WEIGHTS)?;
        for f in TEXT_REQUIRED {
            self.first_of(TEXT_REPO, &[f])?;
        }
        for f in TEXT_OPTIONAL {
            self.fetch(TEXT_REPO, f)?;
        }
        Ok(weights
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(".")))
    }

    /// The open_clip checkpoint file of [`VISION_REPO`] (safetensors preferred).
    pub fn vision_file(&self) -> Result<PathBuf, ClipError> {
        self.first_of(VISION_REPO, VISION_WEIGHTS)
    }
}

/// Files of a one-directory model repository (transformers `ChineseCLIPModel`) always needed.
const MODEL_DIR_REQUIRED: &[&str] = &["config.json", "vocab.txt", "preprocessor_config.json"];

impl HubOptions {
    /// The cache folder of a one-directory model repository `repo` (such as
    /// `OFA-Sys/chinese-clip-vit-base-patch16`): its weights (the first of
    /// [`crate::family::MODEL_DIR_WEIGHTS`] that the repository has), `config.json`,
    /// `vocab.txt` and `preprocessor_config.json` fetched as the Taiyi files are, the
    /// tokenizer's optional files when present.
    pub fn model_dir(&self, repo: &str) -> Result<PathBuf, ClipError> {
        let single: Vec<&str> = crate::family::MODEL_DIR_WEIGHTS
            .iter()
            .copied()
            .filter(|f| !f.ends_with(".index.json"))
            .collect();
        let weights = self.first_of(repo, &single)?;
        for f in MODEL_DIR_REQUIRED {
            self.first_of(repo, &[f])?;
        }
        for f in TEXT_OPTIONAL {
            self.fetch(repo, f)?;
        }
        Ok(weights
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(".")))
    }
}

/// The directory `--model` names: an existing directory as it is, else a published short name
/// ([`crate::family::CHINESE_CLIP_PRESETS`]) or a hub repository id (`org/name`) through the
/// cache ([`HubOptions::model_dir`]).
///
/// # Errors
/// [`ClipError::ModelDir`] for a file, or a path that neither exists nor has the form of a
/// repository id.
pub fn resolve_model_dir(spec: &Path, hub: &HubOptions) -> Result<PathBuf, ClipError> {
    if spec.is_dir() {
        return Ok(spec.to_path_buf());
    }
    if spec.exists() {
        return Err(ClipError::ModelDir {
            dir: spec.to_path_buf(),
            message: "is a file: a model is a directory holding config.json, vocab.txt, \
                      preprocessor_config.json and its weights"
                .into(),
        });
    }
    // A published short name (`chinese-clip-vit-base-patch16`) is its hub id.
    if let Some(preset) = spec
        .to_str()
        .and_then(crate::family::ChineseClipPreset::find)
    {
        return hub.model_dir(preset.repo);
    }
    let repo = spec
        .to_str()
        .filter(|s| is_repo_id(s))
        .ok_or_else(|| ClipError::ModelDir {
            dir: spec.to_path_buf(),
            message: "no such directory, and not a hub repository id (org/name)".into(),
        })?;
    hub.model_dir(repo)
}

/// `org/name` with the characters the hub allows in each part.
fn is_repo_id(s: &str) -> bool {
    let ok = |part: &str| {
        !part.is_empty()
            && !part.starts_with('.')
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    matches!(s.split_once('/'), Some((org, name)) if ok(org) && ok(name))
}

impl ModelPaths {
    /// Paths from `TAIYI_TEXT_MODEL` and `TAIYI_VISION_MODEL`, each falling back to the hub
    /// (see [`HubOptions::from_env`]) when unset.
    pub fn from_env_or_hub() -> Result<Self, ClipError> {
        Self::resolve(None, None, &HubOptions::from_env())
    }

    /// Explicit paths where given, else the environment variables, else the hub.
    pub fn resolve(
        text_dir: Option<&Path>,
        vision_file: Option<&Path>,
        hub: &HubOptions,
    ) -> Result<Self, ClipError> {
        Ok(Self {
            text_dir: resolve_text_dir(text_dir, hub)?,
            vision_file: resolve_vision_file(vision_file, hub)?,
        })
    }
}

/// The text directory: `explicit`, else `$TAIYI_TEXT_MODEL`, else the hub.
pub fn resolve_text_dir(explicit: Option<&Path>, hub: &HubOptions) -> Result<PathBuf, ClipError> {
    match explicit
        .map(Path::to_path_buf)
        .or_else(|| env_path(TEXT_ENV))
    {
        Some(p) if p.is_file() => Err(ClipError::NotADirectory { path: p }),
        Some(p) => Ok(p),
        None => hub.text_dir(),
    }
}

/// `$name` as a path; an empty value counts as unset (as `TAIYI_TEXT_MODEL=` in a shell means).
fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The open_clip checkpoint: `explicit`, else `$TAIYI_VISION_MODEL`, else the hub. A directory
/// is searched for the published file names.
pub fn resolve_vision_file(
    explicit: Option<&Path>,
    hub: &HubOptions,
) -> Result<PathBuf, ClipError> {
    match explicit
        .map(Path::to_path_buf)
        .or_else(|| env_path(VISION_ENV))
    {
        Some(p) if p.is_dir() => Ok(taiyi_store::find_in_dir(&p, VISION_WEIGHTS)?),
        Some(p) => Ok(p),
        None => hub.vision_file(),
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    /// Lay out `files` of `repo` as the hub clients cache them:
    /// `models--org--name/refs/main` → commit, `snapshots/<commit>/<file>`.
    fn cache_repo(cache: &Path, repo: &str, files: &[&str]) -> PathBuf {
        let base = cache.join(format!("models--{}", repo.replace('/', "--")));
        let snap = base.join("snapshots").join("0123456789abcdef");
        std::fs::create_dir_all(&snap).expect("snapshot dir");
        std::fs::create_dir_all(base.join("refs")).expect("refs dir");
        std::fs::write(base.join("refs/main"), "0123456789abcdef").expect("ref");
        for f in files {
            std::fs::write(snap.join(f), b"x").expect("file");
        }
        snap
    }

    #[test]
    fn offline_resolution_reads_the_standard_cache_layout() -> Result<(), ClipError> {
        let cache = std::env::temp_dir().join(format!("taiyi-hub-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&cache);
        let hub = HubOptions {
            cache_dir: cache.clone(),
            offline: true,
            progress: false,
        };
        // Nothing cached and offline: an error naming the repository, never a download.
        assert!(matches!(
            hub.vision_file(),
            Err(ClipError::NotOnHub { offline: true, .. })
        ));
        let text = cache_repo(
            &cache,
            TEXT_REPO,
            &[
                "config.json",
                "vocab.txt",
                "tokenizer_config.json",
                "pytorch_model.bin",
            ],
        );
        assert_eq!(hub.text_dir()?, text);
        // Only the pickle cached: safetensors preferred but the .bin is the fallback.
        let vision = cache_repo(&cache, VISION_REPO, &["open_clip_pytorch_model.bin"]);
        assert_eq!(
            hub.vision_file()?,
            vision.join("open_clip_pytorch_model.bin")
        );
        std::fs::write(vision.join("open_clip_model.safetensors"), b"x").expect("file");
        assert_eq!(
            hub.vision_file()?,
            vision.join("open_clip_model.safetensors")
        );
        // Explicit paths win over everything.
        let explicit = Path::new("/somewhere/text");
        assert_eq!(resolve_text_dir(Some(explicit), &hub)?, explicit);
        // A vision directory is searched for the published names.
        assert_eq!(
            resolve_vision_file(Some(&vision), &hub)?,
            vision.join("open_clip_model.safetensors")
        );
        let _ = std::fs::remove_dir_all(&cache);
        Ok(())
    }

    /// Without `HF_HUB_CACHE`, `HF_HOME` and `HOME` there is no hub cache (never `./.cache`
    /// under the working directory): a hub look-up is an error, local paths still resolve.
    #[test]
    fn model_dirs_resolve_by_path_name_or_hub_id() -> Result<(), ClipError> {
        let cache = std::env::temp_dir().join(format!("taiyi-hub-dir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&cache);
        let hub = HubOptions {
            cache_dir: cache.clone(),
            offline: true,
            progress: false,
        };
        let repo = "OFA-Sys/chinese-clip-vit-base-patch16";
        // Not cached, offline: an error naming the repository, never a download.
        assert!(matches!(
            resolve_model_dir(Path::new(repo), &hub),
            Err(ClipError::NotOnHub { offline: true, .. })
        ));
        let snap = cache_repo(
            &cache,
            repo,
            &[
                "config.json",
                "vocab.txt",
                "preprocessor_config.json",
                "pytorch_model.bin",
            ],
        );
        assert_eq!(resolve_model_dir(Path::new(repo), &hub)?, snap);
        // The published short name is the same repository.
        assert_eq!(
            resolve_model_dir(Path::new("chinese-clip-vit-base-patch16"), &hub)?,
            snap
        );
        // A weights file without the preprocessor config is not a usable model.
        let bare = cache_repo(
            &cache,
            "org/bare",
            &["config.json", "vocab.txt", "model.safetensors"],
        );
        assert!(bare.is_dir());
        assert!(matches!(
            resolve_model_dir(Path::new("org/bare"), &hub),
            Err(ClipError::NotOnHub { .. })
        ));
        // A local directory wins; a path that is neither is refused.
        assert_eq!(resolve_model_dir(&snap, &hub)?, snap);
        assert!(matches!(
            resolve_model_dir(Path::new("./no/such/dir"), &hub),
            Err(ClipError::ModelDir { .. })
        ));
        let _ = std::fs::remove_dir_all(&cache);
        Ok(())
    }

    #[test]
    fn no_home_means_no_hub_cache() {
        use std::ffi::OsStr;
        let (a, b, h) = (OsStr::new("/a"), OsStr::new("/b"), OsStr::new("/h"));
        assert_eq!(
            hub_cache_dir(Some(a), Some(b), Some(h)),
            Some(PathBuf::from("/a"))
        );
        assert_eq!(
            hub_cache_dir(None, Some(b), Some(h)),
            Some(PathBuf::from("/b/hub"))
        );
        assert_eq!(
            hub_cache_dir(Some(OsStr::new("")), None, Some(h)),
            Some(PathBuf::from("/h/.cache/huggingface/hub"))
        );
        assert_eq!(hub_cache_dir(None, None, None), None);
        assert_eq!(
            hub_cache_dir(None, Some(OsStr::new("")), Some(OsStr::new(""))),
            None
        );
        let hub = HubOptions {
            cache_dir: PathBuf::new(),
            offline: true,
            progress: false,
        };
        let err = hub.vision_file().expect_err("no cache folder");
        assert!(matches!(err, ClipError::NoCacheDir { .. }), "{err}");
        assert!(
            err.to_string().contains("HF_HUB_CACHE, HF_HOME, HOME"),
            "{err}"
        );
        let explicit = Path::new("/somewhere/text");
        assert_eq!(
            resolve_text_dir(Some(explicit), &hub).ok().as_deref(),
            Some(explicit)
        );
    }

    #[test]
    fn missing_required_text_file_is_an_error() {
        let cache = std::env::temp_dir().join(format!("taiyi-hub-req-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&cache);
        cache_repo(&cache, TEXT_REPO, &["pytorch_model.bin", "config.json"]);
        let hub = HubOptions {
            cache_dir: cache.clone(),
            offline: true,
            progress: false,
        };
        let err = hub.text_dir().expect_err("vocab.txt missing");
        assert!(err.to_string().contains("vocab.txt"), "{err}");
        let _ = std::fs::remove_dir_all(&cache);
    }
}
