//! [`TextCache`]: a bounded LRU of normalised text features, for label sets that come back
//! again and again (`/classify`, `/logits`, [`ZeroShotClassifier::with_cache`]).
//!
//! A cached feature is only the right answer when a text's feature does not depend on what it
//! was embedded with: the cache serves batch-invariant modes only ([`TextMode::batch_invariant`];
//! `masked` runs packed on the CPU and is then invariant bit for bit, `fixed77` pads every text
//! alike) and is bypassed in `card` mode, where a prompt's feature depends on the longest prompt
//! of its call.
//!
//! [`ZeroShotClassifier::with_cache`]: crate::ZeroShotClassifier::with_cache

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

use crate::encoders::{EncodeOptions, TextEncoder};
use crate::{ClipError, TextMode, to_vec};

/// What a cached feature is the feature of: the text, the mode it was embedded in, and the
/// text tower ([`TextEncoder::cache_id`]: one per loaded model, shared by its clones).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TextKey {
    /// [`TextEncoder::cache_id`] of the encoder.
    pub model: u64,
    /// The text mode.
    pub mode: TextMode,
    /// The text (a prompt: the label put into its template).
    pub text: String,
}

impl TextKey {
    /// The key of `text` embedded by `encoder` (its model and mode).
    pub fn of<B: Backend>(encoder: &TextEncoder<B>, text: &str) -> Self {
        Self {
            model: encoder.cache_id(),
            mode: encoder.mode(),
            text: text.to_string(),
        }
    }
}

/// Hits, misses and size of a [`TextCache`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    /// Look-ups that found a feature.
    pub hits: u64,
    /// Look-ups that did not.
    pub misses: u64,
    /// Features held.
    pub entries: usize,
    /// The most features held.
    pub capacity: usize,
}

/// A bounded, thread-safe LRU of L2-normalised text features (f32 rows).
///
/// Capacity 0 disables it: nothing is stored and [`TextCache::encode`] embeds every text.
#[derive(Debug, Default)]
pub struct TextCache {
    capacity: usize,
    state: Mutex<Lru>,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// The entries, each with the tick of its last use; `order` maps ticks back to keys.
#[derive(Debug, Default)]
struct Lru {
    entries: HashMap<TextKey, (Arc<[f32]>, u64)>,
    order: BTreeMap<u64, TextKey>,
    tick: u64,
}

impl Lru {
    fn touch(&mut self, key: &TextKey) -> Option<Arc<[f32]>> {
        self.tick += 1;
        let tick = self.tick;
        let (features, used) = self.entries.get_mut(key)?;
        let old = std::mem::replace(used, tick);
        let features = features.clone();
        if let Some(k) = self.order.remove(&old) {
            self.order.insert(tick, k);
        }
        Some(features)
    }

    fn insert(&mut self, key: TextKey, features: Arc<[f32]>, capacity: usize) {
        self.tick += 1;
        let tick = self.tick;
        if let Some((_, old)) = self.entries.insert(key.clone(), (features, tick)) {
            self.order.remove(&old);
        }
        self.order.insert(tick, key);
        while self.entries.len() > capacity {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.entries.remove(&oldest);
        }
    }
}

impl TextCache {
    /// A cache of at most `capacity` features (0: disabled).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            ..Self::default()
        }
    }

    /// The most features held.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Whether texts embedded by an encoder in `mode` may be cached: capacity above 0 and a
    /// batch-invariant mode.
    pub fn serves(&self, mode: TextMode) -> bool {
        self.capacity > 0 && mode.batch_invariant()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lru> {
        // The map is consistent after every statement: a panic elsewhere cannot break it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The feature of `key`, counted as a hit or a miss, and marked as just used.
    pub fn get(&self, key: &TextKey) -> Option<Arc<[f32]>> {
        let found = self.lock().touch(key);
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Store the normalised feature of `key` (the least recently used entry goes when full).
    pub fn insert(&self, key: TextKey, features: Arc<[f32]>) {
        if self.capacity > 0 {
            self.lock().insert(key, features, self.capacity);
        }
    }

    /// Hits, misses, entries and capacity.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries: self.lock().entries.len(),
            capacity: self.capacity,
        }
    }

    /// The L2-normalised features of `texts` by `encoder`, in order: cached rows as they are,
    /// the others (each distinct text once) embedded in one [`TextEncoder::encode`] call and
    /// stored. When the cache does not serve the encoder's mode ([`TextCache::serves`]) every
    /// text is embedded in one call, exactly as without a cache.
    ///
    /// # Shapes
    /// `texts.len() = n` → `[n, d]`.
    pub fn encode<B: Backend, S: AsRef<str> + Sync>(
        &self,
        encoder: &TextEncoder<B>,
        texts: &[S],
    ) -> Result<Tensor<B, 2>, ClipError> {
        let normalized = EncodeOptions::default();
        if !self.serves(encoder.mode()) || texts.is_empty() {
            return encoder.encode(texts, &normalized);
        }
        let lookup = self.lookup(encoder.cache_id(), encoder.mode(), texts);
        let (fresh, d) = if lookup.missing().is_empty() {
            (Vec::new(), 0)
        } else {
            let fresh = encoder.encode(lookup.missing(), &normalized)?;
            let [_, d] = fresh.dims();
            (to_vec(fresh)?, d)
        };
        let (flat, d) = lookup.complete(self, &fresh, d)?;
        Ok(Tensor::from_data(
            TensorData::new(flat, [texts.len(), d]),
            encoder.device(),
        ))
    }

    /// Look `texts` up (each counted as a hit or a miss) for the model `model` in `mode`: the
    /// rows found, and the distinct texts still to embed ([`Lookup::missing`]), to be handed
    /// back to [`Lookup::complete`] with their features. For callers that embed elsewhere (a
    /// server batching the missing texts with other requests').
    pub fn lookup<S: AsRef<str>>(&self, model: u64, mode: TextMode, texts: &[S]) -> Lookup {
        let keys: Vec<TextKey> = texts
            .iter()
            .map(|t| TextKey {
                model,
                mode,
                text: t.as_ref().to_string(),
            })
            .collect();
        let rows: Vec<Option<Arc<[f32]>>> = keys.iter().map(|k| self.get(k)).collect();
        let mut missing: Vec<String> = Vec::new();
        for (k, row) in keys.iter().zip(&rows) {
            if row.is_none() && !missing.contains(&k.text) {
                missing.push(k.text.clone());
            }
        }
        Lookup {
            keys,
            rows,
            missing,
        }
    }
}

/// The result of [`TextCache::lookup`]: rows found, texts missing.
#[derive(Debug)]
pub struct Lookup {
    keys: Vec<TextKey>,
    rows: Vec<Option<Arc<[f32]>>>,
    missing: Vec<String>,
}

impl Lookup {
    /// The distinct texts the cache did not hold, in first-seen order.
    pub fn missing(&self) -> &[String] {
        &self.missing
    }

    /// Every text's feature, row-major `[texts, d]`, and `d`: the rows found and, for the
    /// missing texts, `fresh` (their normalised features, `[missing().len(), dim]` row-major, in
    /// [`Lookup::missing`]'s order), which are also stored in `cache`.
    ///
    /// # Errors
    /// [`ClipError::Mismatch`] when `fresh` does not hold `missing().len()` rows of `dim`, or
    /// the rows differ in width.
    pub fn complete(
        mut self,
        cache: &TextCache,
        fresh: &[f32],
        dim: usize,
    ) -> Result<(Vec<f32>, usize), ClipError> {
        let want = self.missing.len() * dim;
        if fresh.len() != want || (!self.missing.is_empty() && dim == 0) {
            return Err(ClipError::Mismatch {
                message: format!(
                    "{} values for {} missing texts of width {dim}",
                    fresh.len(),
                    self.missing.len()
                ),
            });
        }
        for (text, row) in self.missing.iter().zip(fresh.chunks(dim.max(1))) {
            let feature: Arc<[f32]> = row.into();
            let mut key = None;
            for (k, slot) in self.keys.iter().zip(self.rows.iter_mut()) {
                if slot.is_none() && k.text == *text {
                    *slot = Some(feature.clone());
                    key.get_or_insert_with(|| k.clone());
                }
            }
            if let Some(key) = key {
                cache.insert(key, feature);
            }
        }
        let d = self
            .rows
            .iter()
            .flatten()
            .map(|r| r.len())
            .next()
            .unwrap_or(dim);
        if self
            .rows
            .iter()
            .any(|r| r.as_ref().is_none_or(|r| r.len() != d))
        {
            return Err(ClipError::Mismatch {
                message: format!("cached text features are not all {d} wide"),
            });
        }
        let flat = self
            .rows
            .iter()
            .flatten()
            .flat_map(|r| r.iter().copied())
            .collect();
        Ok((flat, d))
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    fn key(text: &str) -> TextKey {
        TextKey {
            model: 1,
            mode: TextMode::Masked,
            text: text.into(),
        }
    }

    #[test]
    fn least_recently_used_goes_first_and_hits_are_counted() {
        let cache = TextCache::new(2);
        cache.insert(key("a"), Arc::from([1.0f32].as_slice()));
        cache.insert(key("b"), Arc::from([2.0f32].as_slice()));
        // "a" used: "b" is now the oldest and goes when "c" arrives.
        assert_eq!(cache.get(&key("a")).as_deref(), Some(&[1.0f32][..]));
        cache.insert(key("c"), Arc::from([3.0f32].as_slice()));
        assert!(cache.get(&key("b")).is_none());
        assert!(cache.get(&key("a")).is_some());
        assert!(cache.get(&key("c")).is_some());
        let other_mode = TextKey {
            mode: TextMode::Fixed77,
            ..key("a")
        };
        assert!(
            cache.get(&other_mode).is_none(),
            "the mode is part of the key"
        );
        assert_eq!(
            cache.stats(),
            CacheStats {
                hits: 3,
                misses: 2,
                entries: 2,
                capacity: 2
            }
        );
        // Re-inserting a key replaces it without growing.
        cache.insert(key("c"), Arc::from([4.0f32].as_slice()));
        assert_eq!(cache.stats().entries, 2);
        assert_eq!(cache.get(&key("c")).as_deref(), Some(&[4.0f32][..]));
    }

    #[test]
    fn lookup_then_complete_fills_repeats_and_refuses_a_wrong_shape() {
        let cache = TextCache::new(8);
        cache.insert(key("a"), Arc::from([1.0f32, 0.0].as_slice()));
        let texts = ["b", "a", "b", "c"];
        let lookup = cache.lookup(1, TextMode::Masked, &texts);
        assert_eq!(lookup.missing(), ["b", "c"]);
        let (flat, d) = lookup
            .complete(&cache, &[0.0, 1.0, 0.6, 0.8], 2)
            .expect("complete");
        assert_eq!(d, 2);
        assert_eq!(flat, [0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.6, 0.8]);
        assert_eq!(cache.stats().entries, 3);
        assert!(
            cache
                .lookup(1, TextMode::Masked, &texts)
                .missing()
                .is_empty()
        );
        let short = cache.lookup(1, TextMode::Masked, &["x", "y"]);
        assert!(matches!(
            short.complete(&cache, &[0.0, 1.0], 2),
            Err(ClipError::Mismatch { .. })
        ));
        let wide = cache.lookup(1, TextMode::Masked, &["a", "z"]);
        assert!(matches!(
            wide.complete(&cache, &[0.0, 1.0, 0.0], 3),
            Err(ClipError::Mismatch { .. })
        ));
    }

    #[test]
    fn capacity_zero_stores_nothing_and_card_mode_is_not_served() {
        let off = TextCache::new(0);
        off.insert(key("a"), Arc::from([1.0f32].as_slice()));
        assert!(off.get(&key("a")).is_none());
        assert!(!off.serves(TextMode::Masked));
        let on = TextCache::new(8);
        assert!(on.serves(TextMode::Masked) && on.serves(TextMode::Fixed77));
        assert!(!on.serves(TextMode::ModelCard));
    }
}
