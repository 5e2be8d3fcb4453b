//! Property tests for block scanning: any text is scanned without a panic and any line
//! named is one of the text's; blocks that pair up are never reported, and a block whose
//! closing tag is taken out is named, on the line it opens.

use proptest::prelude::*;

use super::*;

/// A template as a tree: text, a variable, a comment, or a block with its content.
#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Variable(String),
    Comment(String),
    Block {
        name: String,
        tilde: bool,
        inverse: bool,
        children: Vec<Node>,
    },
}

fn node() -> impl Strategy<Value = Node> {
    let leaf = prop_oneof![
        3 => "[a-zA-Z ,.!\n]{0,12}".prop_map(Node::Text),
        2 => "[a-z_]{1,8}( [a-z_.]{1,6})?".prop_map(Node::Variable),
        1 => "[a-z {}#/\n]{0,12}".prop_map(Node::Comment),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        (
            "[a-z]{1,6}",
            any::<bool>(),
            any::<bool>(),
            prop::collection::vec(inner, 0..4),
        )
            .prop_map(|(name, tilde, inverse, children)| Node::Block {
                name,
                tilde,
                inverse,
                children,
            })
    })
}

/// Writes `nodes`; for each block, records its name and the line it opens on, in order.
fn write(nodes: &[Node], out: &mut String, blocks: &mut Vec<(String, usize)>, drop: Option<usize>) {
    for node in nodes {
        match node {
            Node::Text(text) => out.push_str(text),
            Node::Variable(name) => out.push_str(&format!("{{{{{name}}}}}")),
            Node::Comment(text) => out.push_str(&format!("{{{{!--{text}--}}}}")),
            Node::Block {
                name,
                tilde,
                inverse,
                children,
            } => {
                let index = blocks.len();
                blocks.push((name.clone(), out.matches('\n').count() + 1));
                let (open, close) = if *tilde { ("{{~", "~}}") } else { ("{{", "}}") };
                let sigil = if *inverse { '^' } else { '#' };
                out.push_str(&format!("{open}{sigil}{name} x{close}"));
                write(children, out, blocks, drop);
                if drop != Some(index) {
                    out.push_str(&format!("{open}/{name}{close}"));
                }
            }
        }
    }
}

fn template_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        2 => "[a-z \n]{0,6}",
        3 => prop::sample::select(vec![
            "{{", "}}", "{{#if a}}", "{{/if}}", "{{/each}}", "{{^", "{{!--", "--}}", "--~}}",
            "{{!", "\\{{", "{{~", "~}}", "{{{", "}}}", "{{>", "{{#*inline", "{", "}", "\n",
        ])
        .prop_map(str::to_owned),
        1 => any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..30).prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn any_text_is_scanned_and_any_line_named_is_in_it(
        source in prop_oneof![template_text(), any::<String>()],
    ) {
        if let Some((line, message)) = unclosed_block(&source) {
            prop_assert!(line >= 1 && line <= source.matches('\n').count() + 1, "{}", line);
            prop_assert!(!message.is_empty());
        }
    }

    #[test]
    fn blocks_that_pair_up_pass_and_a_missing_close_is_named(
        nodes in prop::collection::vec(node(), 0..5),
        which in any::<prop::sample::Index>(),
    ) {
        let mut source = String::new();
        let mut blocks = Vec::new();
        write(&nodes, &mut source, &mut blocks, None);
        prop_assert_eq!(unclosed_block(&source), None, "{}", source);
        if !blocks.is_empty() {
            let dropped = which.index(blocks.len());
            let mut source = String::new();
            write(&nodes, &mut source, &mut Vec::new(), Some(dropped));
            let found = unclosed_block(&source);
            let (name, line) = &blocks[dropped];
            // An enclosing block of the same name may take the closing tag as its own:
            // then that one is named.
            let named = found.as_ref().is_some_and(|(found_line, message)| {
                message.contains(&format!("{{{{#{name}}}}}"))
                    && (found_line == line
                        || blocks[..dropped].iter().any(|(n, l)| n == name && l == found_line))
            });
            prop_assert!(named, "{:?} for {:?} in {:?}", found, (name, line), source);
        }
    }
}
