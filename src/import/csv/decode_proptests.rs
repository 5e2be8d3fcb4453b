//! Property test for reading in another encoding: any rows a CSV writer wrote (accents,
//! quotes, delimiters and line breaks inside values, CRLF), saved as UTF-16 or
//! Windows-1252 and handed over in any pieces, read as the same rows on the same lines
//! as the UTF-8 file.

use chrono::TimeZone;
use proptest::prelude::*;

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

fn read_all<R: Read>(reader: R) -> Result<(Vec<Row>, ReadSummary), String> {
    let mut rows = read_rows(reader, now(), &CsvFormat::default()).map_err(|e| e.to_string())?;
    let read: Vec<Row> = rows.by_ref().collect();
    Ok((read, rows.into_summary()))
}

/// A name as a CRM holds it: letters Windows-1252 can write, and the characters a CSV
/// writer must quote.
fn name() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec![
            "a", "Z", " ", "ü", "é", "ñ", "Ñ", "ë", "ç", "ß", "€", ",", ";", "\t", "\"", "\n",
            "\r\n", "-", "'",
        ]),
        1..12,
    )
    .prop_map(|pieces| pieces.concat())
}

fn file(names: &[String], delimiter: u8) -> String {
    let mut writer = csv::WriterBuilder::new()
        .delimiter(delimiter)
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    let mut write = |record: &[&str]| {
        writer
            .write_record(record)
            .expect("writing to memory cannot fail");
    };
    write(&["email", "churned_at", "name", "notes"]);
    for (index, name) in names.iter().enumerate() {
        let email = format!("c{index}@x.example");
        write(&[&email, "2026-01-31", name, name]);
    }
    let bytes = writer.into_inner().expect("flushing to memory cannot fail");
    String::from_utf8(bytes).expect("written from strings")
}

proptest! {
    #[test]
    fn any_rows_read_the_same_in_any_encoding_and_any_pieces(
        names in prop::collection::vec(name(), 1..20),
        delimiter in prop::sample::select(vec![b',', b';', b'\t']),
        sizes in prop::collection::vec(1usize..9, 1..4),
    ) {
        let text = file(&names, delimiter);
        let (expected, summary) = read_all(text.as_bytes()).expect("the header is read");
        prop_assert_eq!(expected.len(), names.len());
        prop_assert_eq!(summary.delimiter, Some((delimiter, true)));
        let mut utf16le = vec![0xff, 0xfe];
        let mut utf16be = vec![0xfe, 0xff];
        for unit in text.encode_utf16() {
            utf16le.extend_from_slice(&unit.to_le_bytes());
            utf16be.extend_from_slice(&unit.to_be_bytes());
        }
        let (windows_1252, _, unmappable) = encoding_rs::WINDOWS_1252.encode(&text);
        prop_assert!(!unmappable);
        let mut cases = vec![("UTF-16LE", utf16le), ("UTF-16BE", utf16be)];
        // Told from UTF-8 when its accents are mostly not UTF-8 (see is_windows_1252).
        if super::decode::is_windows_1252(&windows_1252, true) {
            cases.push(("windows-1252", windows_1252.into_owned()));
        }
        for (encoding, bytes) in cases {
            let pieces = Pieces { data: &bytes, sizes: sizes.clone(), next: 0 };
            let (rows, summary) = read_all(pieces).expect("the header is read");
            prop_assert_eq!(&rows, &expected, "{}", encoding);
            prop_assert_eq!(summary.encoding, Some((encoding, true)));
            prop_assert_eq!(summary.delimiter, Some((delimiter, true)));
        }
    }
}
