//! The whole playbook through the real daemon over three simulated years, the clock moved
//! with `--now` from one of its wake-ups to the next, mail going to a real SMTP server: two
//! campaigns by churn reason, a quarterly newsletter, a December greeting, accounts by
//! company with a gap between their messages, US and German holiday calendars, quiet
//! dates, the consent horizon, and a return in the second year. Every message is checked
//! against the rules that may move it; `plan` at the start says what the run then sends.

use std::collections::BTreeMap;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Datelike, Days, NaiveDate, Timelike, Utc, Weekday};
use chrono_tz::Tz;

use crate::support::wakeups::{instant, rfc3339, run_until_with};
use crate::support::{Project, SmtpServer, settings};

const START: &str = "2026-05-01T09:00:00Z";
/// Ann (of Acme) becomes a client again, in the second year.
const RETURN_AT: &str = "2027-06-15T12:00:00Z";
const END: &str = "2029-05-01T00:00:00Z";
const HORIZON_DAYS: u64 = 730;
/// How long after each wake-up a pass starts: a real pass sends a moment after its
/// `send_at` moment, and each step still counts from that moment.
const LAG: chrono::Duration = chrono::Duration::seconds(2);
/// `account_gap_days` and `min_gap_days`.
const GAP: i64 = 7;

/// Each step's subject, unique, so that a message names its campaign and step.
const STEPS: [(&str, u32, &str); 7] = [
    ("left-over-price", 1, "Was it the price?"),
    ("left-over-price", 2, "Our prices this quarter"),
    ("left-over-price", 3, "Season's greetings"),
    ("former-clients", 1, "May we ask why you left?"),
    ("former-clients", 2, "What we have been working on"),
    ("former-clients", 3, "An article for you"),
    ("former-clients", 4, "Happy holidays"),
];

const US_ICS: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Acme//EN\r\n\
BEGIN:VEVENT\r\nUID:july4@acme\r\nSUMMARY:Independence Day\r\nDTSTART;VALUE=DATE:20200704\r\n\
DTEND;VALUE=DATE:20200705\r\nRRULE:FREQ=YEARLY\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:thanks@acme\r\nSUMMARY:Thanksgiving Day\r\nDTSTART;VALUE=DATE:20201126\r\n\
DTEND;VALUE=DATE:20201127\r\nRRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=4TH\r\nEND:VEVENT\r\n\
END:VCALENDAR\r\n";

const DE_ICS: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Acme//EN\r\n\
BEGIN:VEVENT\r\nUID:einheit@acme\r\nSUMMARY:Tag der Deutschen Einheit\r\nDTSTART;VALUE=DATE:20201003\r\n\
RRULE:FREQ=YEARLY\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:weihnachten@acme\r\nSUMMARY:Erster Weihnachtstag\r\nDTSTART;VALUE=DATE:20201225\r\n\
RRULE:FREQ=YEARLY\r\nEND:VEVENT\r\n\
END:VCALENDAR\r\n";

/// Campaign keys both campaigns share.
const COMMON: &str = r#"send_at = "0 10 * * *"
timezone = "America/New_York"
max_days_since_churn = 730
account_gap_days = 7
min_gap_days = 7
holidays = ["holidays/us.ics", "holidays/de.ics"]
quiet_dates = ["12-24..12-26"]"#;

fn config(smtp_url: &str) -> String {
    let subject = |campaign: &str, step: u32| {
        STEPS
            .iter()
            .find(|(c, s, _)| *c == campaign && *s == step)
            .map(|(_, _, subject)| *subject)
            .expect("a step")
    };
    format!(
        r#"{settings}
[clients]
account = "company"

[[campaign]]
name = "left-over-price"
include_reasons = ["price"]
{COMMON}

  [[campaign.step]]
  kind = "survey"
  template = "survey"
  subject = "{p1}"

  [[campaign.step]]
  kind = "newsletter"
  after_days = 30
  every_days = 91
  template = "newsletter"
  subject = "{p2}"

  [[campaign.step]]
  kind = "greeting"
  on = "12-10"
  after_days = 14
  template = "greeting"
  subject = "{p3}"

[[campaign]]
name = "former-clients"
{COMMON}

  [[campaign.step]]
  kind = "survey"
  template = "survey"
  subject = "{f1}"

  [[campaign.step]]
  kind = "newsletter"
  after_days = 30
  every_days = 91
  template = "newsletter"
  subject = "{f2}"

  [[campaign.step]]
  kind = "article"
  after_days = 45
  template = "article"
  subject = "{f3}"

  [[campaign.step]]
  kind = "greeting"
  on = "12-10"
  after_days = 14
  template = "greeting"
  subject = "{f4}"
"#,
        settings = settings(smtp_url, "127.0.0.1:0"),
        p1 = subject("left-over-price", 1),
        p2 = subject("left-over-price", 2),
        p3 = subject("left-over-price", 3),
        f1 = subject("former-clients", 1),
        f2 = subject("former-clients", 2),
        f3 = subject("former-clients", 3),
        f4 = subject("former-clients", 4),
    )
}

/// One former client of the sample.
struct Person {
    email: &'static str,
    company: &'static str,
    reason: &'static str,
    zone: &'static str,
    country: &'static str,
    churned: &'static str,
}

/// Two accounts of two contacts each (Acme across both campaigns, Globex too), clients in
/// New York, Chicago, Los Angeles, Berlin, London and of no known zone; one who left too
/// long ago and one we let go. Their dates put a survey on 4 July (Carl in the US, Dora in
/// Germany), a newsletter on Thanksgiving (Eve, of no country: every calendar) and on 24
/// December (Hal), one five days after a greeting (Ivy), and two surveys of one account
/// on one day (Ann and Bob).
const PEOPLE: [Person; 11] = [
    Person {
        email: "ann@acme.example",
        company: "Acme Widgets",
        reason: "price",
        zone: "America/New_York",
        country: "US",
        churned: "2026-02-20",
    },
    Person {
        email: "bob@acme.example",
        company: " ACME widgets",
        reason: "competitor",
        zone: "America/Chicago",
        country: "",
        churned: "2026-02-20",
    },
    Person {
        email: "gus@globex.example",
        company: "Globex GmbH",
        reason: "needs_changed",
        zone: "Europe/Berlin",
        country: "DE",
        churned: "2026-03-01",
    },
    Person {
        email: "gina@globex.example",
        company: "Globex GmbH",
        reason: "price",
        zone: "Europe/Berlin",
        country: "Germany",
        churned: "2026-03-05",
    },
    Person {
        email: "carl@initrode.example",
        company: "Initrode",
        reason: "competitor",
        zone: "America/Los_Angeles",
        country: "US",
        churned: "2026-04-05",
    },
    Person {
        email: "dora@hooli.example",
        company: "Hooli",
        reason: "competitor",
        zone: "Europe/Berlin",
        country: "DE",
        churned: "2026-04-05",
    },
    Person {
        email: "eve@freelance.example",
        company: "",
        reason: "other",
        zone: "",
        country: "",
        churned: "2026-04-29",
    },
    Person {
        email: "hal@umbrella.example",
        company: "Umbrella",
        reason: "price",
        zone: "America/New_York",
        country: "US",
        churned: "2026-02-25",
    },
    Person {
        email: "ivy@example.co.uk",
        company: "Tyrell",
        reason: "price",
        zone: "Europe/London",
        country: "GB",
        churned: "2026-02-16",
    },
    Person {
        email: "old@legacy.example",
        company: "Legacy",
        reason: "other",
        zone: "America/New_York",
        country: "US",
        churned: "2023-06-01",
    },
    Person {
        email: "zed@ended.example",
        company: "Ended",
        reason: "we_ended",
        zone: "America/New_York",
        country: "US",
        churned: "2026-02-20",
    },
];

fn person(email: &str) -> &'static Person {
    PEOPLE
        .iter()
        .find(|p| p.email == email)
        .unwrap_or_else(|| panic!("{email} is not in the sample"))
}

fn zone_of(p: &Person) -> Tz {
    let name = if p.zone.is_empty() {
        "America/New_York"
    } else {
        p.zone
    };
    name.parse().expect("a zone")
}

fn date(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("a date")
}

fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("a date")
}

/// What the test's calendars and quiet dates keep free for `p` on `day`, by name.
fn kept_free(p: &Person, day: NaiveDate) -> Option<&'static str> {
    let country = match (p.country, p.zone) {
        ("", "") => None,
        ("", "America/Chicago") => Some("US"),
        ("Germany", _) => Some("DE"),
        (code, _) => Some(code),
    };
    let thanksgiving =
        day.month() == 11 && day.weekday() == Weekday::Thu && (22..=28).contains(&day.day());
    let us = country.is_none_or(|c| c == "US");
    let de = country.is_none_or(|c| c == "DE");
    match (day.month(), day.day()) {
        (7, 4) if us => Some("Independence Day"),
        _ if thanksgiving && us => Some("Thanksgiving Day"),
        (10, 3) if de => Some("Tag der Deutschen Einheit"),
        (12, 24..=26) => Some("quiet dates 12-24..12-26"),
        _ => None,
    }
}

fn project(smtp_url: &str) -> Project {
    let project = Project::new();
    project.write_config(&config(smtp_url));
    project.fill_placeholders();
    project.write_file("holidays/us.ics", US_ICS);
    project.write_file("holidays/de.ics", DE_ICS);
    let mut csv = String::from("email,name,company,churn_reason,timezone,country,churned_at\n");
    for p in &PEOPLE {
        let name = p.email.split('@').next().unwrap_or_default();
        csv.push_str(&format!(
            "{},{name},{},{},{},{},{}\n",
            p.email, p.company, p.reason, p.zone, p.country, p.churned
        ));
    }
    project.write_file("clients.csv", &csv);
    project.winback(&["check"]).assert_success();
    project
        .winback(&["--now", START, "import", "clients.csv"])
        .assert_success();
    project
}

/// One message the server received.
#[derive(Debug, Clone)]
struct Sent {
    to: String,
    at: DateTime<Utc>,
    campaign: &'static str,
    step: u32,
}

impl Sent {
    fn day(&self) -> NaiveDate {
        self.at
            .with_timezone(&zone_of(person(&self.to)))
            .date_naive()
    }
}

fn received(smtp: &SmtpServer) -> Vec<Sent> {
    let mut out: Vec<Sent> = smtp
        .messages()
        .iter()
        .map(|m| {
            let subject = m.header_decoded("Subject").expect("a subject");
            let (campaign, step, _) = STEPS
                .iter()
                .find(|(_, _, s)| *s == subject)
                .unwrap_or_else(|| panic!("unknown subject {subject:?}"));
            let date = m.header("Date").expect("a Date");
            let at = DateTime::parse_from_rfc2822(&date)
                .unwrap_or_else(|e| panic!("Date {date}: {e}"))
                .with_timezone(&Utc);
            assert_eq!(m.rcpt_tos.len(), 1, "{:?}", m.rcpt_tos);
            Sent {
                to: m.rcpt_tos[0].clone(),
                at,
                campaign,
                step: *step,
            }
        })
        .collect();
    out.sort_by_key(|s| (s.at, s.to.clone()));
    out
}

/// Runs the daemon from `from` to `to` (one `run --once` at each wake-up); at the first
/// wake-up with mail due at or after `long_run_from`, a long-running `run` sends it
/// instead and is stopped once the server has it. Returns whether that happened.
fn run(
    project: &Project,
    smtp: &SmtpServer,
    from: &str,
    to: &str,
    long_run_from: Option<&str>,
) -> bool {
    let mut long_run = long_run_from.map(instant);
    let mut long_ran = false;
    run_until_with(project, (from, to), LAG, 600, |now| {
        let due_now = long_run
            .filter(|t| instant(now) >= *t)
            .map(|_| planned(project, now, 1))
            .map(|plan| {
                plan.iter()
                    .filter(|p| p.at <= instant(now) + chrono::Duration::seconds(59))
                    .count()
            })
            .unwrap_or(0);
        if due_now == 0 {
            project
                .winback(&["--now", now, "run", "--once"])
                .assert_success();
            return;
        }
        long_run = None;
        long_ran = true;
        let before = smtp.messages().len();
        let daemon = project.spawn_winback(&["--now", now, "run"]);
        smtp.wait_for(before + due_now, StdDuration::from_secs(30));
        let out = daemon.stop(StdDuration::from_secs(10));
        out.assert_success();
        assert_eq!(
            smtp.messages().len(),
            before + due_now,
            "the long-running daemon sent what plan said at {now}\n{}",
            out.stderr
        );
    });
    long_ran
}

/// One message `plan` lists.
#[derive(Debug, Clone)]
struct PlanLine {
    at: DateTime<Utc>,
    email: String,
    campaign: String,
    step: u32,
    reason: String,
}

fn planned(project: &Project, now: &str, days: u32) -> Vec<PlanLine> {
    let out = project.winback(&[
        "--now",
        now,
        "plan",
        "--days",
        &days.to_string(),
        "--format",
        "json",
    ]);
    out.assert_success();
    let lines: Vec<serde_json::Value> = serde_json::from_str(&out.stdout).expect("plan is JSON");
    lines
        .iter()
        .filter(|l| l["held"].as_bool() != Some(true))
        .map(|l| PlanLine {
            at: instant(l["at"].as_str().expect("at")),
            email: l["email"].as_str().expect("email").to_string(),
            campaign: l["campaign"].as_str().expect("campaign").to_string(),
            step: l["step"].as_u64().expect("step") as u32,
            reason: l["reason"].as_str().expect("reason").to_string(),
        })
        .collect()
}

/// The first 10 December on or after `from`.
fn next_december_10(from: NaiveDate) -> NaiveDate {
    let this_year = ymd(from.year(), 12, 10);
    if this_year >= from {
        this_year
    } else {
        ymd(from.year() + 1, 12, 10)
    }
}

/// Why the daemon may not send `message` (`recurring`: of an `every_days` step) to its
/// recipient on `day`, given every message sent: a holiday or quiet date of theirs,
/// another message to them that day, a recurring message within `GAP` days of another of
/// theirs, a message to their account (another contact or themselves) within `GAP` days. None:
/// nothing keeps it.
fn rule_keeping(all: &[Sent], message: &Sent, recurring: bool, day: NaiveDate) -> Option<String> {
    let p = person(&message.to);
    let tz = zone_of(p);
    if let Some(name) = kept_free(p, day) {
        return Some(name.to_string());
    }
    let company = p.company.trim().to_lowercase();
    for other in all {
        if other.at == message.at && other.to == message.to {
            continue;
        }
        let apart = (other.at.with_timezone(&tz).date_naive() - day)
            .num_days()
            .abs();
        if other.to == message.to && apart == 0 {
            return Some(format!("same day as {other:?}"));
        }
        if other.to == message.to && recurring && apart < GAP {
            return Some(format!("min gap from {other:?}"));
        }
        let theirs = person(&other.to).company.trim().to_lowercase();
        if !company.is_empty() && theirs == company && apart < GAP {
            return Some(format!("account gap from {other:?}"));
        }
    }
    None
}

/// Walks one person's messages in order, working out when each was due from the ones
/// before (the survey 90 days after the churn, the newsletter 30 days after the survey
/// and then 91 days after its previous one, the article 45 days after the first
/// newsletter, the greeting on the first 10 December 14 days after the step before it,
/// then each 10 December), and asserts each went at 10:00 local on the first day from its
/// due day that no rule kept it from. Returns the first day the next message could go.
fn check_person(all: &[Sent], email: &str) -> NaiveDate {
    let p = person(email);
    let tz = zone_of(p);
    let theirs: Vec<&Sent> = all.iter().filter(|s| s.to == email).collect();
    let campaign = if p.reason == "price" {
        "left-over-price"
    } else {
        "former-clients"
    };
    let (newsletter, article, greeting) = match campaign {
        "left-over-price" => (2, None, 3),
        _ => (2, Some(3), 4),
    };
    let mut survey: Option<NaiveDate> = None;
    let mut news: Vec<NaiveDate> = Vec::new();
    let mut article_day: Option<NaiveDate> = None;
    let mut greetings: Vec<NaiveDate> = Vec::new();
    let days = |d: NaiveDate, n: u64| d.checked_add_days(Days::new(n)).expect("a date");
    // The candidates for the next message: (due day, step, recurring).
    let next = |survey: Option<NaiveDate>,
                news: &[NaiveDate],
                article_day: Option<NaiveDate>,
                greetings: &[NaiveDate]|
     -> Vec<(NaiveDate, u32, bool)> {
        let Some(survey) = survey else {
            return vec![(days(date(p.churned), 90), 1, false)];
        };
        let mut out = vec![match news.last() {
            None => (days(survey, 30), newsletter, true),
            Some(last) => (days(*last, 91), newsletter, true),
        }];
        if let (Some(first_news), Some(step)) = (news.first(), article)
            && article_day.is_none()
        {
            out.push((days(*first_news, 45), step, false));
        }
        let greeting_base = match article {
            Some(_) => article_day,
            None => news.first().copied(),
        };
        match (greetings.last(), greeting_base) {
            (Some(last), _) => out.push((next_december_10(days(*last, 1)), greeting, false)),
            (None, Some(base)) => out.push((next_december_10(days(base, 14)), greeting, false)),
            (None, None) => {}
        }
        out
    };
    for message in &theirs {
        assert_eq!(
            message.campaign, campaign,
            "{message:?}: the wrong campaign"
        );
        let local = message.at.with_timezone(&tz);
        assert_eq!(
            (local.hour(), local.minute()),
            (10, 0),
            "{message:?}: not at 10:00 in {tz}"
        );
        let candidates = next(survey, &news, article_day, &greetings);
        let (due, _, recurring) = candidates
            .iter()
            .find(|(_, step, _)| *step == message.step)
            .copied()
            .unwrap_or_else(|| {
                panic!("{message:?} is not a step that could come next: {candidates:?}")
            });
        let day = message.day();
        assert!(
            day >= due,
            "{message:?} went before its due day {due}: {theirs:#?}"
        );
        assert_eq!(
            rule_keeping(all, message, recurring, day),
            None,
            "{message:?} went on a day a rule keeps free"
        );
        let mut d = due;
        while d < day {
            assert!(
                rule_keeping(all, message, recurring, d).is_some(),
                "{message:?} was due {due} and nothing kept it from going on {d}: {theirs:#?}"
            );
            d = days(d, 1);
        }
        match message.step {
            1 => survey = Some(day),
            s if s == newsletter => news.push(day),
            s if Some(s) == article => article_day = Some(day),
            _ => greetings.push(day),
        }
    }
    // The first day the next message could have gone.
    let candidates = next(survey, &news, article_day, &greetings);
    candidates
        .iter()
        .map(|(due, step, recurring)| {
            let probe = Sent {
                to: email.to_string(),
                at: DateTime::<Utc>::MIN_UTC,
                campaign,
                step: *step,
            };
            let mut d = *due;
            while rule_keeping(all, &probe, *recurring, d).is_some() {
                d = days(d, 1);
            }
            d
        })
        .min()
        .expect("a next message")
}

#[test]
fn three_years_of_the_playbook_by_reason_account_holiday_and_horizon() {
    let smtp = SmtpServer::start(serde_json::Value::Null);
    let project = project(&smtp.url());
    // The first year and a half, a long-running daemon at the first sends of 2027.
    let long_ran = run(
        &project,
        &smtp,
        START,
        RETURN_AT,
        Some("2027-01-01T00:00:00Z"),
    );
    assert!(
        long_ran,
        "no wake-up in 2027 before the return had mail due"
    );
    let before_return = smtp.messages().len();
    project
        .winback(&["--now", RETURN_AT, "returned", "ann@acme.example"])
        .assert_success();
    run(&project, &smtp, RETURN_AT, END, None);
    let all = received(&smtp);
    assert!(all.len() > before_return, "nothing after the return");
    let mut by_person: BTreeMap<&str, Vec<&Sent>> = BTreeMap::new();
    for s in &all {
        by_person.entry(s.to.as_str()).or_default().push(s);
    }
    let listing = |email: &str| -> Vec<String> {
        by_person
            .get(email)
            .into_iter()
            .flatten()
            .map(|s| format!("{} {} step {}", s.day(), s.campaign, s.step))
            .collect()
    };

    // Nobody long gone or let go hears from us; everyone else does.
    for email in ["old@legacy.example", "zed@ended.example"] {
        assert!(!by_person.contains_key(email), "{:#?}", listing(email));
    }

    let return_at = instant(RETURN_AT);
    for p in PEOPLE
        .iter()
        .filter(|p| p.reason != "we_ended" && !p.email.starts_with("old"))
    {
        let theirs = by_person
            .get(p.email)
            .unwrap_or_else(|| panic!("nothing to {}", p.email));
        // One survey in all, the first message, from the campaign of their reason.
        let surveys: Vec<&&Sent> = theirs.iter().filter(|s| s.step == 1).collect();
        assert_eq!(surveys.len(), 1, "{}: {:#?}", p.email, listing(p.email));
        assert_eq!(theirs[0].step, 1, "{}", p.email);
        // Each message on its due day or moved by a named rule, never on a day kept free;
        // and the next one could only go past the horizon (or the return, for Acme).
        let next = check_person(&all, p.email);
        let horizon = date(p.churned)
            .checked_add_days(Days::new(HORIZON_DAYS))
            .expect("a date");
        assert!(
            theirs.iter().all(|s| s.day() <= horizon),
            "{}: a message past the horizon {horizon}: {:#?}",
            p.email,
            listing(p.email)
        );
        if p.company.trim().eq_ignore_ascii_case("acme widgets") {
            // Ann came back: nothing more to her or to Bob, of her company, after that
            // moment, though more was due.
            assert!(
                theirs.iter().all(|s| s.at < return_at),
                "{}: {:#?}",
                p.email,
                listing(p.email)
            );
            assert!(
                next <= ymd(2027, 9, 15),
                "{}: nothing was due after the return: {:#?}",
                p.email,
                listing(p.email)
            );
        } else {
            assert!(
                next > horizon,
                "{}: stopped on {next}, before the horizon {horizon}: {:#?}",
                p.email,
                listing(p.email)
            );
            // A greeting each December from the first to the horizon's.
            let greetings: Vec<NaiveDate> = theirs
                .iter()
                .filter(|s| s.step == if p.reason == "price" { 3 } else { 4 })
                .map(|s| s.day())
                .collect();
            assert!(greetings.len() >= 2, "{}: {greetings:?}", p.email);
            assert!(
                greetings.iter().all(|g| g.month() == 12 && g.day() >= 10),
                "{}: {greetings:?}",
                p.email
            );
        }
    }
    // The other account goes on after the return.
    for email in ["gus@globex.example", "gina@globex.example"] {
        assert!(
            by_person[email].iter().any(|s| s.at > return_at),
            "{email}: {:#?}",
            listing(email)
        );
    }

    // At most one message per account per 7 days (in the later recipient's zone).
    for (i, a) in all.iter().enumerate() {
        for b in &all[i + 1..] {
            let (pa, pb) = (person(&a.to), person(&b.to));
            let company = pa.company.trim().to_lowercase();
            if company.is_empty() || company != pb.company.trim().to_lowercase() {
                continue;
            }
            let tz = zone_of(pb);
            let apart = (b.day() - a.at.with_timezone(&tz).date_naive()).num_days();
            assert!(apart >= GAP, "{a:?} and {b:?}: {apart} days apart");
        }
    }

    // The named cases: 4 July kept free for Carl (US), not for Dora (Germany);
    // Thanksgiving for Eve (no country: every calendar); 24 December for Hal; a
    // newsletter 7 days after Ivy's greeting; Bob's survey a week after Ann's.
    let first_of = |email: &str| by_person[email][0].day();
    assert_eq!(first_of("carl@initrode.example"), ymd(2026, 7, 5));
    assert_eq!(first_of("dora@hooli.example"), ymd(2026, 7, 4));
    for year in 2026..=2029 {
        for email in [
            "carl@initrode.example",
            "hal@umbrella.example",
            "ann@acme.example",
        ] {
            assert!(
                by_person[email].iter().all(|s| s.day() != ymd(year, 7, 4)),
                "{email}: {:#?}",
                listing(email)
            );
        }
    }
    let on = |email: &str, day: NaiveDate| by_person[email].iter().any(|s| s.day() == day);
    assert!(
        on("eve@freelance.example", ymd(2026, 11, 27)),
        "{:#?}",
        listing("eve@freelance.example")
    );
    assert!(
        on("hal@umbrella.example", ymd(2026, 12, 27)),
        "{:#?}",
        listing("hal@umbrella.example")
    );
    assert!(
        on("ivy@example.co.uk", ymd(2026, 12, 17)),
        "{:#?}",
        listing("ivy@example.co.uk")
    );
    assert_eq!(first_of("ann@acme.example"), ymd(2026, 5, 21));
    assert_eq!(first_of("bob@acme.example"), ymd(2026, 5, 28));

    // Every sequence ended: Acme's by the return, the rest at the horizon.
    let status = project.winback(&["--now", END, "status"]);
    status.assert_success();
    for (campaign, states) in [
        ("left-over-price", "expired 3, returned 1"),
        ("former-clients", "expired 5, returned 1"),
    ] {
        let line = format!("campaign {campaign}:\n  enrollments: {states}\n");
        assert!(status.stdout.contains(&line), "{}", status.stdout);
    }
}

#[test]
fn plan_over_400_days_names_every_rule_that_moves_a_send_and_the_daemon_sends_what_it_said() {
    let smtp = SmtpServer::start(serde_json::Value::Null);
    let project = project(&smtp.url());
    let plan = planned(&project, START, 400);
    let until = instant(START) + chrono::Duration::days(400);
    let find = |email: &str, day: NaiveDate| {
        let tz = zone_of(person(email));
        plan.iter()
            .find(|p| p.email == email && p.at.with_timezone(&tz).date_naive() == day)
            .unwrap_or_else(|| panic!("nothing planned to {email} on {day}: {plan:#?}"))
    };
    // Each move names its rule: a holiday by name, quiet dates, the account gap, the min
    // gap; each seasonal and recurring send says so.
    for (email, day, step, why) in [
        (
            "carl@initrode.example",
            ymd(2026, 7, 5),
            1,
            "moved: 2026-07-04 is kept free (Independence Day (holidays/us.ics))",
        ),
        (
            "eve@freelance.example",
            ymd(2026, 11, 27),
            2,
            "moved: 2026-11-26 is kept free (Thanksgiving Day (holidays/us.ics))",
        ),
        (
            "hal@umbrella.example",
            ymd(2026, 12, 27),
            2,
            "moved: 2026-12-24 is kept free (quiet dates 12-24..12-26)",
        ),
        (
            "bob@acme.example",
            ymd(2026, 5, 28),
            1,
            "account gap: acme widgets got a message on 2026-05-21",
        ),
        (
            "ivy@example.co.uk",
            ymd(2026, 12, 17),
            2,
            "min gap: 7 days from the message of 2026-12-10",
        ),
        ("ivy@example.co.uk", ymd(2026, 12, 10), 3, "seasonal: 12-10"),
        (
            "carl@initrode.example",
            ymd(2026, 12, 10),
            4,
            "seasonal: 12-10",
        ),
        ("ivy@example.co.uk", ymd(2026, 9, 15), 2, "every 91 days"),
    ] {
        let line = find(email, day);
        assert_eq!(line.step, step, "{line:?}");
        assert!(line.reason.contains(why), "{line:?} does not say {why:?}");
    }
    // Dora, in Germany, is surveyed on 4 July, with nothing moved.
    let dora = find("dora@hooli.example", ymd(2026, 7, 4));
    assert!(!dora.reason.contains("moved"), "{dora:?}");
    // Nobody is planned twice a survey, nor anything to the long gone or let go.
    assert!(
        plan.iter()
            .all(|p| !p.email.starts_with("old@") && !p.email.starts_with("zed@")),
        "{plan:#?}"
    );
    assert!(plan.len() >= 40, "{plan:#?}");

    // The daemon then sends exactly that: the same people, steps and minutes.
    run(&project, &smtp, START, &rfc3339(until), None);
    let minute = |t: DateTime<Utc>| rfc3339(t)[..16].to_string();
    // Sorted: within one minute, the order of sends is not the point.
    let mut said: Vec<(String, String, String, u32)> = plan
        .iter()
        .map(|p| (minute(p.at), p.email.clone(), p.campaign.clone(), p.step))
        .collect();
    let mut sent: Vec<(String, String, String, u32)> = received(&smtp)
        .into_iter()
        .filter(|s| s.at <= until)
        .map(|s| (minute(s.at), s.to, s.campaign.to_string(), s.step))
        .collect();
    said.sort();
    sent.sort();
    assert_eq!(sent, said);
}
