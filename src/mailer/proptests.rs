//! Property tests for the `smtp://` url of the configuration: any text is read or
//! refused without a panic, a refusal never repeats a password written in the url, and
//! a url written from a user (percent-encoded), a host (name, IPv4 or bracketed IPv6) and
//! a port reads back as them.

use super::*;

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
