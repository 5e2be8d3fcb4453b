//! `--format json` of a list, written element by element: the same text as
//! `serde_json::to_string_pretty` of the whole, without holding the whole. This module
//! must not decide which elements or fields a command prints.

use std::io::Write;

use serde::Serialize;

/// A pretty-printed JSON array being written, `depth` levels deep in the document
/// (0: the document itself; 1: the value of a top-level field).
pub(crate) struct JsonList<W: Write> {
    out: W,
    depth: usize,
    written: usize,
    buffer: Vec<u8>,
}

impl<W: Write> JsonList<W> {
    pub(crate) fn new(mut out: W, depth: usize) -> anyhow::Result<Self> {
        out.write_all(b"[")?;
        Ok(JsonList {
            out,
            depth,
            written: 0,
            buffer: Vec::new(),
        })
    }

    pub(crate) fn push(&mut self, item: &impl Serialize) -> anyhow::Result<()> {
        self.buffer.clear();
        serde_json::to_writer_pretty(&mut self.buffer, item)?;
        self.out
            .write_all(if self.written == 0 { b"\n" } else { b",\n" })?;
        // Strings are escaped, so each line break here is the printer's own.
        for (i, line) in self.buffer.split(|b| *b == b'\n').enumerate() {
            if i > 0 {
                self.out.write_all(b"\n")?;
            }
            indent(&mut self.out, self.depth + 1)?;
            self.out.write_all(line)?;
        }
        self.written += 1;
        Ok(())
    }

    /// Closes the array and hands the writer back.
    pub(crate) fn finish(mut self) -> anyhow::Result<W> {
        if self.written > 0 {
            self.out.write_all(b"\n")?;
            indent(&mut self.out, self.depth)?;
        }
        self.out.write_all(b"]")?;
        Ok(self.out)
    }
}

fn indent(out: &mut impl Write, depth: usize) -> std::io::Result<()> {
    for _ in 0..depth {
        out.write_all(b"  ")?;
    }
    Ok(())
}

/// Writes `head` (a struct) as pretty JSON with one more field, `name`, whose value is a
/// list the caller fills through `fill`; the text is what `to_string_pretty` gives for
/// the struct with that field last.
pub(crate) fn object_with_list<W: Write>(
    mut out: W,
    head: &impl Serialize,
    name: &str,
    fill: impl FnOnce(&mut JsonList<&mut W>) -> anyhow::Result<()>,
) -> anyhow::Result<W> {
    let head = serde_json::to_string_pretty(head)?;
    // `{\n  "a": 1\n}`, or `{}` for no field: opened again to take one more.
    let fields = head
        .strip_suffix("\n}")
        .or_else(|| head.strip_suffix('}'))
        .unwrap_or(&head);
    let separator = if fields == "{" { "\n" } else { ",\n" };
    write!(
        out,
        "{fields}{separator}  {}: ",
        serde_json::to_string(name)?
    )?;
    let mut list = JsonList::new(&mut out, 1)?;
    fill(&mut list)?;
    list.finish()?;
    out.write_all(b"\n}")?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Item {
        name: &'static str,
        tags: Vec<&'static str>,
        nested: Option<Box<Item>>,
    }

    fn items() -> Vec<Item> {
        vec![
            Item {
                name: "a \"quoted\"\nline",
                tags: vec!["x", "y"],
                nested: Some(Box::new(Item {
                    name: "inner",
                    tags: vec![],
                    nested: None,
                })),
            },
            Item {
                name: "b",
                tags: vec![],
                nested: None,
            },
        ]
    }

    #[test]
    fn a_streamed_list_is_the_text_of_the_whole() {
        for n in [0, 1, 2] {
            let all = &items()[..n];
            let mut list = JsonList::new(Vec::new(), 0).unwrap();
            for item in all {
                list.push(item).unwrap();
            }
            let text = String::from_utf8(list.finish().unwrap()).unwrap();
            assert_eq!(text, serde_json::to_string_pretty(all).unwrap());
        }
    }

    #[test]
    fn a_list_as_the_last_field_is_the_text_of_the_whole() {
        #[derive(Serialize)]
        struct Head {
            total: usize,
            by: std::collections::BTreeMap<&'static str, u64>,
        }
        #[derive(Serialize)]
        struct Whole<'a> {
            total: usize,
            by: std::collections::BTreeMap<&'static str, u64>,
            items: &'a [Item],
        }
        #[derive(Serialize)]
        struct Empty {}
        #[derive(Serialize)]
        struct OnlyItems<'a> {
            items: &'a [Item],
        }
        for n in [0, 2] {
            let all = &items()[..n];
            let by = std::collections::BTreeMap::from([("k", 1)]);
            let head = Head {
                total: n,
                by: by.clone(),
            };
            let out = object_with_list(Vec::new(), &head, "items", |list| {
                all.iter().try_for_each(|i| list.push(i))
            })
            .unwrap();
            let whole = Whole {
                total: n,
                by,
                items: all,
            };
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string_pretty(&whole).unwrap()
            );
            let out = object_with_list(Vec::new(), &Empty {}, "items", |list| {
                all.iter().try_for_each(|i| list.push(i))
            })
            .unwrap();
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string_pretty(&OnlyItems { items: all }).unwrap()
            );
        }
    }
}
