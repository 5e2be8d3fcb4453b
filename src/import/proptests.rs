//! Property tests for the CSV reader: any bytes are read without a panic, the same way
//! however the input is split across reads, and rows written by a CSV writer (quotes,
//! commas, line breaks inside values, any column order, CRLF) read back as written, each
//! on the line it starts on.

use chrono::TimeZone;

use super::*;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap()
}

/// Hands the input over in pieces of the given sizes (cycling), never more than asked.
struct Pieces<'a> {
    data: &'a [u8],
    sizes: Vec<usize>,
    next: usize,
}

impl Read for Pieces<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let size = self.sizes[self.next % self.sizes.len()];
        self.next += 1;
        let n = size.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

type Outcome = Result<Vec<Result<(u64, ClientRecord), RowError>>, String>;

fn read_all<R: Read>(reader: R) -> Outcome {
    let rows = read_rows(reader, now()).map_err(|error| error.to_string())?;
    Ok(rows.collect())
}

/// A pipe whose writer sent the byte order mark on its own: the CSV parser strips a BOM
/// from its first buffer only, and took a first buffer that held nothing else for the
/// end of the file ("the file is empty").
#[test]
fn a_byte_order_mark_read_on_its_own_is_not_the_end_of_the_file() {
    let file = "\u{feff}email,churned_at\nann@x.example,2026-01-31\n";
    let expected = read_all(file.as_bytes());
    assert!(
        matches!(&expected, Ok(rows) if rows.len() == 1 && rows[0].is_ok()),
        "{expected:?}"
    );
    for sizes in [
        vec![3],
        vec![3, 1],
        vec![3, 64],
        vec![1, 2, 64],
        vec![2, 1, 64],
    ] {
        let pieces = Pieces {
            data: file.as_bytes(),
            sizes: sizes.clone(),
            next: 0,
        };
        assert_eq!(read_all(pieces), expected, "reads of {sizes:?}");
    }
}
