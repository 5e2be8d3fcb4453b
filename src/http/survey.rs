//! The feedback survey: `GET /s/{token}` (the form, with the earlier answer) and
//! `POST /s/{token}` (the answer, checked against the offered choices and the length
//! limit). Storing it is the store's; served only when no external survey is configured.

use axum::extract::rejection::{FormRejection, PathRejection};
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::app::{App, Shared};
use super::pages::Failure;
use crate::domain::survey::{MAX_TEXT_CHARS, SURVEY_REASONS, WOULD_RETURN};
use crate::mail::pages::Page;
use crate::store::{SurveyAnswer, SurveyOutcome};
use crate::token::{Purpose, Target};

#[cfg(test)]
mod proptests;

/// `GET /s/{token}`: the survey form, filled with the earlier answer if there is one.
pub(super) async fn survey_form(
    State(app): State<Shared>,
    token: Result<Path<String>, PathRejection>,
) -> Response {
    let result = async {
        if !app.survey_served_here() {
            return Err(Failure::NotFound);
        }
        let id = app.verify(Purpose::Survey, token)?;
        let (view, answer) = app
            .store(move |store| {
                let view = store.enrollment_by_link(&id)?;
                let answer = store.survey_answer(&id)?;
                Ok((view, answer))
            })
            .await?;
        let view = view.ok_or(Failure::NotFound)?;
        let page = survey_page(
            view.greeting_name(),
            app.survey_url(&id),
            answer.unwrap_or_default(),
            false,
            None,
        );
        Ok((StatusCode::OK, page))
    }
    .await;
    app.respond(result)
}

/// The survey form as posted. Every field is optional; unknown fields are ignored.
#[derive(Debug, Default, Deserialize)]
pub(super) struct SurveyForm {
    reason: Option<String>,
    better: Option<String>,
    would_return: Option<String>,
    stop: Option<String>,
}

/// Why an answer was not stored.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Invalid {
    /// A value no form offers (a forged request): 400, nothing stored.
    Choice,
    /// Something a person can fix: the form again, with this sentence.
    Fixable(String),
}

/// Checks a posted answer: choices against the lists, text within the limit.
fn validate(form: SurveyForm) -> Result<(SurveyAnswer, bool), (Invalid, SurveyAnswer, bool)> {
    let choice = |value: Option<String>, allowed: &[&str]| -> Result<Option<String>, Invalid> {
        match value.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(v) if allowed.contains(&v) => Ok(Some(v.to_string())),
            Some(_) => Err(Invalid::Choice),
        }
    };
    let stop = match form.stop.as_deref() {
        None => false,
        Some("yes") | Some("on") => true,
        Some(_) => return Err((Invalid::Choice, SurveyAnswer::default(), false)),
    };
    let better = form
        .better
        .as_deref()
        .map(clean_text)
        .filter(|t| !t.is_empty());
    let partial = SurveyAnswer {
        reason: None,
        better: better.clone(),
        would_return: None,
    };
    let reason = choice(form.reason, &SURVEY_REASONS).map_err(|e| (e, partial.clone(), stop))?;
    let would_return =
        choice(form.would_return, &WOULD_RETURN).map_err(|e| (e, partial.clone(), stop))?;
    let answer = SurveyAnswer {
        reason,
        better,
        would_return,
    };
    if let Some(text) = &answer.better {
        let length = text.chars().count();
        if length > MAX_TEXT_CHARS {
            let message = format!(
                "Your answer to \"What could we have done better?\" is {length} characters long; please shorten it to {MAX_TEXT_CHARS} or fewer."
            );
            return Err((Invalid::Fixable(message), answer, stop));
        }
    }
    if answer == SurveyAnswer::default() && !stop {
        let message = "Please answer at least one question before sending.".to_string();
        return Err((Invalid::Fixable(message), answer, stop));
    }
    Ok((answer, stop))
}

/// Trimmed, with CRLF as LF, and without control characters other than line breaks and
/// tabs.
fn clean_text(text: &str) -> String {
    text.replace("\r\n", "\n")
        .chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .collect::<String>()
        .trim()
        .to_string()
}

/// `POST /s/{token}`: stores the answer (replacing an earlier one).
pub(super) async fn survey_answer(
    State(app): State<Shared>,
    token: Result<Path<String>, PathRejection>,
    form: Result<Form<SurveyForm>, FormRejection>,
) -> Response {
    let result = async {
        if !app.survey_served_here() {
            return Err(Failure::NotFound);
        }
        let form = match form {
            Ok(Form(form)) => form,
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(Failure::TooLarge);
            }
            Err(_) => return Err(Failure::BadRequest),
        };
        let id = app.verify(Purpose::Survey, token)?;
        let (answer, stop) = match validate(form) {
            Ok(valid) => valid,
            Err((Invalid::Choice, _, _)) => return Err(Failure::BadRequest),
            Err((Invalid::Fixable(message), answer, stop)) => {
                let view = app
                    .store(move |store| store.enrollment_by_link(&id))
                    .await?;
                let view = view.ok_or(Failure::NotFound)?;
                let page = survey_page(
                    view.greeting_name(),
                    app.survey_url(&id),
                    answer,
                    stop,
                    Some(message),
                );
                return Ok((StatusCode::UNPROCESSABLE_ENTITY, page));
            }
        };
        let now = app.state.clock.now();
        let notify = app.state.config.inbound.notify.is_some();
        let outcome = app
            .store(move |store| {
                let outcome = store.save_survey_answer(&id, &answer, stop, notify, now)?;
                let view = store.enrollment_by_link(&id)?;
                Ok((outcome, view))
            })
            .await?;
        if notify {
            app.state.wake.notify_one();
        }
        match outcome {
            (SurveyOutcome::Unknown, _) | (_, None) => Err(Failure::NotFound),
            (SurveyOutcome::Saved { first, opted_out }, Some(view)) => {
                tracing::info!(
                    client = view.client_id,
                    first,
                    opted_out,
                    "survey answer recorded"
                );
                Ok((
                    StatusCode::OK,
                    Page::SurveyThanks {
                        first_name: view.greeting_name(),
                        opted_out,
                        survey_url: app.survey_url(&id),
                    },
                ))
            }
        }
    }
    .await;
    app.respond(result)
}

/// The survey page for `answer`; `error` says what to fix in it.
fn survey_page(
    first_name: Option<String>,
    survey_url: String,
    answer: SurveyAnswer,
    stop_contact: bool,
    error: Option<String>,
) -> Page {
    Page::Survey {
        first_name,
        survey_url,
        reason: answer.reason,
        better: answer.better,
        would_return: answer.would_return,
        stop_contact,
        error,
        max_length: MAX_TEXT_CHARS,
    }
}

impl App {
    /// The survey's address as the emails give it: the built-in form, or the external one.
    pub(super) fn survey_url(&self, id: &Target) -> String {
        crate::links::survey_url(&self.state.config, &self.state.secret, *id)
    }

    pub(super) fn survey_served_here(&self) -> bool {
        self.state.config.survey_external_url.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_of_a_posted_answer() {
        let ok = |form: SurveyForm| validate(form).map_err(|(e, _, _)| e);
        let answer = ok(SurveyForm {
            reason: Some(" needs_changed ".to_string()),
            better: Some("\u{0}Hello\r\nworld\u{7}  ".to_string()),
            would_return: Some(String::new()),
            stop: Some("on".to_string()),
        });
        assert_eq!(
            answer,
            Ok((
                SurveyAnswer {
                    reason: Some("needs_changed".to_string()),
                    better: Some("Hello\nworld".to_string()),
                    would_return: None,
                },
                true
            ))
        );
        assert_eq!(
            ok(SurveyForm::default()).map(|_| ()).unwrap_err(),
            Invalid::Fixable("Please answer at least one question before sending.".to_string())
        );
        let at_limit = ok(SurveyForm {
            better: Some("x".repeat(MAX_TEXT_CHARS)),
            ..SurveyForm::default()
        });
        assert!(at_limit.is_ok());
    }
}
