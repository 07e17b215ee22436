//! The opcode loop of the pickle reader.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::rc::Rc;

use super::{Key, PickleError, Value, depth_of, empty_dict, list, tuple};

mod operands;
pub(super) use operands::long;

pub(super) struct Vm<'a, R: BufRead> {
    r: &'a mut R,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: BTreeMap<u64, Value>,
    other_keys: u64,
}

fn bad(msg: impl Into<String>) -> PickleError {
    PickleError::Malformed(msg.into())
}

impl<'a, R: BufRead> Vm<'a, R> {
    pub(super) fn new(r: &'a mut R) -> Self {
        Self {
            r,
            stack: Vec::new(),
            marks: Vec::new(),
            memo: BTreeMap::new(),
            other_keys: 0,
        }
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
        if !items.len().is_multiple_of(2) {
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

    pub(super) fn run(&mut self) -> Result<Value, PickleError> {
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
