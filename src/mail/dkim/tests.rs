//! Tests of DKIM: canonicalization, signatures that verify (and agree with lettre's
//! signer) and break when a header is added, and the key files read at load.

use std::fs;

use rsa::RsaPublicKey;
use rsa::pkcs1::DecodeRsaPrivateKey as _;

use super::*;
use crate::mail::Renderer;
use crate::mail::tests::{SUBJECT, Setup, built, client, header, now, vars};

/// The public half of a signer, for checking signatures.
pub(crate) enum Public {
    Rsa(RsaPublicKey),
    Ed25519(ed25519_dalek::VerifyingKey),
}

impl Public {
    pub(crate) fn of(key: &Key) -> Public {
        match key {
            Key::Rsa(key) => Public::Rsa(key.to_public_key()),
            Key::Ed25519(key) => Public::Ed25519(key.verifying_key()),
        }
    }
}

/// The value of tag `name` in a DKIM-Signature value, whitespace removed.
pub(crate) fn tag(signature: &str, name: &str) -> Option<String> {
    signature.split(';').find_map(|t| {
        let (n, v) = t.split_once('=')?;
        (n.trim() == name).then(|| v.chars().filter(|c| !c.is_whitespace()).collect())
    })
}

/// Verifies the `index`-th DKIM-Signature of `message` as a receiver would (relaxed
/// canonicalization, `h=` instances from the bottom up, the body hash), with `key`.
pub(crate) fn verify(message: &[u8], index: usize, key: &Public) -> Result<(), String> {
    let (head, body) = split(message);
    let fields = fields(head);
    let signature = fields
        .iter()
        .filter(|f| field_name(f).eq_ignore_ascii_case("DKIM-Signature"))
        .nth(index)
        .ok_or("no such signature")?;
    let value = signature.split_once(':').ok_or("no colon")?.1;
    let bh = tag(value, "bh").ok_or("no bh=")?;
    if bh != BASE64.encode(Sha256::digest(relaxed_body(body))) {
        return Err("body hash".to_string());
    }
    let names = tag(value, "h").ok_or("no h=")?;
    let mut hasher = Sha256::new();
    let mut used = vec![false; fields.len()];
    for name in names.split(':') {
        if let Some(i) = (0..fields.len())
            .rev()
            .find(|&i| !used[i] && field_name(fields[i]).eq_ignore_ascii_case(name))
        {
            used[i] = true;
            hasher.update(relaxed_header(fields[i]));
            hasher.update(b"\r\n");
        }
    }
    // The signature without the value of its `b=` tag.
    let mut offset = 0;
    let mut b_at = None;
    for piece in signature.split(';') {
        if piece.trim_start().starts_with("b=") {
            b_at = Some(offset + piece.find("b=").unwrap_or(0));
        }
        offset += piece.len() + 1;
    }
    let b_at = b_at.ok_or("no b=")?;
    hasher.update(relaxed_header(&signature[..b_at + 2]));
    let hash = hasher.finalize();
    let b = BASE64
        .decode(tag(value, "b").ok_or("no b=")?)
        .map_err(|e| e.to_string())?;
    match key {
        Public::Rsa(key) => key
            .verify(Pkcs1v15Sign::new::<Sha256>(), &hash, &b)
            .map_err(|e| e.to_string()),
        Public::Ed25519(key) => {
            let b: [u8; 64] = b.try_into().map_err(|_| "signature length")?;
            key.verify_strict(&hash, &ed25519_dalek::Signature::from_bytes(&b))
                .map_err(|e| e.to_string())
        }
    }
}

pub(crate) const RSA_1024: &str = "-----BEGIN RSA PRIVATE KEY-----
MIICXQIBAAKBgQCpnplL+GGortBkl3W7A21qj9RB2nIBS7AYbd0X5CQxs9T6sZrc
cynCc4cRJEVEPPDq4mXT8x7zOWiF9SHb2boGne0wi5yFnII0BASFE60PLYXuolUc
B5Yd5BfnbJyYAU65QLQBRhN/ZsFmGgg7m6aY7HikDAJ3GPmKv9MwRj28aQIDAQAB
AoGAaPRiFsgSZbYF7LhreNSeF5n31Oe+M18KD5OrguUAIGEOIDFViaMY6+FgahLv
aVHsIOsF5yhAtm+HZZxQ3yDSIdPpNK6COysyPI8HZ7GSKUeubQz+Mj9br6Nl9q7p
Q9br9DOeGQlBGW9TpyOGa2y7uZDdl0JlVjtbFuU0BeX5RiECQQDZcbkU8BhUvko5
4jX2xG2uLSK0f2D3Pq6kLw31LtvWsvHzXFr3NJ1EVqdTaeRfKmaoM3AVRvC6WCtE
3dsBMbC3AkEAx7IBl1sbOqaffdlw8Z2qk4zI7YLpFmo6YPQmJl8fTYHmt7zg/ynQ
GichnZMvrCccBC/wvotKXh3zJj8MR7qb3wJADRGzwRlpLPa++VmqSqmluflGg7jA
ODwRPRcC7MCjP/VDa5Aae48zAJ+AsRfFPR8MSoHE89Jut5SDDUGUXy8AYwJBAIEL
CHg0SX43Gi2LC682wXmjqlvBErqHXr40R0rYgTPm0568EXESJgYgb1qSOGY4x6P1
Ds8y15XGKM/4QglAD2UCQQC3hVh5tfNfUhMCM0hs/WVX5Mm8tsfyDNNxRZj82kjl
mG1qAQEkF9pYALD6NOFDI4WCWQPs2ju6j+xt8W/iFsU/
-----END RSA PRIVATE KEY-----
";

fn message() -> Vec<u8> {
    b"From: Acme <success@acme.example>\r\nTo: \"Pat\" <pat@client.example>\r\nSubject: Hello\r\n =?utf-8?b?WsOpbw==?=\r\nDate: Tue, 9 Sep 2025 14:30:05 +0000\r\nMessage-ID: <a@acme.example>\r\nMIME-Version: 1.0\r\nList-Unsubscribe: <https://w.example/u/T>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHi  there \t\r\nbye\r\n\r\n\r\n".to_vec()
}

fn signers() -> Vec<Signer> {
    vec![
        Signer {
            selector: "rsa".to_string(),
            domain: "acme.example".to_string(),
            key: Key::Rsa(Box::new(RsaPrivateKey::from_pkcs1_pem(RSA_1024).unwrap())),
        },
        Signer {
            selector: "ed".to_string(),
            domain: "acme.example".to_string(),
            key: Key::Ed25519(Box::new(ed25519_dalek::SigningKey::from_bytes(&[7; 32]))),
        },
    ]
}

/// What lettre's signer (the one this replaced) signs verifies here, for both key
/// types: the canonicalization and hashing of `verify`, which are `sign`'s, agree
/// with it.
#[test]
fn agrees_with_lettres_signer() {
    use lettre::message::dkim::{
        DkimCanonicalization, DkimCanonicalizationType, DkimConfig, DkimSigningAlgorithm,
        DkimSigningKey,
    };
    use lettre::message::header::HeaderName;
    let seed = BASE64.encode([7u8; 32]);
    for (ours, theirs) in signers().into_iter().zip([
        DkimSigningKey::new(RSA_1024, DkimSigningAlgorithm::Rsa).unwrap(),
        DkimSigningKey::new(&seed, DkimSigningAlgorithm::Ed25519).unwrap(),
    ]) {
        let names = ["From", "To", "Subject", "Date", "Content-Type"];
        let config = DkimConfig::new(
            ours.selector.clone(),
            ours.domain.clone(),
            theirs,
            names
                .iter()
                .map(|n| HeaderName::new_from_ascii_str(n))
                .collect(),
            DkimCanonicalization {
                header: DkimCanonicalizationType::Relaxed,
                body: DkimCanonicalizationType::Relaxed,
            },
        );
        let mut message = lettre::Message::builder()
            .from("Acme <success@acme.example>".parse().unwrap())
            .to("Zoë Müller <zoe@client.example>".parse().unwrap())
            .subject("Zoë, a  long subject that lettre folds over more than one line, surely")
            .date(
                "2025-09-09T14:30:05Z"
                    .parse::<DateTime<Utc>>()
                    .unwrap()
                    .into(),
            )
            .body("Hi  there \t\nbye\n\n".to_string())
            .unwrap();
        message.sign(&config);
        let bytes = message.formatted();
        verify(&bytes, 0, &Public::of(&ours.key))
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&bytes)));
        // And one byte changed fails, so the check above could fail.
        let tampered = String::from_utf8(bytes).unwrap().replace("bye", "bya");
        assert!(verify(tampered.as_bytes(), 0, &Public::of(&ours.key)).is_err());
    }
}

#[test]
fn relaxed_canonicalization() {
    assert_eq!(relaxed_header("SubJect : a  b\r\n\t c \t"), "subject:a b c");
    assert_eq!(relaxed_header("X:"), "x:");
    assert_eq!(relaxed_body(b"a  b \t\r\n\r\n\r\n"), b"a b\r\n");
    assert_eq!(relaxed_body(b"\r\n\r\n"), b"");
    assert_eq!(relaxed_body(b""), b"");
    assert_eq!(relaxed_body(b"a"), b"a\r\n");
    assert_eq!(
        fields("A: 1\r\nB: 2\r\n 3\r\nC: 4"),
        ["A: 1", "B: 2\r\n 3", "C: 4"]
    );
}

/// Each signature verifies, `t=` is the time given, every signed name is listed once
/// more than it appears, and a header added afterwards breaks the signature.
#[test]
fn signatures_verify_and_break_when_a_header_is_added() {
    let at = DateTime::parse_from_rfc3339("2031-02-03T04:05:06Z")
        .unwrap()
        .with_timezone(&Utc);
    for signer in signers() {
        let public = Public::of(&signer.key);
        let header = signer.sign(&message(), at);
        assert!(header.lines().all(|l| l.len() <= LINE + 2), "{header}");
        let signed = [header.as_bytes(), &message()].concat();
        verify(&signed, 0, &public).unwrap_or_else(|e| panic!("{e}\n{header}"));

        let value = header.split_once(':').unwrap().1;
        assert_eq!(tag(value, "t").as_deref(), Some("1927857906"));
        assert_eq!(
            tag(value, "h").as_deref(),
            Some(
                "from:from:reply-to:to:to:cc:subject:subject:date:date:message-id:message-id:\
                 mime-version:mime-version:content-type:content-type:list-unsubscribe:\
                 list-unsubscribe:list-unsubscribe-post:list-unsubscribe-post:list-id:feedback-id"
            )
        );

        for added in [
            "Subject: Cheap pills\r\n",
            "List-Unsubscribe: <https://evil.example/>\r\n",
            "Cc: someone@else.example\r\n",
            "Reply-To: evil@evil.example\r\n",
        ] {
            let mut tampered = signed.clone();
            let at = tampered.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 2;
            tampered.splice(at..at, added.bytes());
            assert!(verify(&tampered, 0, &public).is_err(), "{added}");
        }
        let mut body_changed = signed.clone();
        body_changed.extend_from_slice(b"P.S.\r\n");
        assert!(verify(&body_changed, 0, &public).is_err());
        // Refolding on the way (relaxed) keeps it valid.
        let refolded = String::from_utf8(signed.clone())
            .unwrap()
            .replace("Subject: Hello\r\n ", "Subject:  Hello\r\n\t  ");
        verify(refolded.as_bytes(), 0, &public).unwrap();
    }
}

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
        assert!(signature.contains("h=from:from:reply-to:to:to:cc:subject:subject:date:date:message-id:message-id:mime-version:mime-version:content-type:content-type:list-unsubscribe:list-unsubscribe:list-unsubscribe-post:list-unsubscribe-post:list-id:list-id:feedback-id;"), "{signature}");
        // The daemon's clock (the Date header's), not the system's.
        assert!(
            signature.contains(&format!("t={};", now().timestamp())),
            "{signature}"
        );
        assert!(!signature.ends_with("b="), "{signature}");
        let public = Public::of(&renderer.dkim[0].key);
        verify(&built.bytes, 0, &public).unwrap_or_else(|e| panic!("{file}: {e}"));
    }
}

/// An RSA and an Ed25519 key together: two signatures, each verifying with its own
/// key and selector. A key under 2048 bits is a warning, not an error.
#[test]
fn dkim_signs_twice_with_a_second_key_and_warns_about_a_short_rsa_key() {
    let setup = Setup::new();
    setup.survey("<p>Hi</p>", "Hi");
    fs::write(setup.dir.path().join("rsa.pem"), RSA_1024).unwrap();
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
        let public = Public::of(&signer.key);
        verify(&built.bytes, index, &public).unwrap_or_else(|e| panic!("signature {index}: {e}"));
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

/// `List-Id` and `Feedback-ID` are signed (and oversigned): a changed value or a second
/// one breaks the signature.
#[test]
fn list_id_and_feedback_id_are_signed() {
    let setup = Setup::new();
    setup.survey("<p>Hi</p>", "Hi");
    fs::write(setup.dir.path().join("ed.pem"), ed25519_pkcs8([7; 32])).unwrap();
    let extra = "\n[dkim]\nselector = \"winback\"\ndomain = \"acme.example\"\nkey_file = \"ed.pem\"\n\n[inbound]\nfeedback_id = \"acme-mail\"\n";
    let step = format!(
        "[[campaign.step]]\nkind = \"survey\"\ntemplate = \"survey\"\nsubject = \"{SUBJECT}\"\n"
    );
    let config = setup.config_with(extra, &step).unwrap();
    let renderer = Renderer::load(&config).unwrap_or_else(|p| panic!("{p:#?}"));
    let client = client();
    let rendered = renderer
        .render(&config.campaigns[0], 1, &vars(&client))
        .unwrap();
    let built = built(&renderer, &config, &rendered, &client);
    assert_eq!(
        header(&built.bytes, "List-Id"),
        ["former-clients <former-clients.acme.example>"]
    );
    assert_eq!(
        header(&built.bytes, "Feedback-ID"),
        ["former-clients:step-1:acme-mail"]
    );
    let signature = header(&built.bytes, "DKIM-Signature")[0].replace(' ', "");
    assert!(
        signature.contains(":list-id:list-id:feedback-id:feedback-id;"),
        "{signature}"
    );
    let public = Public::of(&renderer_key(&config));
    verify(&built.bytes, 0, &public).unwrap();
    let text = String::from_utf8(built.bytes.clone()).unwrap();
    for forged in [
        text.replace("step-1:acme-mail", "step-2:acme-mail"),
        text.replace(
            "List-Id: ",
            "List-Id: other <other.acme.example>\r\nList-Id: ",
        ),
        text.replace("Feedback-ID: ", "Feedback-ID: x:y:z:evil\r\nFeedback-ID: "),
    ] {
        assert_ne!(forged, text);
        assert!(verify(forged.as_bytes(), 0, &public).is_err(), "{forged}");
    }
}

/// The key `[dkim] key_file` names, read as the renderer reads it.
fn renderer_key(config: &Config) -> Key {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    super::signers(config, &mut problems, &mut warnings)
        .pop()
        .expect("one signer")
        .key
}
