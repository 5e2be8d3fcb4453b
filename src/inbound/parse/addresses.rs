//! Addresses found in free text: a bounce's prose, a field value with a type prefix.

/// Mail addresses in free text: those in angle brackets first, else bare words holding
/// an `@`. Lower case.
pub(super) fn addresses_in(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('<') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('>') else { break };
        let inside = after[..end].trim();
        if let Some(address) = address_word(inside) {
            found.push(address);
        }
        rest = &after[end + 1..];
    }
    if found.is_empty() {
        found.extend(text.split_whitespace().filter_map(address_word));
    }
    found
}

/// `word` as an address, when it is one (`user@host`, optionally with `mailto:`,
/// quotes, brackets or punctuation around it).
pub(super) fn address_word(word: &str) -> Option<String> {
    let word = word
        .trim_matches(|c: char| "<>()[]\"',;:.".contains(c))
        .trim_start_matches("mailto:");
    let (local, domain) = word.split_once('@')?;
    let valid = !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && word
            .chars()
            .all(|c| !c.is_whitespace() && !"<>()[],;\"".contains(c))
        && domain
            .chars()
            .all(|c| c.is_alphanumeric() || c == '.' || c == '-');
    valid.then(|| word.to_lowercase())
}
