//! The header fields of a built message as a person reads them: unfolded, RFC 2047
//! encoded words decoded, the MIME plumbing left out. For display only; pure.

/// The built message's header fields, unfolded and decoded, without the MIME plumbing.
pub(super) fn readable_headers(bytes: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(bytes);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = fields.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            fields.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    const PLUMBING: [&str; 4] = [
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "dkim-signature",
    ];
    fields
        .into_iter()
        .filter(|(name, _)| !PLUMBING.contains(&name.to_ascii_lowercase().as_str()))
        .map(|(name, value)| (name, decode_encoded_words(&value)))
        .collect()
}

/// RFC 2047 encoded words (`=?utf-8?b?...?=`, `=?utf-8?q?...?=`) as text; the space
/// between two adjacent encoded words is dropped, as the RFC says.
fn decode_encoded_words(value: &str) -> String {
    let mut out = String::new();
    let mut pending_space = String::new();
    let mut previous_encoded = false;
    for (index, token) in value.split(' ').enumerate() {
        if index > 0 {
            pending_space.push(' ');
        }
        if token.is_empty() {
            continue;
        }
        match decode_word(token) {
            Some(decoded) => {
                if !previous_encoded {
                    out.push_str(&pending_space);
                }
                out.push_str(&decoded);
                previous_encoded = true;
            }
            None => {
                out.push_str(&pending_space);
                out.push_str(token);
                previous_encoded = false;
            }
        }
        pending_space.clear();
    }
    out
}

/// One encoded word, or `None` if `token` is not one.
fn decode_word(token: &str) -> Option<String> {
    use base64::Engine as _;
    // A word may carry punctuation around it, e.g. a display name in quotes.
    let start = token.find("=?")?;
    let end = token.rfind("?=")?;
    let inner = token.get(start + 2..end)?;
    let mut parts = inner.splitn(3, '?');
    let (_charset, encoding, data) = (parts.next()?, parts.next()?, parts.next()?);
    let bytes = match encoding {
        "b" | "B" => base64::engine::general_purpose::STANDARD
            .decode(data)
            .ok()?,
        "q" | "Q" => {
            let mut bytes = Vec::with_capacity(data.len());
            let raw = data.as_bytes();
            let mut i = 0;
            while i < raw.len() {
                match raw[i] {
                    b'_' => bytes.push(b' '),
                    b'=' => {
                        let hex = raw.get(i + 1..i + 3)?;
                        let hex = std::str::from_utf8(hex).ok()?;
                        bytes.push(u8::from_str_radix(hex, 16).ok()?);
                        i += 2;
                    }
                    other => bytes.push(other),
                }
                i += 1;
            }
            bytes
        }
        _ => return None,
    };
    Some(format!(
        "{}{}{}",
        &token[..start],
        String::from_utf8_lossy(&bytes),
        &token[end + 2..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_words_are_decoded() {
        assert_eq!(
            decode_encoded_words("=?utf-8?b?Wm/Dqw==?= Smith"),
            "Zoë Smith"
        );
        assert_eq!(
            decode_encoded_words("=?utf-8?b?Wm/Dqw==?= =?utf-8?b?IFNtaXRo?="),
            "Zoë Smith"
        );
        assert_eq!(
            decode_encoded_words("=?UTF-8?Q?Caf=C3=A9_au_lait?="),
            "Café au lait"
        );
        assert_eq!(
            decode_encoded_words("\"=?utf-8?b?Wm/Dqw==?=\" <z@x.example>"),
            "\"Zoë\" <z@x.example>"
        );
        assert_eq!(
            decode_encoded_words("plain  text =?broken"),
            "plain  text =?broken"
        );
        assert_eq!(
            decode_encoded_words("=?utf-8?q?bad=Z?="),
            "=?utf-8?q?bad=Z?="
        );
    }
}
