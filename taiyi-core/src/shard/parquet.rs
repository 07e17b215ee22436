//! A minimal Apache Parquet writer for one `UTF8` string column: a single row group, one
//! PLAIN-encoded uncompressed data page (format v1), the footer in Thrift's compact protocol.
//! That is all clip-retrieval's `metadata_{i}.parquet` needs, read by pyarrow, pandas, Spark
//! and DuckDB, and it adds no dependency (the `parquet` crate would cost minutes of build).

/// Thrift compact-protocol type ids.
const I32: u8 = 5;
const I64: u8 = 6;
const BINARY: u8 = 8;
const LIST: u8 = 9;
const STRUCT: u8 = 12;

/// A Thrift compact-protocol encoder that tracks the last field id of each open struct.
struct Thrift {
    out: Vec<u8>,
    last: Vec<i16>,
}

impl Thrift {
    fn new() -> Self {
        Self {
            out: Vec::new(),
            last: vec![0],
        }
    }

    fn varint(&mut self, mut v: u64) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.out.push(byte);
                return;
            }
            self.out.push(byte | 0x80);
        }
    }

    fn zigzag(&mut self, v: i64) {
        self.varint(((v << 1) ^ (v >> 63)) as u64);
    }

    fn field(&mut self, id: i16, ty: u8) {
        let last = self.last.last().copied().unwrap_or(0);
        let delta = id - last;
        if (1..=15).contains(&delta) {
            self.out.push(((delta as u8) << 4) | ty);
        } else {
            self.out.push(ty);
            self.zigzag(i64::from(id));
        }
        if let Some(l) = self.last.last_mut() {
            *l = id;
        }
    }

    fn i32(&mut self, id: i16, v: i32) {
        self.field(id, I32);
        self.zigzag(i64::from(v));
    }

    fn i64(&mut self, id: i16, v: i64) {
        self.field(id, I64);
        self.zigzag(v);
    }

    fn binary(&mut self, id: i16, v: &[u8]) {
        self.field(id, BINARY);
        self.varint(v.len() as u64);
        self.out.extend_from_slice(v);
    }

    /// A list header for `len` elements of type `ty` (the elements follow).
    fn list(&mut self, id: i16, ty: u8, len: usize) {
        self.field(id, LIST);
        if len < 15 {
            self.out.push(((len as u8) << 4) | ty);
        } else {
            self.out.push(0xf0 | ty);
            self.varint(len as u64);
        }
    }

    /// Start a struct, as field `id` (`Some`) or as a list element (`None`).
    fn begin(&mut self, id: Option<i16>) {
        if let Some(id) = id {
            self.field(id, STRUCT);
        }
        self.last.push(0);
    }

    fn end(&mut self) {
        self.out.push(0);
        self.last.pop();
    }
}

/// Parquet enum values used here.
const BYTE_ARRAY: i32 = 6;
const REQUIRED: i32 = 0;
const CONVERTED_UTF8: i32 = 0;
const PLAIN: i32 = 0;
const RLE: i32 = 3;
const DATA_PAGE: i32 = 0;
const UNCOMPRESSED: i32 = 0;

/// The bytes of a Parquet file with one required string column `column` holding `values`.
pub fn string_column_file(column: &str, values: &[String]) -> Vec<u8> {
    let mut data = Vec::new();
    for v in values {
        data.extend_from_slice(&(v.len() as u32).to_le_bytes());
        data.extend_from_slice(v.as_bytes());
    }
    let n = values.len();
    let mut page = Thrift::new();
    page.i32(1, DATA_PAGE);
    page.i32(2, data.len() as i32);
    page.i32(3, data.len() as i32);
    page.begin(Some(5)); // DataPageHeader
    page.i32(1, n as i32);
    page.i32(2, PLAIN);
    page.i32(3, RLE);
    page.i32(4, RLE);
    page.end();
    page.out.push(0); // end PageHeader

    let mut file = b"PAR1".to_vec();
    let page_offset = file.len() as i64;
    file.extend_from_slice(&page.out);
    file.extend_from_slice(&data);
    let chunk_size = (page.out.len() + data.len()) as i64;

    let mut meta = Thrift::new();
    meta.i32(1, 1); // version
    meta.list(2, STRUCT, 2); // schema: root + the column
    meta.begin(None);
    meta.binary(4, b"schema");
    meta.i32(5, 1);
    meta.end();
    meta.begin(None);
    meta.i32(1, BYTE_ARRAY);
    meta.i32(3, REQUIRED);
    meta.binary(4, column.as_bytes());
    meta.i32(6, CONVERTED_UTF8);
    meta.begin(Some(10)); // LogicalType
    meta.begin(Some(1)); // STRING
    meta.end();
    meta.end();
    meta.end();
    meta.i64(3, n as i64);
    meta.list(4, STRUCT, usize::from(n > 0)); // row groups
    if n > 0 {
        meta.begin(None); // RowGroup
        meta.list(1, STRUCT, 1);
        meta.begin(None); // ColumnChunk
        meta.i64(2, page_offset);
        meta.begin(Some(3)); // ColumnMetaData
        meta.i32(1, BYTE_ARRAY);
        meta.list(2, I32, 2);
        meta.zigzag(i64::from(PLAIN));
        meta.zigzag(i64::from(RLE));
        meta.list(3, BINARY, 1);
        meta.varint(column.len() as u64);
        meta.out.extend_from_slice(column.as_bytes());
        meta.i32(4, UNCOMPRESSED);
        meta.i64(5, n as i64);
        meta.i64(6, chunk_size);
        meta.i64(7, chunk_size);
        meta.i64(9, page_offset);
        meta.end();
        meta.end();
        meta.i64(2, chunk_size);
        meta.i64(3, n as i64);
        meta.end();
    }
    meta.binary(
        6,
        concat!("taiyi-rs ", env!("CARGO_PKG_VERSION")).as_bytes(),
    );
    meta.out.push(0); // end FileMetaData

    file.extend_from_slice(&meta.out);
    file.extend_from_slice(&(meta.out.len() as u32).to_le_bytes());
    file.extend_from_slice(b"PAR1");
    file
}

/// The `rows` strings of a file written by [`string_column_file`] (its single PLAIN data page),
/// checked: magic, page type, encoding, value count, page length and UTF-8. Files written by
/// other tools (dictionary pages, compression, several pages) are refused, not misread.
///
/// # Errors
/// What is wrong, as text.
pub fn read_string_column(bytes: &[u8], rows: usize) -> Result<Vec<String>, String> {
    let body = bytes
        .strip_prefix(b"PAR1")
        .filter(|_| bytes.ends_with(b"PAR1"))
        .ok_or("not a Parquet file")?;
    let mut r = Reader { b: body, at: 0 };
    let header = r.fields()?;
    let field = |id: i16| header.iter().find(|f| f.0 == id).map(|f| f.1);
    let (kind, size) = (field(1), field(3));
    let (Some(DATA_PAGE), Some(size)) = (kind.map(|v| v as i32), size) else {
        return Err("its first page is not a data page (not written by taiyi?)".into());
    };
    let page =
        r.b.get(r.at..r.at + usize::try_from(size).map_err(|_| "bad page size")?)
            .ok_or("the data page runs past the end")?;
    let mut out = Vec::with_capacity(rows);
    let mut at = 0;
    for i in 0..rows {
        let len = page
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .ok_or_else(|| format!("value {i} is missing (the page holds fewer than {rows})"))?;
        let v = page
            .get(at + 4..at + 4 + len)
            .ok_or_else(|| format!("value {i} runs past the page"))?;
        out.push(String::from_utf8(v.to_vec()).map_err(|_| format!("value {i} is not UTF-8"))?);
        at += 4 + len;
    }
    if at != page.len() {
        return Err(format!("the page holds more than {rows} values"));
    }
    Ok(out)
}

/// A Thrift compact-protocol reader: the integer fields of one struct, others skipped.
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, String> {
        let v = *self.b.get(self.at).ok_or("truncated Thrift data")?;
        self.at += 1;
        Ok(v)
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint too long".into())
    }

    fn zigzag(&mut self) -> Result<i64, String> {
        let v = self.varint()?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    /// One value of compact type `ty` (skipped unless an integer, which is returned).
    fn value(&mut self, ty: u8, depth: usize) -> Result<Option<i64>, String> {
        if depth > 16 {
            return Err("Thrift data nested too deeply".into());
        }
        match ty {
            1 | 2 => Ok(None),
            3 => self.byte().map(|_| None),
            4..=6 => self.zigzag().map(Some),
            7 => {
                self.at += 8;
                Ok(None)
            }
            8 => {
                let n = usize::try_from(self.varint()?).map_err(|_| "bad length")?;
                self.at = self.at.checked_add(n).ok_or("bad length")?;
                Ok(None)
            }
            9 | 10 => {
                let h = self.byte()?;
                let n = match h >> 4 {
                    15 => usize::try_from(self.varint()?).map_err(|_| "bad length")?,
                    n => usize::from(n),
                };
                for _ in 0..n {
                    self.value(h & 0x0f, depth + 1)?;
                }
                Ok(None)
            }
            12 => {
                self.skip_struct(depth + 1)?;
                Ok(None)
            }
            _ => Err(format!("Thrift type {ty} not expected here")),
        }
    }

    fn skip_struct(&mut self, depth: usize) -> Result<(), String> {
        loop {
            let h = self.byte()?;
            if h == 0 {
                return Ok(());
            }
            if h >> 4 == 0 {
                self.zigzag()?;
            }
            self.value(h & 0x0f, depth)?;
        }
    }

    /// The (id, value) of the integer fields of the struct at the cursor (read to its end).
    fn fields(&mut self) -> Result<Vec<(i16, i64)>, String> {
        let (mut out, mut last) = (Vec::new(), 0i16);
        loop {
            let h = self.byte()?;
            if h == 0 {
                return Ok(out);
            }
            let id = match h >> 4 {
                0 => i16::try_from(self.zigzag()?).map_err(|_| "bad field id")?,
                d => last.checked_add(i16::from(d)).ok_or("bad field id")?,
            };
            last = id;
            if let Some(v) = self.value(h & 0x0f, 0)? {
                out.push((id, v));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_columns_read_back() {
        for values in [
            vec![],
            vec!["a.jpg".to_string()],
            (0..40).map(|i| format!("照片/{i}.png")).collect::<Vec<_>>(),
        ] {
            let file = string_column_file("image_path", &values);
            assert_eq!(read_string_column(&file, values.len()), Ok(values.clone()));
            if !values.is_empty() {
                assert!(read_string_column(&file, values.len() - 1).is_err());
                assert!(read_string_column(&file, values.len() + 1).is_err());
            }
            for cut in [0, 3, 10, file.len() / 2] {
                assert!(read_string_column(&file[..cut], values.len().max(1)).is_err());
            }
        }
    }

    #[test]
    fn thrift_compact_encodings() {
        let mut t = Thrift::new();
        t.i32(1, -1); // delta 1, zigzag(-1) = 1
        t.i64(20, 300); // delta 19: long form, zigzag(300) = 600 = 0xd8 0x04
        t.list(21, I32, 20); // delta 1, long list header
        assert_eq!(
            t.out,
            vec![0x15, 0x01, 0x06, 0x28, 0xd8, 0x04, 0x19, 0xf5, 0x14]
        );
    }

    #[test]
    fn file_has_magic_and_footer_length() {
        let f = string_column_file("image_path", &["a.png".to_string(), "b/c.jpg".to_string()]);
        assert_eq!(&f[..4], b"PAR1");
        assert_eq!(&f[f.len() - 4..], b"PAR1");
        let len = u32::from_le_bytes([
            f[f.len() - 8],
            f[f.len() - 7],
            f[f.len() - 6],
            f[f.len() - 5],
        ]);
        // The footer starts right after the page: header + 2 * 4 length bytes + 12 value bytes.
        let footer_start = f.len() - 8 - len as usize;
        assert!(footer_start > 4 + 8 + 12);
        assert_eq!(&f[footer_start - 7..footer_start], b"b/c.jpg");
    }
}
