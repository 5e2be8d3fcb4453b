use super::*;

use rsa::RsaPublicKey;
use rsa::pkcs1::DecodeRsaPrivateKey as _;

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
                 list-unsubscribe:list-unsubscribe-post:list-unsubscribe-post"
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
