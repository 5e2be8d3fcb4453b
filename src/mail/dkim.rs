//! DKIM signatures (RFC 6376, RFC 8463) over a formatted message: relaxed/relaxed,
//! rsa-sha256 or ed25519-sha256, `t=` from the time the caller passes (the daemon's
//! clock, never the system's), and every signed header name listed once more than it
//! appears, so that a header added later (a second `Subject`, a `List-Unsubscribe`, a
//! `Cc`) breaks the signature. Also reads the key files `[dkim]` names (PEM PKCS#1 or
//! PKCS#8, decoded by the `rsa` crate's `pkcs1`/`pkcs8`), once, at load. Reads no clock.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use ed25519_dalek::Signer as _;
use rsa::RsaPrivateKey;
use rsa::pkcs1v15::Pkcs1v15Sign;
use rsa::pkcs8::ObjectIdentifier;
use rsa::pkcs8::der::Decode as _;
use rsa::pkcs8::der::asn1::OctetStringRef;
use rsa::traits::PublicKeyParts as _;
use sha2::{Digest, Sha256};

use crate::config::{Config, Problem};

/// The headers a receiver shows or acts on, each signed (and oversigned) whether or not
/// the message has it: `Reply-To` and `Cc` are absent from most messages, and signing
/// their absence keeps anyone from adding one.
const SIGNED: [&str; 13] = [
    "From",
    "Reply-To",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "List-Id",
    "Feedback-ID",
];

/// Tags and signature are folded to lines of about this length.
const LINE: usize = 76;

#[derive(Debug)]
pub(crate) enum Key {
    Rsa(Box<RsaPrivateKey>),
    Ed25519(Box<ed25519_dalek::SigningKey>),
}

impl Key {
    fn algorithm(&self) -> &'static str {
        match self {
            Key::Rsa(_) => "rsa-sha256",
            Key::Ed25519(_) => "ed25519-sha256",
        }
    }

    /// The modulus length of an RSA key, in bits.
    pub(crate) fn rsa_bits(&self) -> Option<usize> {
        match self {
            Key::Rsa(key) => Some(key.size() * 8),
            Key::Ed25519(_) => None,
        }
    }
}

/// One signing key with the selector and domain its public half is published under.
#[derive(Debug)]
pub(crate) struct Signer {
    pub(crate) selector: String,
    pub(crate) domain: String,
    pub(crate) key: Key,
}

impl Signer {
    /// The `DKIM-Signature` header field for `message` (CRLF line endings, the header
    /// block first), folded, with its final CRLF: to be put before the message's first
    /// line. `at` becomes `t=`.
    pub(crate) fn sign(&self, message: &[u8], at: DateTime<Utc>) -> String {
        let (head, body) = split(message);
        let fields = fields(head);
        let names = oversigned(&fields);
        self.sign_with(&fields, body, &names, at)
    }

    /// `sign` with the list of signed header names given.
    fn sign_with(
        &self,
        fields: &[&str],
        body: &[u8],
        names: &[String],
        at: DateTime<Utc>,
    ) -> String {
        let body_hash = BASE64.encode(Sha256::digest(relaxed_body(body)));
        let tags = [
            "v=1".to_string(),
            format!("a={}", self.key.algorithm()),
            format!("d={}", self.domain),
            format!("s={}", self.selector),
            "c=relaxed/relaxed".to_string(),
            "q=dns/txt".to_string(),
            format!("t={}", at.timestamp()),
            format!("h={}", names.join(":")),
            format!("bh={body_hash}"),
            "b=".to_string(),
        ];
        let unsigned = fold("DKIM-Signature:", &tags);

        let mut hasher = Sha256::new();
        let mut used = vec![false; fields.len()];
        for name in names {
            // The bottom-most instance not yet used (RFC 6376 5.4.2); none left adds nothing.
            let found = (0..fields.len())
                .rev()
                .find(|&i| !used[i] && field_name(fields[i]).eq_ignore_ascii_case(name.as_str()));
            if let Some(i) = found {
                used[i] = true;
                hasher.update(relaxed_header(fields[i]));
                hasher.update(b"\r\n");
            }
        }
        hasher.update(relaxed_header(&unsigned));
        let hash = hasher.finalize();

        let signature = match &self.key {
            Key::Rsa(key) => key
                .sign(Pkcs1v15Sign::new::<Sha256>(), &hash)
                .map(|s| BASE64.encode(s))
                // Cannot fail: `signers` (at load) refuses RSA keys under 1024 bits, and
                // PKCS#1 v1.5 with SHA-256 needs only 62 bytes of modulus.
                .unwrap_or_default(),
            Key::Ed25519(key) => BASE64.encode(key.sign(&hash).to_bytes()),
        };
        let mut out = unsigned;
        // Folding whitespace inside the value of `b=` is not signed.
        for chunk in signature.as_bytes().chunks(LINE - 4) {
            out.push_str("\r\n ");
            out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        }
        out.push_str("\r\n");
        out
    }
}

/// The header block (without its blank line) and the body.
fn split(message: &[u8]) -> (&str, &[u8]) {
    let end = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(message.len());
    let head = std::str::from_utf8(&message[..end]).unwrap_or_default();
    let body = message.get(end + 4..).unwrap_or_default();
    (head, body)
}

/// Each header field with its continuation lines, without the final CRLF.
fn fields(head: &str) -> Vec<&str> {
    let mut fields = Vec::new();
    let mut start = 0;
    let bytes = head.as_bytes();
    let mut at = 0;
    while let Some(offset) = head[at..].find("\r\n") {
        let end = at + offset;
        let next = bytes.get(end + 2);
        if !matches!(next, Some(b' ' | b'\t')) {
            fields.push(&head[start..end]);
            start = end + 2;
        }
        at = end + 2;
    }
    if start < head.len() {
        fields.push(&head[start..]);
    }
    fields
}

fn field_name(field: &str) -> &str {
    field.split_once(':').map_or(field, |(name, _)| name).trim()
}

/// Each name of `SIGNED` as many times as the message has it, plus once.
fn oversigned(fields: &[&str]) -> Vec<String> {
    SIGNED
        .iter()
        .flat_map(|name| {
            let count = fields
                .iter()
                .filter(|f| field_name(f).eq_ignore_ascii_case(name))
                .count();
            std::iter::repeat_n(name.to_ascii_lowercase(), count + 1)
        })
        .collect()
}

/// RFC 6376 3.4.2: the name lowercased, the value unfolded, runs of whitespace as one
/// space, none at the ends or around the colon.
fn relaxed_header(field: &str) -> String {
    let (name, value) = field.split_once(':').unwrap_or((field, ""));
    let mut out = name.trim_end().to_ascii_lowercase();
    out.push(':');
    let unfolded = value.replace("\r\n", "");
    let mut words = unfolded.split([' ', '\t']).filter(|w| !w.is_empty());
    if let Some(first) = words.next() {
        out.push_str(first);
        for word in words {
            out.push(' ');
            out.push_str(word);
        }
    }
    out
}

/// RFC 6376 3.4.4: runs of whitespace within a line as one space, none at a line's end,
/// no empty lines at the end; a non-empty body ends with CRLF.
fn relaxed_body(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut lines: Vec<&[u8]> = body.split(|&b| b == b'\n').collect();
    // `split` leaves an empty piece after a final LF.
    if body.ends_with(b"\n") {
        lines.pop();
    }
    for line in lines {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let mut space = false;
        for &b in line {
            if b == b' ' || b == b'\t' {
                space = true;
            } else {
                if space {
                    out.push(b' ');
                    space = false;
                }
                out.push(b);
            }
        }
        out.extend_from_slice(b"\r\n");
    }
    while out.ends_with(b"\r\n\r\n") {
        out.truncate(out.len() - 2);
    }
    if out == b"\r\n" {
        out.clear();
    }
    out
}

/// `name` and the tags joined by "; ", folded between tags (and inside the long `h=`
/// list, at its colons) to lines of about `LINE` characters.
fn fold(name: &str, tags: &[String]) -> String {
    let mut out = name.to_string();
    let mut line = out.len();
    for (index, tag) in tags.iter().enumerate() {
        let separator = if index == 0 { "" } else { ";" };
        out.push_str(separator);
        line += separator.len();
        let pieces: Vec<&str> = if tag.starts_with("h=") {
            tag.split_inclusive(':').collect()
        } else {
            vec![tag.as_str()]
        };
        for (piece_index, piece) in pieces.iter().enumerate() {
            let space = piece_index == 0;
            let needed = piece.len() + usize::from(space);
            if line + needed > LINE && line > 1 {
                out.push_str("\r\n ");
                line = 1;
            } else if space {
                out.push(' ');
                line += 1;
            }
            out.push_str(piece);
            line += piece.len();
        }
    }
    out
}

/// The signers `[dkim]` names (one or two keys), each key file read and checked now;
/// what is wrong goes to `problems` (a key that cannot sign) or `warnings` (a key
/// receivers may not trust).
pub(super) fn signers(
    config: &Config,
    problems: &mut Vec<Problem>,
    warnings: &mut Vec<Problem>,
) -> Vec<Signer> {
    let mut signers = Vec::new();
    if let Some(dkim) = &config.dkim {
        let second = dkim
            .second
            .iter()
            .map(|second| ("dkim.second_key_file", &second.selector, &second.key_file));
        for (key, selector, path) in
            std::iter::once(("dkim.key_file", &dkim.selector, &dkim.key_file)).chain(second)
        {
            match signing_key_file(path) {
                Ok(signing_key) if signing_key.rsa_bits().is_some_and(|bits| bits < 1024) => {
                    problems.push(Problem {
                        file: path.clone(),
                        line: None,
                        key: key.to_string(),
                        message: format!(
                            "is a {}-bit RSA key, too short to sign with; make a new one (openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048) and publish it",
                            signing_key.rsa_bits().unwrap_or_default()
                        ),
                    });
                }
                Ok(signing_key) => {
                    if let Some(bits) = signing_key.rsa_bits().filter(|&bits| bits < 2048) {
                        warnings.push(Problem {
                            file: path.clone(),
                            line: None,
                            key: key.to_string(),
                            message: format!(
                                "is a {bits}-bit RSA key; receivers such as Gmail and Yahoo treat signatures with keys under 2048 bits as unsigned; make a new one (openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048) and publish it"
                            ),
                        });
                    }
                    signers.push(Signer {
                        selector: selector.clone(),
                        domain: dkim.domain.clone(),
                        key: signing_key,
                    });
                }
                Err(message) => problems.push(Problem {
                    file: path.clone(),
                    line: None,
                    key: key.to_string(),
                    message,
                }),
            }
        }
    }

    signers
}

/// The DKIM key in the file at `path`, or why it cannot be used.
fn signing_key_file(path: &Path) -> Result<Key, String> {
    let pem = std::fs::read_to_string(path).map_err(|e| format!("cannot be read ({e})"))?;
    signing_key(&pem)
}

const ED25519_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
pub(super) const RSA_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// A DKIM key from the text of a key file: PEM PKCS#1 RSA (`BEGIN RSA PRIVATE KEY`), PEM
/// PKCS#8 RSA or Ed25519 (`BEGIN PRIVATE KEY`, what `openssl genpkey` writes), or the
/// bare base64 of a 32-byte Ed25519 seed.
pub(super) fn signing_key(text: &str) -> Result<Key, String> {
    use rsa::pkcs1::DecodeRsaPrivateKey as _;
    let unusable = |what: &str| {
        format!(
            "{what}; use an unencrypted PEM key (openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048, or -algorithm ed25519)"
        )
    };
    let rsa = |key: Result<rsa::RsaPrivateKey, rsa::pkcs1::Error>| {
        key.map(|key| Key::Rsa(Box::new(key)))
            .map_err(|e| unusable(&format!("is not a valid RSA key ({e})")))
    };
    let ed25519 = |seed: &[u8]| match <[u8; 32]>::try_from(seed) {
        Ok(seed) => Ok(Key::Ed25519(Box::new(
            ed25519_dalek::SigningKey::from_bytes(&seed),
        ))),
        Err(_) => Err(unusable("is not a valid Ed25519 key")),
    };
    if text.contains("-----BEGIN RSA PRIVATE KEY-----") {
        return rsa(rsa::RsaPrivateKey::from_pkcs1_pem(text.trim()));
    }
    if text.contains("ENCRYPTED") {
        return Err(unusable("is encrypted"));
    }
    if let Some(der) = pem_body(text, "PRIVATE KEY") {
        let der = der.ok_or_else(|| unusable("is not valid PEM"))?;
        let (algorithm, private) =
            pkcs8(&der).ok_or_else(|| unusable("is not a PKCS#8 private key"))?;
        if algorithm == ED25519_OID {
            // The private key is itself an OCTET STRING holding the 32-byte seed.
            return match OctetStringRef::from_der(private) {
                Ok(seed) => ed25519(seed.as_bytes()),
                Err(_) => Err(unusable("is not a valid Ed25519 key")),
            };
        }
        if algorithm == RSA_OID {
            // The private key is a PKCS#1 RSAPrivateKey.
            return rsa(rsa::RsaPrivateKey::from_pkcs1_der(private));
        }
        return Err(unusable(
            "uses an algorithm DKIM does not support (only RSA and Ed25519)",
        ));
    }
    if text.contains("-----BEGIN") {
        return Err(unusable("is not a private key winback can read"));
    }
    match BASE64.decode(text.trim()) {
        Ok(seed) if seed.len() == 32 => ed25519(&seed),
        _ => Err(unusable("is not a PEM key")),
    }
}

/// The decoded body of the PEM block labelled `label`: `None` if there is none,
/// `Some(None)` if it is not valid base64.
pub(super) fn pem_body(text: &str, label: &str) -> Option<Option<Vec<u8>>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)? + begin.len();
    let Some(length) = text[start..].find(&end) else {
        return Some(None);
    };
    let body: String = text[start..start + length]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    Some(BASE64.decode(body).ok())
}

/// The algorithm and the private key octets of a PKCS#8 `PrivateKeyInfo` (or
/// `OneAsymmetricKey`), decoded by the `pkcs8` crate the `rsa` crate brings.
pub(super) fn pkcs8(der: &[u8]) -> Option<(ObjectIdentifier, &[u8])> {
    let info = rsa::pkcs8::PrivateKeyInfo::from_der(der).ok()?;
    Some((info.algorithm.oid, info.private_key))
}

#[cfg(test)]
pub(crate) mod tests;
