//! A notice to the team (`[inbound] notify`), worded and built: who answered, to which
//! campaign and step, what they wrote, and what winback did about it, as one plain-text
//! message from `smtp.from` whose `Reply-To` is the person (answering the notice answers
//! them), marked `Auto-Submitted` so that the team's own automatic replies stay quiet.
//!
//! Never reads the clock (`date` is an argument), decides nothing about who is told and
//! sends nothing.

use chrono::{DateTime, Utc};
use lettre::Message;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, SinglePart};

use super::dkim;
use super::header::{self, one_line};
use super::message::{RenderError, sealed};
use crate::config::Config;
use crate::domain::notice::{Notice, NoticeKind};
use crate::mailer::{Envelope, OutgoingMessage};

const SUBJECT_HEADER: HeaderName = HeaderName::new_from_ascii_str("Subject");
const AUTO_SUBMITTED: HeaderName = HeaderName::new_from_ascii_str("Auto-Submitted");
/// Asks Exchange and Microsoft 365 not to answer with out-of-office replies.
const AUTO_RESPONSE_SUPPRESS: HeaderName =
    HeaderName::new_from_ascii_str("X-Auto-Response-Suppress");

/// The person as the team knows them: `Pat Lee (Acme) <pat@acme.example>`.
fn who(notice: &Notice) -> String {
    let name = notice
        .name
        .as_deref()
        .map(one_line)
        .filter(|n| !n.is_empty());
    let company = notice
        .company
        .as_deref()
        .map(one_line)
        .filter(|c| !c.is_empty());
    match (name, company) {
        (Some(name), Some(company)) => format!("{name} ({company}) <{}>", notice.email),
        (Some(name), None) => format!("{name} <{}>", notice.email),
        (None, Some(company)) => format!("{} ({company})", notice.email),
        (None, None) => notice.email.clone(),
    }
}

/// Where it belongs: `"former-clients", step 2`.
fn place(notice: &Notice) -> String {
    match (&notice.campaign, notice.step) {
        (Some(campaign), Some(step)) => format!("\"{campaign}\", step {step}"),
        (Some(campaign), None) => format!("\"{campaign}\""),
        _ => "a message of ours".to_string(),
    }
}

/// The subject line.
pub(super) fn subject(notice: &Notice) -> String {
    let who = who(notice);
    match notice.kind {
        NoticeKind::Reply => format!("Reply from {who}"),
        NoticeKind::LeftCompany => format!("Contact left: {who}"),
        NoticeKind::SurveyAnswer => format!("Survey answer from {who}"),
    }
}

/// The text: what happened, what winback did, the person's own words, how to undo.
pub(super) fn text(notice: &Notice) -> String {
    let who = who(notice);
    let at = notice.at.format("%Y-%m-%d %H:%M UTC");
    let mut out = String::new();
    match notice.kind {
        NoticeKind::Reply => {
            out.push_str(&format!(
                "{who} replied to {} on {at}.\n\nwinback has stopped writing to them: a person should answer now. Replying to this message writes to them.\n",
                place(notice)
            ));
        }
        NoticeKind::LeftCompany => {
            out.push_str(&format!(
                "A reply to {} on {at} says {who} has left their company.\n\nwinback has stopped writing to that address (it is not suppressed). The account may need a new contact in the CRM.\n",
                place(notice)
            ));
        }
        NoticeKind::SurveyAnswer => {
            out.push_str(&format!(
                "{who} answered the survey of {} on {at}.\n",
                place(notice)
            ));
        }
    }
    if let Some(text) = notice.text.as_deref().filter(|t| !t.trim().is_empty()) {
        out.push_str("\nWhat they wrote:\n\n");
        for line in text.lines() {
            out.push_str("    ");
            out.push_str(line);
            out.push('\n');
        }
    }
    if let Some(answer) = &notice.survey {
        let shown = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".to_string());
        out.push_str(&format!(
            "\nWhy they left: {}\nWould they work with us again: {}\nWhat we could do better:\n\n",
            shown(&answer.reason),
            shown(&answer.would_return)
        ));
        for line in shown(&answer.better).lines() {
            out.push_str("    ");
            out.push_str(line);
            out.push('\n');
        }
        out.push_str("\nEvery answer: winback survey\n");
    }
    if let Some(id) = notice.inbound_id {
        out.push_str(&format!(
            "\nMisread? `winback inbox undo {id}` resumes their sequence where it stopped.\n"
        ));
    }
    out
}

/// Builds the notice for `to`: From `smtp.from`, `Reply-To` the person (except when they
/// have left: that address is gone), the subject and text above, `Date` = `date`,
/// `Message-ID` = `message_id`, signed by each of `signers`. The envelope sender is
/// `[inbound] return_path` itself (a bounce of a notice is nobody's opt-out), else
/// `smtp.from`.
pub(super) fn build(
    config: &Config,
    signers: &[dkim::Signer],
    to: &Mailbox,
    notice: &Notice,
    message_id: &str,
    date: DateTime<Utc>,
) -> Result<OutgoingMessage, RenderError> {
    let subject = one_line(&subject(notice));
    let mut builder = Message::builder()
        .from(config.smtp.from.clone())
        .to(to.clone())
        .raw_header(HeaderValue::dangerous_new_pre_encoded(
            SUBJECT_HEADER,
            subject.clone(),
            header::subject(&subject),
        ))
        .date(date.into())
        .message_id(Some(message_id.to_string()))
        .raw_header(HeaderValue::new(
            AUTO_SUBMITTED,
            "auto-generated".to_string(),
        ))
        .raw_header(HeaderValue::new(AUTO_RESPONSE_SUPPRESS, "All".to_string()));
    if notice.kind != NoticeKind::LeftCompany
        && let Ok(address) = notice.email.parse::<lettre::Address>()
    {
        let name = notice
            .name
            .as_deref()
            .map(one_line)
            .filter(|n| !n.is_empty());
        builder = builder.reply_to(Mailbox::new(name, address));
    }
    let message = builder.singlepart(
        SinglePart::builder()
            .header(ContentType::TEXT_PLAIN)
            .body(text(notice)),
    )?;
    let envelope = Envelope {
        from: Some(
            config
                .inbound
                .return_path
                .clone()
                .unwrap_or_else(|| config.smtp.from.email.clone()),
        ),
        to: to.email.clone(),
    };
    sealed(&message, signers, date, message_id, envelope)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::domain::survey::SurveyAnswer;

    fn reply() -> Notice {
        Notice {
            kind: NoticeKind::Reply,
            email: "pat@client.example".to_string(),
            name: Some("Pat Lee".to_string()),
            company: Some("Globex".to_string()),
            campaign: Some("former-clients".to_string()),
            step: Some(2),
            at: Utc.with_ymd_and_hms(2026, 3, 2, 9, 30, 0).unwrap(),
            text: Some("We are reviewing vendors again.\nCall me next week.".to_string()),
            survey: None,
            inbound_id: Some(17),
        }
    }

    #[test]
    fn a_reply_says_who_where_what_and_how_to_undo() {
        let notice = reply();
        assert_eq!(
            subject(&notice),
            "Reply from Pat Lee (Globex) <pat@client.example>"
        );
        let text = text(&notice);
        assert!(text.starts_with("Pat Lee (Globex) <pat@client.example> replied to \"former-clients\", step 2 on 2026-03-02 09:30 UTC."), "{text}");
        assert!(
            text.contains("    We are reviewing vendors again.\n    Call me next week.\n"),
            "{text}"
        );
        assert!(text.contains("winback inbox undo 17"), "{text}");
    }

    #[test]
    fn a_survey_answer_lists_the_answers() {
        let notice = Notice {
            kind: NoticeKind::SurveyAnswer,
            step: None,
            text: None,
            inbound_id: None,
            survey: Some(SurveyAnswer {
                reason: Some("price".to_string()),
                better: Some("Cheaper plans.".to_string()),
                would_return: None,
            }),
            ..reply()
        };
        let text = text(&notice);
        assert!(
            text.contains("answered the survey of \"former-clients\""),
            "{text}"
        );
        assert!(
            text.contains("Why they left: price\nWould they work with us again: -\n"),
            "{text}"
        );
        assert!(text.contains("    Cheaper plans.\n"), "{text}");
        assert!(!text.contains("undo"), "{text}");
    }

    #[test]
    fn the_message_answers_the_person_and_silences_automatic_replies() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::test_support::config(dir.path(), "", crate::test_support::SURVEY_ONLY);
        let to: Mailbox = "Success <success@acme.example>".parse().unwrap();
        let built = build(&config, &[], &to, &reply(), "<n1@acme.example>", reply().at).unwrap();
        let head = String::from_utf8(built.bytes).unwrap();
        assert!(
            head.contains("Reply-To: \"Pat Lee\" <pat@client.example>\r\n"),
            "{head}"
        );
        assert!(
            head.contains("Auto-Submitted: auto-generated\r\n"),
            "{head}"
        );
        assert!(
            head.contains("To: Success <success@acme.example>\r\n"),
            "{head}"
        );
        assert_eq!(built.envelope.to.to_string(), "success@acme.example");
        assert_eq!(
            built.envelope.from.map(|a| a.to_string()),
            Some(config.smtp.from.email.to_string())
        );
        let left = Notice {
            kind: NoticeKind::LeftCompany,
            ..reply()
        };
        let built = build(&config, &[], &to, &left, "<n2@acme.example>", reply().at).unwrap();
        let head = String::from_utf8(built.bytes).unwrap();
        assert!(!head.contains("Reply-To:"), "{head}");
    }
}
