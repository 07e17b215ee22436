//! A pickle virtual machine for PyTorch checkpoints: it builds values, never runs code.
//!
//! Only what `torch.save` and other weight savers emit is understood: the data opcodes of
//! protocols 0–5, `GLOBAL`/`STACK_GLOBAL` as inert class names, and `REDUCE`/`NEWOBJ`/`BUILD`
//! on the handful of callables a state dict uses (see [`Value::Call`]). Every size is bounded by
//! the bytes actually present, containers are shared (cheap `BINGET`), and nesting is capped, so
//! a crafted pickle cannot allocate without bound, recurse without bound, or panic.

use std::collections::BTreeMap;
use std::io::{BufRead, Read};
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
fn depth_of<'a>(
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

fn tuple(items: Vec<Value>) -> Result<Value, PickleError> {
    let d = depth_of(&items, 0)?;
    Ok(Value::Tuple(Rc::new(items), d))
}

fn list(items: Vec<Value>) -> Result<Value, PickleError> {
    let d = depth_of(&items, 0)?;
    Ok(Value::List(Rc::new(items), d))
}

/// An empty container value.
pub fn empty_dict() -> Value {
    Value::Dict(Rc::default(), 1)
}

struct Vm<'a, R: BufRead> {
    r: &'a mut R,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: BTreeMap<u64, Value>,
    other_keys: u64,
}

fn bad(msg: impl Into<String>) -> PickleError {
    PickleError::Malformed(msg.into())
}

impl<R: BufRead> Vm<'_, R> {
    fn bytes<const N: usize>(&mut self) -> Result<[u8; N], PickleError> {
        let mut b = [0u8; N];
        self.r.read_exact(&mut b).map_err(PickleError::Truncated)?;
        Ok(b)
    }

    fn u8(&mut self) -> Result<u8, PickleError> {
        Ok(self.bytes::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u64, PickleError> {
        Ok(u64::from(u32::from_le_bytes(self.bytes()?)))
    }

    fn u64(&mut self) -> Result<u64, PickleError> {
        Ok(u64::from_le_bytes(self.bytes()?))
    }

    /// `len` bytes, allocated as they arrive (a huge declared length cannot allocate).
    fn vec(&mut self, len: u64) -> Result<Vec<u8>, PickleError> {
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

    fn line(&mut self) -> Result<String, PickleError> {
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

    fn string(&mut self, len: u64) -> Result<Value, PickleError> {
        let v = self.vec(len)?;
        let s = String::from_utf8(v).map_err(|_| bad("str is not UTF-8"))?;
        Ok(Value::Str(s.into()))
    }

    fn pop(&mut self) -> Result<Value, PickleError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(bad("stack underflow"));
        }
        self.stack.pop().ok_or_else(|| bad("stack underflow"))
    }

    fn top(&self) -> Result<&Value, PickleError> {
        self.stack.last().ok_or_else(|| bad("empty stack"))
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>, PickleError> {
        let m = self.marks.pop().ok_or_else(|| bad("no MARK"))?;
        Ok(self.stack.split_off(m))
    }

    fn key(&mut self, k: Value) -> Key {
        match k {
            Value::Str(s) => Key::Str(s.to_string()),
            Value::Int(i) => Key::Int(i),
            _ => {
                self.other_keys += 1;
                Key::Other(self.other_keys)
            }
        }
    }

    fn set_items(&mut self, items: Vec<Value>) -> Result<(), PickleError> {
        if items.len() % 2 != 0 {
            return Err(bad("odd number of dict items"));
        }
        let mut pairs = Vec::with_capacity(items.len() / 2);
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            pairs.push((self.key(k), v));
        }
        let (mut d, depth) = match self.stack.pop() {
            Some(Value::Dict(d, depth)) => (d, depth),
            _ => return Err(bad("SETITEM(S) on a non-dict")),
        };
        let depth = depth_of(pairs.iter().map(|(_, v)| v), usize::from(depth))?;
        Rc::make_mut(&mut d).extend(pairs);
        self.stack.push(Value::Dict(d, depth));
        Ok(())
    }

    fn append(&mut self, items: Vec<Value>) -> Result<(), PickleError> {
        let (mut l, depth) = match self.stack.pop() {
            Some(Value::List(l, depth)) => (l, depth),
            _ => return Err(bad("APPEND(S) on a non-list")),
        };
        let depth = depth_of(&items, usize::from(depth))?;
        Rc::make_mut(&mut l).extend(items);
        self.stack.push(Value::List(l, depth));
        Ok(())
    }

    fn memo_get(&mut self, idx: u64) -> Result<(), PickleError> {
        let v = self
            .memo
            .get(&idx)
            .cloned()
            .ok_or_else(|| bad("memo miss"))?;
        self.stack.push(v);
        Ok(())
    }

    fn memo_put(&mut self, idx: u64) -> Result<(), PickleError> {
        let v = self.top()?.clone();
        self.memo.insert(idx, v);
        Ok(())
    }

    fn call(&mut self, callable: Value, args: Value) -> Result<(), PickleError> {
        let is_ordered_dict = matches!(&callable, Value::Global(m, n) if &**m == "collections" && &**n == "OrderedDict");
        let v = match &args {
            Value::Tuple(a, depth) if is_ordered_dict => {
                let mut d = BTreeMap::new();
                if let Some(Value::List(items, _)) = a.first() {
                    for item in items.iter() {
                        if let Value::Tuple(p, _) | Value::List(p, _) = item
                            && let [k, v] = p.as_slice()
                        {
                            let key = self.key(k.clone());
                            d.insert(key, v.clone());
                        }
                    }
                }
                Value::Dict(Rc::new(d), (*depth).max(1))
            }
            _ => {
                let depth = depth_of([&callable, &args], 0)?;
                Value::Call(Rc::new((callable, args)), depth)
            }
        };
        self.stack.push(v);
        Ok(())
    }

    fn run(&mut self) -> Result<Value, PickleError> {
        loop {
            let op = self.u8()?;
            match op {
                0x80 => {
                    if self.u8()? > 5 {
                        return Err(bad("pickle protocol above 5"));
                    }
                }
                0x95 => {
                    self.u64()?; // FRAME: a length hint only
                }
                b'.' => {
                    let v = self.pop()?;
                    return Ok(v);
                }
                b'(' => self.marks.push(self.stack.len()),
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let v = self.top()?.clone();
                    self.stack.push(v);
                }
                b'N' => self.stack.push(Value::None),
                0x88 => self.stack.push(Value::Bool(true)),
                0x89 => self.stack.push(Value::Bool(false)),
                b'J' => {
                    let v = i32::from_le_bytes(self.bytes()?);
                    self.stack.push(Value::Int(i64::from(v)));
                }
                b'K' => {
                    let v = self.u8()?;
                    self.stack.push(Value::Int(i64::from(v)));
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.bytes()?);
                    self.stack.push(Value::Int(i64::from(v)));
                }
                0x8a | 0x8b => {
                    let n = if op == 0x8a {
                        u64::from(self.u8()?)
                    } else {
                        self.u32()?
                    };
                    let b = self.vec(n)?;
                    self.stack.push(long(&b));
                }
                b'I' | b'L' => {
                    let line = self.line()?;
                    let t = line.trim_end_matches('L');
                    self.stack.push(match t {
                        "00" => Value::Bool(false),
                        "01" => Value::Bool(true),
                        _ => t.parse().map(Value::Int).unwrap_or(Value::BigInt),
                    });
                }
                b'G' => {
                    self.bytes::<8>()?;
                    self.stack.push(Value::Float);
                }
                b'F' => {
                    let line = self.line()?;
                    line.trim().parse::<f64>().map_err(|_| bad("bad FLOAT"))?;
                    self.stack.push(Value::Float);
                }
                b'X' => {
                    let n = self.u32()?;
                    let v = self.string(n)?;
                    self.stack.push(v);
                }
                0x8c => {
                    let n = u64::from(self.u8()?);
                    let v = self.string(n)?;
                    self.stack.push(v);
                }
                0x8d => {
                    let n = self.u64()?;
                    let v = self.string(n)?;
                    self.stack.push(v);
                }
                b'U' | b'T' | b'C' | b'B' | 0x8e => {
                    let n = match op {
                        b'U' | b'C' => u64::from(self.u8()?),
                        0x8e => self.u64()?,
                        _ => self.u32()?,
                    };
                    self.vec(n)?;
                    self.stack.push(Value::Bytes);
                }
                b')' => self.stack.push(Value::Tuple(Rc::default(), 1)),
                b't' => {
                    let items = self.pop_mark()?;
                    self.stack.push(tuple(items)?);
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.stack.push(tuple(items)?);
                }
                b']' | 0x8f => self.stack.push(Value::List(Rc::default(), 1)),
                b'l' => {
                    let items = self.pop_mark()?;
                    self.stack.push(list(items)?);
                }
                0x91 => {
                    let items = self.pop_mark()?;
                    self.stack.push(tuple(items)?);
                }
                b'a' => {
                    let v = self.pop()?;
                    self.append(vec![v])?;
                }
                b'e' | 0x90 => {
                    let items = self.pop_mark()?;
                    self.append(items)?;
                }
                b'}' => self.stack.push(empty_dict()),
                b'd' => {
                    let items = self.pop_mark()?;
                    self.stack.push(empty_dict());
                    self.set_items(items)?;
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.set_items(vec![k, v])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.set_items(items)?;
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.stack.push(Value::Global(module.into(), name.into()));
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module, name) {
                        (Value::Str(m), Value::Str(n)) => self.stack.push(Value::Global(m, n)),
                        _ => return Err(bad("STACK_GLOBAL needs two str")),
                    }
                }
                b'R' | 0x81 => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    self.call(callable, args)?;
                }
                0x92 => {
                    let _kwargs = self.pop()?;
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    self.call(callable, args)?;
                }
                b'b' => {
                    // BUILD sets attributes (`__setstate__`): a state dict's `_metadata`, a
                    // tensor's hooks. None of them carries weights: keep the object.
                    self.pop()?;
                    self.top()?;
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let depth = depth_of([&pid], 0)?;
                    self.stack.push(Value::Persistent(Rc::new(pid), depth));
                }
                b'P' => {
                    let pid = self.line()?;
                    self.stack
                        .push(Value::Persistent(Rc::new(Value::Str(pid.into())), 1));
                }
                b'q' => {
                    let i = u64::from(self.u8()?);
                    self.memo_put(i)?;
                }
                b'r' => {
                    let i = self.u32()?;
                    self.memo_put(i)?;
                }
                b'p' => {
                    let i = self.line()?.parse().map_err(|_| bad("bad PUT index"))?;
                    self.memo_put(i)?;
                }
                0x94 => {
                    let i = self.memo.len() as u64;
                    self.memo_put(i)?;
                }
                b'h' => {
                    let i = u64::from(self.u8()?);
                    self.memo_get(i)?;
                }
                b'j' => {
                    let i = self.u32()?;
                    self.memo_get(i)?;
                }
                b'g' => {
                    let i = self.line()?.parse().map_err(|_| bad("bad GET index"))?;
                    self.memo_get(i)?;
                }
                other => return Err(PickleError::Opcode(other)),
            }
        }
    }
}

/// A little-endian two's-complement `LONG1`/`LONG4` operand.
fn long(b: &[u8]) -> Value {
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

/// Read one pickle (up to and including its `STOP`) from `r`.
pub fn read<R: BufRead>(r: &mut R) -> Result<Value, PickleError> {
    let mut vm = Vm {
        r,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: BTreeMap::new(),
        other_keys: 0,
    };
    vm.run()
}

#[cfg(test)]
mod tests {
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
