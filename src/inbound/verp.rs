//! The return path that names a message (VERP): `bounces+REF@acme.example` from
//! `[inbound] return_path = "bounces@acme.example"` and the message's outbox row, and
//! the row read back from such an address wherever a returned message quotes it.
//!
//! REF is `token`'s return reference (signed, the row encrypted, lower case); this file
//! only places it in an address and finds it there. Pure: no store, no clock.

use crate::token::{self, Secret};

/// The envelope sender for outbox row `row`: `return_path` with `+REF` added to its
/// local part. `None` only if the result is no address (a return path `check` accepted
/// always gives one).
pub(crate) fn address(
    secret: &Secret,
    return_path: &lettre::Address,
    row: i64,
) -> Option<lettre::Address> {
    let reference = token::issue_return(secret, row);
    lettre::Address::new(
        format!("{}+{reference}", return_path.user()),
        return_path.domain(),
    )
    .ok()
}

/// The outbox row an address built by [`address`] names, in any case, with or without
/// angle brackets or a display name around it (`Delivered-To`, `X-Original-To`, `To`);
/// `None` for any other address, or a reference no key of `secret` signed.
pub(crate) fn message_row(secret: &Secret, address: &str) -> Option<i64> {
    let address = address.trim();
    let address = match address.rfind('<') {
        Some(start) => address[start + 1..].split('>').next()?,
        None => address,
    };
    let (local, domain) = address.trim().rsplit_once('@')?;
    if domain.is_empty() {
        return None;
    }
    let (_, reference) = local.rsplit_once('+')?;
    token::verify_return(secret, reference)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::{Purpose, Target};

    fn bounces() -> lettre::Address {
        "bounces@acme.example".parse().unwrap()
    }

    #[test]
    fn an_address_names_its_row_and_shows_neither_row_nor_recipient() {
        let secret = Secret::from_text("test secret");
        let built = address(&secret, &bounces(), 42).unwrap();
        let text = built.to_string();
        let (local, domain) = text.split_once('@').unwrap();
        assert_eq!(domain, "acme.example");
        let reference = local.strip_prefix("bounces+").unwrap();
        assert_eq!(reference.len(), token::RETURN_REF_LEN);
        assert!(local.len() <= 64, "{local}");
        assert!(
            reference
                .chars()
                .all(|c| c.is_ascii_lowercase() || ('2'..='7').contains(&c)),
            "{reference}"
        );
        assert!(!reference.contains("42"), "{reference}");
        assert_ne!(
            address(&secret, &bounces(), 43).unwrap().to_string()[..20],
            text[..20],
            "neighbouring rows must not share a visible prefix"
        );

        assert_eq!(message_row(&secret, &text), Some(42));
        assert_eq!(message_row(&secret, &text.to_uppercase()), Some(42));
        assert_eq!(
            message_row(&secret, &format!("Mail Delivery <{text}>")),
            Some(42)
        );
        assert_eq!(message_row(&secret, &format!(" <{text}> ")), Some(42));
        assert_eq!(
            address(&secret, &bounces(), i64::MAX).and_then(|a| message_row(&secret, a.as_ref())),
            Some(i64::MAX)
        );
    }

    #[test]
    fn a_tampered_foreign_or_other_purpose_reference_names_nothing() {
        let secret = Secret::from_text("test secret");
        let text = address(&secret, &bounces(), 42).unwrap().to_string();
        let (local, domain) = text.split_once('@').unwrap();
        // Each character changed in turn.
        for at in "bounces+".len()..local.len() {
            let mut bytes = local.as_bytes().to_vec();
            bytes[at] = if bytes[at] == b'a' { b'b' } else { b'a' };
            let altered = format!("{}@{domain}", String::from_utf8(bytes).unwrap());
            assert_eq!(message_row(&secret, &altered), None, "{altered}");
        }
        assert_eq!(
            message_row(&secret, &format!("{}@{domain}", &local[..local.len() - 1])),
            None
        );
        assert_eq!(message_row(&Secret::from_text("other"), &text), None);
        assert_eq!(message_row(&secret, "bounces@acme.example"), None);
        assert_eq!(message_row(&secret, "success@acme.example"), None);
        assert_eq!(message_row(&secret, ""), None);
        assert_eq!(message_row(&secret, "+@"), None);

        // A link token for the same number, in an address, is no reference.
        for purpose in [Purpose::Unsubscribe, Purpose::Survey, Purpose::Return] {
            let link = token::issue(&secret, purpose, Target::Enrollment(42));
            assert_eq!(
                message_row(&secret, &format!("bounces+{link}@acme.example")),
                None
            );
            assert_eq!(
                message_row(
                    &secret,
                    &format!("bounces+{}@acme.example", link.to_lowercase())
                ),
                None
            );
        }
    }

    #[test]
    fn every_key_ever_used_still_reads_its_references() {
        let first = Secret::ring(&[(1, [1; 32])]).unwrap();
        let old = address(&first, &bounces(), 7).unwrap().to_string();
        let rotated = Secret::ring(&[(1, [1; 32]), (2, [2; 32])]).unwrap();
        let new = address(&rotated, &bounces(), 8).unwrap().to_string();
        assert!(new.starts_with("bounces+2"), "{new}");
        assert_eq!(message_row(&rotated, &old), Some(7));
        assert_eq!(message_row(&rotated, &new), Some(8));
        assert_eq!(message_row(&first, &new), None, "key 2 is not held");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Any header text, however odd, names a row only if we issued it, and never panics.
        #[test]
        fn no_text_makes_message_row_panic_or_name_a_row(
            text in "([<>@+ \"]|[a-z2-7]{1,40}|\\PC){0,12}",
        ) {
            let secret = Secret::from_text("test secret");
            proptest::prop_assert_eq!(message_row(&secret, &text), None);
        }

        #[test]
        fn any_row_reads_back_from_its_address_in_any_case(row in proptest::prelude::any::<i64>(), upper in proptest::prelude::any::<bool>()) {
            let secret = Secret::from_text("test secret");
            let built = address(&secret, &bounces(), row).expect("an address").to_string();
            let text = if upper { built.to_uppercase() } else { built };
            proptest::prop_assert_eq!(message_row(&secret, &format!("<{text}>")), Some(row));
        }
    }
}
