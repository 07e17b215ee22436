//! A pickle virtual machine for PyTorch checkpoints: it builds values, never runs code.
//!
//! Only what `torch.save` and other weight savers emit is understood: the data opcodes of
//! protocols 0–5, `GLOBAL`/`STACK_GLOBAL` as inert class names, and `REDUCE`/`NEWOBJ`/`BUILD`
//! on the handful of callables a state dict uses (see [`Value::Call`]). Every size is bounded by
//! the bytes actually present, containers are shared (cheap `BINGET`), and nesting is capped, so
//! a crafted pickle cannot allocate without bound, recurse without bound, or panic.

mod vm;

use std::collections::BTreeMap;
use std::io::BufRead;
use std::rc::Rc;

/// Deepest container nesting accepted (a state dict nests 2–4 levels).
pub const MAX_DEPTH: usize = 64;

/// What went wrong while reading a pickle.
#[derive(Debug, thiserror::Error)]
pub enum PickleError {
    /// The stream ended inside the pickle.
    #[error("pickle ends early")]
    Truncated(#[source] std::io::Error),
    /// An opcode this reader does not know (or that never occurs in a weights file).
    #[error("unsupported pickle opcode 0x{0:02x}")]
    Opcode(u8),
    /// A structurally invalid pickle (stack underflow, wrong operand type, …).
    #[error("malformed pickle: {0}")]
    Malformed(String),
    /// Containers nested deeper than [`MAX_DEPTH`].
    #[error("pickle nests containers deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

/// A hashable dictionary key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Key {
    /// A `str` key.
    Str(String),
    /// An `int` key (optimizer states use them).
    Int(i64),
    /// Any other key (kept apart, never looked up).
    Other(u64),
}

/// A Python value as far as a weights file needs one.
#[derive(Debug, Clone)]
pub enum Value {
    /// `None`.
    None,
    /// `bool`.
    Bool(bool),
    /// `int` (wider ints are [`Value::BigInt`]).
    Int(i64),
    /// An `int` beyond 64 bits (only its presence matters).
    BigInt,
    /// A `float` (its value never matters in a weights file).
    Float,
    /// `str`.
    Str(Rc<str>),
    /// A `bytes` object (its content never matters in a weights file).
    Bytes,
    /// `tuple` (also frozen sets), with its nesting depth.
    Tuple(Rc<Vec<Value>>, Depth),
    /// `list` (also sets), with its nesting depth.
    List(Rc<Vec<Value>>, Depth),
    /// `dict` / `OrderedDict`, with its nesting depth.
    Dict(Rc<BTreeMap<Key, Value>>, Depth),
    /// A class or function named by `GLOBAL`: `module`, `name`. Never imported or called.
    Global(Rc<str>, Rc<str>),
    /// The result of calling a global (`REDUCE`, `NEWOBJ`) that is not a container: the
    /// caller (`rebuild.rs`) interprets the few it knows.
    Call(Rc<(Value, Value)>, Depth),
    /// A persistent id (`BINPERSID`): in PyTorch files, a storage reference tuple.
    Persistent(Rc<Value>, Depth),
}

/// How deeply a value nests containers (0 for scalars); stored so that it costs O(1).
pub type Depth = u8;

impl Value {
    /// The nesting depth (0 for scalars).
    pub fn depth(&self) -> usize {
        match self {
            Value::Tuple(_, d)
            | Value::List(_, d)
            | Value::Dict(_, d)
            | Value::Call(_, d)
            | Value::Persistent(_, d) => usize::from(*d),
            _ => 0,
        }
    }
}

/// The depth of a container holding `items`, or an error past [`MAX_DEPTH`].
pub(super) fn depth_of<'a>(
    items: impl IntoIterator<Item = &'a Value>,
    at_least: usize,
) -> Result<Depth, PickleError> {
    let d = 1 + items
        .into_iter()
        .map(Value::depth)
        .max()
        .unwrap_or(0)
        .max(at_least.saturating_sub(1));
    if d > MAX_DEPTH {
        return Err(PickleError::TooDeep);
    }
    Depth::try_from(d).map_err(|_| PickleError::TooDeep)
}

pub(super) fn tuple(items: Vec<Value>) -> Result<Value, PickleError> {
    let d = depth_of(&items, 0)?;
    Ok(Value::Tuple(Rc::new(items), d))
}

pub(super) fn list(items: Vec<Value>) -> Result<Value, PickleError> {
    let d = depth_of(&items, 0)?;
    Ok(Value::List(Rc::new(items), d))
}

/// An empty container value.
pub fn empty_dict() -> Value {
    Value::Dict(Rc::default(), 1)
}

/// Read one pickle (up to and including its `STOP`) from `r`.
pub fn read<R: BufRead>(r: &mut R) -> Result<Value, PickleError> {
    vm::Vm::new(r).run()
}

#[cfg(test)]
mod tests {
    use super::vm::long;
    use super::*;

    #[test]
    fn longs_are_twos_complement() {
        assert!(matches!(long(&[0xff]), Value::Int(-1)));
        assert!(matches!(long(&[0x00, 0x01]), Value::Int(256)));
        assert!(matches!(long(&[0; 9]), Value::BigInt));
    }

    #[test]
    fn deep_nesting_is_refused() {
        // 100 x EMPTY_LIST, then 99 x APPEND: a list nested 100 deep.
        let mut p = vec![0x80, 2];
        p.extend(std::iter::repeat_n(b']', 100));
        p.extend(std::iter::repeat_n(b'a', 99));
        p.push(b'.');
        assert!(matches!(read(&mut &p[..]), Err(PickleError::TooDeep)));
    }

    #[test]
    fn huge_declared_lengths_fail_without_allocating() {
        let p = [b'X', 0xff, 0xff, 0xff, 0xff, b'a'];
        assert!(matches!(read(&mut &p[..]), Err(PickleError::Truncated(_))));
        let p = [0x8e, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert!(matches!(read(&mut &p[..]), Err(PickleError::Truncated(_))));
    }

    #[test]
    fn stack_underflow_and_marks_are_errors() {
        for p in [&b"."[..], b"(.", b"N(a.", b"t.", b"}Ns."] {
            assert!(read(&mut &p[..]).is_err(), "{p:?}");
        }
    }
}
