//! Whether a rendered message is fit to go: no placeholder left to edit, and the footer
//! (unsubscribe link and postal address) in both parts. A plain function over the rendered
//! text; it renders, sends and stores nothing.
//!
//! `check` asks the same questions of the sample client; delivery asks them of every
//! message actually rendered for sending, because a template can show the footer to the
//! sample and hide it from real people (`{{#if}}` on a name, a missing column).

use std::fmt;

use handlebars::html_escape;

use super::message::Rendered;

/// How a shipped template marks text the operator must replace: `[EDIT: ...]`.
pub(crate) const PLACEHOLDER: &str = "[EDIT:";

/// Why a rendered message must not be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unfit {
    /// `part` still holds a placeholder; `example` is the first one, shortened.
    Placeholder {
        part: &'static str,
        example: String,
    },
    NoUnsubscribeLink {
        part: &'static str,
    },
    NoPostalAddress {
        part: &'static str,
    },
}

impl fmt::Display for Unfit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unfit::Placeholder { part, example } => write!(
                f,
                "the {part} still contains the placeholder \"{example}\"; replace it in the template"
            ),
            Unfit::NoUnsubscribeLink { part } => write!(
                f,
                "the {part} lacks the unsubscribe link; put {{{{unsubscribe_url}}}} in a footer every recipient sees"
            ),
            Unfit::NoPostalAddress { part } => write!(
                f,
                "the {part} lacks the postal address; put {{{{sender.postal_address}}}} in a footer every recipient sees"
            ),
        }
    }
}

/// Every reason `message` must not go out; empty when it may. `unsubscribe_url` is the
/// link rendered into this very message.
pub(crate) fn unfit(message: &Rendered, unsubscribe_url: &str, postal_address: &str) -> Vec<Unfit> {
    let mut reasons = Vec::new();
    for (part, text) in [
        ("subject", &message.subject),
        ("text part", &message.text),
        ("HTML part", &message.html),
    ] {
        if let Some(example) = placeholder(text) {
            reasons.push(Unfit::Placeholder { part, example });
        }
    }
    for (part, text, html) in [
        ("text part", &message.text, false),
        ("HTML part", &message.html, true),
    ] {
        if !holds(text, unsubscribe_url, html) {
            reasons.push(Unfit::NoUnsubscribeLink { part });
        }
        if !holds(text, postal_address, html) {
            reasons.push(Unfit::NoPostalAddress { part });
        }
    }
    reasons
}

/// Why a message is held, as it is recorded and shown (`status`, `outbox list`): each
/// reason in words, separated by "; ".
pub(crate) fn held_reason(reasons: &[Unfit]) -> String {
    let mut out = String::new();
    for (index, reason) in reasons.iter().enumerate() {
        if index > 0 {
            out.push_str("; ");
        }
        out.push_str(&reason.to_string());
    }
    out
}

/// The first placeholder in `text`, up to its closing `]` (at most 60 characters), on
/// one line.
pub(crate) fn placeholder(text: &str) -> Option<String> {
    let at = text.find(PLACEHOLDER)?;
    let rest = &text[at..];
    let end = rest.find(']').map_or(rest.len(), |end| end + 1);
    let example: String = rest[..end].chars().take(60).collect();
    Some(example.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// How many placeholders `text` holds.
pub(crate) fn placeholders(text: &str) -> usize {
    text.matches(PLACEHOLDER).count()
}

/// Whether `text` shows `value`: as is, or HTML-escaped in an HTML part.
pub(crate) fn holds(text: &str, value: &str, html: bool) -> bool {
    text.contains(value) || (html && text.contains(html_escape(value).as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINK: &str = "https://winback.example/u/TOKEN";
    const POSTAL: &str = "1 Main St & Co, Springfield";

    fn message(text: &str, html: &str) -> Rendered {
        Rendered {
            subject: "Hello".to_string(),
            text: text.to_string(),
            html: html.to_string(),
        }
    }

    fn footer(html: bool) -> String {
        let postal = if html {
            html_escape(POSTAL)
        } else {
            POSTAL.to_string()
        };
        format!("Unsubscribe: {LINK}\n{postal}")
    }

    #[test]
    fn a_message_with_its_footer_and_no_placeholder_is_fit() {
        assert_eq!(
            unfit(&message(&footer(false), &footer(true)), LINK, POSTAL),
            vec![]
        );
    }

    #[test]
    fn a_placeholder_anywhere_holds_the_message() {
        let mut m = message(
            &format!("[EDIT: your news\n here] {}", footer(false)),
            &format!("<a href=\"[EDIT: link]\">x</a>{}", footer(true)),
        );
        m.subject = "News [EDIT: month]".to_string();
        assert_eq!(
            unfit(&m, LINK, POSTAL),
            vec![
                Unfit::Placeholder {
                    part: "subject",
                    example: "[EDIT: month]".to_string()
                },
                Unfit::Placeholder {
                    part: "text part",
                    example: "[EDIT: your news here]".to_string()
                },
                Unfit::Placeholder {
                    part: "HTML part",
                    example: "[EDIT: link]".to_string()
                },
            ]
        );
    }

    #[test]
    fn a_part_without_the_link_or_the_address_holds_the_message() {
        let reasons = unfit(&message("Hello", &footer(true)), LINK, POSTAL);
        assert_eq!(
            reasons,
            vec![
                Unfit::NoUnsubscribeLink { part: "text part" },
                Unfit::NoPostalAddress { part: "text part" },
            ]
        );
        // Another message's link is not this message's link.
        let other = footer(false).replace("TOKEN", "OTHER");
        let reasons = unfit(&message(&other, &footer(true)), LINK, POSTAL);
        assert_eq!(
            reasons,
            vec![Unfit::NoUnsubscribeLink { part: "text part" }]
        );
        assert!(
            reasons[0].to_string().contains("{{unsubscribe_url}}"),
            "{}",
            reasons[0]
        );
    }

    #[test]
    fn the_held_reason_names_every_reason_once_in_order() {
        let reasons = unfit(&message("Hello", "Hello"), LINK, POSTAL);
        let held = held_reason(&reasons);
        assert_eq!(reasons.len(), 4, "{held}");
        assert_eq!(
            held,
            format!(
                "{}; {}; {}; {}",
                reasons[0], reasons[1], reasons[2], reasons[3]
            )
        );
        assert!(
            held.starts_with("the text part lacks the unsubscribe link"),
            "{held}"
        );
        assert!(
            held.ends_with("put {{sender.postal_address}} in a footer every recipient sees"),
            "{held}"
        );
        assert_eq!(held_reason(&[]), "");
    }
}
