//! Tests of the built message: its headers (one line, folded, never injected), parts,
//! Message-IDs and the header values it refuses.

use std::collections::HashSet;

use chrono::DateTime;

use super::super::header;
use super::super::templates::first_name;
use super::super::tests::{SUBJECT, Setup, built, client, header, headers, now, origin, vars};
use super::super::{Renderer, new_message_id};
use super::{RenderError, Rendered};

#[test]
fn subject_stays_one_line_and_no_header_is_injected() {
    let setup = Setup::new();
    setup.survey("<p>Hi</p>", "Hi");
    let config = setup.config();
    let renderer = Renderer::load(&config).unwrap();
    let mut client = client();
    client.first_name = Some("Eve\r\nBcc: x@y\r\n\tX-Evil:\u{2028}1".to_string());
    client.name = Some("Eve\r\nBcc: x@y".to_string());
    let rendered = renderer
        .render(&config.campaigns[0], 1, &vars(&client))
        .unwrap();
    assert_eq!(
        rendered.subject,
        "Eve Bcc: x@y X-Evil: 1, may we ask why you left?"
    );

    let built = built(&renderer, &config, &rendered, &client);
    let names: Vec<String> = headers(&built.bytes)
        .into_iter()
        .map(|(n, _)| n.to_ascii_lowercase())
        .collect();
    assert!(
        !names.iter().any(|n| n == "bcc" || n == "x-evil"),
        "{names:?}"
    );
    assert_eq!(header(&built.bytes, "To").len(), 1);
    assert_eq!(header(&built.bytes, "Subject").len(), 1);
    assert_eq!(built.envelope.to.to_string(), "pat@client.example");

    // A hand-made Rendered (not from `render`) is made one line too.
    let raw = Rendered {
        subject: "Hello\r\nBcc: x@y".to_string(),
        ..rendered
    };
    let built = renderer
        .build_message(
            &config,
            &raw,
            &client,
            &origin(),
            "<b@acme.example>",
            now(),
            "https://winback.acme.example/u/T",
        )
        .unwrap();
    assert!(header(&built.bytes, "Bcc").is_empty());
    assert_eq!(header(&built.bytes, "Subject"), ["Hello Bcc: x@y"]);
}

/// The header block's lines as sent (folded), and each header unfolded and decoded.
fn raw_header_lines(bytes: &[u8]) -> Vec<String> {
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let head = text.split("\r\n\r\n").next().unwrap().to_string();
    head.split("\r\n").map(str::to_string).collect()
}

#[test]
fn a_giant_word_or_an_encoded_word_in_a_name_keeps_every_line_short_and_literal() {
    let setup = Setup::new();
    setup.survey("<p>Hi</p>", "Hi");
    let config = setup.config();
    let renderer = Renderer::load(&config).unwrap();
    let giant = "W".repeat(1200);
    let trap = "=?utf-8?q?Bob=0D=0ABcc=3A_x@evil.example?=";
    for name in [
        format!("{giant} Smith"),
        format!("{trap} Smith"),
        format!("Zoë {giant}"),
    ] {
        let mut client = client();
        client.name = Some(name.clone());
        let rendered = renderer
            .render(&config.campaigns[0], 1, &vars(&client))
            .unwrap();
        let built = built(&renderer, &config, &rendered, &client);
        for line in raw_header_lines(&built.bytes) {
            assert!(line.len() <= 998, "{} octets: {line:.100}", line.len());
            assert!(!line.contains(trap), "{line}");
        }
        let text = String::from_utf8(built.bytes.clone()).unwrap();
        assert!(text.lines().all(|l| l.len() <= 998));
        let to = header(&built.bytes, "To");
        let subject = header(&built.bytes, "Subject");
        assert_eq!((to.len(), subject.len()), (1, 1));
        let shown = header::tests::displayed(&to[0]);
        assert_eq!(
            shown
                .trim_end_matches("<pat@client.example>")
                .trim_end()
                .trim_matches('"'),
            name
        );
        assert_eq!(
            header::tests::displayed(&subject[0]),
            format!("{}, may we ask why you left?", first_name(&client))
        );
    }
}

#[test]
fn built_message_has_the_required_headers_and_parts() {
    let setup = Setup::new();
    setup.survey("<p>Hé {{first_name}}</p>", "Hé {{first_name}}");
    let config = setup
        .config_with(
            "reply_to = \"Dana <dana@acme.example>\"",
            &format!("[[campaign.step]]\nkind = \"survey\"\ntemplate = \"survey\"\nsubject = \"{SUBJECT}\"\n"),
        )
        .unwrap();
    let renderer = Renderer::load(&config).unwrap();
    let client = client();
    let rendered = renderer
        .render(&config.campaigns[0], 1, &vars(&client))
        .unwrap();
    let id = new_message_id(&config, now());
    let url = "https://winback.acme.example/u/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let built = renderer
        .build_message(&config, &rendered, &client, &origin(), &id, now(), url)
        .unwrap();
    let bytes = &built.bytes;

    assert_eq!(header(bytes, "To"), ["\"Pat Smith\" <pat@client.example>"]);
    assert_eq!(
        header(bytes, "From"),
        ["\"Acme Customer Success\" <success@acme.example>"]
    );
    assert_eq!(header(bytes, "Reply-To"), ["Dana <dana@acme.example>"]);
    assert_eq!(header(bytes, "List-Unsubscribe"), [format!("<{url}>")]);
    assert_eq!(
        header(bytes, "List-Unsubscribe-Post"),
        ["List-Unsubscribe=One-Click"]
    );
    assert_eq!(header(bytes, "Message-ID"), [id.as_str()]);
    let date = header(bytes, "Date");
    assert_eq!(date.len(), 1);
    assert_eq!(DateTime::parse_from_rfc2822(&date[0]).unwrap(), now());
    assert_eq!(header(bytes, "MIME-Version"), ["1.0"]);
    let content_type = header(bytes, "Content-Type");
    assert_eq!(content_type.len(), 1);
    assert!(
        content_type[0].starts_with("multipart/alternative;"),
        "{content_type:?}"
    );
    assert!(header(bytes, "DKIM-Signature").is_empty());

    let text = String::from_utf8(bytes.clone()).unwrap();
    let plain = text
        .find("Content-Type: text/plain; charset=utf-8")
        .expect("a text part");
    let html = text
        .find("Content-Type: text/html; charset=utf-8")
        .expect("an HTML part");
    assert!(plain < html, "text comes before HTML");
    assert!(!text.contains("\r\n.\r\n") && text.lines().all(|l| l.len() <= 998));

    assert_eq!(built.message_id, id);
    assert_eq!(
        built
            .envelope
            .from
            .as_ref()
            .map(ToString::to_string)
            .as_deref(),
        Some("success@acme.example")
    );
    assert_eq!(built.envelope.to.to_string(), "pat@client.example");
}

#[test]
fn message_ids_are_unique_and_well_formed() {
    let setup = Setup::new();
    setup.survey("", "");
    let config = setup.config();
    let ids: HashSet<String> = (0..1000).map(|_| new_message_id(&config, now())).collect();
    assert_eq!(ids.len(), 1000);
    let later = now() + chrono::Duration::microseconds(1);
    assert!(new_message_id(&config, now()) < new_message_id(&config, later));
    for id in ids.iter().take(3) {
        assert!(
            id.starts_with("<winback.")
                && id.ends_with("@acme.example>")
                && id.len() == 9 + 13 + 1 + 32 + 14,
            "{id}"
        );
    }
}

#[test]
fn bad_header_values_are_refused() {
    let setup = Setup::new();
    setup.survey("", "");
    let config = setup.config();
    let rendered = Rendered {
        subject: "s".to_string(),
        text: "t".to_string(),
        html: "h".to_string(),
    };
    let client = client();
    let renderer = setup.renderer();
    let url = "https://winback.acme.example/u/T";
    for (id, url) in [
        ("<a@b>\r\nBcc: x@y", url),
        ("no-brackets@b", url),
        ("<a@b>", "https://x/u/T>\r\nBcc: x@y"),
        ("<a@b>", ""),
    ] {
        assert!(
            matches!(
                renderer.build_message(&config, &rendered, &client, &origin(), id, now(), url),
                Err(RenderError::BadHeader { .. })
            ),
            "{id:?} {url:?}"
        );
    }
    let mut bad = client.clone();
    bad.email = "pat@client.example\r\nBcc: x@y".to_string();
    assert!(matches!(
        renderer.build_message(&config, &rendered, &bad, &origin(), "<a@b>", now(), url),
        Err(RenderError::Recipient { .. })
    ));
}

/// The envelope sender is the return path the message names, else `smtp.from`; no
/// `Return-Path` is written, and `Message-ID` is the id given (the stored one).
#[test]
fn the_envelope_sender_is_the_return_path_and_no_return_path_header_is_written() {
    let setup = Setup::new();
    setup.survey("<p>Hi</p>", "Hi");
    let config = setup.config();
    let renderer = Renderer::load(&config).unwrap();
    let client = client();
    let rendered = renderer
        .render(&config.campaigns[0], 1, &vars(&client))
        .unwrap();
    let verp: lettre::Address = "bounces+abc234@acme.example".parse().unwrap();
    let with = super::Origin {
        return_path: Some(verp.clone()),
        ..origin()
    };
    let url = "https://winback.acme.example/u/T";
    let built = renderer
        .build_message(
            &config,
            &rendered,
            &client,
            &with,
            "<stored.1@acme.example>",
            now(),
            url,
        )
        .unwrap();
    assert_eq!(built.envelope.from, Some(verp));
    assert_eq!(
        header(&built.bytes, "Message-ID"),
        ["<stored.1@acme.example>"]
    );
    assert_eq!(built.message_id, "<stored.1@acme.example>");
    assert!(header(&built.bytes, "Return-Path").is_empty());
    assert_eq!(
        header(&built.bytes, "From"),
        ["\"Acme Customer Success\" <success@acme.example>"]
    );
    // List-Id always; Feedback-ID only with [inbound] feedback_id.
    assert_eq!(
        header(&built.bytes, "List-Id"),
        ["former-clients <former-clients.acme.example>"]
    );
    assert!(header(&built.bytes, "Feedback-ID").is_empty());

    let built = renderer
        .build_message(
            &config,
            &rendered,
            &client,
            &origin(),
            "<a@acme.example>",
            now(),
            url,
        )
        .unwrap();
    assert_eq!(
        built.envelope.from.map(|a| a.to_string()).as_deref(),
        Some("success@acme.example")
    );
}
