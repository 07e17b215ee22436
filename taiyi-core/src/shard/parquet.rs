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

#[cfg(test)]
mod tests {
    use super::*;

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
