//! TOML and serde's own messages ("invalid type: string \"90\", expected i64") turned into
//! sentences a marketer can act on, naming the key the way validation does
//! (`campaign[1].quiet_days`) and showing the line as it should be written.
//!
//! Pure text in, text out: no file access. Anything not recognised keeps the parser's
//! own words, so no mistake is ever hidden behind a wrong explanation.

/// Curly quotes that word processors substitute for straight ones.
const CURLY_QUOTES: [char; 6] = [
    '\u{201c}', '\u{201d}', '\u{2018}', '\u{2019}', '\u{201e}', '\u{201a}',
];

/// The key the error's line sets, as validation names it, and the message in plain words.
pub(super) fn explain(text: &str, line: Option<usize>, message: &str) -> (String, String) {
    let line_text = line
        .and_then(|n| text.lines().nth(n.saturating_sub(1)))
        .unwrap_or("");
    let (bare_key, value) = match line_text.split_once('=') {
        Some((key, value)) if !line_text.trim_start().starts_with('[') => {
            (key.trim().trim_matches('"'), value.trim())
        }
        _ => ("", ""),
    };
    let key = match (bare_key, line) {
        ("", _) | (_, None) => String::new(),
        (bare, Some(n)) => format!("{}{bare}", table_path(text, n)),
    };
    let fixed = |value: &str| format!("{bare_key} = {value}");

    if line_text.contains(CURLY_QUOTES) {
        // Only the quotes around the value: an apostrophe inside the text may stay curly.
        let inner = value
            .trim_start_matches(CURLY_QUOTES)
            .trim_end_matches(CURLY_QUOTES)
            .trim_matches('"');
        let straight = format!("\"{inner}\"");
        let example = if bare_key.is_empty() {
            String::new()
        } else {
            format!(": {}", fixed(&straight))
        };
        return (
            key,
            format!(
                "has curly quotes (“ ” or ‘ ’), as a word processor types them; the configuration needs straight quotes (\"){example}"
            ),
        );
    }

    if let Some(rest) = message.strip_prefix("invalid type: ")
        && let Some((found, expected)) = rest.rsplit_once(", expected ")
        && let Some(sentence) = wrong_type(bare_key, found.trim(), expected.trim(), &fixed)
    {
        return (key, sentence);
    }
    if message.starts_with("string values must be quoted")
        || message.starts_with("invalid float")
        || message.starts_with("invalid number")
    {
        let example = example(bare_key);
        let sentence = if value.is_empty() {
            format!(
                "has no value; write one after the = sign, e.g. {}",
                fixed(&example)
            )
        } else if example.starts_with(|c: char| c.is_ascii_digit()) {
            format!(
                "must be a whole number, written in digits: {}",
                fixed(&example)
            )
        } else {
            format!(
                "{value} needs double quotes around it (text is written in quotes, numbers without): {}",
                fixed(&format!("\"{value}\""))
            )
        };
        return (key, sentence);
    }
    if message.starts_with("duplicate key") {
        return (
            key,
            "is written twice in the same section; keep one of them (each [[campaign]] and [[campaign.step]] starts a new section)".to_string(),
        );
    }
    if let Some(rest) = message.strip_prefix("unknown field `")
        && let Some((unknown, expected)) = rest.split_once('`')
    {
        let closest = expected
            .split('`')
            .skip(1)
            .step_by(2)
            .map(|known| (super::hints::edit_distance(known, unknown), known))
            .filter(|(distance, _)| *distance <= 3)
            .min();
        let hint = match closest {
            Some((_, known)) => format!(" (did you mean `{known}`?)"),
            None => String::new(),
        };
        return (
            key,
            format!("{message}{hint}; remove it or check its spelling"),
        );
    }
    (key, message.to_string())
}

/// The sentence for a value of the wrong type, when the types are known.
fn wrong_type(
    bare_key: &str,
    found: &str,
    expected: &str,
    fixed: &dyn Fn(&str) -> String,
) -> Option<String> {
    let quoted = found
        .strip_prefix("string \"")
        .and_then(|s| s.strip_suffix('"'));
    let number = matches!(expected, "i64" | "i32" | "u32" | "u64" | "an integer");
    if number {
        return Some(match quoted {
            Some(text) if text.trim().parse::<i64>().is_ok() => format!(
                "is written as text (\"{text}\"); write the number without quotes: {}",
                fixed(text.trim())
            ),
            _ if found.starts_with("floating point") => format!(
                "must be a whole number, without a decimal point, e.g. {}",
                fixed(&example(bare_key))
            ),
            _ if found.contains(" as i128") || found.contains(" as u128") => format!(
                "is far too large; write a number of days, hours or messages, e.g. {}",
                fixed(&example(bare_key))
            ),
            _ => format!(
                "must be a whole number, written without quotes, e.g. {}",
                fixed(&example(bare_key))
            ),
        });
    }
    if expected == "a sequence" {
        let item = quoted.map_or_else(|| "…".to_string(), |t| format!("\"{t}\""));
        return Some(format!(
            "must be a list in square brackets, even with one value: {}",
            fixed(&format!("[{item}]"))
        ));
    }
    if expected == "a string" {
        if found == "sequence" {
            return Some(format!(
                "must be one value in double quotes, not a list: {}",
                fixed(&example(bare_key))
            ));
        }
        let literal = found
            .split_once('`')
            .and_then(|(_, rest)| rest.split_once('`'))
            .map(|(literal, _)| literal);
        return Some(match literal {
            Some(literal) => format!(
                "must be text in double quotes: {}",
                fixed(&format!("\"{literal}\""))
            ),
            None => format!(
                "must be text in double quotes, e.g. {}",
                fixed(&example(bare_key))
            ),
        });
    }
    None
}

/// A value that fits `key`, for the examples in messages.
fn example(key: &str) -> String {
    let example = match key {
        "quiet_days" => "90",
        "catch_up_hours" => "4",
        "after_days" => "30",
        "connections" => "4",
        "max_per_minute" => "60",
        "max_per_day" => "2000",
        "timeout_seconds" => "60",
        "retry_first_minutes" => "5",
        "retry_give_up_hours" => "72",
        "send_at" => "\"0 10 * * Tue-Thu\"",
        "timezone" => "\"America/New_York\"",
        "exclude_reasons" => "[\"we_ended\"]",
        "name" => "\"former-clients\"",
        "kind" => "\"survey\"",
        "template" => "\"survey\"",
        "url" => "\"smtp://smtp.example.net:587\"",
        "from" | "reply_to" => "\"Acme Customer Success <success@acme.example>\"",
        "public_url" => "\"https://winback.acme.example\"",
        "listen" => "\"127.0.0.1:8080\"",
        "return_path" => "\"bounces@acme.example\"",
        "feedback_id" => "\"acme\"",
        "mailboxes" => "[\"imaps://winback@imap.acme.example/INBOX\"]",
        "processed_folder" => "\"winback\"",
        "notify" => "\"success@acme.example\"",
        "soft_bounce_limit" => "3",
        "soft_bounce_days" => "14",
        _ => "\"…\"",
    };
    example.to_string()
}

/// `campaign[2].step[1].` for a line inside the second campaign's first step, `smtp.` for
/// one in `[smtp]`, empty at the top level.
fn table_path(text: &str, line: usize) -> String {
    let mut path = String::new();
    let mut campaigns = 0;
    let mut steps = 0;
    for header in text.lines().take(line.saturating_sub(1)) {
        let header = header.trim();
        if header == "[[campaign]]" {
            campaigns += 1;
            steps = 0;
            path = format!("campaign[{campaigns}].");
        } else if header == "[[campaign.step]]" {
            steps += 1;
            path = format!("campaign[{campaigns}].step[{steps}].");
        } else if let Some(name) = header.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            path = format!("{}.", name.trim());
        }
    }
    path
}
