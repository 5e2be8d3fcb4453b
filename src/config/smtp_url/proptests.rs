//! Property tests for the `smtp://` url of the configuration: any text is read or
//! refused without a panic, a refusal never repeats a password written in the url, and
//! a url written from a user (percent-encoded), a host (name, IPv4 or bracketed IPv6) and
//! a port reads back as them.

use proptest::prelude::*;

use super::*;

fn check_smtp_url(url: &str) -> Result<(), UrlError> {
    SmtpServer::parse(url).map(|_| ())
}

fn smtp_user(url: &str) -> Option<String> {
    SmtpServer::parse(url).ok()?.user
}

/// A password holding `?`, `#` or `/` made the url look like one with a path or query,
/// and that refusal, like one of an unknown scheme, quoted the url whole.
#[test]
fn a_refused_url_never_repeats_its_password() {
    for url in [
        "smtp://me:pa?s3cret@mail.example",
        "smtp://me:pa#s3cret@mail.example:587",
        "smtps://me:pa/s3cret@mail.example",
        "smpt://me:s3cret@mail.example",
    ] {
        let error = check_smtp_url(url).expect_err(url).to_string();
        assert!(!error.contains("s3cret"), "{error}");
        assert!(error.contains("me:***@mail.example"), "{error}");
    }
    let text = "[smtp]\nurl = \"smpt://me:s3cret@mail.example\"\n";
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("winback.toml");
    let errors = crate::config::Config::parse(&path, text)
        .expect_err("an unknown scheme")
        .to_string();
    assert!(!errors.contains("s3cret"), "{errors}");
    assert!(
        errors.contains("\"smpt://me:***@mail.example\" is not supported"),
        "{errors}"
    );
}

fn url_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        3 => prop::sample::select(vec![
            "smtp://", "smtps://", "SMTP://", "file://", "://", "@", ":", "[", "]", "/", "?",
            "#", "%", "%4", "%40", "%zz", "%+1", "::1", "65535", "65536", "0", " ", "\t", "\u{0}",
        ])
        .prop_map(str::to_owned),
        2 => "[a-z0-9.-]{1,8}",
        1 => any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..12).prop_map(|pieces| pieces.concat())
}

/// A user name with characters a url must percent-encode.
fn user() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9._@+ %:/-]{1,16}"
}

fn encoded(user: &str) -> String {
    user.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"._-".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn host() -> impl Strategy<Value = (String, String)> {
    prop_oneof![
        "[a-z0-9][a-z0-9.-]{0,20}".prop_map(|h| (h.clone(), h)),
        any::<std::net::Ipv4Addr>().prop_map(|ip| (ip.to_string(), ip.to_string())),
        any::<std::net::Ipv6Addr>().prop_map(|ip| (format!("[{ip}]"), ip.to_string())),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(768))]

    #[test]
    fn any_url_is_read_or_refused(url in prop_oneof![url_text(), any::<String>()]) {
        let checked = check_smtp_url(&url);
        let user = smtp_user(&url);
        prop_assert!(checked.is_ok() || user.is_none(), "{:?}", url);
    }

    #[test]
    fn a_refusal_never_repeats_a_password_in_the_url(
        scheme in prop::sample::select(vec!["smtp", "smtps"]),
        user in "[a-z]{1,8}",
        password in "PW[a-zA-Z0-9!$&*#?/]{6,12}",
        (host, _) in host(),
        port in prop::option::of(1u16..),
    ) {
        let port = port.map(|p| format!(":{p}")).unwrap_or_default();
        let url = format!("{scheme}://{user}:{password}@{host}{port}");
        match check_smtp_url(&url) {
            Ok(()) => prop_assert!(false, "a password in the url was accepted: {}", url),
            Err(error) => prop_assert!(!error.to_string().contains(&password), "{}", error),
        }
    }

    #[test]
    fn a_url_reads_back_as_its_user_host_and_port(
        implicit_tls in any::<bool>(),
        user in prop::option::of(user()),
        (written, host) in host(),
        port in prop::option::of(1u16..),
        slash in any::<bool>(),
    ) {
        let scheme = if implicit_tls { "smtps" } else { "smtp" };
        let userinfo = user.as_deref().map(|u| format!("{}@", encoded(u))).unwrap_or_default();
        let port_text = port.map(|p| format!(":{p}")).unwrap_or_default();
        let slash = if slash { "/" } else { "" };
        let url = format!("{scheme}://{userinfo}{written}{port_text}{slash}");
        let rest = url.split_once("://").map_or("", |(_, rest)| rest);
        let server = server(&url, rest, implicit_tls);
        prop_assert!(server.is_ok(), "{}: {:?}", url, server.err().map(|e| e.to_string()));
        let server = server.unwrap();
        prop_assert_eq!(&server.host, &host);
        prop_assert_eq!(server.port, port.unwrap_or(if implicit_tls { 465 } else { 25 }));
        prop_assert_eq!(&server.user, &user);
        prop_assert!(check_smtp_url(&url).is_ok());
        prop_assert_eq!(smtp_user(&url), user);
    }
}
