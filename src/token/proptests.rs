//! Property tests for link tokens: any id round-trips under any secret, and no string a
//! visitor can put in a URL makes `verify` panic or accept it.

use proptest::prelude::*;

use super::*;

const PURPOSES: [Purpose; 2] = [Purpose::Unsubscribe, Purpose::Survey];

fn other(purpose: Purpose) -> Purpose {
    match purpose {
        Purpose::Unsubscribe => Purpose::Survey,
        Purpose::Survey | Purpose::Return => Purpose::Unsubscribe,
    }
}

fn purpose() -> impl Strategy<Value = Purpose> {
    prop::sample::select(PURPOSES.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_token_for_any_id_verifies_back_to_that_id(
        key in any::<[u8; 32]>(),
        id in any::<i64>(),
        purpose in purpose(),
    ) {
        let secret = Secret::from_bytes(key);
        let token = issue(&secret, purpose, Target::Enrollment(id));
        prop_assert_eq!(token.len(), TOKEN_LEN);
        prop_assert!(token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        prop_assert_eq!(verify(&secret, purpose, &token), Some(Target::Enrollment(id)));
        prop_assert_eq!(verify(&secret, other(purpose), &token), None);
    }

    #[test]
    fn a_legacy_token_verifies_back_to_its_block(
        key in any::<[u8; 32]>(),
        block in any::<[u8; 16]>(),
        purpose in purpose(),
    ) {
        let secret = Secret::from_bytes(key);
        let token = issue(&secret, purpose, Target::Legacy(block));
        // A random block opens as an encrypted id once in 2^64.
        prop_assert_eq!(verify(&secret, purpose, &token), Some(Target::Legacy(block)));
    }

    #[test]
    fn any_text_is_refused_without_panicking(text in any::<String>(), purpose in purpose()) {
        prop_assert_eq!(verify(&Secret::from_text("s"), purpose, &text), None);
    }

    #[test]
    fn any_token_shaped_text_is_refused(
        text in "[A-Za-z0-9_=+/.-]{43}",
        purpose in purpose(),
    ) {
        prop_assert_eq!(verify(&Secret::from_text("s"), purpose, &text), None);
    }

    #[test]
    fn any_change_to_a_token_is_refused(
        id in any::<i64>(),
        purpose in purpose(),
        position in 0..TOKEN_LEN,
        replacement in prop::char::any(),
    ) {
        let secret = Secret::from_text("s");
        let token = issue(&secret, purpose, Target::Enrollment(id));
        let mut changed: Vec<char> = token.chars().collect();
        prop_assume!(changed[position] != replacement);
        changed[position] = replacement;
        let changed: String = changed.into_iter().collect();
        prop_assert_eq!(verify(&secret, purpose, &changed), None);
        let mut longer = token.clone();
        longer.insert(position, replacement);
        prop_assert_eq!(verify(&secret, purpose, &longer), None);
        let mut shorter = token;
        shorter.remove(position);
        prop_assert_eq!(verify(&secret, purpose, &shorter), None);
    }

    #[test]
    fn a_return_reference_for_any_row_reads_back_in_any_case(
        key in any::<[u8; 32]>(),
        row in any::<i64>(),
    ) {
        let secret = Secret::from_bytes(key);
        let reference = issue_return(&secret, row);
        prop_assert_eq!(reference.len(), RETURN_REF_LEN);
        prop_assert_eq!(verify_return(&secret, &reference), Some(row));
        prop_assert_eq!(verify_return(&secret, &reference.to_uppercase()), Some(row));
        prop_assert_eq!(from_base32(&reference).map(|raw| base32(&raw)), Some(reference));
    }

    #[test]
    fn no_text_makes_verify_return_panic_or_accept(text in "\\PC{0,60}|[a-z2-7]{39}|[0-9][a-z2-7]{39}") {
        let secret = Secret::from_text("k");
        prop_assert_eq!(verify_return(&secret, &text), None);
    }
}
