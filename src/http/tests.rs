//! The routes end to end against a real (temporary) store, through `oneshot`.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::header::{HeaderMap, HeaderValue};
use axum::http::{Request, StatusCode, header};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use serde_json::Value;
use tower::ServiceExt;

use super::guard::{client_address, within};
use super::*;
use crate::clock::Clock;
use crate::config::Config;
use crate::domain::model::{ChurnedAt, ClientRecord};
use crate::domain::survey::{MAX_TEXT_CHARS, SURVEY_REASONS, WOULD_RETURN};
use crate::mail::pages::check_pages;
use crate::store::{SharedStore, Store};
use crate::token::{self, Purpose, Secret, Target};

const URLENCODED: &str = "application/x-www-form-urlencoded";

struct Fixture {
    dir: tempfile::TempDir,
    state: HttpState,
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 15, 12, 0, 0).unwrap()
}

fn fixture() -> Fixture {
    fixture_with("")
}

/// A config (with `extra` appended), an empty store, a fixed secret and a clock at `now()`.
fn fixture_with(extra: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("templates")).unwrap();
    let path = dir.path().join("winback.toml");
    let text = format!(
        r#"
[smtp]
url = "file://outbox"
from = "Acme <success@acme.example>"

[http]
public_url = "https://winback.acme.example"

[sender]
company = "Acme & Sons"
postal_address = "1 Main Street, Springfield"

[[campaign]]
name = "former-clients"
send_at = "* * * * *"
timezone = "UTC"

[[campaign.step]]
kind = "survey"
template = "survey"
subject = "Why?"

[[campaign.step]]
kind = "newsletter"
after_days = 30
template = "newsletter"
subject = "News"
{extra}
"#
    );
    std::fs::write(&path, &text).unwrap();
    let config = Config::parse(&path, &text).unwrap_or_else(|e| panic!("{e}"));
    let store = Store::open(&dir.path().join("winback.db")).unwrap();
    let state = HttpState {
        wake: Default::default(),
        config: Arc::new(config),
        store: SharedStore::new(store),
        secret: Arc::new(Secret::from_text("test secret")),
        clock: Clock::starting_at(now()),
    };
    Fixture { dir, state }
}

impl Fixture {
    /// Imports a former client and returns what their links point at.
    fn import(&self, email: &str, name: &str) -> Target {
        self.import_people(&[(email, name)])[0]
    }

    /// Imports former clients in one file and returns what their links point at.
    fn import_people(&self, people: &[(&str, &str)]) -> Vec<Target> {
        let rows: Vec<_> = people
            .iter()
            .enumerate()
            .map(|(index, (email, name))| {
                let record = ClientRecord {
                    email: email.to_string(),
                    name: Some(name.to_string()),
                    first_name: None,
                    company: Some("Globex".to_string()),
                    churned_at: ChurnedAt::Date(NaiveDate::from_ymd_opt(2025, 6, 1).unwrap()),
                    churn_reason: Some("competitor".to_string()),
                    timezone: None,
                    fields: BTreeMap::new(),
                    country: None,
                    returned_at: None,
                    opted_out: false,
                };
                Ok((index as u64 + 2, record))
            })
            .collect();
        let mut store = self.state.store.lock().unwrap();
        assert!(
            store
                .import(
                    rows.into_iter(),
                    &self.state.config,
                    now(),
                    false,
                    &mut |_| {}
                )
                .unwrap()
                .applied
        );
        drop(store);
        people
            .iter()
            .map(|(email, _)| {
                Target::Enrollment(self.export(email)["enrollments"][0]["id"].as_i64().unwrap())
            })
            .collect()
    }

    fn export(&self, email: &str) -> Value {
        self.state
            .store
            .lock()
            .unwrap()
            .export_person(email)
            .unwrap()
            .unwrap_or(Value::Null)
    }

    /// (enrollment state, suppression reason or "none")
    fn standing(&self, email: &str) -> (String, String) {
        let export = self.export(email);
        let state = export["enrollments"][0]["state"]
            .as_str()
            .unwrap_or("none")
            .to_string();
        let reason = export["suppression"]["reason"]
            .as_str()
            .unwrap_or("none")
            .to_string();
        (state, reason)
    }

    fn survey_answers(&self) -> Vec<crate::store::SurveyAnswerRow> {
        self.state.store.lock().unwrap().survey_answers().unwrap()
    }

    fn token(&self, purpose: Purpose, id: &Target) -> String {
        token::issue(&self.state.secret, purpose, *id)
    }

    fn router(&self) -> Router {
        self.router_from(SocketAddr::from(([192, 0, 2, 1], 40000)))
    }

    fn router_from(&self, peer: SocketAddr) -> Router {
        router(self.state.clone())
            .unwrap_or_else(|e| panic!("{e}"))
            .layer(MockConnectInfo(peer))
    }
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

async fn send(router: &Router, request: Request<Body>) -> Answer {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    Answer {
        status,
        headers,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

async fn get(router: &Router, uri: &str) -> Answer {
    send(router, Request::get(uri).body(Body::empty()).unwrap()).await
}

async fn post(router: &Router, uri: &str, content_type: &str, body: impl Into<Body>) -> Answer {
    let request = Request::post(uri)
        .header(header::CONTENT_TYPE, content_type)
        .body(body.into())
        .unwrap();
    send(router, request).await
}

/// A form body, percent-encoded.
fn form(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| {
            let encode = |s: &str| {
                s.bytes()
                    .map(|b| match b {
                        b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                            (b as char).to_string()
                        }
                        _ => format!("%{b:02X}"),
                    })
                    .collect::<String>()
            };
            format!("{}={}", encode(k), encode(v))
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[tokio::test]
async fn healthz_answers_ok() {
    let f = fixture();
    let answer = get(&f.router(), "/healthz").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, "ok");
}

#[tokio::test]
async fn a_get_shows_the_button_and_changes_nothing() {
    let f = fixture();
    let id = f.import("pat@client.example", "Pat <b>Smith</b>");
    let token = f.token(Purpose::Unsubscribe, &id);
    let router = f.router();
    for _ in 0..3 {
        let answer = get(&router, &format!("/u/{token}")).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert!(answer.body.contains(r#"<meta name="viewport""#));
        assert!(answer.body.contains(&format!(
            r#"<form method="post" action="https://winback.acme.example/u/{token}">"#
        )));
        assert!(
            answer
                .body
                .contains("<button type=\"submit\">Unsubscribe</button>")
        );
        assert!(answer.body.contains("Acme &amp; Sons"));
        assert_eq!(
            answer.headers[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
    }
    let head = send(
        &router,
        Request::head(format!("/u/{token}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(
        f.standing("pat@client.example"),
        ("active".to_string(), "none".to_string())
    );
}

#[tokio::test]
async fn names_are_escaped_on_the_pages() {
    let f = fixture();
    let id = f.import("pat@client.example", "<script>alert(1)</script> Smith");
    let answer = get(
        &f.router(),
        &format!("/u/{}", f.token(Purpose::Unsubscribe, &id)),
    )
    .await;
    assert!(!answer.body.contains("<script>"));
    assert!(
        answer
            .body
            .contains("&lt;script&gt;alert(1)&lt;/script&gt;")
    );
}

#[tokio::test]
async fn one_click_unsubscribes_with_a_200_page_and_is_idempotent() {
    let f = fixture();
    let id = f.import("pat@client.example", "Pat Smith");
    let token = f.token(Purpose::Unsubscribe, &id);
    let router = f.router();
    let uri = format!("/u/{token}");
    let answer = post(&router, &uri, URLENCODED, "List-Unsubscribe=One-Click").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.headers.get(header::LOCATION).is_none());
    assert!(answer.body.contains("You are unsubscribed"));
    assert!(answer.body.contains(&format!(
        r#"action="https://winback.acme.example/u/{token}/undo""#
    )));
    assert!(answer.body.contains(&format!(
        "https://winback.acme.example/s/{}",
        f.token(Purpose::Survey, &id)
    )));
    assert_eq!(
        f.standing("pat@client.example"),
        ("opted_out".to_string(), "opt_out".to_string())
    );
    assert_eq!(
        f.export("pat@client.example")["suppression"]["source"],
        "link"
    );

    let again = post(&router, &uri, URLENCODED, "List-Unsubscribe=One-Click").await;
    assert_eq!(again.status, StatusCode::OK);
    assert!(again.body.contains("You are unsubscribed"));
    let events = f.export("pat@client.example")["events"].clone();
    let opt_outs = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "opt_out")
        .count();
    assert_eq!(opt_outs, 1);
    // The page now says so, and offers the way back.
    let page = get(&router, &uri).await;
    assert!(page.body.contains("Subscribe me again"));
}

#[tokio::test]
async fn any_post_body_unsubscribes() {
    let f = fixture();
    let multipart = "--XyZ\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n--XyZ--\r\n";
    let cases = [
        ("multipart/form-data; boundary=XyZ", multipart.to_string()),
        (URLENCODED, String::new()),
        ("text/plain", "anything".to_string()),
    ];
    let router = f.router();
    for (index, (content_type, body)) in cases.into_iter().enumerate() {
        let email = format!("p{index}@client.example");
        let id = f.import(&email, "Pat");
        let answer = post(
            &router,
            &format!("/u/{}", f.token(Purpose::Unsubscribe, &id)),
            content_type,
            body,
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK, "{content_type}");
        assert_eq!(f.standing(&email).1, "opt_out", "{content_type}");
    }
}

#[tokio::test]
async fn undo_resubscribes_only_when_clicked() {
    let f = fixture();
    let id = f.import("pat@client.example", "Pat Smith");
    let token = f.token(Purpose::Unsubscribe, &id);
    let router = f.router();
    let before = f.export("pat@client.example")["enrollments"][0]["send_at"].clone();
    post(
        &router,
        &format!("/u/{token}"),
        URLENCODED,
        "List-Unsubscribe=One-Click",
    )
    .await;
    assert_eq!(f.standing("pat@client.example").1, "opt_out");

    let answer = post(&router, &format!("/u/{token}/undo"), URLENCODED, "").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.body.contains("You are subscribed again"));
    assert!(answer.body.contains("Welcome back, Pat."));
    assert_eq!(
        f.standing("pat@client.example"),
        ("active".to_string(), "none".to_string())
    );
    let after = f.export("pat@client.example")["enrollments"][0]["send_at"].clone();
    assert!(after.is_string());
    // Resumed, and never earlier than it was planned before the opt-out.
    assert!(after.as_str() >= before.as_str(), "{after} vs {before}");
    // Undo needs a POST; a prefetching scanner cannot trigger it.
    let get_undo = get(&router, &format!("/u/{token}/undo")).await;
    assert_eq!(get_undo.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn undo_cannot_lift_an_opt_out_recorded_by_the_operator() {
    let f = fixture();
    let id = f.import("pat@client.example", "Pat Smith");
    f.state
        .store
        .lock()
        .unwrap()
        .record_opt_out("pat@client.example", "cli", now())
        .unwrap();
    let answer = post(
        &f.router(),
        &format!("/u/{}/undo", f.token(Purpose::Unsubscribe, &id)),
        URLENCODED,
        "",
    )
    .await;
    assert_eq!(answer.status, StatusCode::CONFLICT);
    assert!(answer.body.contains("We cannot undo this here"));
    assert_eq!(f.standing("pat@client.example").1, "opt_out");
}

#[tokio::test]
async fn bad_tokens_get_one_404_page_and_change_nothing() {
    let f = fixture();
    let id = f.import("pat@client.example", "Pat Smith");
    let good = f.token(Purpose::Unsubscribe, &id);
    let mut altered = good.clone().into_bytes();
    altered[20] = if altered[20] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    let other_secret = token::issue(
        &Secret::from_text("another secret"),
        Purpose::Unsubscribe,
        id,
    );
    let unknown = f.token(Purpose::Unsubscribe, &Target::Legacy([7; 16]));
    let tokens = [
        altered.clone(),
        good[..good.len() - 1].to_string(),
        format!("{good}A"),
        f.token(Purpose::Survey, &id),
        other_secret,
        unknown,
        "%FF%FE".to_string(),
        "x".repeat(5000),
    ];
    let router = f.router();
    let reference = get(&router, &format!("/u/{altered}")).await;
    assert_eq!(reference.status, StatusCode::NOT_FOUND);
    assert!(reference.body.contains("This link is not valid"));
    for token in &tokens {
        for answer in [
            get(&router, &format!("/u/{token}")).await,
            post(
                &router,
                &format!("/u/{token}"),
                URLENCODED,
                "List-Unsubscribe=One-Click",
            )
            .await,
            post(&router, &format!("/u/{token}/undo"), URLENCODED, "").await,
        ] {
            assert_eq!(answer.status, StatusCode::NOT_FOUND, "{token:.60}");
            assert_eq!(answer.body, reference.body);
        }
    }
    // An unsubscribe token is no survey token either.
    let answer = post(
        &router,
        &format!("/s/{good}"),
        URLENCODED,
        form(&[("reason", "price")]),
    )
    .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(
        f.standing("pat@client.example"),
        ("active".to_string(), "none".to_string())
    );
    assert!(f.survey_answers().is_empty());
    // Unknown paths get the same page.
    let answer = get(&router, "/nothing/here").await;
    assert_eq!(
        (answer.status, answer.body),
        (StatusCode::NOT_FOUND, reference.body)
    );
}

#[tokio::test]
async fn oversized_bodies_are_refused_and_change_nothing() {
    let f = fixture();
    let id = f.import("pat@client.example", "Pat Smith");
    let router = f.router();
    let big = "a".repeat(BODY_LIMIT + 1);
    let answer = post(
        &router,
        &format!("/u/{}", f.token(Purpose::Unsubscribe, &id)),
        URLENCODED,
        big,
    )
    .await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(answer.body.contains("That was too long"));
    assert_eq!(f.standing("pat@client.example").1, "none");

    let huge = form(&[("better", &"a".repeat(SURVEY_BODY_LIMIT))]);
    let answer = post(
        &router,
        &format!("/s/{}", f.token(Purpose::Survey, &id)),
        URLENCODED,
        huge,
    )
    .await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(f.survey_answers().is_empty());
}

#[tokio::test]
async fn the_survey_form_is_plain_and_labelled() {
    let f = fixture();
    let id = f.import("pat@client.example", "Pat Smith");
    let token = f.token(Purpose::Survey, &id);
    let answer = get(&f.router(), &format!("/s/{token}")).await;
    assert_eq!(answer.status, StatusCode::OK);
    let body = &answer.body;
    assert!(body.contains(&format!(
        r#"action="https://winback.acme.example/s/{token}""#
    )));
    assert!(!body.contains("<script"));
    for reason in SURVEY_REASONS {
        assert!(body.contains(&format!(r#"value="{reason}""#)), "{reason}");
    }
    for choice in WOULD_RETURN {
        assert!(
            body.contains(&format!(r#"name="would_return" value="{choice}""#)),
            "{choice}"
        );
    }
    // Every input has a label.
    for id_attr in body
        .split(" id=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap())
    {
        assert!(
            body.contains(&format!(r#"for="{id_attr}""#)),
            "no label for {id_attr}"
        );
    }
    assert!(body.contains(r#"maxlength="5000""#));
    assert!(body.contains("Pat, may we ask why you left?"));
}

#[tokio::test]
async fn a_survey_answer_is_stored_then_updated() {
    let f = fixture();
    let id = f.import("pat@client.example", "Pat Smith");
    let uri = format!("/s/{}", f.token(Purpose::Survey, &id));
    let router = f.router();
    let better = "Answer the phone.\r\nAnd <b>listen</b>.";
    let first = form(&[
        ("reason", "price"),
        ("better", better),
        ("would_return", "maybe"),
    ]);
    let answer = post(&router, &uri, URLENCODED, first).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.body.contains("Thank you, Pat"));
    let rows = f.survey_answers();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].reason.as_deref(), Some("price"));
    assert_eq!(
        rows[0].better.as_deref(),
        Some("Answer the phone.\nAnd <b>listen</b>.")
    );
    assert_eq!(rows[0].would_return.as_deref(), Some("maybe"));
    assert_eq!(f.standing("pat@client.example").1, "none");

    // The form shows the earlier answer, escaped.
    let page = get(&router, &uri).await;
    assert!(page.body.contains(r#"value="price" checked"#));
    assert!(page.body.contains(r#"value="maybe" checked"#));
    assert!(page.body.contains("And &lt;b&gt;listen&lt;/b&gt;."));

    let second = form(&[("reason", "competitor"), ("would_return", "no")]);
    assert_eq!(
        post(&router, &uri, URLENCODED, second).await.status,
        StatusCode::OK
    );
    let rows = f.survey_answers();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].reason.as_deref(), Some("competitor"));
    assert_eq!(rows[0].better, None);
    assert_eq!(rows[0].would_return.as_deref(), Some("no"));
}

#[tokio::test]
async fn unknown_choices_are_refused_and_nothing_is_stored() {
    let f = fixture();
    let id = f.import("pat@client.example", "Pat Smith");
    let uri = format!("/s/{}", f.token(Purpose::Survey, &id));
    let router = f.router();
    let cases = [
        form(&[("reason", "we_ended")]),
        form(&[("reason", "PRICE")]),
        form(&[("would_return", "perhaps"), ("reason", "price")]),
        form(&[("stop", "no")]),
        form(&[("reason", "price"), ("reason", "other")]),
        "reason=%FF".to_string(),
    ];
    for body in cases {
        let answer = post(&router, &uri, URLENCODED, body.clone()).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(answer.body.contains("We could not read that"));
    }
    let answer = post(&router, &uri, "application/json", r#"{"reason":"price"}"#).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(f.survey_answers().is_empty());
    assert_eq!(
        f.standing("pat@client.example"),
        ("active".to_string(), "none".to_string())
    );
}

#[tokio::test]
async fn answers_a_person_can_fix_bring_the_form_back() {
    let f = fixture();
    let id = f.import("pat@client.example", "Pat Smith");
    let uri = format!("/s/{}", f.token(Purpose::Survey, &id));
    let router = f.router();
    let empty = post(
        &router,
        &uri,
        URLENCODED,
        form(&[("reason", ""), ("better", "  ")]),
    )
    .await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(empty.body.contains("Please answer at least one question"));
    assert!(empty.body.contains(r#"role="alert""#));

    let long = "é".repeat(MAX_TEXT_CHARS + 1);
    let too_long = post(
        &router,
        &uri,
        URLENCODED,
        form(&[("reason", "price"), ("better", &long)]),
    )
    .await;
    assert_eq!(too_long.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(too_long.body.contains("5001 characters long"));
    assert!(
        too_long.body.contains(r#"value="price" checked"#),
        "the choices made are kept"
    );
    assert!(f.survey_answers().is_empty());

    // The longest answer in a wide script still fits the body limit.
    let longest = "漢".repeat(MAX_TEXT_CHARS);
    let fits = post(&router, &uri, URLENCODED, form(&[("better", &longest)])).await;
    assert_eq!(fits.status, StatusCode::OK);
    assert_eq!(
        f.survey_answers()[0].better.as_deref(),
        Some(longest.as_str())
    );
}

#[tokio::test]
async fn dont_contact_me_again_opts_out() {
    let f = fixture();
    let id = f.import("pat@client.example", "Pat Smith");
    let uri = format!("/s/{}", f.token(Purpose::Survey, &id));
    let answer = post(
        &f.router(),
        &uri,
        URLENCODED,
        form(&[("reason", "other"), ("stop", "yes")]),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.body.contains("we will not contact you again"));
    assert_eq!(
        f.standing("pat@client.example"),
        ("opted_out".to_string(), "opt_out".to_string())
    );
    assert_eq!(
        f.export("pat@client.example")["suppression"]["source"],
        "survey"
    );
    assert_eq!(f.survey_answers().len(), 1);
    // The box alone is an answer too.
    let id = f.import("sam@client.example", "Sam");
    let uri = format!("/s/{}", f.token(Purpose::Survey, &id));
    assert_eq!(
        post(&f.router(), &uri, URLENCODED, "stop=yes").await.status,
        StatusCode::OK
    );
    assert_eq!(f.standing("sam@client.example").1, "opt_out");
}

#[tokio::test]
async fn an_external_survey_disables_the_built_in_form() {
    let f = fixture_with("[survey]\nexternal_url = \"https://forms.example/winback?t=\"\n");
    let id = f.import("pat@client.example", "Pat Smith");
    let uri = format!("/s/{}", f.token(Purpose::Survey, &id));
    let router = f.router();
    assert_eq!(get(&router, &uri).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        post(&router, &uri, URLENCODED, form(&[("reason", "price")]))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert!(f.survey_answers().is_empty());
    // Unsubscribing still works, and its page does not point at the missing form.
    let answer = post(
        &router,
        &format!("/u/{}", f.token(Purpose::Unsubscribe, &id)),
        URLENCODED,
        "",
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(!answer.body.contains("/s/"));
}

#[tokio::test]
async fn clients_over_the_rate_limit_get_429() {
    let f = fixture();
    let router = f.router();
    for _ in 0..REQUESTS_PER_MINUTE {
        assert_eq!(get(&router, "/u/nope").await.status, StatusCode::NOT_FOUND);
    }
    let refused = get(&router, "/u/nope").await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.headers[header::RETRY_AFTER], "2");
    assert!(refused.body.contains("Too many requests"));
    // Liveness is not limited.
    assert_eq!(get(&router, "/healthz").await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_post_with_a_valid_token_is_never_limited() {
    let f = fixture();
    let emails: Vec<String> = (0..3 * REQUESTS_PER_MINUTE)
        .map(|i| format!("person{i}@client.example"))
        .collect();
    let people: Vec<(&str, &str)> = emails.iter().map(|e| (e.as_str(), "Pat Smith")).collect();
    let ids = f.import_people(&people);
    let router = f.router();
    // Guessing and page views use up the address's allowance...
    for _ in 0..REQUESTS_PER_MINUTE {
        assert_eq!(get(&router, "/u/nope").await.status, StatusCode::NOT_FOUND);
    }
    let link = |id: &Target| format!("/u/{}", f.token(Purpose::Unsubscribe, id));
    assert_eq!(
        get(&router, &link(&ids[0])).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        post(&router, "/u/nope", URLENCODED, "List-Unsubscribe=One-Click")
            .await
            .status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // ...but every one-click unsubscribe from that address is taken, as a mailbox
    // provider's shared servers send them.
    for (email, id) in emails.iter().zip(&ids) {
        let answer = post(&router, &link(id), URLENCODED, "List-Unsubscribe=One-Click").await;
        assert_eq!(answer.status, StatusCode::OK, "{email}");
        assert_eq!(f.standing(email).1, "opt_out", "{email}");
    }
    // So are the undo and the survey answer of a valid link.
    let undo = post(&router, &format!("{}/undo", link(&ids[0])), URLENCODED, "").await;
    assert_eq!(undo.status, StatusCode::OK);
    assert_eq!(f.standing(&emails[0]).1, "none");
    let survey = format!("/s/{}", f.token(Purpose::Survey, &ids[1]));
    let answer = post(&router, &survey, URLENCODED, form(&[("reason", "price")])).await;
    assert_eq!(answer.status, StatusCode::OK);
    // A valid token of the other purpose is no exception.
    let crossed = format!("/s/{}", f.token(Purpose::Unsubscribe, &ids[1]));
    assert_eq!(
        post(&router, &crossed, URLENCODED, form(&[("reason", "price")]))
            .await
            .status,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        get(&router, &survey).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn behind_a_local_proxy_the_forwarded_address_is_limited() {
    let f = fixture();
    let router = f.router_from(SocketAddr::from(([127, 0, 0, 1], 40000)));
    let from = |client: &str| {
        Request::get("/u/nope")
            .header("x-forwarded-for", format!("10.9.9.9, {client}"))
            .body(Body::empty())
            .unwrap()
    };
    for i in 0..(2 * REQUESTS_PER_MINUTE) {
        let client = format!("198.51.100.{}", i % 2);
        assert_eq!(
            send(&router, from(&client)).await.status,
            StatusCode::NOT_FOUND
        );
    }
    assert_eq!(
        send(&router, from("198.51.100.0")).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        send(&router, from("198.51.100.2")).await.status,
        StatusCode::NOT_FOUND
    );
}

#[test]
fn a_direct_client_cannot_choose_its_address() {
    let mut headers = HeaderMap::new();
    headers.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.5"));
    headers.insert("x-real-ip", HeaderValue::from_static("203.0.113.6"));
    let public: IpAddr = "192.0.2.1".parse().unwrap();
    assert_eq!(client_address(Some(public), &headers), public);
    let proxy: IpAddr = "127.0.0.1".parse().unwrap();
    assert_eq!(
        client_address(Some(proxy), &headers),
        "203.0.113.5".parse::<IpAddr>().unwrap()
    );
    headers.remove("x-forwarded-for");
    assert_eq!(
        client_address(Some(proxy), &headers),
        "203.0.113.6".parse::<IpAddr>().unwrap()
    );
    assert_eq!(client_address(Some(proxy), &HeaderMap::new()), proxy);
}

/// The proxy's last entry decides, even with a port on it: entries before it are the
/// client's to forge, and an entry that cannot be read does not hand the choice to them.
#[test]
fn a_port_on_the_proxys_entry_does_not_trust_the_forged_first_one() {
    let proxy: IpAddr = "127.0.0.1".parse().unwrap();
    let address = |value: &'static str| {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_static(value));
        client_address(Some(proxy), &headers)
    };
    let real: IpAddr = "198.51.100.7".parse().unwrap();
    assert_eq!(address("203.0.113.5, 198.51.100.7:52114"), real);
    assert_eq!(
        address("203.0.113.5, [2001:db8::7]:52114"),
        "2001:db8::7".parse::<IpAddr>().unwrap()
    );
    assert_eq!(address("203.0.113.5, unknown"), proxy);
    assert_eq!(address("203.0.113.5, 198.51.100.7"), real);
}

#[tokio::test]
async fn every_answer_carries_the_safety_headers() {
    let f = fixture();
    let id = f.import("pat@client.example", "Pat Smith");
    let router = f.router();
    for answer in [
        get(
            &router,
            &format!("/u/{}", f.token(Purpose::Unsubscribe, &id)),
        )
        .await,
        get(&router, "/u/forged").await,
        get(&router, "/healthz").await,
    ] {
        assert_eq!(answer.headers[header::CACHE_CONTROL], "no-store");
        assert_eq!(answer.headers[header::REFERRER_POLICY], "no-referrer");
        assert_eq!(answer.headers[header::X_FRAME_OPTIONS], "DENY");
        let policy = answer.headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(
            policy.contains("default-src 'none'") && !policy.contains("script-src"),
            "{policy}"
        );
        assert!(
            policy.contains("form-action 'self' https://winback.acme.example;"),
            "{policy}"
        );
    }
}

#[tokio::test]
async fn a_database_failure_gets_a_500_page_without_details() {
    let f = fixture();
    let id = f.import("pat@client.example", "Pat Smith");
    let store = f.state.store.clone();
    let _ = std::thread::spawn(move || {
        let _guard = store.lock().unwrap();
        panic!("poisoning the store lock on purpose");
    })
    .join();
    let answer = post(
        &f.router(),
        &format!("/u/{}", f.token(Purpose::Unsubscribe, &id)),
        URLENCODED,
        "",
    )
    .await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(answer.body.contains("Something went wrong on our side"));
    assert!(!answer.body.contains("poison"));
}

#[tokio::test]
async fn a_company_can_restyle_the_pages() {
    let f = fixture();
    let pages = f.dir.path().join("templates/pages");
    std::fs::create_dir(&pages).unwrap();
    std::fs::write(
        pages.join("layout.hbs"),
        "<!doctype html><html lang=\"de\"><title>{{title}}</title><main>{{> @partial-block}}</main><p>{{sender.company}}</p></html>",
    )
    .unwrap();
    let id = f.import("pat@client.example", "Pat Smith");
    let answer = get(
        &f.router(),
        &format!("/u/{}", f.token(Purpose::Unsubscribe, &id)),
    )
    .await;
    assert!(
        answer
            .body
            .starts_with("<!doctype html><html lang=\"de\"><title>Unsubscribe</title>"),
        "{}",
        answer.body
    );
    assert!(answer.body.contains("<p>Acme &amp; Sons</p>"));
}

#[test]
fn a_broken_page_template_is_reported_with_its_file_and_line() {
    let f = fixture();
    let pages = f.dir.path().join("templates/pages");
    std::fs::create_dir(&pages).unwrap();
    std::fs::write(
        pages.join("survey.hbs"),
        "{{#> layout title=\"x\"}}\n<p>{{firstname}}</p>\n{{/layout}}\n",
    )
    .unwrap();
    std::fs::write(
        pages.join("error.hbs"),
        "{{#> layout}}\n\n{{#if title}}\n{{/layout}}\n",
    )
    .unwrap();
    let problems = check_pages(&f.state.config);
    let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(problems.len(), 2, "{text:#?}");
    assert!(
        text[0].contains("pages/error.hbs:3:")
            && text[0].contains("the {{#if}} opened on line 3 is closed by {{/layout}} on line 4"),
        "{text:#?}"
    );
    assert!(
        text[1].contains("pages/survey.hbs:2") && text[1].contains("firstname"),
        "{text:#?}"
    );
    let error = router(f.state.clone()).err().unwrap().to_string();
    assert!(error.contains("run `winback check`"), "{error}");
}

#[test]
fn the_built_in_pages_load() {
    let f = fixture();
    assert_eq!(check_pages(&f.state.config), Vec::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_answers_over_tcp_and_stops_on_shutdown() {
    let f = fixture();
    let id = f.import("pat@client.example", "Pat Smith");
    let token = f.token(Purpose::Unsubscribe, &id);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, f.state.clone(), async {
        let _ = stopped.await;
    }));
    let statuses = tokio::task::spawn_blocking(move || {
        let client = reqwest::blocking::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let health = client
            .get(format!("http://{address}/healthz"))
            .send()
            .unwrap();
        let one_click = client
            .post(format!("http://{address}/u/{token}"))
            .header("content-type", URLENCODED)
            .body("List-Unsubscribe=One-Click")
            .send()
            .unwrap();
        (health.status(), health.text().unwrap(), one_click.status())
    })
    .await
    .unwrap();
    assert_eq!(statuses, (StatusCode::OK, "ok".to_string(), StatusCode::OK));
    assert_eq!(f.standing("pat@client.example").1, "opt_out");
    stop.send(()).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap();
    assert!(result.is_ok(), "{result:?}");
}

/// `[sender] privacy_url` adds a link to the privacy notice to the survey page (and every
/// other page, through the layout); without it, no such link.
#[tokio::test]
async fn the_survey_page_links_the_privacy_notice_when_configured() {
    let f = fixture();
    let id = f.import("pat@client.example", "Pat Smith");
    let path = format!("/s/{}", f.token(Purpose::Survey, &id));
    let without = get(&f.router(), &path).await;
    assert_eq!(without.status, StatusCode::OK);
    assert!(
        !without.body.contains("How we handle your data"),
        "{}",
        without.body
    );

    let mut config = (*f.state.config).clone();
    config.sender.privacy_url = Some("https://acme.example/privacy?a=1&b=2".to_string());
    let state = HttpState {
        wake: Default::default(),
        config: Arc::new(config),
        ..f.state.clone()
    };
    let with = get(
        &router(state)
            .unwrap_or_else(|e| panic!("{e}"))
            .layer(MockConnectInfo(SocketAddr::from(([192, 0, 2, 1], 40000)))),
        &path,
    )
    .await;
    assert_eq!(with.status, StatusCode::OK);
    assert!(
        with.body
            .contains("<a href=\"https://acme.example/privacy?a&#x3D;1&amp;b&#x3D;2\">How we handle your data</a>"),
        "{}",
        with.body
    );
}

#[test]
fn a_page_template_that_could_call_itself_is_refused_before_any_view() {
    // Each would recurse until the stack overflows on the first view, aborting the daemon.
    for (file, text) in [
        ("layout.hbs", "<main>{{> layout}}</main>\n"),
        ("error.hbs", "{{#> layout}}\n{{> error}}\n{{/layout}}\n"),
        (
            "error.hbs",
            "{{#*inline \"x\"}}{{> x}}{{/inline}}\n{{#> layout}}\n{{> x}}\n{{/layout}}\n",
        ),
    ] {
        let f = fixture();
        let pages = f.dir.path().join("templates/pages");
        std::fs::create_dir(&pages).unwrap();
        std::fs::write(pages.join(file), text).unwrap();
        let problems = check_pages(&f.state.config);
        assert!(
            problems
                .iter()
                .any(|p| p.to_string().contains(&format!("pages/{file}"))),
            "{file}: {text:?} passed: {problems:#?}"
        );
        assert!(router(f.state.clone()).is_err(), "{text:?}");
    }
}

#[test]
fn the_connection_cap_leaves_descriptors_for_the_database_and_smtp() {
    assert_eq!(super::connection_cap(Some(1024)), 1024 - 192);
    assert_eq!(super::connection_cap(Some(100)), 16);
    assert_eq!(super::connection_cap(Some(1 << 20)), 4096);
    assert_eq!(super::connection_cap(None), 1024 - 192);
}

#[tokio::test]
async fn a_request_never_finished_gets_408_and_its_connection_closed() {
    let response = within(
        std::time::Duration::from_millis(1),
        std::future::pending::<axum::response::Response>(),
    )
    .await;
    assert_eq!(response.status(), axum::http::StatusCode::REQUEST_TIMEOUT);
    assert_eq!(
        response.headers().get(axum::http::header::CONNECTION),
        Some(&axum::http::HeaderValue::from_static("close"))
    );
}
