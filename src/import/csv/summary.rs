//! What reading a file found out about it, for the import's summary: how it was read
//! (encoding, delimiter, which column fed which field), what was skipped (title and
//! footer lines), the reasons seen, and warnings about columns that look like a field
//! but feed none. Gathered while the rows are read; printed by `import`, logged by the
//! daemon's sync.

use std::collections::BTreeSet;

use crate::config::clients::Field;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ReadSummary {
    /// The encoding the file was read in (`UTF-8`, `UTF-16LE`, `windows-1252`...), and
    /// whether it was detected rather than set by `[clients] encoding`.
    pub encoding: Option<(&'static str, bool)>,
    /// The delimiter, and whether it was detected.
    pub delimiter: Option<(u8, bool)>,
    /// Lines that are not data (a report's title lines, its footer), by line number.
    pub skipped_lines: Vec<(u64, String)>,
    /// The header each field was read from.
    pub columns: Vec<(Field, String)>,
    /// Churn-reason slugs seen in the rows.
    pub reasons_seen: BTreeSet<String>,
    /// Things worth a look that changed nothing (a column that looks like a field but
    /// feeds none...), as sentences.
    pub warnings: Vec<String>,
}

/// Past this many different reasons, more are not listed (a column of free text).
const MAX_REASONS_SEEN: usize = 100;

impl ReadSummary {
    /// Notes a row's churn reason; allocates only for a reason not seen before.
    pub(crate) fn saw_reason(&mut self, reason: Option<&str>) {
        if let Some(reason) = reason
            && self.reasons_seen.len() < MAX_REASONS_SEEN
            && !self.reasons_seen.contains(reason)
        {
            self.reasons_seen.insert(reason.to_owned());
        }
    }

    /// The summary as lines for a person, most useful first.
    pub(crate) fn lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if !self.columns.is_empty() {
            let mapped: Vec<String> = self
                .columns
                .iter()
                .map(|(field, header)| format!("{} ← \"{header}\"", field.as_str()))
                .collect();
            lines.push(format!("columns: {}", mapped.join(", ")));
        }
        let how = |detected: bool| if detected { "detected" } else { "set" };
        if let Some((encoding, detected)) = self.encoding {
            lines.push(format!("encoding: {encoding} ({})", how(detected)));
        }
        if let Some((delimiter, detected)) = self.delimiter {
            let name = match delimiter {
                b',' => "comma".to_string(),
                b';' => "semicolon".to_string(),
                b'\t' => "tab".to_string(),
                other => format!("{:?}", char::from(other)),
            };
            lines.push(format!("delimiter: {name} ({})", how(detected)));
        }
        for (line, text) in &self.skipped_lines {
            lines.push(format!("line {line} skipped (not data): {text}"));
        }
        if !self.reasons_seen.is_empty() {
            let seen: Vec<&str> = self.reasons_seen.iter().map(String::as_str).collect();
            lines.push(format!("churn reasons: {}", seen.join(", ")));
        }
        for warning in &self.warnings {
            lines.push(format!("warning: {warning}"));
        }
        lines
    }
}
