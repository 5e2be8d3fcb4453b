//! The `[[campaign]]` sections and their `[[campaign.step]]`s: names, quiet period,
//! `send_at`, time zone, reasons never contacted, catch-up window, steps, renames.
//!
//! Part of the validator: records problems and warnings, builds nothing else.

use std::ops::Range;

use chrono_tz::Tz;
use toml::Spanned;

use super::super::hints::{fixed_offset_zone, likely_reason, zone_for_abbreviation};
use super::super::raw;
use super::Validator;
use super::timing::{SEASONAL_AFTER_DAYS, StepContext};
use crate::domain::campaign::{ALWAYS_EXCLUDED, Campaign, MIN_QUIET_DAYS, SLOW_TOUCH_DAYS, Step};
use crate::domain::model::StepKind;
use crate::domain::send_at::SendAt;

impl Validator<'_> {
    pub(super) fn campaign(
        &mut self,
        index: usize,
        raw: raw::RawCampaign,
        span: &Range<usize>,
    ) -> Option<Campaign> {
        let name = self.required(
            raw.name,
            Some(span),
            "campaign.name",
            "give the campaign a name, e.g. \"former-clients\"",
        );
        let name = name.and_then(|n| {
            let text = n.get_ref().trim();
            if is_name(text) {
                Some(text.to_string())
            } else {
                self.problem(
                    Some(&n.span()),
                    "campaign.name",
                    format!("\"{text}\" may only use letters, digits, - and _"),
                );
                None
            }
        });
        let key = |k: &str| format!("campaign[{}].{k}", index + 1);

        let quiet_days = self.quiet_days(raw.quiet_days, &key("quiet_days"));
        let send_at = self.send_at(raw.send_at, span, &key("send_at"));
        let timezone = self.timezone(raw.timezone, &key("timezone"));
        let exclude_reasons = self.exclude_reasons(raw.exclude_reasons, &key("exclude_reasons"));
        let catch_up_hours = self.count(
            raw.catch_up_hours,
            &key("catch_up_hours"),
            4,
            1..169,
            "use between 1 and 168 hours",
        );

        let mut steps = Vec::new();
        if raw.step.is_empty() {
            self.problem(
                Some(span),
                &key("step"),
                "the campaign has no [[campaign.step]]; the first one must be kind = \"survey\"",
            );
        }
        // Read ahead for the steps' every_days warning; checked below.
        let min_gap = raw
            .min_gap_days
            .as_ref()
            .map_or(7, |d| *d.get_ref())
            .clamp(1, 365);
        for (i, raw_step) in raw.step.into_iter().enumerate() {
            if let Some(step) = self.step(index, i, raw_step, min_gap) {
                steps.push(step);
            }
        }

        let renamed_from =
            self.renamed_from(raw.renamed_from, name.as_deref(), &key("renamed_from"));
        let include_reasons = self.include_reasons(
            raw.include_reasons,
            &exclude_reasons,
            &key("include_reasons"),
        );
        let matches = self.matches(raw.matches, &key("match"));
        let min_gap_days = self.count(
            raw.min_gap_days,
            &key("min_gap_days"),
            7,
            1..366,
            "use between 1 and 365 days",
        );
        let account_gap_days = self.count(
            raw.account_gap_days,
            &key("account_gap_days"),
            7,
            0..366,
            "use between 0 (no gap) and 365 days",
        );
        let holidays = self.holidays(raw.holidays, raw.quiet_dates, &key);
        let max_days_since_churn = self.max_days_since_churn(
            raw.max_days_since_churn,
            &key("max_days_since_churn"),
            quiet_days,
        );
        let enroll_within_days =
            self.horizon_days(raw.enroll_within_days, &key("enroll_within_days"));
        let paused = raw.paused.is_some_and(|p| *p.get_ref());

        Some(Campaign {
            name: name?,
            quiet_days: quiet_days as u32,
            send_at: send_at?,
            timezone: timezone?,
            exclude_reasons,
            catch_up_hours: catch_up_hours as u32,
            renamed_from,
            steps,
            include_reasons,
            matches,
            min_gap_days: min_gap_days as u32,
            account_gap_days: account_gap_days as u32,
            holidays,
            max_days_since_churn,
            enroll_within_days,
            paused,
        })
    }

    /// One `[[campaign.step]]` (the `i`th, 0-based, of campaign `campaign`): the first is
    /// the survey, timed by the campaign's quiet period; the others wait `after_days`.
    fn step(
        &mut self,
        campaign: usize,
        i: usize,
        raw_step: Spanned<raw::RawStep>,
        min_gap: i64,
    ) -> Option<Step> {
        let step_span = raw_step.span();
        let step_key = |k: &str| format!("campaign[{}].step[{}].{k}", campaign + 1, i + 1);
        let raw_step = raw_step.into_inner();
        let allowed = StepKind::ALL.map(|k| k.as_str()).join(", ");
        let kind = match raw_step.kind {
            None => {
                self.problem(
                    Some(&step_span),
                    &step_key("kind"),
                    format!("is missing; use one of: {allowed}"),
                );
                None
            }
            Some(k) => match StepKind::parse(k.get_ref().trim()) {
                Some(kind) => {
                    if i == 0 && kind != StepKind::Survey {
                        self.problem(Some(&k.span()), &step_key("kind"), format!("is \"{}\"; the first step must be kind = \"survey\" (the playbook asks why they left before anything else)", k.get_ref()));
                    }
                    Some(kind)
                }
                None => {
                    self.problem(
                        Some(&k.span()),
                        &step_key("kind"),
                        format!(
                            "\"{}\" is not a step kind; use one of: {allowed}",
                            k.get_ref()
                        ),
                    );
                    None
                }
            },
        };
        let context = StepContext {
            survey: i == 0,
            key: &step_key,
        };
        let on = self.step_on(raw_step.on, &context);
        let every_days = self.every_days(raw_step.every_days, &context, on, min_gap);
        let after_days = match (i, raw_step.after_days) {
            (0, None) => Some(0),
            // A seasonal step's date is at least two weeks after the message before it.
            (_, None) if on.is_some() => Some(SEASONAL_AFTER_DAYS),
            (0, Some(a)) => {
                self.problem(Some(&a.span()), &step_key("after_days"), "the survey is timed by the campaign's quiet_days; remove after_days from the first step");
                None
            }
            (_, None) => {
                self.problem(Some(&step_span), &step_key("after_days"), "is missing; write how many days after the previous message this one goes out, e.g. after_days = 30");
                None
            }
            (_, Some(a)) if *a.get_ref() < 1 => {
                self.problem(
                    Some(&a.span()),
                    &step_key("after_days"),
                    format!("is {}; it must be at least 1", a.get_ref()),
                );
                None
            }
            (_, Some(a)) if *a.get_ref() > 3650 => {
                self.problem(
                    Some(&a.span()),
                    &step_key("after_days"),
                    "is more than ten years; use at most 3650",
                );
                None
            }
            (_, Some(a)) => {
                if *a.get_ref() < SLOW_TOUCH_DAYS {
                    self.warning(
                        &a.span(),
                        &step_key("after_days"),
                        format!(
                            "is {}; soft touches work best at least {SLOW_TOUCH_DAYS} days apart",
                            a.get_ref()
                        ),
                    );
                }
                Some(*a.get_ref() as u32)
            }
        };
        let template = self.required(raw_step.template, Some(&step_span), &step_key("template"), "name the template, e.g. template = \"survey\" for templates/survey.html.hbs and .txt.hbs");
        let template = template.and_then(|t| {
            let text = t.get_ref().trim();
            if is_name(text) {
                Some(text.to_string())
            } else {
                self.problem(Some(&t.span()), &step_key("template"), format!("\"{text}\" must be a bare name (letters, digits, - and _), without a folder or extension"));
                None
            }
        });
        let subject = self.required(raw_step.subject, Some(&step_span), &step_key("subject"), "write the subject line (a template, e.g. \"{{first_name}}, may we ask why you left?\")");
        Some(Step {
            kind: kind?,
            after_days: after_days?,
            template: template?,
            subject: subject?.into_inner(),
            line: self.line_of(&step_span),
            on,
            every_days,
        })
    }

    /// `send_at`: a crontab line; both day fields set is a warning (crontab's "either").
    fn send_at(
        &mut self,
        raw: Option<Spanned<String>>,
        span: &Range<usize>,
        key: &str,
    ) -> Option<SendAt> {
        match raw {
            None => {
                self.problem(Some(span), key, "is missing; write when messages go out in the recipient's time zone, e.g. \"0 10 * * Tue-Thu\" (10:00, Tuesday to Thursday)");
                None
            }
            Some(s) => match SendAt::parse(s.get_ref()) {
                Ok(send_at) => {
                    if let Some((days, weekdays)) = send_at.either_day() {
                        self.warning(&s.span(), key, format!("\"{}\" sends on every day that is either day {days} of the month or a {weekdays} day (crontab's rule when both day fields are set), so also on other weekdays and at weekends; crontab cannot say \"both\": to send only on {weekdays}, write \"{}\"; only on days {days}, write \"{}\"", s.get_ref(), send_at.without_day_of_month(), send_at.without_day_of_week()));
                    }
                    Some(send_at)
                }
                Err(e) => {
                    self.problem(Some(&s.span()), key, format!("\"{}\" {e}", s.get_ref()));
                    None
                }
            },
        }
    }

    /// `timezone`: an IANA name (UTC when unset); an abbreviation or a fixed offset gets
    /// the place's name suggested.
    fn timezone(&mut self, raw: Option<Spanned<String>>, key: &str) -> Option<Tz> {
        match raw {
            None => Some(Tz::UTC),
            Some(t) => {
                let written = t.get_ref();
                match written.parse::<Tz>() {
                    Ok(tz) => {
                        if let Some(instead) = fixed_offset_zone(written) {
                            self.warning(&t.span(), key, format!("\"{written}\" is a fixed offset from UTC with no daylight saving time: while daylight saving is in force, messages go out an hour off the local clock; use the place's name, e.g. {instead}"));
                        }
                        Some(tz)
                    }
                    Err(_) => {
                        let trimmed = written.trim();
                        let message = if trimmed != written && trimmed.parse::<Tz>().is_ok() {
                            format!(
                                "\"{written}\" has a space before or after the name; remove it: timezone = \"{trimmed}\""
                            )
                        } else if let Some(instead) = zone_for_abbreviation(trimmed) {
                            format!(
                                "\"{written}\" is an abbreviation, not a time zone name; use \"{instead}\" (it follows daylight saving time)"
                            )
                        } else {
                            format!(
                                "\"{written}\" is not a time zone; use an IANA name such as \"America/New_York\" or \"Europe/Paris\""
                            )
                        };
                        self.problem(Some(&t.span()), key, message);
                        None
                    }
                }
            }
        }
    }

    /// `exclude_reasons`: the churn reasons never contacted, lower case; a likely
    /// misspelling, or a list without "we_ended", is a warning.
    fn exclude_reasons(&mut self, raw: Option<Spanned<Vec<String>>>, key: &str) -> Vec<String> {
        match raw {
            None => vec![ALWAYS_EXCLUDED.to_string()],
            Some(list) => {
                let mut typo_of_always = false;
                for reason in list.get_ref() {
                    if let Some(meant) = likely_reason(reason) {
                        typo_of_always |= meant == ALWAYS_EXCLUDED;
                        self.warning(&list.span(), key, format!("\"{reason}\" is not a churn reason winback knows; did you mean \"{meant}\"? Reasons are matched exactly as the CSV's churn_reason column writes them"));
                    }
                }
                if !typo_of_always && !list.get_ref().iter().any(|r| r == ALWAYS_EXCLUDED) {
                    self.warning(&list.span(), key, format!("does not list \"{ALWAYS_EXCLUDED}\"; those clients are never contacted anyway"));
                }
                list.into_inner()
                    .into_iter()
                    .map(|r| r.trim().to_lowercase())
                    .collect()
            }
        }
    }

    /// `quiet_days`: at least the minimum quiet period, at most ten years.
    fn quiet_days(&mut self, raw: Option<Spanned<i64>>, key: &str) -> i64 {
        match raw {
            None => MIN_QUIET_DAYS,
            Some(q) if *q.get_ref() < MIN_QUIET_DAYS => {
                self.problem(
                Some(&q.span()),
                key,
                format!("is {}; the quiet period must be at least {MIN_QUIET_DAYS} days (a former client contacted sooner is lost for good)", q.get_ref()),
            );
                MIN_QUIET_DAYS
            }
            Some(q) if *q.get_ref() > 3650 => {
                self.problem(
                    Some(&q.span()),
                    key,
                    "is more than ten years; use at most 3650",
                );
                MIN_QUIET_DAYS
            }
            Some(q) => *q.get_ref(),
        }
    }

    /// `renamed_from`: the name the campaign had before, never its own.
    fn renamed_from(
        &mut self,
        raw: Option<Spanned<String>>,
        name: Option<&str>,
        key: &str,
    ) -> Option<String> {
        let raw = raw?;
        let text = raw.get_ref().trim();
        if !is_name(text) {
            let message = format!(
                "\"{text}\" is not a campaign name; write the name this campaign had before, e.g. renamed_from = \"former-clients\""
            );
            self.problem(Some(&raw.span()), key, message);
            return None;
        }
        if name == Some(text) {
            let message = format!(
                "is the campaign's own name \"{text}\"; write the name it had before, or remove renamed_from"
            );
            self.problem(Some(&raw.span()), key, message);
        }
        Some(text.to_string())
    }
}

/// A name winback keeps as it is written: letters, digits, `-` and `_`, at least one.
fn is_name(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}
