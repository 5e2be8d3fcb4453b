//! `--format csv`: every table a command prints, as RFC 4180 CSV on standard output
//! (UTF-8, a header row, CRLF line ends, fields quoted where they need it).
//!
//! A text cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return is written
//! with a leading `'`, so a spreadsheet shows it as text instead of running it as a
//! formula (a name or an email reply is the recipient's text, not ours). A cell that is a
//! plain number, such as `-3` or `+1.5`, is left as it is: a spreadsheet reads it as that
//! number, never as a formula. This module must not decide which rows or columns a
//! command prints.

use std::io::Write;

use super::Format;

/// Refuses `--format csv` for a command whose output is not a table, before it does
/// anything.
pub(super) fn refuse(format: Format, command: &str) -> anyhow::Result<()> {
    if format == Format::Csv {
        anyhow::bail!(
            "`winback {command}` has no table to give as CSV; use --format table or --format json"
        );
    }
    Ok(())
}

/// A CSV table being written, one row at a time (nothing is held between rows).
pub(crate) struct CsvOut<W: Write> {
    writer: csv::Writer<W>,
}

impl CsvOut<std::io::Stdout> {
    /// A table on standard output, its header row written.
    pub(crate) fn stdout(header: &[&str]) -> anyhow::Result<Self> {
        CsvOut::new(std::io::stdout(), header)
    }
}

impl<W: Write> CsvOut<W> {
    pub(crate) fn new(out: W, header: &[&str]) -> anyhow::Result<Self> {
        let writer = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .from_writer(out);
        let mut table = CsvOut { writer };
        table.row(header.iter().copied())?;
        Ok(table)
    }

    /// Writes one row, each cell neutralised by [`neutralise`].
    pub(crate) fn row<'a>(
        &mut self,
        cells: impl IntoIterator<Item = &'a str>,
    ) -> anyhow::Result<()> {
        for cell in cells {
            self.writer.write_field(neutralise(cell).as_bytes())?;
        }
        // An empty record after the fields ends the row.
        self.writer.write_record(None::<&[u8]>)?;
        Ok(())
    }

    /// Flushes what is written; the table is complete.
    pub(crate) fn finish(mut self) -> anyhow::Result<()> {
        self.writer.flush()?;
        Ok(())
    }
}

/// `cell` as a spreadsheet may open it safely: a leading `'` before a formula-like start.
pub(crate) fn neutralise(cell: &str) -> std::borrow::Cow<'_, str> {
    let risky = cell.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if risky && !is_number(cell) {
        std::borrow::Cow::Owned(format!("'{cell}"))
    } else {
        std::borrow::Cow::Borrowed(cell)
    }
}

/// A plain decimal number: an optional sign, digits, and an optional fraction.
fn is_number(cell: &str) -> bool {
    let unsigned = cell.strip_prefix(['+', '-']).unwrap_or(cell);
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    !whole.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && fraction.bytes().all(|b| b.is_ascii_digit())
        && !(unsigned.ends_with('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(header: &[&str], rows: &[&[&str]]) -> String {
        let mut buffer = Vec::new();
        let mut table = CsvOut::new(&mut buffer, header).unwrap();
        for row in rows {
            table.row(row.iter().copied()).unwrap();
        }
        table.finish().unwrap();
        String::from_utf8(buffer).unwrap()
    }

    #[test]
    fn awkward_text_round_trips_through_a_csv_reader() {
        let name = "Smith, \"Jo\"\nÅsa";
        let text = write(&["name", "formula", "count"], &[&[name, "=1+2", "-3"]]);
        assert!(text.starts_with("name,formula,count\r\n"), "{text}");
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        assert_eq!(reader.headers().unwrap(), vec!["name", "formula", "count"]);
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 1);
        assert_eq!(&rows[0][0], name);
        // The one change: a formula-like text cell gets a leading quote.
        assert_eq!(&rows[0][1], "'=1+2");
        assert_eq!(&rows[0][2], "-3");
    }

    #[test]
    fn formula_starts_are_neutralised_and_numbers_left() {
        for risky in [
            "=HYPERLINK(\"x\")",
            "+cmd",
            "-2+3",
            "@SUM(A1)",
            "\tx",
            "\rx",
            "-",
            "+.5",
        ] {
            assert_eq!(neutralise(risky), format!("'{risky}"), "{risky:?}");
        }
        for plain in ["-3", "+1.5", "42", "ann@acme.com", "", "a=b"] {
            assert_eq!(neutralise(plain), plain, "{plain:?}");
        }
    }
}
