//! Tensors as strided views of storages: bounds checks as `torch.load` makes them, and
//! gathering a view into contiguous row-major bytes.

use std::rc::Rc;

use burn::tensor::DType;

use super::TorchError;

/// A storage as referenced by a persistent id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageRef {
    /// The record name (`data/<key>` in zips, the legacy key otherwise).
    pub key: String,
    /// Element type.
    pub dtype: DType,
    /// Elements of the whole record as declared.
    pub numel: u64,
    /// Legacy storage views: first element of the view within the record.
    pub base: u64,
    /// Legacy storage views: elements visible through the view (= `numel` otherwise).
    pub len: u64,
}

/// A tensor: a strided view of a storage.
#[derive(Debug, Clone)]
pub struct TensorRef {
    /// The storage.
    pub storage: Rc<StorageRef>,
    /// First element, relative to the storage (view).
    pub offset: u64,
    /// Shape.
    pub shape: Vec<usize>,
    /// Strides in elements.
    pub stride: Vec<u64>,
}

impl TensorRef {
    /// Number of elements of the tensor, checked.
    pub fn numel(&self) -> Option<u64> {
        self.shape
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
    }

    /// Elements of the storage the view spans from `offset` (0 for an empty tensor), checked.
    pub fn extent(&self) -> Option<u64> {
        if self.shape.contains(&0) {
            return Some(0);
        }
        self.shape
            .iter()
            .zip(&self.stride)
            .try_fold(1u64, |acc, (&d, &s)| {
                (d as u64 - 1).checked_mul(s)?.checked_add(acc)
            })
    }

    /// Whether the view is the row-major layout of its shape.
    pub fn is_contiguous(&self) -> bool {
        let mut want = 1u64;
        for (&d, &s) in self.shape.iter().zip(&self.stride).rev() {
            if d != 1 && s != want {
                return false;
            }
            want = want.saturating_mul(d as u64);
        }
        true
    }

    /// Check the view against its storage, as `torch.load` (`Tensor.set_`) does.
    pub fn check(&self, key: &str) -> Result<(), TorchError> {
        let bad = |message: String| TorchError::Malformed {
            key: key.to_string(),
            message,
        };
        if self.shape.len() != self.stride.len() {
            return Err(bad(format!(
                "shape {:?} and stride {:?} differ in rank",
                self.shape, self.stride
            )));
        }
        let numel = self
            .numel()
            .ok_or_else(|| bad("element count overflows".into()))?;
        let bytes = numel.checked_mul(self.storage.dtype.size() as u64);
        if bytes.is_none_or(|b| b > isize::MAX as u64) {
            return Err(bad(format!("shape {:?} is too large", self.shape)));
        }
        let needed = self
            .extent()
            .and_then(|e| e.checked_add(if e == 0 { 0 } else { self.offset }))
            .ok_or_else(|| bad("view extent overflows".into()))?;
        if needed > self.storage.len {
            return Err(TorchError::OutOfBounds {
                key: key.to_string(),
                needed,
                available: self.storage.len,
            });
        }
        Ok(())
    }
}

/// Copy the strided view out of `src` (the storage from the view's `offset`, `extent`
/// elements of `es` bytes) into row-major bytes; `None` if `src` is too short for the view.
pub fn gather(src: &[u8], es: usize, shape: &[usize], stride: &[u64]) -> Option<Vec<u8>> {
    let numel: usize = shape.iter().product();
    let mut out = Vec::with_capacity(numel * es);
    if numel == 0 {
        return Some(out);
    }
    let mut idx = vec![0usize; shape.len()];
    let mut pos = 0u64;
    for _ in 0..numel {
        let at = pos as usize * es;
        out.extend_from_slice(src.get(at..at + es)?);
        // Odometer increment, last dimension fastest.
        for d in (0..shape.len()).rev() {
            idx[d] += 1;
            pos += stride[d];
            if idx[d] < shape[d] {
                break;
            }
            pos -= stride[d] * shape[d] as u64;
            idx[d] = 0;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(offset: u64, shape: &[usize], stride: &[u64], len: u64) -> TensorRef {
        TensorRef {
            storage: Rc::new(StorageRef {
                key: "0".into(),
                dtype: DType::F32,
                numel: len,
                base: 0,
                len,
            }),
            offset,
            shape: shape.to_vec(),
            stride: stride.to_vec(),
        }
    }

    #[test]
    fn views_outside_their_storage_are_refused() {
        assert!(view(0, &[3, 4], &[4, 1], 12).check("k").is_ok());
        assert!(view(1, &[3, 4], &[4, 1], 12).check("k").is_err());
        assert!(view(0, &[4, 3], &[1, 4], 12).check("k").is_ok());
        assert!(view(0, &[4, 3], &[1, 5], 12).check("k").is_err());
        assert!(view(100, &[0, 3], &[3, 1], 12).check("k").is_ok());
        assert!(view(0, &[usize::MAX, 2], &[1, 1], 12).check("k").is_err());
        assert!(view(0, &[2], &[u64::MAX], 12).check("k").is_err());
        assert!(view(0, &[2, 2], &[1], 12).check("k").is_err());
    }

    #[test]
    fn gather_follows_strides() {
        let src: Vec<u8> = (0u8..6).collect();
        // [2,3] stored transposed ([3,2] row-major): element (i,j) at j*2 + i.
        assert_eq!(
            gather(&src, 1, &[2, 3], &[1, 2]),
            Some(vec![0, 2, 4, 1, 3, 5])
        );
        // expand: stride 0
        let expanded = vec![0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3];
        assert_eq!(gather(&src, 2, &[3, 2], &[0, 1]), Some(expanded));
        assert_eq!(gather(&src, 2, &[4], &[1]), None);
        assert!(!view(0, &[2, 3], &[1, 2], 6).is_contiguous());
        assert!(view(0, &[1, 3], &[7, 1], 6).is_contiguous());
    }
}
