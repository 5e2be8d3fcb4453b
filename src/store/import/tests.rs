use super::*;
use crate::domain::model::ChurnedAt;
use crate::store::parse_time;

/// An empty store, its configuration (one survey-only campaign) and the import's time.
fn fixture() -> (tempfile::TempDir, Config, Store, DateTime<Utc>) {
    let dir = tempfile::tempdir().unwrap();
    let config = crate::test_support::config(dir.path(), "", crate::test_support::SURVEY_ONLY);
    let store = Store::open(&dir.path().join("winback.db")).unwrap();
    let now = parse_time("2026-01-01T00:00:00.000000Z").unwrap();
    (dir, config, store, now)
}

/// Client `c{i}@client.example`, who left for the price on `churned_at`.
fn record(i: usize, churned_at: &str) -> ClientRecord {
    ClientRecord {
        email: format!("c{i}@client.example"),
        name: None,
        first_name: None,
        company: None,
        churned_at: ChurnedAt::parse(churned_at).unwrap(),
        churn_reason: Some("price".to_string()),
        timezone: None,
        fields: Default::default(),
        country: None,
        returned_at: None,
    }
}

/// New enrollments are written several to a statement. However the rows fall, every
/// client gets exactly one, and an address that comes back later in the same file
/// (here while its enrollment is still waiting to be written) is updated, not enrolled
/// twice.
#[test]
fn every_new_client_is_enrolled_once_however_rows_fall_into_statements() {
    let (_dir, config, mut store, now) = fixture();
    // Two full statements' worth (64 rows), then 6 more; client 65 again right after
    // its own row, a month later.
    let mut rows: Vec<_> = (0..70).map(|i| (i, record(i, "2025-06-01"))).collect();
    rows.insert(66, (65, record(65, "2025-07-01")));
    let outcome = store
        .import(
            rows.into_iter().map(|(i, r)| Ok((i as u64 + 2, r))),
            &config,
            now,
            false,
            &mut |_| {},
        )
        .unwrap();
    assert!(outcome.applied);
    assert_eq!(
        (outcome.counts.added, outcome.counts.updated),
        (70, 1),
        "{outcome:?}"
    );
    let per_client: Vec<(String, i64)> = store
        .conn
        .prepare(
            "SELECT c.email, count(e.id) FROM clients c LEFT JOIN enrollments e ON e.client_id = c.id
             GROUP BY c.id ORDER BY c.id",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<std::result::Result<_, _>>()
        .unwrap();
    assert_eq!(per_client.len(), 70);
    assert!(per_client.iter().all(|(_, n)| *n == 1), "{per_client:?}");
    let due = |email: &str| -> DateTime<Utc> {
        let text: String = store
            .conn
            .query_row(
                "SELECT e.due_at FROM enrollments e JOIN clients c ON c.id = e.client_id WHERE c.email = ?1",
                params![email],
                |r| r.get(0),
            )
            .unwrap();
        parse_time(&text).unwrap()
    };
    assert_eq!(
        due("c65@client.example") - due("c64@client.example"),
        chrono::Duration::days(30)
    );
    assert_eq!(due("c69@client.example"), due("c0@client.example"));
}

/// A later file without a column, or with an empty cell, leaves what is stored: a
/// client we let go stays out of every campaign, and keeps their name.
#[test]
fn a_partial_file_never_clears_a_stored_value() {
    let (_dir, config, mut store, now) = fixture();
    let full = ClientRecord {
        name: Some("Fred Flint".to_string()),
        first_name: Some("Fred".to_string()),
        company: Some("Quarry".to_string()),
        churn_reason: Some("we_ended".to_string()),
        timezone: Some(chrono_tz::Europe::Paris),
        fields: [("plan".to_string(), "gold".to_string())].into(),
        country: Some("DE".to_string()),
        ..record(1, "2025-06-01")
    };
    let bare = ClientRecord {
        churn_reason: None,
        fields: [("plan".to_string(), String::new())].into(),
        ..record(1, "2025-07-01")
    };
    for row in [full.clone(), bare] {
        let outcome = store
            .import(
                std::iter::once(Ok((2, row))),
                &config,
                now,
                false,
                &mut |_| {},
            )
            .unwrap();
        assert!(outcome.applied, "{outcome:?}");
    }
    let stored = load_by_email(&store.conn, "c1@client.example")
        .unwrap()
        .unwrap();
    let expected = ClientRecord {
        churned_at: ChurnedAt::parse("2025-07-01").unwrap(),
        ..full
    };
    assert_eq!(stored.record, expected);
    let enrolled: i64 = store
        .conn
        .query_row("SELECT count(*) FROM enrollments", [], |r| r.get(0))
        .unwrap();
    assert_eq!(enrolled, 0, "we ended it: never enrolled");
}

/// The country a CRM export gives is stored with the client, and a later one replaces it.
#[test]
fn a_country_is_stored_and_a_later_one_replaces_it() {
    let (_dir, config, mut store, now) = fixture();
    for country in ["FR", "AT"] {
        let row = ClientRecord {
            country: Some(country.to_string()),
            ..record(1, "2025-06-01")
        };
        let outcome = store
            .import(
                std::iter::once(Ok((2, row))),
                &config,
                now,
                false,
                &mut |_| {},
            )
            .unwrap();
        assert!(outcome.applied, "{outcome:?}");
        let stored = load_by_email(&store.conn, "c1@client.example")
            .unwrap()
            .unwrap();
        assert_eq!(stored.record.country.as_deref(), Some(country));
    }
}

/// Several rows to a statement are inserted `OR IGNORE`: a row that was not written
/// (an enrollment left without its client, which only a damaged file holds) fails the
/// import instead of passing unnoticed, and the import writes nothing.
#[test]
fn an_enrollment_that_cannot_be_written_fails_the_whole_import() {
    let (_dir, config, mut store, now) = fixture();
    store
        .conn
        .pragma_update(None, "foreign_keys", "OFF")
        .unwrap();
    store
        .conn
        .execute(
            "INSERT INTO enrollments (client_id, campaign, state, next_step, created_at, updated_at)
             VALUES (5, 'former-clients', 'completed', 2, 'x', 'x')",
            [],
        )
        .unwrap();
    let rows = (0..40).map(|i| Ok((i as u64 + 2, record(i, "2025-06-01"))));
    let error = store
        .import(rows, &config, now, false, &mut |_| {})
        .unwrap_err();
    assert!(error.to_string().contains("already existed"), "{error}");
    let counts: (i64, i64) = store
        .conn
        .query_row(
            "SELECT (SELECT count(*) FROM clients), (SELECT count(*) FROM enrollments)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(counts, (0, 1));
}
