//! The `.npy` header as the format defines it: a Python dict literal with exactly the keys
//! `descr` (str), `fortran_order` (bool) and `shape` (tuple of ints), in any order and spacing,
//! optionally with a trailing comma, followed by padding spaces and `\n`
//! (<https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html>). Anything else
//! is refused, as `np.load` (`ast.literal_eval` + key check) refuses it.

/// Largest header accepted (NumPy's `max_header_size` default).
pub const MAX_HEADER_BYTES: usize = 10_000;
/// Largest single dimension accepted: far beyond any array that fits on a disk.
pub const MAX_DIM: u64 = 1 << 40;

/// A parsed header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The dtype string, e.g. `<f4`.
    pub descr: String,
    /// Whether the data is in Fortran (column-major) order.
    pub fortran_order: bool,
    /// The shape.
    pub shape: Vec<usize>,
}

enum Lit {
    Str(String),
    Bool(bool),
    Tuple(Vec<u64>),
}

struct P<'a> {
    s: &'a [u8],
    i: usize,
}

impl P<'_> {
    fn ws(&mut self) {
        while self
            .s
            .get(self.i)
            .is_some_and(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r' | b'\x0c'))
        {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("expected '{}' at byte {}", c as char, self.i))
        }
    }

    fn string(&mut self) -> Result<String, String> {
        let q = self.peek().ok_or("unexpected end")?;
        if q != b'\'' && q != b'"' {
            return Err(format!("expected a string at byte {}", self.i));
        }
        let start = self.i + 1;
        let len = self.s[start..]
            .iter()
            .position(|&c| c == q)
            .ok_or("unterminated string")?;
        let body = &self.s[start..start + len];
        if body.iter().any(|&c| c == b'\\' || c == b'\n') {
            return Err("escapes in strings are not supported".into());
        }
        self.i = start + len + 1;
        String::from_utf8(body.to_vec()).map_err(|_| "string is not UTF-8".into())
    }

    fn int(&mut self) -> Result<u64, String> {
        self.ws();
        let start = self.i;
        while self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
        let digits = std::str::from_utf8(&self.s[start..self.i]).map_err(|e| e.to_string())?;
        if digits.is_empty() {
            return Err(format!("expected a non-negative int at byte {start}"));
        }
        if digits.len() > 1 && digits.starts_with('0') {
            return Err(format!("leading zeros in int {digits}"));
        }
        match digits.parse::<u64>() {
            Ok(v) if v <= MAX_DIM => Ok(v),
            _ => Err(format!("dimension {digits} exceeds the limit of {MAX_DIM}")),
        }
    }

    fn word(&mut self, w: &str) -> bool {
        self.ws();
        let end = self.i + w.len();
        let ok = self.s.get(self.i..end) == Some(w.as_bytes())
            && !self
                .s
                .get(end)
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_');
        if ok {
            self.i = end;
        }
        ok
    }

    fn value(&mut self) -> Result<Lit, String> {
        match self.peek() {
            Some(b'\'' | b'"') => Ok(Lit::Str(self.string()?)),
            Some(b'(') => {
                self.i += 1;
                let mut dims = Vec::new();
                if self.eat(b')') {
                    return Ok(Lit::Tuple(dims));
                }
                loop {
                    dims.push(self.int()?);
                    if self.eat(b')') {
                        // `(n)` is an int in Python, not a tuple.
                        if dims.len() == 1 {
                            return Err("a 1-element shape needs a trailing comma".into());
                        }
                        return Ok(Lit::Tuple(dims));
                    }
                    self.expect(b',')?;
                    if self.eat(b')') {
                        return Ok(Lit::Tuple(dims));
                    }
                    if dims.len() >= 64 {
                        return Err("more than 64 dimensions".into());
                    }
                }
            }
            _ if self.word("True") => Ok(Lit::Bool(true)),
            _ if self.word("False") => Ok(Lit::Bool(false)),
            _ => Err(format!("unsupported value at byte {}", self.i)),
        }
    }
}

/// Parse the header text (after the magic, version and length fields).
pub fn parse(text: &[u8]) -> Result<Header, String> {
    let mut p = P { s: text, i: 0 };
    p.expect(b'{')?;
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    while !p.eat(b'}') {
        let key = p.string()?;
        p.expect(b':')?;
        let value = p.value()?;
        let dup = match (key.as_str(), value) {
            ("descr", Lit::Str(s)) => descr.replace(s).is_some(),
            ("fortran_order", Lit::Bool(b)) => fortran.replace(b).is_some(),
            ("shape", Lit::Tuple(t)) => shape.replace(t).is_some(),
            ("descr" | "fortran_order" | "shape", _) => {
                return Err(format!("'{key}' has the wrong type"));
            }
            _ => return Err(format!("unexpected key '{key}'")),
        };
        if dup {
            return Err(format!("key '{key}' appears twice"));
        }
        if !p.eat(b',') {
            p.expect(b'}')?;
            break;
        }
    }
    p.ws();
    if p.i != text.len() {
        return Err(format!(
            "unexpected text after the header dict at byte {}",
            p.i
        ));
    }
    let (Some(descr), Some(fortran_order), Some(shape)) = (descr, fortran, shape) else {
        return Err("the header lacks 'descr', 'fortran_order' or 'shape'".into());
    };
    let shape = shape
        .into_iter()
        .map(|d| usize::try_from(d).map_err(|_| format!("dimension {d} too large")))
        .collect::<Result<_, _>>()?;
    Ok(Header {
        descr,
        fortran_order,
        shape,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(h: &str) -> Header {
        match parse(h.as_bytes()) {
            Ok(h) => h,
            Err(e) => unreachable!("{h}: {e}"),
        }
    }

    #[test]
    fn any_order_spacing_and_quotes() {
        let want = Header {
            descr: "<f4".into(),
            fortran_order: false,
            shape: vec![2, 3],
        };
        for h in [
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }          \n",
            "{'shape':(2,3),'fortran_order':False,'descr':'<f4'}\n",
            "{ \"descr\" : \"<f4\" ,\n 'fortran_order':False , 'shape' : ( 2 , 3 , ) }",
        ] {
            assert_eq!(ok(h), want, "{h}");
        }
        assert_eq!(
            ok("{'descr':'<f4','fortran_order':True,'shape':(4,)}").shape,
            [4]
        );
        assert!(ok("{'descr':'<f4','fortran_order':True,'shape':()}").fortran_order);
    }

    #[test]
    fn everything_else_is_refused() {
        for h in [
            "",
            "{'descr': '<f4', 'fortran_order': False}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'x': 1}",
            "{'descr': '<f4', 'descr': '<f8', 'fortran_order': False, 'shape': (2,)}",
            "{'descr': '<f4', 'fortran_order': 0, 'shape': (2,)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (-2,)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 0)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)} junk",
            "{'descr': '<f4', 'fortran_order': Falsey, 'shape': (2,)}",
            "{'descr': '<f4\\'', 'fortran_order': False, 'shape': (2,)}",
            "{'descr': '<f4' 'fortran_order': False, 'shape': (2,)}",
        ] {
            assert!(parse(h.as_bytes()).is_err(), "{h}");
        }
    }
}
