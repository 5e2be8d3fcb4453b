//! What the team hears of (`[inbound] notify`): which events deserve a person's attention,
//! one notice each, and what happens to a notice that could not be sent.
//!
//! Decides only: the store writes a notice in the same transaction as its event, `mail`
//! words it and the daemon sends it. Must not read the database, the clock or the
//! configuration.

use chrono::{DateTime, Utc};

use super::inbound::Effect;
use super::survey::SurveyAnswer;

/// An event the team is told of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoticeKind {
    /// A person answered one of our messages: someone should write back.
    Reply,
    /// A reply said the contact has left their company: the account needs a new contact.
    LeftCompany,
    /// A survey answer came in (or was changed).
    SurveyAnswer,
}

impl NoticeKind {
    pub(crate) const ALL: [NoticeKind; 3] = [
        NoticeKind::Reply,
        NoticeKind::LeftCompany,
        NoticeKind::SurveyAnswer,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            NoticeKind::Reply => "reply",
            NoticeKind::LeftCompany => "left_company",
            NoticeKind::SurveyAnswer => "survey_answer",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<NoticeKind> {
        NoticeKind::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// A notice as it is sent, gathered from its event's own rows when it goes (so a person
/// forgotten meanwhile is not told of: their rows, and the notice with them, are gone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Notice {
    pub kind: NoticeKind,
    pub email: String,
    pub name: Option<String>,
    pub company: Option<String>,
    pub campaign: Option<String>,
    pub step: Option<u32>,
    /// When the event happened.
    pub at: DateTime<Utc>,
    /// A reply's text, as kept for the team.
    pub text: Option<String>,
    pub survey: Option<SurveyAnswer>,
    /// The `winback inbox` entry, to review or undo it.
    pub inbound_id: Option<i64>,
}

/// The notice an applied inbound message deserves: a human reply, and word that a
/// contact left, once they stopped a sequence of ours. An unmatched reply answers nobody
/// we wrote to, and automatic mail, bounces and opt-outs need nobody's attention.
pub(crate) fn for_inbound(effect: Effect) -> Option<NoticeKind> {
    match effect {
        Effect::Replied => Some(NoticeKind::Reply),
        Effect::Left => Some(NoticeKind::LeftCompany),
        Effect::None | Effect::Counted | Effect::Bounce | Effect::OptOut => None,
    }
}

/// The notice a saved survey answer deserves: one when it is new or says something else
/// than before; the same answer posted again (a double click, the back button) none.
pub(crate) fn for_survey(changed: bool) -> Option<NoticeKind> {
    changed.then_some(NoticeKind::SurveyAnswer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_human_answers_that_stopped_a_sequence_are_told() {
        let told: Vec<_> = Effect::ALL
            .into_iter()
            .filter_map(|effect| for_inbound(effect).map(|kind| (effect, kind)))
            .collect();
        assert_eq!(
            told,
            [
                (Effect::Left, NoticeKind::LeftCompany),
                (Effect::Replied, NoticeKind::Reply)
            ]
        );
        assert_eq!(for_survey(true), Some(NoticeKind::SurveyAnswer));
        assert_eq!(for_survey(false), None);
    }

    #[test]
    fn kinds_read_back_as_written() {
        for kind in NoticeKind::ALL {
            assert_eq!(NoticeKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(NoticeKind::parse("bounce"), None);
    }
}
