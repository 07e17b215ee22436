//! Reading opcode operands: fixed-size integers, length-prefixed bytes, text lines.

use std::io::{BufRead, Read};

use super::{Vm, bad};
use crate::torch::pickle::{PickleError, Value};

impl<R: BufRead> Vm<'_, R> {
    pub(super) fn bytes<const N: usize>(&mut self) -> Result<[u8; N], PickleError> {
        let mut b = [0u8; N];
        self.r.read_exact(&mut b).map_err(PickleError::Truncated)?;
        Ok(b)
    }

    pub(super) fn u8(&mut self) -> Result<u8, PickleError> {
        Ok(self.bytes::<1>()?[0])
    }

    pub(super) fn u32(&mut self) -> Result<u64, PickleError> {
        Ok(u64::from(u32::from_le_bytes(self.bytes()?)))
    }

    pub(super) fn u64(&mut self) -> Result<u64, PickleError> {
        Ok(u64::from_le_bytes(self.bytes()?))
    }

    /// `len` bytes, allocated as they arrive (a huge declared length cannot allocate).
    pub(super) fn vec(&mut self, len: u64) -> Result<Vec<u8>, PickleError> {
        let mut out = Vec::new();
        (&mut *self.r)
            .take(len)
            .read_to_end(&mut out)
            .map_err(PickleError::Truncated)?;
        if out.len() as u64 != len {
            return Err(PickleError::Truncated(
                std::io::ErrorKind::UnexpectedEof.into(),
            ));
        }
        Ok(out)
    }

    pub(super) fn line(&mut self) -> Result<String, PickleError> {
        let mut out = Vec::new();
        (&mut *self.r)
            .take(1 << 16)
            .read_until(b'\n', &mut out)
            .map_err(PickleError::Truncated)?;
        if out.pop() != Some(b'\n') {
            return Err(bad("unterminated text operand"));
        }
        String::from_utf8(out).map_err(|_| bad("text operand is not UTF-8"))
    }

    pub(super) fn string(&mut self, len: u64) -> Result<Value, PickleError> {
        let v = self.vec(len)?;
        let s = String::from_utf8(v).map_err(|_| bad("str is not UTF-8"))?;
        Ok(Value::Str(s.into()))
    }
}

/// A little-endian two's-complement `LONG1`/`LONG4` operand.
pub(in crate::torch::pickle) fn long(b: &[u8]) -> Value {
    if b.is_empty() {
        return Value::Int(0);
    }
    if b.len() > 8 {
        return Value::BigInt;
    }
    let neg = b[b.len() - 1] & 0x80 != 0;
    let mut buf = if neg { [0xffu8; 8] } else { [0u8; 8] };
    buf[..b.len()].copy_from_slice(b);
    Value::Int(i64::from_le_bytes(buf))
}
