//! Real-world shapes of returned mail (`tests/fixtures/inbound/*.eml`), read by `parse`
//! and judged by `classify`: the outcome, whom it is about, and what matching will use.

use super::*;
use crate::domain::inbound::{Classification, Outcome, classify};

fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/inbound")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

fn read(name: &str) -> (Facts, Classification) {
    let facts = parse(&fixture(name)).unwrap_or_else(|error| panic!("{name}: {error}"));
    let classification = classify(&facts);
    (facts, classification)
}

/// The outcome and recipient of fixture `name`, and the facts for further checks.
fn expect(name: &str, outcome: Outcome, recipient: Option<&str>) -> Facts {
    let (facts, classification) = read(name);
    assert_eq!(
        (classification.outcome, classification.recipient.as_deref()),
        (outcome, recipient),
        "{name}: {classification:?}\n{facts:#?}"
    );
    facts
}

fn refers_to(facts: &Facts, id: &str) {
    assert!(
        facts.referenced_ids.iter().any(|known| known == id),
        "{id} not in {:?}",
        facts.referenced_ids
    );
}

fn delivered_to(facts: &Facts, address: &str) {
    assert_eq!(
        facts.envelope_recipients.first().map(String::as_str),
        Some(address),
        "{:?}",
        facts.envelope_recipients
    );
}

#[test]
fn postfix_dsn_user_unknown_is_a_bounce_of_the_failed_recipient() {
    let facts = expect(
        "postfix_dsn_user_unknown.eml",
        Outcome::Bounce,
        Some("anna.berg@northwind.example"),
    );
    delivered_to(&facts, "bounces+q7vd2kxw9mtz4lpa@acme.example");
    refers_to(
        &facts,
        "winback.5b1d0c9e7a2f4e3c8d6b1a0f9e8d7c6b@acme.example",
    );
    assert_eq!(facts.report_type.as_deref(), Some("delivery-status"));
    let dsn = &facts.dsn[0];
    assert_eq!(dsn.status.as_deref(), Some("5.1.1"));
    assert_eq!(dsn.action.as_deref(), Some("failed"));
    assert!(
        dsn.diagnostic
            .as_deref()
            .is_some_and(|text| text.contains("Recipient address rejected: User unknown")),
        "{dsn:?}"
    );
    assert_eq!(
        classify(&facts).status.as_deref(),
        Some("5.1.1"),
        "the status is kept for the operator"
    );
}

#[test]
fn exim_dsn_with_a_generic_status_takes_the_code_from_its_diagnostic() {
    let facts = expect(
        "exim_dsn_user_unknown.eml",
        Outcome::Bounce,
        Some("j.doe@contoso-trading.example"),
    );
    assert_eq!(facts.dsn[0].status.as_deref(), Some("5.0.0"));
    assert_eq!(classify(&facts).status.as_deref(), Some("5.1.1"));
    // Exim's Envelope-to carries the return address.
    delivered_to(&facts, "bounces+hn3sr8vyc2qew5tb@acme.example");
    refers_to(
        &facts,
        "winback.0c7e5a3b9d1f42e6a8b4c2d0e6f8a1b3@acme.example",
    );
    assert_eq!(
        facts.reported_recipients,
        ["j.doe@contoso-trading.example"],
        "the returned original's To"
    );
}

#[test]
fn exchange_online_ndr_with_crlf_is_a_bounce() {
    let facts = expect(
        "exchange_m365_dsn_recipient_not_found.eml",
        Outcome::Bounce,
        Some("p.meier@fabrikam.example"),
    );
    assert_eq!(facts.dsn[0].status.as_deref(), Some("5.1.10"));
    assert_eq!(
        facts.dsn[0].diagnostic.as_deref(),
        Some(
            "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup"
        )
    );
    delivered_to(&facts, "bounces+lp6we2uj7cn9xr1k@acme.example");
    refers_to(
        &facts,
        "winback.9a8b7c6d5e4f40312a1b0c9d8e7f6a5b@acme.example",
    );
}

#[test]
fn gmail_disabled_account_is_a_bounce() {
    let facts = expect(
        "gmail_dsn_account_disabled.eml",
        Outcome::Bounce,
        Some("lena.vogel.old@gmail.com"),
    );
    assert_eq!(facts.dsn[0].status.as_deref(), Some("5.2.1"));
    delivered_to(&facts, "bounces+tg4mb8nq1xv6zc3s@acme.example");
    refers_to(
        &facts,
        "winback.1f2e3d4c5b6a47988a9b0c1d2e3f4a5b@acme.example",
    );
    assert_eq!(facts.reported_recipients, ["lena.vogel.old@gmail.com"]);
}

#[test]
fn yahoo_prose_bounce_names_the_address_and_ignores_the_returned_copy() {
    let facts = expect(
        "yahoo_bounce_mailbox_not_found.eml",
        Outcome::Bounce,
        Some("kim.lee@yahoo.com"),
    );
    assert!(facts.dsn.is_empty());
    delivered_to(&facts, "bounces+ys2df7gh1jk4lz8x@acme.example");
    refers_to(
        &facts,
        "winback.7e6d5c4b3a2940188f7e6d5c4b3a2910@acme.example",
    );
    // "spam policy" in the returned copy's footer must not read as a block.
    assert!(!facts.text.contains("spam policy"), "{}", facts.text);
}

#[test]
fn qmail_bounce_without_a_dsn_part_is_a_bounce() {
    let facts = expect(
        "qmail_bounce_without_dsn.eml",
        Outcome::Bounce,
        Some("tom.becker@oldshop.example"),
    );
    assert_eq!(classify(&facts).status.as_deref(), Some("5.1.1"));
    delivered_to(&facts, "bounces+qm5nw2er8ty1ui4o@acme.example");
    refers_to(
        &facts,
        "winback.2a3b4c5d6e7f48091a2b3c4d5e6f7081@acme.example",
    );
}

#[test]
fn a_bounce_whose_only_clue_is_the_quoted_original_headers() {
    let facts = expect(
        "bounce_only_quoted_original_headers.eml",
        Outcome::Bounce,
        Some("ola.nordmann@fjord.example"),
    );
    assert_eq!(
        facts.referenced_ids,
        ["winback.c0ffee00d15ea5e0b0a7c0de12345678@acme.example"]
    );
}

#[test]
fn a_5_7_1_reputation_block_is_blocked_never_a_bounce() {
    let facts = expect(
        "blocked_5_7_1_reputation.eml",
        Outcome::Blocked,
        Some("sara.lind@tailspin.example"),
    );
    refers_to(
        &facts,
        "winback.b10cked0a1b2c3d4e5f6a7b8c9d0e1f2@acme.example",
    );
}

#[test]
fn action_delayed_is_delayed() {
    let facts = expect(
        "delayed_dsn.eml",
        Outcome::Delayed,
        Some("omar.haddad@litware.example"),
    );
    assert_eq!(facts.dsn[0].status.as_deref(), Some("4.4.1"));
    refers_to(
        &facts,
        "winback.de1a7ed0a1b2c3d4e5f6a7b8c9d0e1f2@acme.example",
    );
}

#[test]
fn a_full_mailbox_is_a_soft_bounce() {
    expect(
        "mailbox_full_dsn.eml",
        Outcome::SoftBounce,
        Some("ines.costa@adatum.example"),
    );
}

#[test]
fn an_arf_abuse_report_is_a_complaint_about_the_original_recipient() {
    let facts = expect(
        "arf_abuse_report.eml",
        Outcome::Complaint,
        Some("maria.rossi@mailprovider.example"),
    );
    assert_eq!(facts.report_type.as_deref(), Some("feedback-report"));
    assert_eq!(facts.feedback_type.as_deref(), Some("abuse"));
    delivered_to(&facts, "bounces+ab9cd2ef5gh8ij1k@acme.example");
    refers_to(
        &facts,
        "winback.abc0def1a2b3c4d5e6f7a8b9c0d1e2f3@acme.example",
    );
}

#[test]
fn out_of_office_with_auto_submitted_is_an_auto_reply() {
    let facts = expect(
        "out_of_office_auto_submitted.eml",
        Outcome::AutoReply,
        Some("chen.wei@woodgrove.example"),
    );
    assert_eq!(facts.auto_submitted.as_deref(), Some("auto-replied"));
    assert!(facts.automatic, "X-Auto-Response-Suppress marks it");
    assert_eq!(
        facts.date.map(|d| d.to_rfc3339()).as_deref(),
        Some("2026-12-07T09:00:03+00:00"),
        "its Date, for matching by address"
    );
    refers_to(
        &facts,
        "winback.00aa11bb22cc33dd44ee55ff66778899@acme.example",
    );
}

#[test]
fn german_out_of_office_without_auto_submitted_is_an_auto_reply() {
    let facts = expect(
        "out_of_office_without_auto_submitted_de.eml",
        Outcome::AutoReply,
        Some("joerg.weiss@kontoso.example"),
    );
    assert_eq!(facts.auto_submitted, None);
    assert!(!facts.automatic);
    assert_eq!(facts.subject, "Abwesenheitsnotiz: Kurze Frage, Jörg");
    refers_to(
        &facts,
        "winback.11223344556677889900aabbccddeeff@acme.example",
    );
}

#[test]
fn a_german_request_to_be_removed_is_an_unsubscribe() {
    let facts = expect(
        "unsubscribe_reply_de.eml",
        Outcome::Unsubscribe,
        Some("s.krause@kontoso.example"),
    );
    assert!(!facts.text.contains("Hallo Sabine"), "{}", facts.text);
    refers_to(
        &facts,
        "winback.5ab1e5ab1e5ab1e5ab1e5ab1e5ab1e5a@acme.example",
    );
}

#[test]
fn a_reply_quoting_our_unsubscribe_footer_is_a_reply() {
    let facts = expect(
        "reply_quoting_our_message.eml",
        Outcome::Reply,
        Some("dana@proseware.example"),
    );
    assert_eq!(
        facts.referenced_ids,
        ["winback.feedfacecafebeef0011223344556677@acme.example"]
    );
    assert!(facts.text.ends_with("Best,\nDana"), "{}", facts.text);
    delivered_to(&facts, "success@acme.example");
}

#[test]
fn an_auto_reply_saying_the_contact_left_is_left_company() {
    let facts = expect(
        "left_company_auto_reply.eml",
        Outcome::LeftCompany,
        Some("peter.novak@globex.example"),
    );
    refers_to(
        &facts,
        "winback.0123456789abcdef0123456789abcdef@acme.example",
    );
}

#[test]
fn a_plain_human_reply_is_a_reply() {
    let facts = expect(
        "human_reply_plain.eml",
        Outcome::Reply,
        Some("ravi.patel@fourthcoffee.example"),
    );
    assert_eq!(
        facts.message_id.as_deref(),
        Some("CAB7k2Pq9Z@mail.gmail.com")
    );
    assert!(!facts.text.contains("Unsubscribe"), "{}", facts.text);
    refers_to(
        &facts,
        "winback.98765432109876543210abcdefabcdef@acme.example",
    );
}

#[test]
fn the_content_hash_is_lower_case_hex_sha256_of_the_raw_bytes() {
    let facts = parse(b"From: a@b.example\n\nhello\n").expect("a message");
    // sha256sum of the same bytes.
    assert_eq!(
        facts.content_hash,
        "4f9f96b90336ca83a2fa2f39b431b04538ce0b1184e5ad69c9a678cd8b545d14"
    );
}

#[test]
fn empty_input_and_headerless_junk_are_not_messages() {
    for raw in [
        &b""[..],
        b"\n\n  \r\n",
        b"\x00\x01\x02\xff\xfe binary junk",
        b"just some words\nwith no header at all\n",
    ] {
        assert!(parse(raw).is_err(), "{raw:?}");
    }
}

#[test]
fn quoted_text_is_cut_in_every_language() {
    let cases = [
        "Yes, call me.\n\nOn Tue, 1 Dec 2026 at 09:00, Acme <a@acme.example> wrote:\n> Unsubscribe",
        "Yes, call me.\n\nAm 01.12.2026 um 09:00 schrieb Acme <a@acme.example>:\n> abmelden",
        "Yes, call me.\n\nLe mar. 1 déc. 2026 à 09:00, Acme <a@acme.example> a écrit :\n> désinscrire",
        "Yes, call me.\n\nEl mar, 1 dic 2026 a las 9:00, Acme (<a@acme.example>) escribió:\n> darme de baja",
        "Yes, call me.\n\nIl giorno mar 1 dic 2026 alle ore 09:00 Acme <a@acme.example> ha scritto:\n> cancellami",
        "Yes, call me.\n\nOp di 1 dec 2026 om 09:00 schreef Acme <a@acme.example>:\n> afmelden",
        "Yes, call me.\n\nEm ter., 1 de dez. de 2026 às 09:00, Acme <a@acme.example> escreveu:\n> descadastrar",
        "Yes, call me.\n\n-----Original Message-----\nFrom: Acme\nUnsubscribe",
        "Yes, call me.\n\n-----Ursprüngliche Nachricht-----\nVon: Acme\nabmelden",
        "Yes, call me.\n\n________________________________\nFrom: Acme\nSent: Tuesday\nUnsubscribe",
        "Yes, call me.\n\nVon: Acme <a@acme.example>\nGesendet: Dienstag, 1. Dezember 2026 09:00\nAn: Ann\nBetreff: Frage\n\nabmelden",
        "Yes, call me.\n\nDe : Acme <a@acme.example>\nEnvoyé : mardi 1 décembre 2026 09:00\nObjet : Question\n\ndésinscrire",
        "Yes, call me.\n> Unsubscribe\n\n-- \nAnn Berg\nUnsubscribe",
    ];
    for text in cases {
        assert_eq!(unquote(text), "Yes, call me.", "{text}");
    }
    assert_eq!(
        unquote("Line one\nwith a colon: fine\nLine three"),
        "Line one\nwith a colon: fine\nLine three"
    );
}

#[test]
fn exim_bounce_without_dsn_names_the_failed_address_not_the_footer_words() {
    let facts = expect(
        "exim_bounce_without_dsn.eml",
        Outcome::Bounce,
        Some("h.larsen@tradewinds.example"),
    );
    delivered_to(&facts, "bounces+ex4mp1eo2ld9ex7m@acme.example");
    refers_to(
        &facts,
        "winback.e1e1e1e1a2a2a2a2b3b3b3b3c4c4c4c4@acme.example",
    );
    assert_eq!(facts.reported_recipients, ["h.larsen@tradewinds.example"]);
}

#[test]
fn an_html_only_outlook_reply_is_cut_where_it_quotes_us() {
    let facts = expect(
        "reply_outlook_html_only.eml",
        Outcome::Reply,
        Some("marta.silva@adventure-works.example"),
    );
    assert!(
        facts.text.contains("Estamos a rever fornecedores"),
        "{}",
        facts.text
    );
    assert!(!facts.text.contains("Descadastrar"), "{}", facts.text);
    refers_to(
        &facts,
        "winback.aaaabbbbccccddddeeeeffff00001111@acme.example",
    );
}

#[test]
fn delivery_status_groups_split_on_blank_or_space_only_lines() {
    let body = "Reporting-MTA: dns; mx.example\n \nFinal-Recipient: rfc822; a@b.example\n\
                Action: failed\nStatus: 5.1.1\n\t\nFinal-Recipient: rfc822;c@d.example\n\
                Action: delivered\nStatus: 2.0.0\n";
    let dsn = delivery_status(body.as_bytes());
    assert_eq!(dsn.len(), 2, "{dsn:?}");
    assert_eq!(dsn[0].final_recipient.as_deref(), Some("a@b.example"));
    assert_eq!(dsn[1].action.as_deref(), Some("delivered"));
    // One group holding everything, as some servers write it.
    let dsn = delivery_status(b"Final-Recipient: rfc822; a@b.example\nAction: failed\n");
    assert_eq!(dsn[0].action.as_deref(), Some("failed"));
}

#[test]
fn gmail_names_the_returned_message_in_its_delivery_status() {
    let raw = String::from_utf8_lossy(&fixture("gmail_dsn_account_disabled.eml")).replace(
        "Content-Type: text/rfc822-headers",
        "Content-Type: text/plain",
    );
    let raw = raw
        .lines()
        .filter(|line| !line.starts_with("References:") && !line.starts_with("In-Reply-To:"))
        .collect::<Vec<_>>()
        .join("\n");
    let facts = parse(raw.as_bytes()).expect("a message");
    assert_eq!(
        facts.referenced_ids,
        ["winback.1f2e3d4c5b6a47988a9b0c1d2e3f4a5b@acme.example"],
        "from X-Original-Message-ID"
    );
}

#[test]
fn gmail_5_7_26_unauthenticated_is_blocked() {
    let facts = expect(
        "gmail_blocked_5_7_26_unauthenticated.eml",
        Outcome::Blocked,
        Some("noah.fischer@gmail.com"),
    );
    refers_to(
        &facts,
        "winback.5a5a5a5a6b6b6b6b7c7c7c7c8d8d8d8d@acme.example",
    );
}

#[test]
fn exchange_delivery_delayed_is_delayed() {
    let facts = expect(
        "exchange_delayed_dsn.eml",
        Outcome::Delayed,
        Some("lars.holm@woodgrove.example"),
    );
    delivered_to(&facts, "bounces+xd7ce4vr1ty8ui2o@acme.example");
    refers_to(
        &facts,
        "winback.9f9f9f9f8e8e8e8e7d7d7d7d6c6c6c6c@acme.example",
    );
}

#[test]
fn a_microsoft_complaint_without_original_rcpt_to_names_the_original_recipient() {
    let facts = expect(
        "microsoft_jmrp_complaint.eml",
        Outcome::Complaint,
        Some("luca.bianchi@outlook.com"),
    );
    assert_eq!(facts.feedback_type.as_deref(), Some("abuse"));
    refers_to(
        &facts,
        "winback.0ddba11c0ffee0ddba11c0ffee012345@acme.example",
    );
}

#[test]
fn a_french_request_to_be_removed_is_an_unsubscribe() {
    let facts = expect(
        "unsubscribe_reply_fr.eml",
        Outcome::Unsubscribe,
        Some("amelie.dubois@lucerne.example"),
    );
    assert!(!facts.text.contains("Objet"), "{}", facts.text);
    refers_to(
        &facts,
        "winback.f7f7f7f7e6e6e6e6d5d5d5d5c4c4c4c4@acme.example",
    );
}

#[test]
fn a_colleague_saying_in_spanish_the_contact_left_is_left_company() {
    let facts = expect(
        "left_company_reply_es.eml",
        Outcome::LeftCompany,
        Some("carmen.ruiz@alpineski.example"),
    );
    refers_to(
        &facts,
        "winback.1a1a1a1a2b2b2b2b3c3c3c3c4d4d4d4d@acme.example",
    );
}
