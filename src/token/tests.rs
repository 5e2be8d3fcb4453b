//! The token format's unit tests: issue and verify, purposes, keys and legacy ids.

use super::*;

fn secret() -> Secret {
    Secret::from_text("correct horse battery staple")
}

const ID: Target = Target::Enrollment(4_242);

#[test]
fn round_trip() {
    for purpose in [Purpose::Unsubscribe, Purpose::Survey] {
        for id in [1, 4_242, i64::MAX] {
            let token = issue(&secret(), purpose, Target::Enrollment(id));
            assert_eq!(token.len(), TOKEN_LEN);
            assert!(
                token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{token}"
            );
            assert_eq!(
                verify(&secret(), purpose, &token),
                Some(Target::Enrollment(id))
            );
        }
    }
}

#[test]
fn legacy_tokens_still_verify() {
    let random_id: [u8; 16] = rand::random();
    for purpose in [Purpose::Unsubscribe, Purpose::Survey] {
        let token = issue(&secret(), purpose, Target::Legacy(random_id));
        assert_eq!(
            verify(&secret(), purpose, &token),
            Some(Target::Legacy(random_id))
        );
    }
    let other = Purpose::Survey;
    let token = issue(&secret(), Purpose::Unsubscribe, Target::Legacy(random_id));
    assert_eq!(verify(&secret(), other, &token), None);
}

#[test]
fn neighbouring_ids_give_unrelated_tokens() {
    // The id is encrypted: consecutive ids share no visible structure.
    let a = URL_SAFE_NO_PAD
        .decode(issue(&secret(), Purpose::Survey, Target::Enrollment(1)))
        .unwrap();
    let b = URL_SAFE_NO_PAD
        .decode(issue(&secret(), Purpose::Survey, Target::Enrollment(2)))
        .unwrap();
    let differing_bits: u32 = a[..16]
        .iter()
        .zip(&b[..16])
        .map(|(x, y)| (x ^ y).count_ones())
        .sum();
    assert!(differing_bits > 32, "{differing_bits} of 128 bits differ");
    assert!(!a[..16].ends_with(&1i64.to_be_bytes()));
    // And a different secret seals the same id differently.
    let other = Secret::from_text("another secret");
    assert_ne!(
        issue(&secret(), Purpose::Survey, Target::Enrollment(1)),
        issue(&other, Purpose::Survey, Target::Enrollment(1))
    );
}

#[test]
fn issuing_is_deterministic_and_opaque() {
    assert_eq!(
        issue(&secret(), Purpose::Survey, ID),
        issue(&secret(), Purpose::Survey, ID)
    );
    assert_ne!(
        issue(&secret(), Purpose::Survey, ID),
        issue(&secret(), Purpose::Unsubscribe, ID)
    );
}

#[test]
fn every_single_character_alteration_is_rejected() {
    const ALPHABET: &[u8] =
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/. ";
    let token = issue(&secret(), Purpose::Unsubscribe, ID);
    let mut tried = 0;
    for position in 0..token.len() {
        for &replacement in ALPHABET {
            let mut altered = token.clone().into_bytes();
            if altered[position] == replacement {
                continue;
            }
            altered[position] = replacement;
            let altered = String::from_utf8(altered).unwrap();
            assert_eq!(
                verify(&secret(), Purpose::Unsubscribe, &altered),
                None,
                "accepted {altered}"
            );
            tried += 1;
        }
    }
    assert!(tried > 40 * 60);
}

#[test]
fn truncated_or_extended_tokens_are_rejected() {
    let token = issue(&secret(), Purpose::Survey, ID);
    for end in 0..token.len() {
        assert_eq!(
            verify(&secret(), Purpose::Survey, &token[..end]),
            None,
            "{end}"
        );
    }
    assert_eq!(
        verify(&secret(), Purpose::Survey, &format!("{token}A")),
        None
    );
    assert_eq!(
        verify(&secret(), Purpose::Survey, &format!("{token}=")),
        None
    );
    assert_eq!(
        verify(&secret(), Purpose::Survey, &format!(" {token}")),
        None
    );
}

#[test]
fn a_token_of_the_other_purpose_is_rejected() {
    let unsubscribe = issue(&secret(), Purpose::Unsubscribe, ID);
    let survey = issue(&secret(), Purpose::Survey, ID);
    assert_eq!(verify(&secret(), Purpose::Survey, &unsubscribe), None);
    assert_eq!(verify(&secret(), Purpose::Unsubscribe, &survey), None);
}

#[test]
fn a_token_from_another_secret_is_rejected() {
    let token = issue(&Secret::generate(), Purpose::Unsubscribe, ID);
    assert_eq!(verify(&secret(), Purpose::Unsubscribe, &token), None);
    let other = Secret::from_text("correct horse battery staple ");
    assert_eq!(
        verify(
            &other,
            Purpose::Unsubscribe,
            &issue(&secret(), Purpose::Unsubscribe, ID)
        ),
        None
    );
}

#[test]
fn garbage_is_rejected_without_panicking() {
    let huge = "A".repeat(10_000_000);
    let inputs = [
        "",
        "=",
        "A",
        "not a token",
        "%00%00",
        "ÄÖÜäöüÄÖÜäöüÄÖÜäöüÄÖÜ",
        "ééééééééééééééééééééé_",
        "🙂🙂🙂🙂🙂🙂🙂🙂🙂🙂✓",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "___________________________________________",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==",
        "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
        &huge,
    ];
    for input in inputs {
        for purpose in [Purpose::Unsubscribe, Purpose::Survey] {
            assert_eq!(verify(&secret(), purpose, input), None, "{input:.50}");
        }
    }
    // Every byte value at every position of an otherwise valid-length string.
    for byte in 0u8..=127 {
        let input: String = std::iter::repeat_n(byte as char, TOKEN_LEN).collect();
        assert_eq!(verify(&secret(), Purpose::Survey, &input), None);
    }
}

#[test]
fn secrets() {
    assert_eq!(
        Secret::from_text("x").to_bytes(),
        Secret::from_text("x").to_bytes()
    );
    assert_ne!(
        Secret::from_text("x").to_bytes(),
        Secret::from_text("y").to_bytes()
    );
    let generated = Secret::generate();
    assert_ne!(generated.to_bytes(), Secret::generate().to_bytes());
    assert_eq!(Secret::from_bytes(generated.to_bytes()), generated);
    assert_eq!(format!("{generated:?}"), "Secret(..)");
    // SHA-256("abc"), a published test vector.
    assert_eq!(
        Secret::from_text("abc").to_bytes()[..4],
        [0xba, 0x78, 0x16, 0xbf]
    );
}

#[test]
fn a_new_key_signs_and_the_old_ones_still_verify() {
    let first = secret();
    let old_token = issue(&first, Purpose::Unsubscribe, ID);
    let second = Secret::from_text("a secret set later");
    let ring = Secret::ring(&[(2, second.to_bytes()), (1, first.to_bytes())]).unwrap();
    assert_eq!(ring.key_id(), 2);
    let new_token = issue(&ring, Purpose::Unsubscribe, ID);
    assert!(new_token.starts_with('2') && new_token.len() == TOKEN_LEN + 1);
    assert_eq!(verify(&ring, Purpose::Unsubscribe, &old_token), Some(ID));
    assert_eq!(verify(&ring, Purpose::Unsubscribe, &new_token), Some(ID));
    assert_eq!(verify(&ring, Purpose::Survey, &new_token), None);
    // A token without a key id from any key held verifies (a key set before ids).
    let unnamed = issue(&second, Purpose::Unsubscribe, ID);
    assert_eq!(verify(&ring, Purpose::Unsubscribe, &unnamed), Some(ID));
    // The key id is part of the token: another id, or another spelling, is refused.
    let body = &new_token[1..];
    for altered in [format!("3{body}"), format!("02{body}"), format!("1{body}")] {
        assert_eq!(
            verify(&ring, Purpose::Unsubscribe, &altered),
            None,
            "{altered}"
        );
    }
    // A key not held verifies nothing.
    assert_eq!(verify(&first, Purpose::Unsubscribe, &new_token), None);
    assert_eq!(Secret::ring(&[]), None);
    let third =
        Secret::ring(&[(1, first.to_bytes()), (2, second.to_bytes()), (17, [7; 32])]).unwrap();
    let token = issue(&third, Purpose::Survey, ID);
    assert!(token.starts_with("17"));
    assert_eq!(verify(&third, Purpose::Survey, &token), Some(ID));
    assert_eq!(verify(&third, Purpose::Unsubscribe, &old_token), Some(ID));
}
