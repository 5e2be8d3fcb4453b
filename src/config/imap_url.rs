//! An `[inbound] mailboxes` entry, read once into an [`ImapMailbox`]: which server, which
//! login, which folder, and how the connection must be protected, so that `check`
//! refuses exactly what the mailbox reader could not use.
//!
//! Pure text in, data out: no network, no file access. The reader connects from the
//! [`ImapMailbox`] and never reads the url again. A refusal never repeats a password
//! written in the url.

use std::net::IpAddr;

use super::smtp_url::{Authority, UrlError, authority, invalid, percent_decode};

/// How the connection to an IMAP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ImapSecurity {
    /// `imaps://`: TLS from the first byte.
    Tls,
    /// `imap://` to another machine: STARTTLS, and no login if the server does not offer it.
    StartTls,
    /// `imap://` to this machine (a loopback address or `localhost`): STARTTLS when
    /// offered, else a login in the clear, which never leaves the machine.
    StartTlsIfOffered,
}

/// A mailbox read from `imaps://USER@HOST[:PORT]/FOLDER` or `imap://…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ImapMailbox {
    /// The url as written (it holds no password).
    pub url: String,
    /// A name or an IP address (an IPv6 one without its brackets).
    pub host: String,
    /// As written, else 993 for `imaps://` and 143 for `imap://`.
    pub port: u16,
    pub security: ImapSecurity,
    /// The login, percent-decoded; its password comes from `WINBACK_IMAP_PASSWORD`.
    pub user: String,
    /// The folder, percent-decoded; `INBOX` when the url names none.
    pub folder: String,
}

impl ImapMailbox {
    /// Reads `imaps://USER@HOST[:PORT][/FOLDER]` or the same with `imap://` (scheme in any
    /// case, spaces around ignored). `HOST` may be a bracketed IPv6 literal; `USER` and
    /// `FOLDER` may be percent-encoded; a password written in the url is refused.
    pub(crate) fn parse(url: &str) -> Result<ImapMailbox, UrlError> {
        let url = url.trim();
        let (implicit_tls, rest) = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("imaps") => (true, rest),
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("imap") => (false, rest),
            _ => {
                return Err(invalid(
                    url,
                    "expected imaps://USER@HOST/FOLDER or imap://USER@HOST/FOLDER",
                ));
            }
        };
        // A login is required, so the first '@' ends it; a ':' before it is a password
        // (refused before any part of it could be quoted as a port or a folder).
        let Some(at) = rest.find('@') else {
            return Err(invalid(
                url,
                "names no login: write the user before the host, imaps://USER@HOST/FOLDER",
            ));
        };
        if rest[..at].contains(':') {
            return Err(invalid(
                url,
                "the password must not be written in the url: set WINBACK_IMAP_PASSWORD instead",
            ));
        }
        let end = rest[at..].find('/').map_or(rest.len(), |i| at + i);
        let (authority_text, path) = (&rest[..end], rest.get(end + 1..).unwrap_or(""));
        if authority_text.contains(['?', '#']) || path.contains(['?', '#', ';']) {
            return Err(invalid(
                url,
                "an imap url takes no query or options: write imaps://USER@HOST/FOLDER",
            ));
        }
        let Authority { user, host, port } =
            authority(url, authority_text, "WINBACK_IMAP_PASSWORD")?;
        let user = user.ok_or_else(|| {
            invalid(
                url,
                "names no login: write the user before the host, imaps://USER@HOST/FOLDER",
            )
        })?;
        let folder = match path.strip_suffix('/').unwrap_or(path) {
            "" => "INBOX".to_string(),
            path => percent_decode(path)
                .filter(|folder| !folder.chars().any(char::is_control))
                .ok_or_else(|| invalid(url, "the folder name after the host is malformed"))?,
        };
        let security = if implicit_tls {
            ImapSecurity::Tls
        } else if is_loopback(&host) {
            ImapSecurity::StartTlsIfOffered
        } else {
            ImapSecurity::StartTls
        };
        Ok(ImapMailbox {
            url: url.to_string(),
            port: port.unwrap_or(if implicit_tls { 993 } else { 143 }),
            host,
            security,
            user,
            folder,
        })
    }
}

/// Whether `host` is this machine, by its address or the name `localhost`.
fn is_loopback(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost"
        || host.ends_with(".localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_login_host_port_folder_and_protection() {
        let m = ImapMailbox::parse("imaps://winback@imap.acme.example/INBOX").unwrap();
        assert_eq!(
            (m.user.as_str(), m.host.as_str(), m.port, m.folder.as_str()),
            ("winback", "imap.acme.example", 993, "INBOX")
        );
        assert_eq!(m.security, ImapSecurity::Tls);

        let m = ImapMailbox::parse(" IMAP://me%40acme.example@mail.example:1143/Bounces%20In/ ")
            .unwrap();
        assert_eq!(
            (m.user.as_str(), m.port, m.folder.as_str()),
            ("me@acme.example", 1143, "Bounces In")
        );
        assert_eq!(m.security, ImapSecurity::StartTls);

        for local in [
            "imap://u@127.0.0.1:1143",
            "imap://u@[::1]/INBOX",
            "imap://u@localhost",
        ] {
            let m = ImapMailbox::parse(local).unwrap();
            assert_eq!(m.security, ImapSecurity::StartTlsIfOffered, "{local}");
            assert_eq!(m.folder, "INBOX", "{local}");
        }
        assert_eq!(
            ImapMailbox::parse("imap://u@mail.example/INBOX.bounces")
                .unwrap()
                .folder,
            "INBOX.bounces"
        );
    }

    #[test]
    fn refuses_what_the_reader_could_not_use() {
        for url in [
            "imaps://imap.acme.example/INBOX",
            "imaps://@imap.acme.example/INBOX",
            "imaps://u@/INBOX",
            "imaps://u@host:0/INBOX",
            "imaps://u@host:port/INBOX",
            "imaps://u@host/INBOX?x=1",
            "imaps://u@host/INBOX;UIDVALIDITY=1",
            "imaps://u@host/bad%zz",
            "pop3://u@host",
            "https://u@host/INBOX",
            "u@host/INBOX",
        ] {
            assert!(ImapMailbox::parse(url).is_err(), "{url} should be refused");
        }
        let error = ImapMailbox::parse("imaps://bob:hunter2@host/INBOX").unwrap_err();
        assert_eq!(error.url, "imaps://bob:***@host/INBOX");
        assert!(error.reason.contains("WINBACK_IMAP_PASSWORD"), "{error}");
    }
}
