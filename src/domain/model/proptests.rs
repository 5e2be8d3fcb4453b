//! Property tests for the address parser every imported row and command goes through:
//! nothing panics, what it accepts is already in its one form, and a valid address reads
//! the same however it is pasted.

use proptest::prelude::*;

use super::*;

/// Text near addresses: mostly the characters addresses, names and their decorations
/// are made of, with some of any kind.
fn near_address() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => "[a-zA-Z0-9._+-]{1,8}",
        2 => prop::sample::select(vec![
            "@", ".", "<", ">", " ", "\"", "'", "“", "”", "mailto:", "MAILTO:", "xn--", "ü",
            "Ü", "e\u{301}", "\u{e9}", "İ", "ß", "\u{feff}", "\t", ",", "..", "@@", "ﬀ",
            "\u{3002}", "Ω", "\u{212a}",
        ])
        .prop_map(str::to_owned),
        1 => any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..12).prop_map(|pieces| pieces.concat())
}

fn valid_address() -> impl Strategy<Value = String> {
    (
        "[a-z0-9][a-z0-9._%+-]{0,15}",
        // Letters, digits and inner hyphens (RFC 5321).
        prop::collection::vec("[a-z0-9]([a-z0-9-]{0,7}[a-z0-9])?", 2..4),
    )
        .prop_map(|(local, labels)| format!("{local}@{}", labels.join(".")))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn what_is_accepted_is_already_in_its_one_form(text in prop_oneof![near_address(), any::<String>()]) {
        if let Ok(email) = parse_address(&text) {
            prop_assert_eq!(normalize_email(&email), email.clone());
            prop_assert_eq!(parse_address(&email), Ok(email.clone()));
            prop_assert!(email.len() <= MAX_EMAIL_BYTES);
            prop_assert!(!email.contains(|c: char| c.is_whitespace() || c.is_control()));
            let _ = legacy_unicode_spelling(&email);
        }
    }

    #[test]
    fn normalizing_is_idempotent(text in prop_oneof![near_address(), any::<String>()]) {
        let once = normalize_email(&text);
        prop_assert_eq!(normalize_email(&once), once.clone());
    }

    #[test]
    fn a_valid_address_reads_the_same_however_it_is_pasted(
        email in valid_address(),
        upper in any::<bool>(),
        name in "[A-Za-z ,.]{0,20}",
        decoration in 0..6usize,
    ) {
        let typed = if upper { email.to_uppercase() } else { email.clone() };
        let pasted = match decoration {
            0 => typed,
            1 => format!("  {typed}\t"),
            2 => format!("\"{typed}\""),
            3 => format!("\"{name}\" <{typed}>"),
            4 => format!("mailto:{typed}"),
            _ => format!("<{typed}>"),
        };
        prop_assert_eq!(parse_address(&pasted), Ok(email));
    }

    #[test]
    fn churned_at_reads_back_what_it_writes(
        days in -100_000i64..100_000,
        seconds in 0i64..86_400,
        bare in any::<bool>(),
    ) {
        let date = NaiveDate::from_ymd_opt(2000, 1, 1).unwrap() + chrono::Duration::days(days);
        let churned = if bare {
            ChurnedAt::Date(date)
        } else {
            ChurnedAt::Instant(
                date.and_hms_opt(0, 0, 0).unwrap().and_utc() + chrono::Duration::seconds(seconds),
            )
        };
        prop_assert_eq!(ChurnedAt::parse(&churned.to_string()), Some(churned));
    }

    #[test]
    fn churned_at_takes_any_text(text in any::<String>()) {
        let _ = ChurnedAt::parse(&text);
    }
}
