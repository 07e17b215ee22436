//! Tensor bytes allocated with their element's alignment, so burn takes them without a copy.
//!
//! `TensorData::from_bytes_vec` copies every `Vec<u8>` into a fresh 16-byte-aligned allocation
//! (cubecl's `Bytes` cannot prove a byte vector's alignment): on the 3.8 GB of the two towers
//! that copy, and the kernel's zeroing of the pages it touches, were ~half of a load's CPU time.
//! A buffer of `u16`/`u32`/`u64` words is read into as bytes and handed over as it is
//! (`Bytes::from_elems`, the path `TensorData::new` takes).

use std::fs::File;

use burn::tensor::{Bytes, DType, Shape, TensorData};
use rayon::prelude::*;

/// Reads at least this large are split into pieces of this size read side by side.
const PIECE: usize = 4 << 20;

/// Zero-initialised words of one element size.
#[derive(Debug)]
pub(crate) enum ElemBuf {
    /// 1-byte elements.
    B1(Vec<u8>),
    /// 2-byte elements.
    B2(Vec<u16>),
    /// 4-byte elements.
    B4(Vec<u32>),
    /// 8-byte elements.
    B8(Vec<u64>),
}

impl ElemBuf {
    /// A zeroed buffer of `len` bytes for elements of `elem_size` bytes (`len` a multiple of
    /// it; other sizes get bytes). Zeroed with `calloc`, so pages are touched only when
    /// written.
    pub(crate) fn zeroed(len: usize, elem_size: usize) -> Self {
        match elem_size {
            2 if len.is_multiple_of(2) => Self::B2(vec![0; len / 2]),
            4 if len.is_multiple_of(4) => Self::B4(vec![0; len / 4]),
            8 if len.is_multiple_of(8) => Self::B8(vec![0; len / 8]),
            _ => Self::B1(vec![0; len]),
        }
    }

    /// A buffer holding a copy of `bytes`.
    pub(crate) fn copy_of(bytes: &[u8], elem_size: usize) -> Self {
        let mut buf = Self::zeroed(bytes.len(), elem_size);
        buf.bytes_mut().copy_from_slice(bytes);
        buf
    }

    /// The buffer as bytes, to read into.
    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        match self {
            Self::B1(v) => v,
            Self::B2(v) => bytemuck::cast_slice_mut(v),
            Self::B4(v) => bytemuck::cast_slice_mut(v),
            Self::B8(v) => bytemuck::cast_slice_mut(v),
        }
    }

    /// The tensor these bytes are, without copying them.
    pub(crate) fn into_data(self, shape: impl Into<Shape>, dtype: DType) -> TensorData {
        let bytes = match self {
            Self::B1(v) => Bytes::from_elems(v),
            Self::B2(v) => Bytes::from_elems(v),
            Self::B4(v) => Bytes::from_elems(v),
            Self::B8(v) => Bytes::from_elems(v),
        };
        TensorData {
            bytes,
            shape: shape.into(),
            dtype,
        }
    }
}

/// Fill `buf` with the bytes of `file` from `offset`. Large reads go in `PIECE`-sized pieces on
/// rayon: the copy out of the page cache and the first touch of the buffer's fresh pages (the
/// kernel zeroes each) are a load's main CPU cost, and they split over the cores.
pub(crate) fn read_at(file: &File, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
    if buf.len() < 2 * PIECE {
        return read_piece(file, offset, buf);
    }
    buf.par_chunks_mut(PIECE)
        .enumerate()
        .try_for_each(|(i, piece)| read_piece(file, offset + (i * PIECE) as u64, piece))
}

#[cfg(unix)]
fn read_piece(file: &File, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(not(unix))]
fn read_piece(file: &File, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    // Positioned reads only exist on Unix: one handle per piece keeps them independent.
    let mut f = file.try_clone()?;
    f.seek(SeekFrom::Start(offset))?;
    f.read_exact(buf)
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn bytes_become_the_tensor_values_in_place() {
        let values = [1.5f32, -2.0, 3.25];
        let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut buf = ElemBuf::zeroed(raw.len(), 4);
        assert!(matches!(buf, ElemBuf::B4(_)));
        buf.bytes_mut().copy_from_slice(&raw);
        let ptr = buf.bytes_mut().as_ptr();
        let data = buf.into_data([3], DType::F32);
        // No copy: the tensor's bytes are the buffer read into.
        assert_eq!(data.bytes.as_ptr(), ptr);
        assert_eq!(data.as_slice::<f32>().expect("f32"), &values);
        // Sizes that are not a whole number of elements fall back to bytes.
        assert!(matches!(ElemBuf::zeroed(6, 4), ElemBuf::B1(_)));
        let h = ElemBuf::copy_of(&[0, 0x3c, 0, 0xc0], 2).into_data([2], DType::F16);
        let h = h.as_slice::<half::f16>().expect("f16");
        assert_eq!((h[0].to_f32(), h[1].to_f32()), (1.0, -2.0));
    }

    #[test]
    fn parallel_pieces_read_the_same_bytes_as_one_read() {
        let len = 2 * PIECE + 12_345;
        let bytes: Vec<u8> = (0..len + 99).map(|i| (i * 31 % 251) as u8).collect();
        let path = std::env::temp_dir().join(format!("taiyi-read-at-{}", std::process::id()));
        std::fs::write(&path, &bytes).expect("scratch file");
        let file = File::open(&path).expect("open");
        let mut buf = vec![0u8; len];
        read_at(&file, 99, &mut buf).expect("read");
        assert!(buf == bytes[99..]);
        // Past the end: an error, not a short buffer.
        let mut over = vec![0u8; len + 1];
        assert!(read_at(&file, 99, &mut over).is_err());
        let mut small = [0u8; 5];
        read_at(&file, 3, &mut small).expect("small read");
        assert_eq!(small, bytes[3..8]);
        std::fs::remove_file(&path).ok();
    }
}
