//! What the feedback survey offers: its choices and the length of a free-text answer.
//! One definition for the form that offers them, the server that accepts them, and the
//! commands that count the answers (`survey`, `report`), and one answer as stored and
//! told to the team. Plain data; no I/O.

/// The survey's "why did you leave" choices: the churn reasons a person can pick.
pub(crate) const SURVEY_REASONS: [&str; 6] = [
    "competitor",
    "acquisition",
    "contact_left",
    "price",
    "needs_changed",
    "other",
];

/// The survey's "would you work with us again" choices.
pub(crate) const WOULD_RETURN: [&str; 3] = ["yes", "maybe", "no"];

/// The longest free-text answer, in characters.
pub(crate) const MAX_TEXT_CHARS: usize = 5000;

/// A validated survey answer. Free text is already trimmed and bounded by the caller.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub(crate) struct SurveyAnswer {
    /// One of [`SURVEY_REASONS`].
    pub reason: Option<String>,
    /// What we could have done better, in their words.
    pub better: Option<String>,
    /// One of [`WOULD_RETURN`].
    pub would_return: Option<String>,
}
