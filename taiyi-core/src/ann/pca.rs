//! The graph's PCA projection: the graph is built over the rows' top principal directions
//! (uncentred second moment: cosine keeps the origin), the exact re-rank stays in the full
//! width. CLIP-like rows vary in a subspace of low intrinsic dimension, so a few dozen
//! directions keep the neighbourhoods; distances in the graph then cost `r / d` of the full
//! ones and its vectors take `r` bytes (int8) instead of `d` (BENCHMARKS.md "ANN index").

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ClipError;

/// Share of the rows' energy (sum of the second moment's eigenvalues) that `auto` keeps.
pub const AUTO_ENERGY: f64 = 0.98;
/// `auto` projects only when this many times fewer dimensions suffice.
const AUTO_MIN_GAIN: usize = 2;
/// Rows sampled for the second moment (evenly spaced blocks).
pub(super) const SAMPLE_ROWS: usize = 200_000;

/// How the graph's vectors are reduced before they are indexed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ReduceDim {
    /// The full width (the layout of indexes built before the projection existed).
    #[default]
    Off,
    /// The fewest multiples of 32 directions that keep [`AUTO_ENERGY`] of the energy, when
    /// that is at most half the width; else off.
    Auto,
    /// Exactly this many directions.
    Dim(usize),
}

impl FromStr for ReduceDim {
    type Err = ClipError;

    /// `auto`, `off` or a number of dimensions.
    fn from_str(s: &str) -> Result<Self, ClipError> {
        match s {
            "auto" => Ok(Self::Auto),
            "off" => Ok(Self::Off),
            n => match n.parse::<usize>() {
                Ok(r) if r > 0 => Ok(Self::Dim(r)),
                _ => Err(ClipError::Mismatch {
                    message: format!("--reduce-dim {s:?}: expected auto, off or a width > 0"),
                }),
            },
        }
    }
}

impl std::fmt::Display for ReduceDim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Off => f.write_str("off"),
            Self::Auto => f.write_str("auto"),
            Self::Dim(r) => write!(f, "{r}"),
        }
    }
}

/// What the `.ann` header says of its projection (the matrix itself follows the header).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ProjectionInfo {
    /// Directions kept (the graph's width).
    pub dim: usize,
    /// Share of the sampled rows' energy they keep.
    pub energy: f64,
    /// CRC-32 of the matrix bytes.
    pub crc32: u32,
}

/// `[d, r]` row-major: `y = x · P`.
#[derive(Debug, Clone, PartialEq)]
pub struct Projection {
    input: usize,
    output: usize,
    matrix: Vec<f32>,
}

impl Projection {
    /// Directions kept.
    pub fn output(&self) -> usize {
        self.output
    }

    /// `x · P` into `out` (resized to the output width), normalised to unit length (left as
    /// it is when 0): the graph compares projections by their inner product, i.e. their
    /// cosine.
    pub fn project(&self, x: &[f32], out: &mut Vec<f32>) {
        out.clear();
        out.resize(self.output, 0.0);
        for (xi, row) in x.iter().zip(self.matrix.chunks_exact(self.output)) {
            for (o, p) in out.iter_mut().zip(row) {
                *o += xi * p;
            }
        }
        let norm = out.iter().map(|v| v * v).sum::<f32>().sqrt();
        if norm > 0.0 {
            out.iter_mut().for_each(|v| *v /= norm);
        }
    }

    /// The matrix as stored: little-endian f32, row-major `[d, r]`.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.matrix.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    /// The matrix of `input × output` values stored by [`Projection::to_bytes`].
    pub fn from_bytes(input: usize, output: usize, bytes: &[u8]) -> Option<Self> {
        if bytes.len() != input.checked_mul(output)?.checked_mul(4)? {
            return None;
        }
        let matrix: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        matrix.iter().all(|v| v.is_finite()).then_some(Self {
            input,
            output,
            matrix,
        })
    }

    /// Bytes of the stored matrix.
    pub fn byte_len(input: usize, output: usize) -> usize {
        input * output * 4
    }

    /// Width of the rows it takes.
    pub fn input(&self) -> usize {
        self.input
    }
}

/// Second moment `Σ xᵀx / n` of sampled rows, accumulated block by block.
pub(super) struct SecondMoment {
    dim: usize,
    sum: Vec<f64>,
    rows: usize,
}

impl SecondMoment {
    pub(super) fn new(dim: usize) -> Self {
        Self {
            dim,
            sum: vec![0.0; dim * dim],
            rows: 0,
        }
    }

    /// Add the rows of `block` (`[n, dim]` row-major, already normalised).
    pub(super) fn add(&mut self, block: &[f32]) {
        let n = block.len() / self.dim.max(1);
        let Ok(a) = ndarray::ArrayView2::from_shape((n, self.dim), block) else {
            return;
        };
        let g = a.t().dot(&a);
        for (s, v) in self.sum.iter_mut().zip(g.iter()) {
            *s += f64::from(*v);
        }
        self.rows += n;
    }

    /// The projection `reduce` asks for: `None` for off (or `auto` finding no gain).
    ///
    /// # Errors
    /// [`ClipError::Mismatch`] for a width of 0 or more than the rows' width, or an
    /// eigensolver that does not converge.
    pub(super) fn fit(&self, reduce: ReduceDim) -> Result<Option<(Projection, f64)>, ClipError> {
        let d = self.dim;
        if reduce == ReduceDim::Off || self.rows == 0 {
            return Ok(None);
        }
        if let ReduceDim::Dim(r) = reduce
            && (r == 0 || r > d)
        {
            return Err(ClipError::Mismatch {
                message: format!("--reduce-dim {r}: the rows are {d}-d"),
            });
        }
        let m = nalgebra::DMatrix::from_row_slice(d, d, &self.sum).scale(1.0 / self.rows as f64);
        let eig = nalgebra::SymmetricEigen::try_new(m, 1e-12, 100 * d).ok_or_else(|| {
            ClipError::Mismatch {
                message: "the rows' second moment has no eigen-decomposition (did not converge)"
                    .into(),
            }
        })?;
        let mut order: Vec<usize> = (0..d).collect();
        order.sort_by(|&a, &b| eig.eigenvalues[b].total_cmp(&eig.eigenvalues[a]));
        let total: f64 = eig.eigenvalues.iter().map(|v| v.max(0.0)).sum();
        let kept = |r: usize| -> f64 {
            let s: f64 = order[..r]
                .iter()
                .map(|&i| eig.eigenvalues[i].max(0.0))
                .sum();
            if total > 0.0 { s / total } else { 1.0 }
        };
        let r = match reduce {
            ReduceDim::Dim(r) => r,
            _ => {
                let r = (1..=d.div_ceil(32))
                    .map(|k| (32 * k).min(d))
                    .find(|&r| kept(r) >= AUTO_ENERGY)
                    .unwrap_or(d);
                if r * AUTO_MIN_GAIN > d {
                    return Ok(None);
                }
                r
            }
        };
        let mut matrix = vec![0f32; d * r];
        for (j, &col) in order[..r].iter().enumerate() {
            for i in 0..d {
                matrix[i * r + j] = eig.eigenvectors[(i, col)] as f32;
            }
        }
        Ok(Some((
            Projection {
                input: d,
                output: r,
                matrix,
            },
            kept(r),
        )))
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used)]
mod tests {
    use super::*;

    /// `x` scaled to unit length.
    fn unit(mut x: Vec<f32>) -> Vec<f32> {
        let norm = x.iter().map(|v| v * v).sum::<f32>().sqrt();
        x.iter_mut().for_each(|v| *v /= norm);
        x
    }

    /// Rows in a 3-d subspace of 64 dimensions: auto keeps 32 directions (its smallest step),
    /// and the projection keeps their inner products.
    #[test]
    fn a_low_dimensional_set_projects_without_loss() {
        let d = 64;
        let basis: Vec<Vec<f32>> = (0..3)
            .map(|k| (0..d).map(|i| ((i * (k + 3)) as f32).sin()).collect())
            .collect();
        let mut rows = Vec::new();
        for n in 0..500 {
            let z = [
                (n as f32).cos(),
                (n as f32 * 0.7).sin(),
                0.3 + (n % 7) as f32 * 0.1,
            ];
            let x: Vec<f32> = (0..d)
                .map(|i| (0..3).map(|k| z[k] * basis[k][i]).sum())
                .collect();
            rows.extend(unit(x));
        }
        let mut m = SecondMoment::new(d);
        m.add(&rows);
        let (p, energy) = m.fit(ReduceDim::Auto).unwrap().expect("a projection");
        assert_eq!(p.output(), 32);
        assert!(energy > 0.999_999, "{energy}");
        let (a, b) = (&rows[..d], &rows[d..2 * d]);
        let (mut pa, mut pb) = (Vec::new(), Vec::new());
        p.project(a, &mut pa);
        p.project(b, &mut pb);
        let full: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let reduced: f32 = pa.iter().zip(&pb).map(|(x, y)| x * y).sum();
        assert!((full - reduced).abs() < 1e-4, "{full} vs {reduced}");
        // Stored and read back bit for bit; a wrong length or a NaN is refused.
        let bytes = p.to_bytes();
        assert_eq!(Projection::from_bytes(d, 32, &bytes), Some(p.clone()));
        assert!(Projection::from_bytes(d, 31, &bytes).is_none());
        let mut nan = bytes.clone();
        nan[..4].copy_from_slice(&f32::NAN.to_le_bytes());
        assert!(Projection::from_bytes(d, 32, &nan).is_none());
        // Explicit widths, off, and widths out of range.
        assert_eq!(m.fit(ReduceDim::Dim(8)).unwrap().unwrap().0.output(), 8);
        assert!(m.fit(ReduceDim::Off).unwrap().is_none());
        assert!(m.fit(ReduceDim::Dim(65)).is_err());
        assert_eq!("auto".parse::<ReduceDim>().unwrap(), ReduceDim::Auto);
        assert_eq!("48".parse::<ReduceDim>().unwrap(), ReduceDim::Dim(48));
        assert!("0".parse::<ReduceDim>().is_err() && "x".parse::<ReduceDim>().is_err());
    }

    /// Isotropic rows: no direction can go, so auto does not project.
    #[test]
    fn auto_does_not_project_full_rank_rows() {
        let d = 64;
        let mut rows = Vec::new();
        let mut state = 12345u64;
        for _ in 0..2000 {
            let x: Vec<f32> = (0..d)
                .map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((state >> 33) as f32 / (1u64 << 31) as f32) - 0.5
                })
                .collect();
            rows.extend(unit(x));
        }
        let mut m = SecondMoment::new(d);
        m.add(&rows);
        assert!(m.fit(ReduceDim::Auto).unwrap().is_none());
    }
}
