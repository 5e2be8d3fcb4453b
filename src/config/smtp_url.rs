//! The `[smtp] url`, read once into an [`Endpoint`]: where mail goes (a server, or a
//! folder of `.eml` files), so that `check` refuses exactly what the mailer could not use.
//!
//! Pure text in, data out: no network, no file access. The mailer builds its transport
//! from the [`Endpoint`] and never reads the url again. A refusal never repeats a
//! password written in the url.

use std::fmt;
use std::path::PathBuf;

/// Where the messages go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `smtp://` or `smtps://`.
    Smtp(SmtpServer),
    /// `file://DIR`: one `.eml` file per message in DIR (absolute once validated).
    File(PathBuf),
}

/// An SMTP server read from `smtp://[USER@]HOST[:PORT]` or `smtps://…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SmtpServer {
    /// A name or an IP address (an IPv6 one without its brackets).
    pub host: String,
    /// As written, else 25 for `smtp://` and 465 for `smtps://`.
    pub port: u16,
    /// `smtps://`: TLS from the first byte; `smtp://`: STARTTLS when offered.
    pub implicit_tls: bool,
    /// The login, percent-decoded; its password comes from `WINBACK_SMTP_PASSWORD`.
    pub user: Option<String>,
}

impl Endpoint {
    /// The login the endpoint names, if any.
    pub(crate) fn user(&self) -> Option<&str> {
        match self {
            Endpoint::Smtp(server) => server.user.as_deref(),
            Endpoint::File(_) => None,
        }
    }
}

/// Why a url is refused: the url (its password, if any, replaced by `***`) and the reason
/// in plain words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UrlError {
    pub url: String,
    pub reason: String,
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "url {:?}: {}", self.url, self.reason)
    }
}

impl std::error::Error for UrlError {}

impl SmtpServer {
    /// Reads `smtp://[USER@]HOST[:PORT][/]` or the same with `smtps://` (scheme in any
    /// case, spaces around ignored). `HOST` may be a bracketed IPv6 literal; `USER` may be
    /// percent-encoded; a password written in the url is refused.
    pub(crate) fn parse(url: &str) -> Result<SmtpServer, UrlError> {
        let url = url.trim();
        let (implicit_tls, rest) = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("smtp") => (false, rest),
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("smtps") => (true, rest),
            _ => {
                return Err(invalid(
                    url,
                    "expected smtp://HOST[:PORT] or smtps://HOST[:PORT]",
                ));
            }
        };
        server(url, rest, implicit_tls)
    }
}

/// `rest` is the url after `scheme://`; `url` is the whole, for the error.
pub(crate) fn server(url: &str, rest: &str, implicit_tls: bool) -> Result<SmtpServer, UrlError> {
    let authority_text = rest.strip_suffix('/').unwrap_or(rest);
    if authority_text.contains(['/', '?', '#']) {
        return Err(invalid(
            url,
            "an smtp url takes no path or query: write smtp://HOST:PORT",
        ));
    }
    let Authority { user, host, port } = authority(url, authority_text, "WINBACK_SMTP_PASSWORD")?;
    Ok(SmtpServer {
        host,
        port: port.unwrap_or(if implicit_tls { 465 } else { 25 }),
        implicit_tls,
        user,
    })
}

/// The `[USER@]HOST[:PORT]` part of a server url, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Authority {
    /// Percent-decoded.
    pub user: Option<String>,
    /// A name or an IP address (an IPv6 one without its brackets).
    pub host: String,
    /// As written, if written.
    pub port: Option<u16>,
}

/// Reads `[USER@]HOST[:PORT]` (`text`, nothing before or after it) of `url` (the whole,
/// for the error). A password in it is refused, naming `password_env` instead.
pub(super) fn authority(url: &str, text: &str, password_env: &str) -> Result<Authority, UrlError> {
    let (user, host_port) = match text.rsplit_once('@') {
        Some((userinfo, host_port)) => {
            if userinfo.contains(':') {
                return Err(invalid(
                    url,
                    &format!(
                        "the password must not be written in the url: set {password_env} instead"
                    ),
                ));
            }
            let user = percent_decode(userinfo)
                .filter(|user| !user.is_empty() && !user.chars().any(char::is_control))
                .ok_or_else(|| invalid(url, "the user name before '@' is empty or malformed"))?;
            (Some(user), host_port)
        }
        None => (None, text),
    };
    let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
        let Some((host, after)) = bracketed.split_once(']') else {
            return Err(invalid(url, "an IPv6 address needs a closing ']'"));
        };
        let port = match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(port) => Some(port),
                None => return Err(invalid(url, "expected ':PORT' after ']'")),
            },
        };
        (host, port)
    } else {
        match host_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    if host.is_empty() || !host.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(url, "the host name is missing or malformed"));
    }
    let port = match port {
        None => None,
        Some(port) => match port.parse::<u16>() {
            Ok(port) if port != 0 => Some(port),
            _ => {
                return Err(invalid(
                    url,
                    &format!("the port {port:?} is not a number from 1 to 65535"),
                ));
            }
        },
    };
    Ok(Authority {
        user,
        host: host.to_owned(),
        port,
    })
}

pub(super) fn invalid(url: &str, reason: &str) -> UrlError {
    UrlError {
        url: redact_password(url),
        reason: reason.to_owned(),
    }
}

/// `smtp://user:secret@host` → `smtp://user:***@host`, so errors never echo a password
/// (one holding `/`, `?` or `#` included); a url without one is returned as it is.
pub(crate) fn redact_password(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), url),
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}{user}:***@{host}")
        }
        _ => url.to_owned(),
    }
}

/// Decodes `%XX` escapes (for user names such as `me%40example.com`); `None` if malformed.
pub(super) fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = text.get(index + 1..index + 3)?;
            decoded.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            decoded.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(decoded).ok()
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;

    fn check(url: &str, host: &str, port: u16, user: Option<&str>) {
        let parsed = SmtpServer::parse(url).unwrap_or_else(|error| panic!("{url}: {error}"));
        assert_eq!(
            (parsed.host.as_str(), parsed.port, parsed.user.as_deref()),
            (host, port, user),
            "{url}"
        );
    }

    #[test]
    fn parses_hosts_ports_and_users() {
        check("smtp://mail.example", "mail.example", 25, None);
        check("smtps://mail.example", "mail.example", 465, None);
        check("smtp://127.0.0.1:2525", "127.0.0.1", 2525, None);
        check("smtp://127.0.0.1:2525/", "127.0.0.1", 2525, None);
        check("smtp://[::1]:2525", "::1", 2525, None);
        check("smtps://[::1]", "::1", 465, None);
        check(
            "smtp://bot@mail.example:587",
            "mail.example",
            587,
            Some("bot"),
        );
        check(
            "smtp://me%40acme.example@mail.example",
            "mail.example",
            25,
            Some("me@acme.example"),
        );
        assert!(SmtpServer::parse(" SMTPS://mail.example ").is_ok_and(|s| s.implicit_tls));
    }

    #[test]
    fn rejects_malformed_urls() {
        for url in [
            "smtp://",
            "smtp://host:0",
            "smtp://host:99999",
            "smtp://host:port",
            "smtp://host/path",
            "smtp://host?x=1",
            "smtp://@host",
            "smtp://[::1",
            "smtp://[::1]x",
            "smtp://ho st",
            "smtp://bad%zzuser@host",
            "file:///tmp/outbox",
            "host:25",
        ] {
            assert!(SmtpServer::parse(url).is_err(), "{url} should be refused");
        }
        let error = SmtpServer::parse("smtp://bob:hunter2@localhost:notaport").unwrap_err();
        assert_eq!(error.url, "smtp://bob:***@localhost:notaport");
        assert!(error.reason.contains("WINBACK_SMTP_PASSWORD"), "{error}");
    }
}
