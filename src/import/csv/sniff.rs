//! What the lines around the data look like: which delimiter a file uses (found in its
//! header line, outside quotes), and whether a record is a report's title or footer line
//! rather than a row. Plain functions over bytes: no I/O, no parsing of values.

use csv::ByteRecord;

/// The delimiters a CRM export may use, in the order a tie is settled.
const CANDIDATES: [u8; 4] = [b',', b';', b'\t', b'|'];
/// Lines looked at for the header: title lines of a report come first.
pub(super) const MAX_LINES_BEFORE_HEADER: usize = 20;
/// A skipped line is quoted in the summary up to this many characters.
const MAX_SHOWN_CHARS: usize = 80;

/// The delimiter of the text at the start of a file (`whole`: it is the whole file), or
/// `None` when no line has one (a file of one column).
///
/// It is the one with which a header line is found first (`is_header`: the line names
/// the columns winback needs), then, for the same line, the one [`by_counts`] prefers;
/// when no line reads as a header, [`by_counts`] alone (the error then names the first
/// line, as read with it).
pub(super) fn delimiter(
    text: &[u8],
    whole: bool,
    is_header: impl Fn(&ByteRecord) -> bool,
) -> Option<u8> {
    let guess = by_counts(text, whole);
    let complete = if whole {
        text
    } else {
        match text.iter().rposition(|&byte| byte == b'\n') {
            Some(end) => &text[..=end],
            None => text,
        }
    };
    // The header's line among the non-blank ones, and the delimiter that found it.
    let mut found: Option<(usize, u8)> = None;
    let others = CANDIDATES.into_iter().filter(|&c| Some(c) != guess);
    for candidate in guess.into_iter().chain(others) {
        if !complete.contains(&candidate) {
            continue;
        }
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(candidate)
            .terminator(csv::Terminator::Any(b'\n'))
            .from_reader(complete);
        let mut record = ByteRecord::new();
        let mut line = 0;
        while line < MAX_LINES_BEFORE_HEADER && found.is_none_or(|(at, _)| line < at) {
            if !matches!(reader.read_byte_record(&mut record), Ok(true)) {
                break;
            }
            if record
                .iter()
                .all(|cell| cell.iter().all(u8::is_ascii_whitespace))
            {
                continue;
            }
            if is_header(&record) {
                found = Some((line, candidate));
                break;
            }
            line += 1;
        }
    }
    found.map(|(_, candidate)| candidate).or(guess)
}

/// The delimiter by how often each appears, outside quotes, on the first lines.
///
/// The header is the first line whose count of a delimiter is the same on the next
/// non-blank line: a report's title (`Lost accounts, by owner`) is followed by a header
/// with another count. Of the delimiters that have such a line, the one with the most
/// columns wins, then the one found first: in a semicolon file the decimal commas
/// (`1.234,56`) are never more than its semicolons, and its header has none.
fn by_counts(text: &[u8], whole: bool) -> Option<u8> {
    let counts = line_counts(text, whole);
    // (columns, line, candidate order) of the best line found for each candidate.
    let mut best: Option<(usize, usize, usize)> = None;
    let mut widest: Option<(usize, usize, usize)> = None;
    for (order, _) in CANDIDATES.iter().enumerate() {
        let column = |line: &[usize; 4]| line[order];
        let steady = counts.windows(2).position(|pair| {
            let here = column(&pair[0]);
            here > 0 && here == column(&pair[1])
        });
        let steady = steady.or_else(|| {
            // A header followed by nothing (or only by footer lines) is steady too.
            (counts.len() == 1 && column(&counts[0]) > 0).then_some(0)
        });
        if let Some(line) = steady {
            let found = (column(&counts[line]), line, order);
            if best.is_none_or(|(columns, at, _)| {
                found.0 > columns || (found.0 == columns && found.1 < at)
            }) {
                best = Some(found);
            }
        }
        let most = counts
            .iter()
            .map(column)
            .enumerate()
            .max_by_key(|&(line, here)| (here, std::cmp::Reverse(line)))
            .filter(|&(_, here)| here > 0);
        if let Some((line, here)) = most
            && widest
                .is_none_or(|(columns, at, _)| here > columns || (here == columns && line < at))
        {
            widest = Some((here, line, order));
        }
    }
    best.or(widest).map(|(_, _, order)| CANDIDATES[order])
}

/// For each of the first non-blank lines, how often each candidate delimiter appears in
/// it outside quotes. A line cut by the end of `text` counts only if `text` is the file.
fn line_counts(text: &[u8], whole: bool) -> Vec<[usize; 4]> {
    let mut lines = Vec::new();
    let mut counts = [0; 4];
    let mut in_quotes = false;
    let mut blank = true;
    for &byte in text {
        if byte == b'"' {
            in_quotes = !in_quotes;
        }
        if in_quotes {
            blank = false;
            continue;
        }
        if byte == b'\n' {
            if !blank {
                lines.push(counts);
                if lines.len() > MAX_LINES_BEFORE_HEADER {
                    return lines;
                }
            }
            counts = [0; 4];
            blank = true;
        } else if let Some(order) = CANDIDATES.iter().position(|&c| c == byte) {
            counts[order] += 1;
        } else if !byte.is_ascii_whitespace() {
            blank = false;
        }
    }
    if whole && !blank {
        lines.push(counts);
    }
    lines
}

/// How a report's footer lines start (Salesforce in English and German): a line that
/// says so is a footer even right after the data.
const FOOTER_WORDING: [&str; 8] = [
    "grand total",
    "gesamtsumme",
    "confidential",
    "vertraulich",
    "copyright",
    "\u{a9}",
    "generated by",
    "erstellt von",
];

/// Whether a record after the data looks like a report's footer (`Grand Totals (2
/// records)`, `Confidential Information - Do Not Distribute`, `Generated By: …`) in a
/// file of several columns: one non-empty cell, without an address in it, that is the
/// first cell, and that follows a blank line (`after_blank`) or another footer line
/// (`after_footer`) or starts with a footer's wording; or, after a footer line, the
/// report's totals (one amount, in its column). Anything else is a row: a last row with
/// only a name (`;;Carl Weber;;`) or a mistyped address (`bob(at)x.example,,,`) is an
/// error to show, never a footer to skip.
pub(super) fn is_footer_like(
    record: &ByteRecord,
    columns: usize,
    after_blank: bool,
    after_footer: bool,
) -> bool {
    if columns < 2 {
        return false;
    }
    let mut cells = record
        .iter()
        .enumerate()
        .filter(|(_, cell)| !cell.iter().all(u8::is_ascii_whitespace));
    let (Some((at, only)), None) = (cells.next(), cells.next()) else {
        return false;
    };
    if only.contains(&b'@') {
        return false;
    }
    if at == 0 {
        after_blank || after_footer || has_footer_wording(only)
    } else {
        after_footer
            && only.iter().any(u8::is_ascii_digit)
            && !only.iter().any(u8::is_ascii_alphabetic)
    }
}

fn has_footer_wording(cell: &[u8]) -> bool {
    let cell = cell.trim_ascii_start();
    FOOTER_WORDING.iter().any(|wording| {
        cell.get(..wording.len())
            .is_some_and(|start| start.eq_ignore_ascii_case(wording.as_bytes()))
    })
}

/// A record as a line of text for the summary: its non-empty cells, cut short if long.
pub(super) fn shown(record: &ByteRecord, delimiter: u8) -> String {
    let cells: Vec<String> = record
        .iter()
        .map(|cell| String::from_utf8_lossy(cell).trim().to_owned())
        .filter(|cell| !cell.is_empty())
        .collect();
    let separator = match delimiter {
        b',' => ", ".to_owned(),
        other => format!(" {} ", char::from(other)),
    };
    let text = cells.join(&separator);
    match text.char_indices().nth(MAX_SHOWN_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delimiter_is_the_headers() {
        let cases: [(&str, &[u8], bool, Option<u8>); 14] = [
            (
                "rows with more semicolons than the header has commas: the header decides",
                b"email,churned_at,name\na@b.c,2026-01-01,A;;;;\nb@b.c,2026-01-01,B;;;;\n",
                true,
                Some(b','),
            ),
            ("comma", b"email,churned_at\na@b.c,2026-01-01\n", true, Some(b',')),
            ("semicolon", b"email;churned_at;name\na@b.c;2026-01-01;A\n", true, Some(b';')),
            ("tab", b"email\tchurned_at\tname\na@b.c\t2026-01-01\tM\xc3\xbcller, J\n", true, Some(b'\t')),
            ("pipe", b"email|churned_at\na@b.c|2026-01-01\n", true, Some(b'|')),
            (
                "decimal commas in a semicolon file, as many as its semicolons",
                b"E-Mail;Umsatz;Rabatt\na@b.c;1.234,56;0,5\nb@b.c;12,00;1,5\n",
                true,
                Some(b';'),
            ),
            (
                "commas inside quotes do not count",
                b"email;name\n\"a@b.c\";\"Lee, Ann, Dr.\"\n",
                true,
                Some(b';'),
            ),
            (
                "a title with commas, then a blank line, then the header",
                b"Lost accounts, by owner, 2025\n\nemail;churned_at;name;company\na@b.c;2026-01-01;A;B\n",
                true,
                Some(b';'),
            ),
            (
                "quoted title lines before a comma header",
                b"\"Lost Accounts\"\n\"As of 11/01/2026\"\n\nemail,churned_at,name\na@b.c,2026-01-01,A\n",
                true,
                Some(b','),
            ),
            ("header only", b"email;churned_at\n", true, Some(b';')),
            ("header then a footer", b"email;churned_at\n\"Grand Totals (0 records)\"\n", true, Some(b';')),
            ("one column", b"email\na@b.c\n", true, None),
            ("empty", b"", true, None),
            (
                "a cut last line is not counted",
                b"email,churned_at\na@b.c,2026-01-01\nx;y;z;w;v",
                false,
                Some(b','),
            ),
        ];
        let is_header = |record: &ByteRecord| record.iter().any(|cell| cell == b"email");
        for (case, text, whole, expected) in cases {
            assert_eq!(delimiter(text, whole, is_header), expected, "case: {case}");
        }
    }

    #[test]
    fn footer_lines_have_one_cell_and_no_address() {
        let record = |cells: &[&str]| ByteRecord::from(cells.to_vec());
        let footer = |cells: &[&str], columns, after_blank, after_footer| {
            is_footer_like(&record(cells), columns, after_blank, after_footer)
        };
        // Footer wording needs nothing before it; other lines need a blank or a footer.
        assert!(footer(&["Grand Totals (2 records)"], 5, false, false));
        assert!(footer(
            &["Gesamtsummen (4 Datens\u{e4}tze)", ""],
            2,
            false,
            false
        ));
        assert!(footer(
            &["  Confidential Information", " ", ""],
            3,
            false,
            false
        ));
        assert!(footer(&["Vertrauliche Informationen"], 4, false, false));
        assert!(footer(&["COPYRIGHT (c) 2025"], 4, false, false));
        assert!(footer(&["\u{a9} 2025 Acme"], 4, false, false));
        assert!(footer(&["Generated By:  Anna"], 4, false, false));
        assert!(footer(&["Erstellt von:  Anna"], 4, false, false));
        assert!(footer(&["Acme Software Inc.", "", ""], 3, true, false));
        assert!(footer(&["Acme Software Inc."], 3, false, true));
        // The totals row: one amount after a footer line.
        assert!(footer(&["", "", "16,700.50", ""], 4, false, true));
        assert!(footer(&["", "", "32.680,50 \u{20ac}"], 3, false, true));
        // Rows: a last row with a name only, or an address mistyped.
        assert!(!footer(&["", "", "Carl Weber", "", ""], 5, false, false));
        assert!(!footer(&["", "", "Carl Weber", "", ""], 5, true, true));
        assert!(!footer(&["bob(at)x.example", "", "", ""], 4, false, false));
        assert!(!footer(&["", "", "16,700.50", ""], 4, true, false));
        assert!(!footer(&["", "Confidential"], 2, false, true));
        assert!(!footer(&["Grand Totals (2 records)"], 1, true, true));
        assert!(!footer(&["ann@acme.com"], 5, true, true));
        assert!(!footer(&["ann@acme.com", "2026-01-01"], 2, true, true));
        assert!(!footer(&["Ann", "Lee"], 2, true, true));
        assert!(!footer(&["", " "], 2, true, true));
    }

    #[test]
    fn skipped_lines_are_shown_short() {
        let record = ByteRecord::from(vec!["Generated By: Jürgen Müller", "", " 11/1/2026 "]);
        assert_eq!(
            shown(&record, b','),
            "Generated By: Jürgen Müller, 11/1/2026"
        );
        assert_eq!(
            shown(&record, b';'),
            "Generated By: Jürgen Müller ; 11/1/2026"
        );
        let long = ByteRecord::from(vec!["é".repeat(100)]);
        assert_eq!(shown(&long, b','), format!("{}…", "é".repeat(80)));
    }
}
