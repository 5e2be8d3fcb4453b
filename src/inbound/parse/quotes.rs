//! A reply's own text without what it quotes: `>` lines, attributions ("On ... wrote:")
//! and quote-header blocks in several languages, signatures, HTML quote blocks.

/// An HTML reply up to where it starts quoting (a `<blockquote>`, Gmail's
/// `gmail_quote`, Outlook's `divRplyFwdMsg`).
pub(super) fn cut_html_quote(html: &str) -> &str {
    let lower = html.to_ascii_lowercase();
    let cut = [
        "<blockquote",
        "gmail_quote",
        "divrplyfwdmsg",
        "appendonsend",
    ]
    .iter()
    .filter_map(|mark| lower.find(mark))
    .min();
    match cut {
        Some(at) => {
            // Back to the start of the tag the mark is in.
            let start = lower[..at].rfind('<').unwrap_or(at);
            html.get(..start).unwrap_or(html)
        }
        None => html,
    }
}

/// Headers that open a quoted message, per language (`From:`/`Von:`/`De:`...), when two
/// or more of them follow each other.
const QUOTE_HEADER_NAMES: [&str; 16] = [
    "from:",
    "sent:",
    "to:",
    "subject:",
    "date:",
    "von:",
    "gesendet:",
    "an:",
    "betreff:",
    "de :",
    "de:",
    "envoyé :",
    "objet :",
    "enviado:",
    "asunto:",
    "da:",
];

/// Lines that open a quoted or forwarded message: the rest is not the person's text.
const QUOTE_OPENERS: [&str; 12] = [
    "-----original message-----",
    "----- original message -----",
    "-----ursprüngliche nachricht-----",
    "----- ursprüngliche nachricht -----",
    "-----message d'origine-----",
    "-------- message original --------",
    "-----mensaje original-----",
    "-----messaggio originale-----",
    "-----oorspronkelijk bericht-----",
    "-----mensagem original-----",
    "________________________________",
    "---------- forwarded message ---------",
];

/// Words that end an attribution line (`On Mon, 1 Jan 2026, Ann <a@b> wrote:`), per
/// language.
const WROTE: [&str; 9] = [
    "wrote:",
    "schrieb:",
    "a écrit :",
    "a écrit:",
    "escribió:",
    "ha scritto:",
    "schreef:",
    "escreveu:",
    "geschreven:",
];

/// Attributions that put the name after the verb (`Am … schrieb Ann <a@b>:`), per
/// language: how they start, and the verb.
const WROTE_BEFORE_NAME: [(&str, &str); 3] = [
    ("am ", " schrieb "),
    ("op ", " schreef "),
    ("on ", " wrote "),
];

/// Whether `line` (lower case) is an attribution line.
fn is_attribution(line: &str) -> bool {
    WROTE.iter().any(|wrote| line.ends_with(wrote))
        || (line.ends_with(':')
            && WROTE_BEFORE_NAME
                .iter()
                .any(|(start, verb)| line.starts_with(start) && line.contains(verb)))
}

/// `text` without quoted lines (`>`), and cut where a quoted message starts: an
/// attribution line ("On … wrote:", "Am … schrieb:" …), an "Original Message" divider, or
/// a block of quote headers (`From:`/`Sent:`, `Von:`/`Gesendet:`, `De :`/`Envoyé :` …).
pub(crate) fn unquote(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut kept: Vec<&str> = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        let trimmed = line.trim();
        let lower = trimmed.to_lowercase();
        if trimmed.starts_with('>') {
            continue;
        }
        if QUOTE_OPENERS.iter().any(|opener| lower.starts_with(opener)) {
            break;
        }
        // An attribution may wrap over two lines.
        let joined = match lines.get(index + 1) {
            Some(next) => format!("{lower} {}", next.trim().to_lowercase()),
            None => lower.clone(),
        };
        if is_attribution(&lower)
            || (is_attribution(&joined)
                && lines
                    .get(index + 2)
                    .is_none_or(|after| after.trim().is_empty() || after.starts_with('>')))
        {
            break;
        }
        let is_quote_header = |line: &str| {
            let lower = line.trim().to_lowercase();
            let lower = lower.trim_start_matches('*');
            QUOTE_HEADER_NAMES
                .iter()
                .any(|name| lower.starts_with(name))
        };
        if is_quote_header(trimmed)
            && lines
                .get(index + 1)
                .is_some_and(|next| is_quote_header(next))
        {
            break;
        }
        kept.push(line);
    }
    // "-- " opens a signature: not the person's words either.
    if let Some(signature) = kept.iter().position(|line| *line == "-- ") {
        kept.truncate(signature);
    }
    kept.join("\n").trim().to_string()
}
