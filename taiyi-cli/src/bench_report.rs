//! The report of `taiyi bench`: per-tower timing statistics, the table and the JSON object,
//! and the random token ids the text tower is timed on.

/// `[CLS]` of the Chinese BERT vocabulary.
pub const CLS: i64 = 101;
/// `[SEP]` of the Chinese BERT vocabulary.
pub const SEP: i64 = 102;

/// Measurements of one tower.
pub struct TowerResult {
    /// Which tower: `text` or `image`.
    pub tower: &'static str,
    /// Architecture name (`taiyi`, `tiny`, an open_clip name).
    pub model: String,
    /// Where the weights came from: a path, or `random`.
    pub weights: String,
    /// Float parameters of the tower.
    pub params: usize,
    /// The parameters' dtype as loaded (`f32`, `f16`, `bf16`).
    pub param_dtype: String,
    /// The dtype of the tower's output.
    pub output_dtype: String,
    /// Items (texts or images) per forward pass.
    pub batch: usize,
    /// Tokens per text (text tower).
    pub seq: Option<usize>,
    /// Image side in pixels (image tower).
    pub image_size: Option<usize>,
    /// Seconds to build or read the tower and materialise it on the device.
    pub load_s: f64,
    /// Seconds of the first forward pass (compilation, autotuning).
    pub first_call_s: f64,
    /// Seconds of each timed forward pass, each ended by a device sync.
    pub iter_s: Vec<f64>,
    /// Whether the first output was finite everywhere.
    pub finite: bool,
    /// For a run with bf16 linear weights: the lowest cosine, over the output rows, between
    /// its first output and the same tower's f32 output on the same inputs.
    pub cosine_to_f32: Option<f64>,
}

impl TowerResult {
    /// The fastest timed iteration, in seconds.
    pub fn min_s(&self) -> f64 {
        self.iter_s.iter().copied().fold(f64::INFINITY, f64::min)
    }

    /// The mean of the timed iterations, in seconds.
    pub fn mean_s(&self) -> f64 {
        self.iter_s.iter().sum::<f64>() / self.iter_s.len().max(1) as f64
    }

    /// The median of the timed iterations, in seconds (NaN without any).
    pub fn median_s(&self) -> f64 {
        let mut v = self.iter_s.clone();
        v.sort_by(f64::total_cmp);
        match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }

    /// Items (images or texts) per second at the median iteration time.
    pub fn items_per_s(&self) -> f64 {
        self.batch as f64 / self.median_s()
    }

    /// The JSON object of this tower in `taiyi bench --json`.
    pub fn json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "model": self.model,
            "weights": self.weights,
            "params": self.params,
            "param_dtype": self.param_dtype,
            "output_dtype": self.output_dtype,
            "batch": self.batch,
            "load_s": self.load_s,
            "first_call_s": self.first_call_s,
            "min_s": self.min_s(),
            "median_s": self.median_s(),
            "mean_s": self.mean_s(),
            "iter_s": self.iter_s,
            "finite": self.finite,
            "cosine_to_f32": self.cosine_to_f32,
        });
        let per_s = self.items_per_s();
        match (self.seq, self.image_size) {
            (Some(seq), _) => {
                v["seq"] = seq.into();
                v["texts_per_s"] = per_s.into();
                v["tokens_per_s"] = (per_s * seq as f64).into();
            }
            (None, size) => {
                v["image_size"] = size.into();
                v["images_per_s"] = per_s.into();
            }
        }
        v
    }

    /// Throughput at the median time, as the table prints it.
    pub fn throughput(&self) -> String {
        let per_s = self.items_per_s();
        match self.seq {
            Some(seq) => format!(
                "{} texts/s, {} tokens/s",
                format_rate(per_s),
                format_rate(per_s * seq as f64)
            ),
            None => format!("{} images/s", format_rate(per_s)),
        }
    }
}

/// `[batch, seq]` ids, uniform in the vocabulary (splitmix64, fixed seed), `[CLS]` first and
/// `[SEP]` last when the vocabulary has them.
pub fn random_ids(batch: usize, seq: usize, vocab: usize) -> Vec<i64> {
    let mut state: u64 = 0x5441_4959_4942_454e;
    let mut next = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let vocab = vocab.max(1) as u64;
    let mut ids = Vec::with_capacity(batch * seq);
    for _ in 0..batch {
        for col in 0..seq {
            let id = match col {
                0 if (CLS as u64) < vocab => CLS,
                c if c + 1 == seq && (SEP as u64) < vocab => SEP,
                _ => (next() % vocab) as i64,
            };
            ids.push(id);
        }
    }
    ids
}

fn format_secs(s: f64) -> String {
    if s < 1.0 {
        format!("{:.1} ms", s * 1e3)
    } else {
        format!("{s:.2} s")
    }
}

/// About three significant digits.
fn format_rate(x: f64) -> String {
    match x {
        x if x < 1.0 => format!("{x:.3}"),
        x if x < 10.0 => format!("{x:.2}"),
        x if x < 100.0 => format!("{x:.1}"),
        x => format!("{x:.0}"),
    }
}

fn format_count(n: usize) -> String {
    match n {
        0..1_000 => n.to_string(),
        1_000..1_000_000 => format!("{:.1}K", n as f64 / 1e3),
        _ => format!("{:.1}M", n as f64 / 1e6),
    }
}

/// The lowest cosine between matching rows of two row-major `[rows, dim]` matrices (f64 sums;
/// `None` when the shapes differ or a row is all zeros).
pub fn min_row_cosine(a: &[f32], b: &[f32], dim: usize) -> Option<f64> {
    if a.len() != b.len() || dim == 0 || !a.len().is_multiple_of(dim) {
        return None;
    }
    let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    a.chunks(dim)
        .zip(b.chunks(dim))
        .map(|(x, y)| {
            let dot: f64 = x
                .iter()
                .zip(y)
                .map(|(p, q)| f64::from(*p) * f64::from(*q))
                .sum();
            let n = norm(x) * norm(y);
            (n > 0.0).then(|| dot / n)
        })
        .try_fold(f64::INFINITY, |m, c| c.map(|c| m.min(c)))
}

/// The table `taiyi bench` prints: one row per tower under `header`, then a legend and a
/// warning for each tower whose output was not finite.
pub fn table(header: &str, rows: &[TowerResult]) -> String {
    let head = [
        "tower",
        "model",
        "params",
        "dtype",
        "batch",
        "seq",
        "load",
        "first call",
        "min",
        "median",
        "throughput (median)",
    ];
    let mut cells: Vec<Vec<String>> = vec![head.iter().map(|s| s.to_string()).collect()];
    for r in rows {
        cells.push(vec![
            r.tower.to_string(),
            r.model.clone(),
            format_count(r.params),
            r.output_dtype.clone(),
            r.batch.to_string(),
            r.seq.map_or("-".to_string(), |s| s.to_string()),
            format_secs(r.load_s),
            format_secs(r.first_call_s),
            format_secs(r.min_s()),
            format_secs(r.median_s()),
            r.throughput(),
        ]);
    }
    let widths: Vec<usize> = (0..head.len())
        .map(|c| {
            cells
                .iter()
                .map(|r| r[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = format!("{header}\n");
    for row in &cells {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out.push_str(
        "load: build or read the tower and materialise every parameter on the device; first \
         call: the first forward pass (kernel compilation, autotune); min/median over the timed \
         iterations, each ended by a device sync.\n",
    );
    for r in rows.iter().filter(|r| !r.finite) {
        out.push_str(&format!(
            "warning: the {} tower produced non-finite values (overflow at {}?)\n",
            r.tower, r.output_dtype
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_cls_and_sep_and_stay_in_the_vocabulary() {
        let ids = random_ids(3, 5, 200);
        assert_eq!(ids.len(), 15);
        for row in ids.chunks(5) {
            assert_eq!(row[0], CLS);
            assert_eq!(row[4], SEP);
            assert!(row.iter().all(|&i| (0..200).contains(&i)));
        }
        assert!(random_ids(1, 4, 50).iter().all(|&i| (0..50).contains(&i)));
    }

    #[test]
    fn row_cosines() {
        let a = [1.0, 0.0, 0.0, 2.0];
        assert_eq!(min_row_cosine(&a, &[2.0, 0.0, 0.0, 1.0], 2), Some(1.0));
        let c = min_row_cosine(&a, &[1.0, 1.0, 0.0, 1.0], 2);
        assert!(
            c.is_some_and(|c| (c - 0.5f64.sqrt()).abs() < 1e-12),
            "{c:?}"
        );
        assert_eq!(min_row_cosine(&a, &[0.0; 4], 2), None);
        assert_eq!(min_row_cosine(&a, &[1.0; 3], 2), None);
    }

    #[test]
    fn median_of_even_and_odd_counts() {
        let mut r = TowerResult {
            tower: "image",
            model: String::new(),
            weights: String::new(),
            params: 0,
            param_dtype: String::new(),
            output_dtype: String::new(),
            batch: 2,
            seq: None,
            image_size: Some(224),
            load_s: 0.0,
            first_call_s: 0.0,
            iter_s: vec![3.0, 1.0, 2.0],
            finite: true,
            cosine_to_f32: None,
        };
        assert_eq!(r.median_s(), 2.0);
        assert_eq!(r.min_s(), 1.0);
        r.iter_s.push(4.0);
        assert_eq!(r.median_s(), 2.5);
        assert_eq!(r.items_per_s(), 0.8);
    }
}
