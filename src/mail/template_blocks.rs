//! Which handlebars block tag is left open or closed by the wrong tag, in words: the
//! parser itself only lists the grammar rules it expected.
//!
//! Pure text in, text out. Asked only once handlebars has refused a template, so a
//! template it accepts is never second-guessed here.

/// The first block that is not closed properly in `source`: its line and a sentence
/// saying which tag to add or fix; None if the blocks pair up.
pub(crate) fn unclosed_block(source: &str) -> Option<(usize, String)> {
    // Open blocks: (name, line).
    let mut open: Vec<(String, usize)> = Vec::new();
    let mut rest = source;
    let mut consumed = 0;
    while let Some(start) = rest.find("{{") {
        let at = consumed + start;
        let line = source[..at].matches('\n').count() + 1;
        let tag_start = &rest[start + 2..];
        let escaped = source[..at].ends_with('\\');
        // Comments may hold anything, braces included; `--~}}` ends one too.
        let long_comment = tag_start.trim_start_matches('~').starts_with("!--");
        let end = if long_comment {
            // The end marker is searched after the opening `!--`: `{{!--}}` does not end
            // the comment it opens.
            let body = tag_start.len() - tag_start.trim_start_matches('~').len() + "!--".len();
            ["--}}", "--~}}"]
                .iter()
                .filter_map(|marker| {
                    tag_start[body..]
                        .find(marker)
                        .map(|at| (body + at, marker.len()))
                })
                .min()
        } else {
            tag_start.find("}}").map(|at| (at, 2))
        };
        let Some((length, marker_length)) = end else {
            return Some((
                line,
                "a {{ is never closed with }}; finish the tag".to_string(),
            ));
        };
        if let Some(nested) = tag_start[..length].find("{{")
            && !tag_start.trim_start_matches('~').starts_with('!')
        {
            let written = format!(
                "{{{{{}",
                tag_start[..nested].lines().next().unwrap_or("").trim_end()
            );
            return Some((
                line,
                format!("the tag {written} is not finished: it needs }}}} before the next {{{{"),
            ));
        }
        let inner = tag_start[..length]
            .trim_start_matches('{')
            .trim_start_matches('~')
            .trim();
        let next = start + 2 + length + marker_length;
        consumed += next;
        rest = &rest[next..];
        if escaped || inner.starts_with('!') {
            continue;
        }
        let name = |text: &str| {
            text.trim_start_matches(['*', '>'])
                .split(|c: char| c.is_whitespace() || c == '~' || c == '}')
                .next()
                .unwrap_or("")
                .to_string()
        };
        if let Some(opened) = inner.strip_prefix('#').or_else(|| inner.strip_prefix('^')) {
            open.push((name(opened), line));
        } else if let Some(closed) = inner.strip_prefix('/') {
            let closed = name(closed);
            match open.pop() {
                None => {
                    return Some((
                        line,
                        format!(
                            "{{{{/{closed}}}}} closes a block that was never opened; remove it or add the {{{{#{closed} …}}}} it ends"
                        ),
                    ));
                }
                Some((opened, opened_line)) if opened != closed => {
                    return Some((
                        opened_line,
                        format!(
                            "the {{{{#{opened}}}}} opened on line {opened_line} is closed by {{{{/{closed}}}}} on line {line}; close it with {{{{/{opened}}}}} first"
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
    }
    open.pop().map(|(opened, line)| {
        (
            line,
            format!("the {{{{#{opened}}}}} opened on line {line} is never closed; add {{{{/{opened}}}}} where its part ends"),
        )
    })
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_block_left_open_and_its_line() {
        let cases: &[(&str, Option<(usize, &str)>)] = &[
            ("Hi {{#if first_name}}{{first_name}}{{/if}}", None),
            (
                "Hi\n{{#if first_name}}\n{{first_name}}\nBye",
                Some((
                    2,
                    "the {{#if}} opened on line 2 is never closed; add {{/if}}",
                )),
            ),
            (
                "{{#each fields}}\n{{#if this}}x{{/each}}",
                Some((
                    2,
                    "the {{#if}} opened on line 2 is closed by {{/each}} on line 2",
                )),
            ),
            (
                "a\n{{/unless}}",
                Some((2, "{{/unless}} closes a block that was never opened")),
            ),
            ("{{!-- {{#if}} in a comment --}}{{~#if a~}}x{{~/if~}}", None),
            ("{{! a {{short}} comment }}", None),
            ("{{#a}}{{!--}}{{#--}}{{/a}}", None),
            ("{{!-- a\n {{long}} one --~}}\n{{#if a}}x{{/if}}", None),
            ("{{#*inline \"footer\"}}x{{/inline}}{{> footer}}", None),
            ("{{^if a}}x{{/if}} \\{{#if literal}}", None),
            ("{{first_name", Some((1, "never closed with }}"))),
            (
                "Hello\n{{#if first_name}\n{{unsubscribe_url}}",
                Some((
                    2,
                    "the tag {{#if first_name} is not finished: it needs }} before the next {{",
                )),
            ),
        ];
        for (source, expected) in cases {
            let found = unclosed_block(source);
            match (expected, &found) {
                (None, None) => {}
                (Some((line, fragment)), Some((found_line, message))) => {
                    assert_eq!(found_line, line, "{source:?}: {message}");
                    assert!(message.contains(fragment), "{source:?}: {message}");
                }
                _ => panic!("{source:?}: expected {expected:?}, found {found:?}"),
            }
        }
    }
}
