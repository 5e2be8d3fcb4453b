//! Property tests for the survey form a visitor posts: any values are stored or refused
//! without a panic, and what is stored holds only offered choices and clean text within
//! the limit; an answer a person could give is stored as given.

use proptest::prelude::*;

use super::*;

/// A value as a form or a forger might post it.
fn posted() -> impl Strategy<Value = Option<String>> {
    let mut offered: Vec<String> = SURVEY_REASONS
        .iter()
        .chain(&WOULD_RETURN)
        .map(|s| s.to_string())
        .collect();
    offered.extend(["on", "", " yes ", "YES"].map(str::to_owned));
    prop::option::of(prop_oneof![
        prop::sample::select(offered),
        any::<String>(),
        "[a-z \r\n\t\u{0}\u{7}\u{1b}\u{85}]{0,20}",
    ])
}

/// Text a person types: lines, tabs and any printable character.
fn typed() -> impl Strategy<Value = String> {
    "[^\\p{Cc}]{1,40}(\r?\n[^\\p{Cc}]{0,20}){0,3}"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(768))]

    #[test]
    fn any_form_is_stored_clean_or_refused(
        reason in posted(),
        better in prop_oneof![posted(), prop::option::of(Just("é".repeat(MAX_TEXT_CHARS + 1)))],
        would_return in posted(),
        stop in posted(),
    ) {
        let form = SurveyForm { reason, better, would_return, stop };
        if let Ok((answer, _stop)) = validate(form) {
            if let Some(reason) = &answer.reason {
                prop_assert!(SURVEY_REASONS.contains(&reason.as_str()));
            }
            if let Some(would_return) = &answer.would_return {
                prop_assert!(WOULD_RETURN.contains(&would_return.as_str()));
            }
            if let Some(better) = &answer.better {
                prop_assert!(better.chars().count() <= MAX_TEXT_CHARS);
                prop_assert!(!better.is_empty() && better.trim() == better);
                prop_assert!(better.chars().all(|c| !c.is_control() || c == '\n' || c == '\t'));
                prop_assert_eq!(clean_text(better), better.clone());
            }
        }
    }

    #[test]
    fn an_answer_a_person_gives_is_stored_as_given(
        reason in prop::option::of(prop::sample::select(SURVEY_REASONS.to_vec())),
        better in prop::option::of(typed()),
        would_return in prop::option::of(prop::sample::select(WOULD_RETURN.to_vec())),
        stop in any::<bool>(),
    ) {
        let better = better.map(|text| text.trim().to_owned()).filter(|text| !text.is_empty());
        // An empty form is refused; ticking the box alone is an answer.
        let stop = stop || (reason.is_none() && better.is_none() && would_return.is_none());
        let form = SurveyForm {
            reason: reason.map(str::to_owned),
            better: better.clone(),
            would_return: would_return.map(str::to_owned),
            stop: stop.then(|| "yes".to_owned()),
        };
        let expected = SurveyAnswer {
            reason: reason.map(str::to_owned),
            better: better.map(|text| text.replace("\r\n", "\n")),
            would_return: would_return.map(str::to_owned),
        };
        prop_assert_eq!(validate(form), Ok((expected, stop)));
    }
}
