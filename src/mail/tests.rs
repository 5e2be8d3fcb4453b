use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};

use super::dkim::{self, RSA_OID, pem_body, pkcs8, signing_key};
use super::header::{self, one_line};
use super::templates::{first_name, months_since};
use super::*;
use crate::config::{Config, Problem};
use crate::domain::model::{ChurnedAt, ClientRecord, StepKind};
use crate::mailer::OutgoingMessage;

/// The test key from lettre's documentation (PKCS#1).
const RSA_PKCS1: &str = "-----BEGIN RSA PRIVATE KEY-----
MIIEowIBAAKCAQEAt2gawjoybf0mAz0mSX0cq1ah5F9cPazZdCwLnFBhRufxaZB8
NLTdc9xfPIOK8l/xGrN7Nd63J4cTATqZukumczkA46O8YKHwa53pNT6NYwCNtDUL
eBu+7xUW18GmDzkIFkxGO2R5kkTeWPlKvKpEiicIMfl0OmyW/fI3AbtM7e/gmqQ4
kEYIO0mTjPT+jTgWE4JIi5KUTHudUBtfMKcSFyM2HkUOExl1c9+A4epjRFQwEXMA
hM5GrqZoOdUm4fIpvGpLIGIxFgHPpZYbyq6yJZzH3+5aKyCHrsHawPuPiCD45zsU
re31zCE6b6k1sDiiBR4CaRHnbL7hxFp0aNLOVQIDAQABAoIBAGMK3gBrKxaIcUGo
gQeIf7XrJ6vK72YC9L8uleqI4a9Hy++E7f4MedZ6eBeWta8jrnEL4Yp6xg+beuDc
A24+Mhng+6Dyp+TLLqj+8pQlPnbrMprRVms7GIXFrrs+wO1RkBNyhy7FmH0roaMM
pJZzoGW2pE9QdbqjL3rdlWTi/60xRX9eZ42nNxYnbc+RK03SBd46c3UBha6Y9iQX
562yWilDnB5WCX2tBoSN39bEhJvuZDzMwOuGw68Q96Hdz82Iz1xVBnRhH+uNStjR
VnAssSHVxPSpwWrm3sHlhjBHWPnNIaOKIKl1lbL+qWfVQCj/6a5DquC+vYAeYR6L
3mA0z0ECgYEA5YkNYcILSXyE0hZ8eA/t58h8eWvYI5iqt3nT4fznCoYJJ74Vukeg
6BTlq/CsanwT1lDtvDKrOaJbA7DPTES/bqT0HoeIdOvAw9w/AZI5DAqYp61i6RMK
xfAQL/Ik5MDFN8gEMLLXRVMe/aR27f6JFZpShJOK/KCzHqikKfYVJ+UCgYEAzI2F
ZlTyittWSyUSl5UKyfSnFOx2+6vNy+lu5DeMJu8Wh9rqBk388Bxq98CfkCseWESN
pTCGdYltz9DvVNBdBLwSMdLuYJAI6U+Zd70MWyuNdHFPyWVHUNqMUBvbUtj2w74q
Hzu0GI0OrRjdX6C63S17PggmT/N2R9X7P4STxbECgYA+AZAD4I98Ao8+0aQ+Ks9x
1c8KXf+9XfiAKAD9A3zGcv72JXtpHwBwsXR5xkJNYcdaFfKi7G0k3J8JmDHnwIqW
MSlhNeu+6hDg2BaNLhsLDbG/Wi9mFybJ4df9m8Qrp4efUgEPxsAwkgvFKTCXijMu
CspP1iutoxvAJH50d22voQKBgDIsSFtIXNGYaTs3Va8enK3at5zXP3wNsQXiNRP/
V/44yNL77EktmewfXFF2yuym1uOZtRCerWxpEClYO0wXa6l8pA3aiiPfUIBByQfo
s/4s2Z6FKKfikrKPWLlRi+NvWl+65kQQ9eTLvJzSq4IIP61+uWsGvrb/pbSLFPyI
fWKRAoGBALFCStBXvdMptjq4APUzAdJ0vytZzXkOZHxgmc+R0fQn22OiW0huW6iX
JcaBbL6ZSBIMA3AdaIjtvNRiomueHqh0GspTgOeCE2585TSFnw6vEOJ8RlR4A0Mw
I45fbR4l+3D/30WMfZlM6bzZbwPXEnr2s1mirmuQpjumY9wLhK25
-----END RSA PRIVATE KEY-----
";

/// An Ed25519 key as `openssl genpkey -algorithm ed25519` writes it (PKCS#8).
fn ed25519_pkcs8(seed: [u8; 32]) -> String {
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    der.extend_from_slice(&seed);
    format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        BASE64.encode(der)
    )
}

/// The lettre test key wrapped as PKCS#8, as OpenSSL 3 writes RSA keys.
fn rsa_pkcs8() -> String {
    let pkcs1 = pem_body(RSA_PKCS1, "RSA PRIVATE KEY").unwrap().unwrap();
    let mut inner = vec![0x02, 0x01, 0x00, 0x30, 0x0d, 0x06, 0x09];
    inner.extend_from_slice(RSA_OID.as_bytes());
    inner.extend_from_slice(&[
        0x05,
        0x00,
        0x04,
        0x82,
        (pkcs1.len() >> 8) as u8,
        pkcs1.len() as u8,
    ]);
    inner.extend_from_slice(&pkcs1);
    let mut der = vec![0x30, 0x82, (inner.len() >> 8) as u8, inner.len() as u8];
    der.extend_from_slice(&inner);
    format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        BASE64.encode(der)
    )
}

/// Too short to sign with.
const RSA_512: &str = "-----BEGIN RSA PRIVATE KEY-----
MIIBOwIBAAJBAN7XskP5BOZv4DkVYawelpwffkEY3E8L/RcrNVCpSpKijqim00yi
IqpGyTptMqe3BtPa8FTTuqRtUK1CDbcLS6UCAwEAAQJBAIbrMyxCVbwrGieVkXhD
YM6PpsJFCgX17Tsc1v/KL7NNBQCFdCBclSbhKKtkexUf6AbHiiYcR8oIgkN9hE9G
PqECIQD4RRLHSSd1aXyCYNGtm+RVdFcMrx6oOZI/nCyk3tYYaQIhAOXH8hV1znm+
3mV0JVo1fRifdidkqGHHVwrFEfp+p1HdAiEAlEd87bWNcZytFpmI4e2ntDol+5dj
8glghclbCKVmrXECICT8cy4bIVodbATeliiYFYPCHy2mGShsAsm8APHWMy6NAiAd
UJT8nnsfHbWj9Pp1ysuADEtVYP0v9mPKpaNlifNQaA==
-----END RSA PRIVATE KEY-----
";

const SUBJECT: &str = "{{first_name}}, may we ask why you left?";
const FOOTER_HTML: &str = "<p><a href=\"{{unsubscribe_url}}\">Unsubscribe</a> {{sender.company}}, {{sender.postal_address}}</p>";
const FOOTER_TEXT: &str =
    "Unsubscribe: {{unsubscribe_url}}\n{{sender.company}}, {{sender.postal_address}}\n";

/// A temporary setup: a config file and a templates folder.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("templates")).unwrap();
        Setup { dir }
    }

    /// Writes `templates/NAME.html.hbs` and `.txt.hbs`.
    fn template(&self, name: &str, html: &str, text: &str) -> &Setup {
        let dir = self.dir.path().join("templates");
        fs::write(dir.join(format!("{name}.html.hbs")), html).unwrap();
        fs::write(dir.join(format!("{name}.txt.hbs")), text).unwrap();
        self
    }

    /// The survey template with `body` before the standard footer.
    fn survey(&self, html_body: &str, text_body: &str) -> &Setup {
        self.template(
            "survey",
            &format!("{html_body}\n{FOOTER_HTML}"),
            &format!("{text_body}\n{FOOTER_TEXT}"),
        )
    }

    fn config_text(&self, extra: &str, steps: &str) -> String {
        format!(
            r#"
[smtp]
url = "file://outbox"
from = "Acme Customer Success <success@acme.example>"
{extra}

[http]
public_url = "https://winback.acme.example"

[sender]
company = "Acme & Sons"
postal_address = "1 Main Street, Springfield, IL 62701, USA"

[[campaign]]
name = "former-clients"
send_at = "0 10 * * Tue-Thu"
timezone = "America/New_York"
{steps}
"#
        )
    }

    fn config_with(&self, extra: &str, steps: &str) -> Result<Config, String> {
        let path = self.dir.path().join("winback.toml");
        let text = self.config_text(extra, steps);
        fs::write(&path, &text).unwrap();
        Config::parse(&path, &text).map_err(|e| e.to_string())
    }

    /// One survey step, signed with the DKIM key in `key_file` (in the test dir).
    fn signing_config(&self, key_file: &str) -> Config {
        let extra = format!(
            "\n[dkim]\nselector = \"winback\"\ndomain = \"acme.example\"\nkey_file = \"{key_file}\"\n"
        );
        let step = format!(
            "[[campaign.step]]\nkind = \"survey\"\ntemplate = \"survey\"\nsubject = \"{SUBJECT}\"\n"
        );
        self.config_with(&extra, &step)
            .unwrap_or_else(|e| panic!("{key_file}: {e}"))
    }

    fn config(&self) -> Config {
        self.config_with("", &format!("[[campaign.step]]\nkind = \"survey\"\ntemplate = \"survey\"\nsubject = \"{SUBJECT}\"\n")).unwrap()
    }

    fn renderer(&self) -> Renderer {
        Renderer::load(&self.config()).unwrap_or_else(|p| panic!("{p:#?}"))
    }

    fn problems(&self) -> Vec<Problem> {
        Renderer::load(&self.config()).expect_err("load should fail")
    }
}

fn client() -> ClientRecord {
    ClientRecord {
        email: "pat@client.example".to_string(),
        name: Some("Pat Smith".to_string()),
        first_name: None,
        company: Some("Globex".to_string()),
        churned_at: ChurnedAt::Date(NaiveDate::from_ymd_opt(2025, 3, 10).unwrap()),
        churn_reason: None,
        timezone: None,
        fields: BTreeMap::new(),
    }
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 9, 9, 14, 30, 5).unwrap()
}

fn vars(client: &ClientRecord) -> Vars<'_> {
    Vars {
        client,
        unsubscribe_url: "https://winback.acme.example/u/TOKEN-u".to_string(),
        survey_url: "https://winback.acme.example/s/TOKEN-s".to_string(),
        now: now(),
    }
}

fn render(setup: &Setup, client: &ClientRecord) -> Result<Rendered, RenderError> {
    let config = setup.config();
    let renderer = setup.renderer();
    renderer.render(&config.campaigns[0], 1, &vars(client))
}

/// The header block of a built message, unfolded, as (name, value) pairs.
fn headers(bytes: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let head = text
        .split("\r\n\r\n")
        .next()
        .unwrap()
        .replace("\r\n ", " ")
        .replace("\r\n\t", " ");
    head.split("\r\n")
        .map(|line| {
            let (name, value) = line.split_once(':').unwrap();
            (name.to_string(), value.trim().to_string())
        })
        .collect()
}

fn header(bytes: &[u8], name: &str) -> Vec<String> {
    headers(bytes)
        .into_iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
        .collect()
}

/// The built message, with the message id, date and unsubscribe link the tests share.
fn built(
    renderer: &Renderer,
    config: &Config,
    rendered: &Rendered,
    to: &ClientRecord,
) -> OutgoingMessage {
    renderer
        .build_message(
            config,
            rendered,
            to,
            "<a@acme.example>",
            now(),
            "https://winback.acme.example/u/T",
        )
        .unwrap()
}

#[test]
fn renders_every_variable() {
    let setup = Setup::new();
    let all = "{{first_name}}|{{name}}|{{company}}|{{email}}|{{churned_at}}|{{churn_reason}}|{{months_since_churn}}|{{fields.plan}}|{{unsubscribe_url}}|{{survey_url}}|{{campaign}}|{{step}}|{{step_kind}}|{{sender.company}}|{{sender.postal_address}}";
    setup.survey(all, all);
    let mut client = client();
    client.churn_reason = Some("price".to_string());
    client.fields.insert("plan".to_string(), "Pro".to_string());
    let rendered = render(&setup, &client).unwrap();
    assert_eq!(
        rendered.text.lines().next().unwrap(),
        "Pat|Pat Smith|Globex|pat@client.example|2025-03-10|price|5|Pro|https://winback.acme.example/u/TOKEN-u|https://winback.acme.example/s/TOKEN-s|former-clients|1|survey|Acme & Sons|1 Main Street, Springfield, IL 62701, USA"
    );
    assert_eq!(rendered.subject, "Pat, may we ask why you left?");
    assert!(rendered.html.starts_with("Pat|Pat Smith|Globex|pat@client.example|2025-03-10|price|5|Pro|https://winback.acme.example/u/TOKEN-u|"));
    assert!(rendered.html.contains("|Acme &amp; Sons|"));
}

#[test]
fn optional_columns_render_empty_and_first_name_falls_back() {
    let setup = Setup::new();
    setup.survey(
        "[{{name}}][{{company}}][{{churn_reason}}]",
        "{{#if first_name}}Hi {{first_name}},{{else}}Hello,{{/if}} [{{company}}]",
    );
    let mut client = client();
    client.name = None;
    client.company = None;
    let rendered = render(&setup, &client).unwrap();
    assert!(rendered.html.starts_with("[][][]"), "{}", rendered.html);
    assert!(rendered.text.starts_with("Hello, []"), "{}", rendered.text);
    assert_eq!(rendered.subject, ", may we ask why you left?");

    let with = |first: Option<&str>, name: Option<&str>| {
        let mut c = client.clone();
        c.first_name = first.map(String::from);
        c.name = name.map(String::from);
        first_name(&c)
    };
    assert_eq!(with(Some(" Ann "), Some("Pat Smith")), "Ann");
    assert_eq!(with(Some(""), Some("Pat Smith")), "Pat");
    assert_eq!(with(None, Some("Dr. Jane Doe")), "Jane");
    assert_eq!(with(None, Some("  Cher ")), "Cher");
    assert_eq!(with(None, None), "");
}

#[test]
fn months_since_churn_counts_whole_calendar_months() {
    let date = |y, m, d| ChurnedAt::Date(NaiveDate::from_ymd_opt(y, m, d).unwrap());
    let at = |y, m, d| Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).unwrap();
    let tz = chrono_tz::UTC;
    for (churned, now, expected) in [
        (date(2025, 1, 14), at(2025, 1, 14), 0),
        (date(2025, 1, 14), at(2025, 2, 13), 0),
        (date(2025, 1, 14), at(2025, 2, 14), 1),
        (date(2024, 11, 30), at(2025, 6, 1), 6),
        (date(2025, 1, 31), at(2025, 2, 28), 0),
        (date(2025, 6, 1), at(2025, 1, 1), 0),
        (ChurnedAt::Instant(at(2025, 1, 1)), at(2026, 1, 1), 12),
    ] {
        assert_eq!(
            months_since(churned, now, tz),
            expected,
            "{churned} → {now}"
        );
    }
}

#[test]
fn strict_mode_missing_variable_names_it() {
    let setup = Setup::new();
    setup.survey("<p>Hello</p>", "Hello\n\nDear {{frist_name}},");
    let problems = setup.problems();
    assert_eq!(problems.len(), 1, "{problems:#?}");
    let p = &problems[0];
    assert!(p.file.ends_with("templates/survey.txt.hbs"), "{p}");
    assert_eq!(p.line, Some(3), "{p}");
    assert_eq!(p.key, "campaign[1].step[1].template");
    assert!(
        p.message.contains("{{frist_name}} is not a variable"),
        "{p}"
    );
    assert!(p.message.contains("first_name"), "{p}");
}

#[test]
fn a_custom_field_is_a_warning_at_load_and_an_error_for_a_client_without_it() {
    let setup = Setup::new();
    setup.survey(
        "<p>{{fields.seats}} {{#if fields.region}}{{fields.region}}{{/if}}</p>",
        "{{fields.plan}}",
    );
    let renderer = setup.renderer();
    let warnings: Vec<&Problem> = renderer
        .warnings()
        .iter()
        .filter(|w| w.message.contains("fields."))
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(
        warnings[0].message.contains("\"seats\" column"),
        "{}",
        warnings[0]
    );
    assert!(warnings[0].file.ends_with("survey.html.hbs"));

    let err = render(&setup, &client()).unwrap_err();
    assert!(
        matches!(&err, RenderError::Template { template, .. } if template == "survey.txt.hbs"),
        "{err}"
    );
    assert!(err.to_string().contains("no \"plan\" value"), "{err}");

    let mut client = client();
    client.fields.insert("plan".to_string(), "Pro".to_string());
    client.fields.insert("seats".to_string(), "12".to_string());
    let rendered = render(&setup, &client).unwrap();
    assert!(rendered.html.starts_with("<p>12 </p>"));
}

#[test]
fn html_part_is_escaped_and_text_and_subject_are_not() {
    let setup = Setup::new();
    let body = "{{name}} / {{company}} / {{fields.note}}";
    setup.survey(body, body);
    let config = setup.config_with("", "[[campaign.step]]\nkind = \"survey\"\ntemplate = \"survey\"\nsubject = \"For {{company}}\"\n").unwrap();
    let renderer = Renderer::load(&config).unwrap();
    let mut client = client();
    client.name = Some("<script>alert(1)</script>".to_string());
    client.company = Some("Smith & Wesson".to_string());
    client
        .fields
        .insert("note".to_string(), "a<b & \"c\"".to_string());
    let rendered = renderer
        .render(&config.campaigns[0], 1, &vars(&client))
        .unwrap();
    assert!(rendered.html.starts_with("&lt;script&gt;alert(1)&lt;/script&gt; / Smith &amp; Wesson / a&lt;b &amp; &quot;c&quot;"), "{}", rendered.html);
    assert!(!rendered.html.contains("<script>"));
    assert!(
        rendered
            .text
            .starts_with("<script>alert(1)</script> / Smith & Wesson / a<b & \"c\""),
        "{}",
        rendered.text
    );
    assert_eq!(rendered.subject, "For Smith & Wesson");
}

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
        .build_message(&config, &rendered, &client, &id, now(), url)
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
                renderer.build_message(&config, &rendered, &client, id, now(), url),
                Err(RenderError::BadHeader { .. })
            ),
            "{id:?} {url:?}"
        );
    }
    let mut bad = client.clone();
    bad.email = "pat@client.example\r\nBcc: x@y".to_string();
    assert!(matches!(
        renderer.build_message(&config, &rendered, &bad, "<a@b>", now(), url),
        Err(RenderError::Recipient { .. })
    ));
}

#[test]
fn load_reports_a_template_without_unsubscribe_url_or_postal_address() {
    let setup = Setup::new();
    setup.template(
        "survey",
        "<p>{{sender.postal_address}}</p>",
        "{{unsubscribe_url}}\n",
    );
    let problems = setup.problems();
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(problems[0].file.ends_with("survey.html.hbs"));
    assert!(
        problems[0].message.contains("add {{unsubscribe_url}}"),
        "{}",
        problems[0]
    );
    assert!(problems[1].file.ends_with("survey.txt.hbs"));
    assert!(
        problems[1]
            .message
            .contains("add {{sender.postal_address}}"),
        "{}",
        problems[1]
    );
}

#[test]
fn load_reports_missing_files_and_syntax_errors() {
    let setup = Setup::new();
    fs::write(
        setup.dir.path().join("templates/survey.txt.hbs"),
        format!("Hello\n{{{{#if first_name}}\n{FOOTER_TEXT}"),
    )
    .unwrap();
    let problems = setup.problems();
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(
        problems[0].file.ends_with("templates/survey.html.hbs"),
        "{}",
        problems[0]
    );
    assert_eq!(problems[0].key, "campaign[1].step[1].template");
    assert!(
        problems[0].message.contains("does not exist"),
        "{}",
        problems[0]
    );
    assert!(
        problems[1].file.ends_with("templates/survey.txt.hbs"),
        "{}",
        problems[1]
    );
    assert_eq!(problems[1].line, Some(2), "{}", problems[1]);
    assert!(
        problems[1]
            .message
            .contains("the tag {{#if first_name} is not finished"),
        "{}",
        problems[1]
    );

    let config = setup.config_with("", "[[campaign.step]]\nkind = \"survey\"\ntemplate = \"survey\"\nsubject = \"Hi {{#if}}\"\n").unwrap();
    let problems = Renderer::load(&config).unwrap_err();
    assert!(
        problems
            .iter()
            .any(|p| p.key == "campaign[1].step[1].subject"
                && p.file == config.file
                && p.line.is_some()),
        "{problems:#?}"
    );
}

#[test]
fn a_template_shared_by_two_steps_is_reported_once() {
    let setup = Setup::new();
    setup.template("survey", "<p>{{oops}}</p>", "x");
    let step = |kind: &str, after: &str| {
        format!(
            "[[campaign.step]]\nkind = \"{kind}\"\n{after}template = \"survey\"\nsubject = \"s\"\n"
        )
    };
    let config = setup
        .config_with(
            "",
            &(step("survey", "") + &step("newsletter", "after_days = 30\n")),
        )
        .unwrap();
    let problems = Renderer::load(&config).unwrap_err();
    let oops = problems
        .iter()
        .filter(|p| p.message.contains("oops"))
        .count();
    assert_eq!(oops, 1, "{problems:#?}");
}

#[test]
fn dkim_signs_with_rsa_pkcs1_pkcs8_and_ed25519() {
    let setup = Setup::new();
    setup.survey("<p>Hi</p>", "Hi");
    let keys = [
        ("rsa1.pem", RSA_PKCS1.to_string(), "rsa"),
        ("rsa8.pem", rsa_pkcs8(), "rsa"),
        ("ed.pem", ed25519_pkcs8([42; 32]), "ed25519"),
    ];
    for (file, pem, algorithm) in keys {
        fs::write(setup.dir.path().join(file), pem).unwrap();
        let config = setup.signing_config(file);
        let renderer = Renderer::load(&config).unwrap_or_else(|p| panic!("{file}: {p:#?}"));
        let client = client();
        let rendered = renderer
            .render(&config.campaigns[0], 1, &vars(&client))
            .unwrap();
        let built = built(&renderer, &config, &rendered, &client);
        let signature = header(&built.bytes, "DKIM-Signature");
        assert_eq!(signature.len(), 1, "{file}");
        let signature = signature[0].replace(' ', "");
        assert!(
            signature.contains(&format!("a={algorithm}-sha256;")),
            "{signature}"
        );
        assert!(
            signature.contains("d=acme.example;") && signature.contains("s=winback;"),
            "{signature}"
        );
        assert!(signature.contains("c=relaxed/relaxed;"), "{signature}");
        // Each name once more than it appears: an added header breaks the signature.
        assert!(signature.contains("h=from:from:reply-to:to:to:cc:subject:subject:date:date:message-id:message-id:mime-version:mime-version:content-type:content-type:list-unsubscribe:list-unsubscribe:list-unsubscribe-post:list-unsubscribe-post;"), "{signature}");
        // The daemon's clock (the Date header's), not the system's.
        assert!(
            signature.contains(&format!("t={};", now().timestamp())),
            "{signature}"
        );
        assert!(!signature.ends_with("b="), "{signature}");
        let public = dkim::tests::Public::of(&renderer.dkim[0].key);
        dkim::tests::verify(&built.bytes, 0, &public).unwrap_or_else(|e| panic!("{file}: {e}"));
    }
}

/// An RSA and an Ed25519 key together: two signatures, each verifying with its own
/// key and selector. A key under 2048 bits is a warning, not an error.
#[test]
fn dkim_signs_twice_with_a_second_key_and_warns_about_a_short_rsa_key() {
    let setup = Setup::new();
    setup.survey("<p>Hi</p>", "Hi");
    fs::write(setup.dir.path().join("rsa.pem"), dkim::tests::RSA_1024).unwrap();
    fs::write(setup.dir.path().join("ed.pem"), ed25519_pkcs8([3; 32])).unwrap();
    let extra = "\n[dkim]\nselector = \"winback\"\ndomain = \"acme.example\"\nkey_file = \"rsa.pem\"\nsecond_selector = \"winback-ed\"\nsecond_key_file = \"ed.pem\"\n";
    let step = format!(
        "[[campaign.step]]\nkind = \"survey\"\ntemplate = \"survey\"\nsubject = \"{SUBJECT}\"\n"
    );
    let config = setup.config_with(extra, &step).unwrap();
    let renderer = Renderer::load(&config).unwrap_or_else(|p| panic!("{p:#?}"));
    let short: Vec<&Problem> = renderer
        .warnings()
        .iter()
        .filter(|w| w.key == "dkim.key_file")
        .collect();
    assert_eq!(short.len(), 1, "{:#?}", renderer.warnings());
    assert!(
        short[0].message.contains("1024-bit RSA key"),
        "{}",
        short[0]
    );
    assert!(short[0].message.contains("2048"), "{}", short[0]);
    assert!(short[0].file.ends_with("rsa.pem"));

    let client = client();
    let rendered = renderer
        .render(&config.campaigns[0], 1, &vars(&client))
        .unwrap();
    let built = built(&renderer, &config, &rendered, &client);
    let signatures = header(&built.bytes, "DKIM-Signature");
    assert_eq!(signatures.len(), 2, "{signatures:#?}");
    let compact: Vec<String> = signatures.iter().map(|s| s.replace(' ', "")).collect();
    assert!(compact[0].contains("a=rsa-sha256;") && compact[0].contains("s=winback;"));
    assert!(compact[1].contains("a=ed25519-sha256;") && compact[1].contains("s=winback-ed;"));
    for (index, signer) in renderer.dkim.iter().enumerate() {
        let public = dkim::tests::Public::of(&signer.key);
        dkim::tests::verify(&built.bytes, index, &public)
            .unwrap_or_else(|e| panic!("signature {index}: {e}"));
    }
}

#[test]
fn the_dkim_key_is_read_once_at_load() {
    let setup = Setup::new();
    setup.survey("<p>Hi</p>", "Hi");
    let key = setup.dir.path().join("key.pem");
    fs::write(&key, ed25519_pkcs8([7; 32])).unwrap();
    let config = setup.signing_config("key.pem");
    let renderer = Renderer::load(&config).unwrap_or_else(|p| panic!("{p:#?}"));
    // Gone after the daemon started (a botched key rotation): messages are still
    // signed, rather than failing to render and ending their sequences.
    fs::remove_file(&key).unwrap();
    let client = client();
    let rendered = renderer
        .render(&config.campaigns[0], 1, &vars(&client))
        .unwrap();
    let built = built(&renderer, &config, &rendered, &client);
    assert_eq!(header(&built.bytes, "DKIM-Signature").len(), 1);
}

#[test]
fn load_reports_an_unusable_dkim_key() {
    let setup = Setup::new();
    setup.survey("<p>Hi</p>", "Hi");
    for (content, expected) in [
        (
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
            "encrypted",
        ),
        (
            "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
            "not a private key",
        ),
        (
            "-----BEGIN PRIVATE KEY-----\n!!!\n-----END PRIVATE KEY-----\n",
            "not valid PEM",
        ),
        (
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            "not a PKCS#8",
        ),
        // A P-256 key as `openssl genpkey -algorithm EC` writes it.
        (
            "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg+JFUDbMxTPJ+kvYa\nhVl2PS+7SSTlsAknfS5ro2T0oNWhRANCAAQHWwQ0PUuippR0dmALULsdGjDpP/q2\nEMmotgjSqQ24p9d898f4Blbx4aaQZvdIOPDuPxJEOWzKfdWqCQsOH0ZG\n-----END PRIVATE KEY-----\n",
            "uses an algorithm DKIM does not support",
        ),
        ("hello", "not a PEM key"),
        (RSA_512, "512-bit RSA key, too short to sign with"),
    ] {
        fs::write(setup.dir.path().join("key.pem"), content).unwrap();
        let config = setup.signing_config("key.pem");
        let problems = Renderer::load(&config).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert_eq!(problems[0].key, "dkim.key_file");
        assert!(
            problems[0].message.contains(expected),
            "{expected}: {}",
            problems[0]
        );
    }
    assert!(signing_key(&BASE64.encode([9u8; 32])).is_ok());
}

#[test]
fn der_reader_never_panics() {
    for bytes in [
        &[][..],
        &[0x30],
        &[0x30, 0x85, 1, 2, 3, 4, 5],
        &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
        &[0x30, 0x05, 1],
        &[0x30, 0x80],
    ] {
        assert!(pkcs8(bytes).is_none());
    }
}

#[test]
fn one_line_collapses_breaks_only() {
    assert_eq!(one_line("a\r\nb"), "a b");
    assert_eq!(one_line("a \r\n\t b"), "a b");
    assert_eq!(one_line("a  b"), "a  b");
    assert_eq!(one_line("\n a\u{0085}b\u{2029}c \n"), "a b c");
    assert_eq!(one_line("\r\n"), "");
}

#[test]
fn renderer_can_be_shared_between_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Renderer>();
}

#[test]
fn unknown_step_is_an_error() {
    let setup = Setup::new();
    setup.survey("", "");
    let config = setup.config();
    let renderer = Renderer::load(&config).unwrap();
    let client = client();
    assert!(matches!(
        renderer.render(&config.campaigns[0], 2, &vars(&client)),
        Err(RenderError::UnknownStep { step: 2, .. })
    ));
    assert!(matches!(
        renderer.render(&config.campaigns[0], 0, &vars(&client)),
        Err(RenderError::UnknownStep { .. })
    ));
}

/// The shipped templates/ folder, with a config like the shipped one.
fn shipped_config(dir: &Path) -> Config {
    shipped_config_with(dir, "")
}

/// `shipped_config` with `sender` added to its `[sender]` section.
fn shipped_config_with(dir: &Path, sender: &str) -> Config {
    let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    let path = dir.join("winback.toml");
    let text = format!(
        r#"
[smtp]
from = "Acme Customer Success <success@acme.example>"

[http]
public_url = "https://winback.acme.example"

[sender]
company = "Acme Analytics"
postal_address = "100 Market Street, Suite 300, San Francisco, CA 94105, USA"
{sender}

[templates]
dir = "{}"

[[campaign]]
name = "former-clients"
send_at = "0 10 * * Tue-Thu"

[[campaign.step]]
kind = "survey"
template = "survey"
subject = "{{{{#if first_name}}}}{{{{first_name}}}}, may{{{{else}}}}May{{{{/if}}}} we ask why you left?"

[[campaign.step]]
kind = "newsletter"
after_days = 45
template = "newsletter"
subject = "What changed at {{{{sender.company}}}} this season"

[[campaign.step]]
kind = "article"
after_days = 45
template = "article"
subject = "Something you might find useful"

[[campaign.step]]
kind = "whitepaper"
after_days = 60
template = "whitepaper"
subject = "Our report, no strings attached"

[[campaign.step]]
kind = "greeting"
after_days = 90
template = "greeting"
subject = "Season's greetings from {{{{sender.company}}}}"
"#,
        templates.display().to_string().replace('\\', "\\\\")
    );
    fs::write(&path, &text).unwrap();
    Config::parse(&path, &text).unwrap()
}

#[test]
fn a_partial_that_can_call_itself_is_refused_before_anything_renders() {
    // Rendering any of these would overflow the stack and abort the process: `load`
    // returning at all shows that it refused them unrendered.
    for (html, expected) in [
        (
            r#"{{#*inline "x"}}{{> x}}{{/inline}}{{> x}}"#,
            "the inline partial \"x\" calls itself (x → x)",
        ),
        (
            r#"{{#*inline "a"}}{{#if first_name}}{{> b}}{{/if}}{{/inline}}{{#*inline "b"}}{{> a}}{{/inline}}{{> a}}"#,
            "the inline partial \"a\" calls itself (a → b → a)",
        ),
        (
            "{{> survey.html.hbs}}",
            "{{> survey.html.hbs}} names no {{#*inline \"survey.html.hbs\"}} of this file",
        ),
        (
            r#"{{#*inline "x"}}{{> (concat "x")}}{{/inline}}{{> x}}"#,
            "a partial's name must be written out",
        ),
        (r#"{{#> x}}{{> x}}{{/x}}"#, "partial blocks"),
    ] {
        let setup = Setup::new();
        setup.survey(&format!("<p>\n{html}</p>"), "Hello");
        let problems = setup.problems();
        assert_eq!(problems.len(), 1, "{html}: {problems:#?}");
        let p = &problems[0];
        assert!(p.message.contains(expected), "{html}: {p}");
        assert!(p.file.ends_with("templates/survey.html.hbs"), "{p}");
        assert_eq!(p.line, Some(2), "{p}");
    }
    // In the subject too.
    let setup = Setup::new();
    setup.survey("", "");
    let step = r#"[[campaign.step]]
kind = "survey"
template = "survey"
subject = '{{#*inline "s"}}{{> s}}{{/inline}}{{> s}}'
"#;
    let problems = Renderer::load(&setup.config_with("", step).unwrap()).unwrap_err();
    assert!(
        problems[0].message.contains("calls itself"),
        "{problems:#?}"
    );
    assert_eq!(problems[0].key, "campaign[1].step[1].subject");
}

#[test]
fn nesting_deeper_than_a_stack_holds_is_refused_unrendered() {
    let nested = |n: usize| format!("{}x{}", "{{#if first_name}}".repeat(n), "{{/if}}".repeat(n));
    let setup = Setup::new();
    setup.survey(&nested(20), "Hello");
    setup.renderer();
    for html in [
        nested(40),
        nested(200),
        // Shallow each, deep once the partials are expanded.
        (0..20)
            .map(|i| format!("{{{{#*inline \"p{i}\"}}}}{{{{#if first_name}}}}{{{{> p{}}}}}{{{{/if}}}}{{{{/inline}}}}", i + 1))
            .collect::<String>()
            + "{{#*inline \"p20\"}}end{{/inline}}{{> p0}}",
        // Each partial called twice by the one before: found deep at once, without
        // walking the 2^60 paths.
        (0..60)
            .map(|i| format!("{{{{#*inline \"p{i}\"}}}}{{{{> p{0}}}}}{{{{> p{0}}}}}{{{{/inline}}}}", i + 1))
            .collect::<String>()
            + "{{#*inline \"p60\"}}end{{/inline}}{{> p0}}",
    ] {
        let setup = Setup::new();
        setup.survey(&html, "Hello");
        let problems = setup.problems();
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(problems[0].message.contains("deep"), "{}", problems[0]);
    }
}

#[test]
fn an_inline_partial_that_ends_still_renders() {
    let setup = Setup::new();
    setup.template(
        "survey",
        r#"{{#*inline "footer"}}{{unsubscribe_url}} {{sender.postal_address}}{{/inline}}<p>Hi</p>{{> footer}}{{> footer}}"#,
        FOOTER_TEXT,
    );
    let rendered = render(&setup, &client()).unwrap();
    assert_eq!(
        rendered.html.matches("1 Main Street").count(),
        2,
        "{}",
        rendered.html
    );
}

#[test]
fn shipped_templates_load_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let config = shipped_config(dir.path());
    let renderer = Renderer::load(&config).unwrap_or_else(|p| panic!("{p:#?}"));
    // Only the placeholders the operator is meant to replace, listed apart.
    assert_eq!(renderer.warnings(), &[], "{:#?}", renderer.warnings());
    let placeholders: Vec<String> = renderer
        .placeholders()
        .iter()
        .map(|p| p.file.display().to_string())
        .collect();
    for name in ["newsletter", "article", "whitepaper"] {
        assert!(
            placeholders.iter().any(|f| f.contains(name)),
            "{name}: {placeholders:?}"
        );
    }
    let campaign = &config.campaigns[0];
    for client in [
        sample_client(),
        ClientRecord {
            name: None,
            company: None,
            fields: BTreeMap::new(),
            ..sample_client()
        },
    ] {
        for step in 1..=campaign.steps.len() as u32 {
            let vars = Vars {
                client: &client,
                unsubscribe_url: "https://winback.acme.example/u/TOKEN".to_string(),
                survey_url: "https://winback.acme.example/s/TOKEN".to_string(),
                now: now(),
            };
            let rendered = renderer
                .render(campaign, step, &vars)
                .unwrap_or_else(|e| panic!("step {step}: {e}"));
            for body in [&rendered.text, &rendered.html] {
                assert!(
                    body.contains("https://winback.acme.example/u/TOKEN"),
                    "step {step}"
                );
                assert!(body.contains("100 Market Street"), "step {step}");
                assert!(body.contains("Acme Analytics"), "step {step}");
                assert!(!body.contains("{{"), "step {step}");
            }
            if step == 1 {
                assert!(
                    rendered
                        .text
                        .contains("https://winback.acme.example/s/TOKEN")
                );
                assert!(
                    rendered
                        .html
                        .contains("https://winback.acme.example/s/TOKEN")
                );
                assert!(
                    rendered.text.contains("not sent in error"),
                    "{}",
                    rendered.text
                );
            }
            let built = renderer
                .build_message(
                    &config,
                    &rendered,
                    &client,
                    &new_message_id(&config, now()),
                    now(),
                    &vars.unsubscribe_url,
                )
                .unwrap();
            assert!(!built.bytes.is_empty());
        }
    }
}

/// Every step of the shipped campaign, rendered for the sample client.
fn shipped_renders(config: &Config) -> Vec<(StepKind, Rendered)> {
    let renderer = Renderer::load(config).unwrap_or_else(|p| panic!("{p:#?}"));
    let campaign = &config.campaigns[0];
    let client = sample_client();
    (1..=campaign.steps.len() as u32)
        .map(|step| {
            let vars = Vars {
                client: &client,
                unsubscribe_url: "https://winback.acme.example/u/TOKEN".to_string(),
                survey_url: "https://winback.acme.example/s/TOKEN".to_string(),
                now: now(),
            };
            let rendered = renderer.render(campaign, step, &vars).unwrap();
            (campaign.steps[step as usize - 1].kind, rendered)
        })
        .collect()
}

/// The first contact says in its body, not only in the footer, that one click stops
/// all mail, and links it there.
#[test]
fn the_survey_body_says_one_click_stops_all_mail() {
    let dir = tempfile::tempdir().unwrap();
    let config = shipped_config(dir.path());
    let (kind, survey) = &shipped_renders(&config)[0];
    assert_eq!(*kind, StepKind::Survey);
    let url = "https://winback.acme.example/u/TOKEN";
    let (body, footer) = survey.text.split_once("\n--\n").expect("a text footer");
    assert!(footer.contains(url));
    assert!(body.contains(url), "{body}");
    assert!(body.contains("one click"), "{body}");
    assert!(body.contains("stops every email from us"), "{body}");
    let (body, _) = survey
        .html
        .split_once("border-top")
        .expect("an HTML footer");
    assert!(body.contains(&format!("<a href=\"{url}\"")), "{body}");
    assert!(body.contains("stops every email from us"), "{body}");
}

#[test]
fn privacy_url_adds_a_link_to_every_shipped_footer() {
    let dir = tempfile::tempdir().unwrap();
    let url = "https://acme.example/privacy";
    let config = shipped_config_with(dir.path(), &format!("privacy_url = \"{url}\""));
    for (kind, rendered) in shipped_renders(&config) {
        let (_, footer) = rendered.text.split_once("\n--\n").expect("a text footer");
        assert!(
            footer.contains(&format!("How we handle your data: {url}\n")),
            "{kind:?}: {footer}"
        );
        let (_, footer) = rendered
            .html
            .split_once("border-top")
            .expect("an HTML footer");
        assert!(
            footer.contains(&format!("<a href=\"{url}\"")),
            "{kind:?}: {footer}"
        );
    }
    let config = shipped_config(dir.path());
    for (kind, rendered) in shipped_renders(&config) {
        for part in [&rendered.text, &rendered.html] {
            assert!(!part.contains("How we handle your data"), "{kind:?}");
        }
    }
}

/// With `privacy_url` set, `check` warns about a template that does not link it.
#[test]
fn load_warns_about_a_template_without_the_privacy_link() {
    let setup = Setup::new();
    setup.survey("<p>Hi</p>", "Hi");
    let mut config = setup.config();
    let privacy = |renderer: &Renderer| -> Vec<Problem> {
        renderer
            .warnings()
            .iter()
            .filter(|w| w.message.contains("privacy"))
            .cloned()
            .collect()
    };
    assert!(privacy(&Renderer::load(&config).unwrap()).is_empty());
    config.sender.privacy_url = Some("https://acme.example/privacy".to_string());
    let renderer = Renderer::load(&config).unwrap_or_else(|p| panic!("{p:#?}"));
    let warnings = privacy(&renderer);
    assert_eq!(warnings.len(), 2, "{warnings:#?}");
    for (warning, file) in warnings.iter().zip(["survey.html.hbs", "survey.txt.hbs"]) {
        assert!(warning.file.ends_with(file), "{warning}");
        assert!(
            warning.message.contains("{{sender.privacy_url}}"),
            "{warning}"
        );
    }
}

/// WCAG 2 contrast ratio of two `#rrggbb` colours.
fn contrast(a: &str, b: &str) -> f64 {
    let luminance = |hex: &str| {
        let hex = hex.trim_start_matches('#');
        let channel = |i: usize| {
            let c = f64::from(u8::from_str_radix(&hex[i..i + 2], 16).unwrap()) / 255.0;
            if c <= 0.04045 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * channel(0) + 0.7152 * channel(2) + 0.0722 * channel(4)
    };
    let (la, lb) = (luminance(a), luminance(b));
    (la.max(lb) + 0.05) / (la.min(lb) + 0.05)
}

/// Every `#rrggbb` after `key` in `text`.
fn colours_after<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
    text.match_indices(key)
        .filter_map(|(at, _)| {
            let rest = text[at + key.len()..].trim_start();
            rest.get(..7).filter(|c| c.starts_with('#'))
        })
        .collect()
}

/// Text in the shipped emails and pages reaches WCAG AA (4.5:1) on its background:
/// the emails are white; the pages' small print uses --muted, light and dark.
#[test]
fn shipped_text_colours_meet_wcag_aa() {
    assert!((contrast("#777777", "#ffffff") - 4.48).abs() < 0.01);
    assert!((contrast("#000000", "#ffffff") - 21.0).abs() < 0.01);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if !path.to_string_lossy().ends_with(".html.hbs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            colours_after(&text, "background:"),
            ["#ffffff"],
            "{}",
            path.display()
        );
        for colour in colours_after(&text, "color:") {
            let ratio = contrast(colour, "#ffffff");
            assert!(ratio >= 4.5, "{}: {colour} is {ratio:.2}:1", path.display());
            checked += 1;
        }
    }
    assert!(checked >= 15, "{checked}");

    let layout = std::fs::read_to_string(dir.join("pages/layout.hbs")).unwrap();
    let muted = colours_after(&layout, "--muted:");
    assert_eq!(muted.len(), 2, "{layout}");
    // Canvas in light mode; the lightest dark Canvas of the common browsers.
    assert!(
        contrast(muted[0], "#ffffff") >= 4.5,
        "{}",
        contrast(muted[0], "#ffffff")
    );
    assert!(
        contrast(muted[1], "#2b2a33") >= 4.5,
        "{}",
        contrast(muted[1], "#2b2a33")
    );
    for rule in [".note {", "footer {"] {
        let line = layout
            .lines()
            .find(|l| l.trim_start().starts_with(rule))
            .unwrap();
        assert!(line.contains("color: var(--muted)"), "{line}");
    }
    assert!(
        !layout.contains(" color: GrayText"),
        "GrayText is 3.9:1 on white"
    );
}
