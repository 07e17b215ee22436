//! A cap on the memory that concurrent image decodes may hold.
//!
//! Decoding a 169-Mpx photo holds ~1.3 GB; a 16-core batch decoding 16 of them at once would
//! hold 21 GB. Every decode of [`super::ImageTransform`]'s `apply_*` methods (and so of the
//! rayon batch path) first reserves its estimated peak ([`super::decode::estimate`], from the
//! header alone) from a [`DecodeBudget`] and waits while the reservations in flight would exceed
//! its limit. An image larger than the limit (but within the pixel limit) still decodes, alone.
//!
//! The process-wide budget ([`DecodeBudget::global`]) has [`DEFAULT_DECODE_MEMORY`] (4 GiB)
//! unless the environment variable [`DECODE_MEMORY_ENV`] (`TAIYI_DECODE_MEMORY`) says otherwise
//! (bytes, or with a `K`/`M`/`G`/`T` suffix, binary, optional `iB`/`B`: `512M`, `4GiB`); its
//! limit can be changed at run time with [`DecodeBudget::set_limit`]. A transform can use a
//! budget of its own ([`super::ImageTransform::with_decode_budget`]).

use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};

use super::error::ImageError;

/// Default limit of the process-wide decode budget: 4 GiB.
pub const DEFAULT_DECODE_MEMORY: u64 = 4 << 30;

/// Environment variable that sets the process-wide decode budget's limit (read once).
pub const DECODE_MEMORY_ENV: &str = "TAIYI_DECODE_MEMORY";

#[derive(Debug, Default)]
struct State {
    limit: u64,
    in_use: u64,
    holders: usize,
    peak_in_use: u64,
    peak_holders: usize,
}

/// A shared allowance of bytes for concurrent decodes (a counting semaphore in bytes).
///
/// ```no_run
/// use std::sync::Arc;
/// use taiyi_preprocess::transform::{DecodeBudget, ImageTransform};
/// # fn main() -> Result<(), taiyi_preprocess::transform::ImageError> {
/// DecodeBudget::global()?.set_limit(1 << 30); // every transform: at most 1 GiB of decodes
/// let own = Arc::new(DecodeBudget::new(256 << 20));
/// let t = ImageTransform::default().with_decode_budget(own.clone());
/// let _ = t.apply_path("big.jpg")?;
/// println!("peak {} bytes", own.peak_in_use());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct DecodeBudget {
    state: Mutex<State>,
    freed: Condvar,
}

/// A reservation of a [`DecodeBudget`], returned when dropped.
#[derive(Debug)]
pub struct DecodePermit<'a> {
    budget: &'a DecodeBudget,
    bytes: u64,
}

impl DecodeBudget {
    /// A budget of `limit` bytes (0: one decode at a time).
    pub fn new(limit: u64) -> Self {
        Self {
            state: Mutex::new(State {
                limit,
                ..State::default()
            }),
            freed: Condvar::new(),
        }
    }

    /// A budget with the limit [`DECODE_MEMORY_ENV`] gives, else [`DEFAULT_DECODE_MEMORY`].
    ///
    /// # Errors
    /// [`ImageError::DecodeMemoryEnv`] if the variable is set but not a size.
    pub fn from_env() -> Result<Self, ImageError> {
        match std::env::var(DECODE_MEMORY_ENV) {
            Ok(v) if !v.trim().is_empty() => Ok(Self::new(
                parse_size(&v).ok_or(ImageError::DecodeMemoryEnv { value: v })?,
            )),
            _ => Ok(Self::new(DEFAULT_DECODE_MEMORY)),
        }
    }

    /// The process-wide budget, made by [`DecodeBudget::from_env`] on first use.
    ///
    /// # Errors
    /// [`ImageError::DecodeMemoryEnv`] if [`DECODE_MEMORY_ENV`] is set but not a size.
    pub fn global() -> Result<&'static Self, ImageError> {
        // The error kept is the variable's value (the error itself is not `Clone`).
        static GLOBAL: OnceLock<Result<DecodeBudget, String>> = OnceLock::new();
        GLOBAL
            .get_or_init(|| {
                Self::from_env().map_err(|e| match e {
                    ImageError::DecodeMemoryEnv { value } => value,
                    other => other.to_string(),
                })
            })
            .as_ref()
            .map_err(|value| ImageError::DecodeMemoryEnv {
                value: value.clone(),
            })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is a few counters updated atomically under the lock: never half-written.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The limit in bytes.
    pub fn limit(&self) -> u64 {
        self.lock().limit
    }

    /// Changes the limit; waiting decodes re-check it at once.
    pub fn set_limit(&self, limit: u64) {
        self.lock().limit = limit;
        self.freed.notify_all();
    }

    /// Bytes reserved now.
    pub fn in_use(&self) -> u64 {
        self.lock().in_use
    }

    /// The most bytes reserved at once so far.
    pub fn peak_in_use(&self) -> u64 {
        self.lock().peak_in_use
    }

    /// The most reservations held at once so far.
    pub fn peak_holders(&self) -> usize {
        self.lock().peak_holders
    }

    /// Reserves `bytes`, waiting while other reservations are held and `bytes` more would
    /// exceed the limit. With no other reservation held it never waits, so a single request
    /// larger than the limit proceeds alone.
    pub fn acquire(&self, bytes: u64) -> DecodePermit<'_> {
        let mut s = self.lock();
        while s.holders > 0 && s.in_use.saturating_add(bytes) > s.limit {
            s = self.freed.wait(s).unwrap_or_else(PoisonError::into_inner);
        }
        s.in_use = s.in_use.saturating_add(bytes);
        s.holders += 1;
        s.peak_in_use = s.peak_in_use.max(s.in_use);
        s.peak_holders = s.peak_holders.max(s.holders);
        DecodePermit {
            budget: self,
            bytes,
        }
    }
}

impl DecodePermit<'_> {
    /// The bytes this permit reserves.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Drop for DecodePermit<'_> {
    fn drop(&mut self) {
        {
            let mut s = self.budget.lock();
            s.in_use = s.in_use.saturating_sub(self.bytes);
            s.holders = s.holders.saturating_sub(1);
        }
        self.budget.freed.notify_all();
    }
}

/// `"4294967296"`, `"4G"`, `"4GiB"`, `"512 MB"`, `"64k"` -> bytes (binary multiples).
pub(crate) fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let n: u64 = s[..digits].parse().ok()?;
    let unit = s[digits..].trim().to_ascii_lowercase();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(&unit);
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return None,
    };
    n.checked_mul(1u64 << shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("4294967296"), Some(4 << 30));
        assert_eq!(parse_size("4G"), Some(4 << 30));
        assert_eq!(parse_size("4GiB"), Some(4 << 30));
        assert_eq!(parse_size(" 512 MB "), Some(512 << 20));
        assert_eq!(parse_size("64k"), Some(64 << 10));
        assert_eq!(parse_size("0"), Some(0));
        for bad in ["", "G", "4X", "-1", "1.5G", "99999999999T"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }

    #[test]
    fn an_oversized_request_proceeds_alone_and_permits_return() {
        let b = DecodeBudget::new(10);
        {
            let p = b.acquire(25);
            assert_eq!((p.bytes(), b.in_use()), (25, 25));
        }
        assert_eq!(b.in_use(), 0);
        let (x, y) = (b.acquire(4), b.acquire(6));
        assert_eq!(b.in_use(), 10);
        drop((x, y));
        assert_eq!((b.in_use(), b.peak_in_use(), b.peak_holders()), (0, 25, 2));
    }
}
