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
        opted_out: false,
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

/// (state, cycle) of client `c{i}`'s enrollment, and their stored return.
fn standing(store: &Store, i: usize) -> (String, i64, Option<String>) {
    store
        .conn
        .query_row(
            "SELECT e.state, e.cycle, c.returned_at FROM enrollments e JOIN clients c ON c.id = e.client_id
             WHERE c.email = ?1",
            params![format!("c{i}@client.example")],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap()
}

fn events(store: &Store, kind: &str) -> i64 {
    store
        .conn
        .query_row(
            "SELECT count(*) FROM events WHERE kind = ?1",
            params![kind],
            |r| r.get(0),
        )
        .unwrap()
}

fn import_one(
    store: &mut Store,
    config: &Config,
    now: DateTime<Utc>,
    row: ClientRecord,
) -> ImportOutcome {
    store
        .import(
            std::iter::once(Ok((2, row))),
            config,
            now,
            false,
            &mut |_| {},
        )
        .unwrap()
}

/// A `returned_at` in the file records the return as `winback returned` does, as of its
/// date, once however often the file comes; a later churn date starts a new sequence.
#[test]
fn a_returned_at_in_the_file_stops_the_sequence_once_and_a_later_churn_starts_again() {
    let (_dir, config, mut store, now) = fixture();
    import_one(&mut store, &config, now, record(1, "2025-06-01"));
    assert_eq!(standing(&store, 1).0, "active");

    let back = ClientRecord {
        returned_at: ChurnedAt::parse("2025-12-01"),
        ..record(1, "2025-06-01")
    };
    let outcome = import_one(&mut store, &config, now, back.clone());
    assert!(outcome.applied, "{outcome:?}");
    assert_eq!((outcome.counts.returned, outcome.counts.unchanged), (1, 1));
    assert_eq!(
        standing(&store, 1),
        (
            "returned".to_string(),
            1,
            Some("2025-12-01T00:00:00.000000Z".to_string())
        )
    );
    assert!(
        store
            .claim_due(&config, now + chrono::Duration::days(400), 10)
            .unwrap()
            .is_empty()
    );

    // The same file again: nothing more.
    let outcome = import_one(&mut store, &config, now, back);
    assert_eq!((outcome.counts.returned, outcome.counts.unchanged), (0, 1));
    assert_eq!(events(&store, "returned"), 1);

    // Left again after the return: a new sequence, whatever the file still says of the
    // return; and only one, however often that file comes.
    let left = ClientRecord {
        returned_at: ChurnedAt::parse("2025-12-01"),
        ..record(1, "2025-12-20")
    };
    for _ in 0..2 {
        let outcome = import_one(&mut store, &config, now, left.clone());
        assert_eq!(outcome.counts.returned, 0);
    }
    assert_eq!(standing(&store, 1), ("active".to_string(), 2, None));
    assert_eq!(events(&store, "churned_again"), 1);
}

/// A client the file brings in already back is enrolled and stopped at once, as an
/// import followed by `winback returned` would leave them: never mailed.
#[test]
fn a_new_client_who_already_came_back_is_never_mailed() {
    let (_dir, config, mut store, now) = fixture();
    let rows = (0..3).map(|i| {
        let returned_at = (i == 1).then(|| ChurnedAt::parse("2025-12-01T09:30:00Z").unwrap());
        Ok((
            i as u64 + 2,
            ClientRecord {
                returned_at,
                ..record(i, "2025-06-01")
            },
        ))
    });
    let outcome = store
        .import(rows, &config, now, false, &mut |_| {})
        .unwrap();
    assert_eq!((outcome.counts.added, outcome.counts.returned), (3, 1));
    assert_eq!(
        standing(&store, 1),
        (
            "returned".to_string(),
            1,
            Some("2025-12-01T09:30:00.000000Z".to_string())
        )
    );
    let claimed = store
        .claim_due(&config, now + chrono::Duration::days(1), 10)
        .unwrap();
    let mut mailed: Vec<_> = claimed.iter().map(|c| c.client.email.as_str()).collect();
    mailed.sort_unstable();
    assert_eq!(mailed, ["c0@client.example", "c2@client.example"]);
}

/// A return dated in the future is a bad row: named with its line, and nothing of the
/// file is applied. A `returned_at` column read as a custom field is the return all the
/// same, and no template field.
#[test]
fn a_return_in_the_future_is_a_bad_row() {
    let (_dir, config, mut store, now) = fixture();
    let future = ClientRecord {
        returned_at: ChurnedAt::parse("2026-03-01"),
        ..record(2, "2025-06-01")
    };
    let rows = vec![Ok((2, record(1, "2025-06-01"))), Ok((3, future))];
    let outcome = store
        .import(rows.into_iter(), &config, now, false, &mut |_| {})
        .unwrap();
    assert!(!outcome.applied);
    assert_eq!(outcome.errors.len(), 1);
    assert_eq!(outcome.errors[0].line, 3);
    assert!(
        outcome.errors[0]
            .reason
            .starts_with("returned_at 2026-03-01 is in the future"),
        "{:?}",
        outcome.errors
    );
    let clients: i64 = store
        .conn
        .query_row("SELECT count(*) FROM clients", [], |r| r.get(0))
        .unwrap();
    assert_eq!(clients, 0);
}

/// A dry run imports into a copy: it lists what changes, client by client, and the file
/// keeps every byte. An ordinary import lists nothing.
#[test]
fn a_dry_run_copy_lists_the_changes_and_leaves_the_file_as_it_was() {
    let (dir, config, mut store, now) = fixture();
    let import = |store: &mut Store, rows: Vec<ClientRecord>| {
        store
            .import(
                rows.into_iter()
                    .enumerate()
                    .map(|(i, r)| Ok((i as u64 + 2, r))),
                &config,
                now,
                false,
                &mut |_| {},
            )
            .unwrap()
    };
    let outcome = import(
        &mut store,
        vec![record(1, "2025-06-01"), record(2, "2025-06-01")],
    );
    assert_eq!(outcome.changes, None, "only a dry run lists changes");
    drop(store);
    let path = dir.path().join("winback.db");
    let bytes = std::fs::read(&path).unwrap();

    let mut copy = Store::dry_run_copy(&path).unwrap();
    let mut moved = record(1, "2025-06-01");
    moved.company = Some("Zoë & Co".to_string());
    let mut back = record(2, "2025-06-01");
    back.returned_at = Some(ChurnedAt::parse("2025-12-01").unwrap());
    let mut rows = vec![moved, back];
    rows.extend((3..60).map(|i| record(i, "2025-06-01")));
    let outcome = import(&mut copy, rows);
    let changes = outcome.changes.unwrap();
    assert_eq!(outcome.counts.added, 57);
    assert_eq!(changes.added.len(), MAX_LISTED_CHANGES);
    assert_eq!(changes.added[0], "c3@client.example");
    assert_eq!(
        changes.updated,
        [UpdatedClient {
            email: "c1@client.example".to_string(),
            fields: vec![FieldChange {
                field: "company".to_string(),
                before: None,
                after: Some("Zoë & Co".to_string()),
            }],
        }]
    );
    assert_eq!(
        (changes.returned.as_slice(), changes.returned_count),
        (&["c2@client.example".to_string()][..], 1)
    );
    drop(copy);
    assert!(
        std::fs::read(&path).unwrap() == bytes,
        "the file is unchanged"
    );
    assert!(
        Store::dry_run_copy(&dir.path().join("none.db")).is_ok()
            && !dir.path().join("none.db").exists(),
        "a missing database is an empty copy, and is not created"
    );
}

/// A client who came back, left, and came back again is judged against the second
/// return: the file's later `returned_at` replaces the stored one, and the new churn
/// before it starts no sequence.
#[test]
fn a_second_return_in_the_file_keeps_the_client_returned() {
    let (_dir, config, mut store, now) = fixture();
    let first = ClientRecord {
        returned_at: ChurnedAt::parse("2025-11-01"),
        ..record(1, "2025-10-05")
    };
    import_one(&mut store, &config, now, first);
    assert_eq!(standing(&store, 1).0, "returned");

    let again = ClientRecord {
        returned_at: ChurnedAt::parse("2025-12-20"),
        ..record(1, "2025-12-05")
    };
    let outcome = import_one(&mut store, &config, now, again);
    assert!(outcome.applied, "{outcome:?}");
    assert_eq!(
        standing(&store, 1),
        (
            "returned".to_string(),
            1,
            Some("2025-12-20T00:00:00.000000Z".to_string())
        )
    );
    assert_eq!(events(&store, "churned_again"), 0);
    assert!(
        store
            .claim_due(&config, now + chrono::Duration::days(400), 10)
            .unwrap()
            .is_empty()
    );
}

/// A deals export lists a client once per deal: the rows of one address merge, the
/// latest churn date kept whatever the order, and an excluding reason (`we_ended`) from
/// any row kept over a later row's `price`. The repeats are counted.
#[test]
fn repeated_rows_of_one_address_merge_and_keep_an_excluding_reason() {
    let (_dir, config, mut store, now) = fixture();
    let rows = [
        ("2025-09-01", "we_ended", 1),
        ("2025-06-01", "price", 1),
        ("2025-06-01", "price", 2),
        ("2025-07-01", "price", 2),
        ("2025-05-01", "price", 2),
        ("2025-06-01", "price", 3),
    ]
    .into_iter()
    .enumerate()
    .map(|(line, (churned_at, reason, i))| {
        Ok((
            line as u64 + 2,
            ClientRecord {
                churn_reason: Some(reason.to_string()),
                ..record(i, churned_at)
            },
        ))
    });
    let outcome = store
        .import(rows, &config, now, false, &mut |_| {})
        .unwrap();
    assert_eq!((outcome.counts.added, outcome.counts.repeated), (3, 2));
    let stored = |i: usize| -> (String, String) {
        store
            .conn
            .query_row(
                "SELECT churned_at, churn_reason FROM clients WHERE email = ?1",
                params![format!("c{i}@client.example")],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
    };
    assert_eq!(
        stored(1),
        ("2025-09-01".to_string(), "we_ended".to_string())
    );
    assert_eq!(stored(2), ("2025-07-01".to_string(), "price".to_string()));
    let claimed = store
        .claim_due(&config, now + chrono::Duration::days(1), 10)
        .unwrap();
    let mut mailed: Vec<_> = claimed.iter().map(|c| c.client.email.as_str()).collect();
    mailed.sort_unstable();
    assert_eq!(mailed, ["c2@client.example", "c3@client.example"]);
}

/// Three segments: `price` (that churn reason only), `everyone` (but `reorg`), `reorg`.
const BY_REASON: &str = r#"
[[campaign]]
name = "price"
send_at = "* * * * *"
include_reasons = ["price"]

[[campaign.step]]
kind = "survey"
template = "survey"
subject = "Why?"

[[campaign]]
name = "everyone"
send_at = "* * * * *"
exclude_reasons = ["we_ended", "reorg"]

[[campaign.step]]
kind = "survey"
template = "survey"
subject = "Why?"

[[campaign]]
name = "reorg"
send_at = "* * * * *"
include_reasons = ["reorg"]

[[campaign.step]]
kind = "survey"
template = "survey"
subject = "Why?"
"#;

/// Client `i`'s enrollments as (campaign, state, cycle), by campaign.
fn enrollments(store: &Store, i: usize) -> Vec<(String, String, i64)> {
    store
        .conn
        .prepare(
            "SELECT e.campaign, e.state, e.cycle FROM enrollments e JOIN clients c ON c.id = e.client_id
             WHERE c.email = ?1 ORDER BY e.campaign",
        )
        .unwrap()
        .query_map(params![format!("c{i}@client.example")], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap()
        .collect::<std::result::Result<_, _>>()
        .unwrap()
}

fn row(i: usize, churned_at: &str, reason: Option<&str>) -> ClientRecord {
    ClientRecord {
        churn_reason: reason.map(str::to_string),
        ..record(i, churned_at)
    }
}

/// Each client is in one campaign: the first that admits them. A later file that moves
/// them to another audience leaves them where they are; one that excludes their reason
/// before anything went drops the enrollment and places them again; a client who came
/// back and left again starts over in the first campaign that admits them then.
#[test]
fn a_client_is_enrolled_in_the_first_campaign_that_admits_them_and_stays_there() {
    let (dir, _, mut store, now) = fixture();
    let config = crate::test_support::config(dir.path(), "", BY_REASON);
    let active =
        |campaign: &str, cycle: i64| vec![(campaign.to_string(), "active".to_string(), cycle)];
    import_one(
        &mut store,
        &config,
        now,
        row(1, "2025-06-01", Some("price")),
    );
    import_one(
        &mut store,
        &config,
        now,
        row(2, "2025-06-01", Some("competitor")),
    );
    assert_eq!(enrollments(&store, 1), active("price", 1));
    assert_eq!(enrollments(&store, 2), active("everyone", 1));

    // Moved to the other audience: kept.
    import_one(
        &mut store,
        &config,
        now,
        row(1, "2025-06-01", Some("competitor")),
    );
    assert_eq!(enrollments(&store, 1), active("price", 1));
    import_one(
        &mut store,
        &config,
        now,
        row(2, "2025-06-01", Some("price")),
    );
    assert_eq!(enrollments(&store, 2), active("everyone", 1));
    // Excluded where they are, nothing sent yet: gone from there, placed where admitted.
    import_one(
        &mut store,
        &config,
        now,
        row(2, "2025-06-01", Some("reorg")),
    );
    assert_eq!(enrollments(&store, 2), active("reorg", 1));
    import_one(
        &mut store,
        &config,
        now,
        row(3, "2025-06-01", Some("we_ended")),
    );
    assert_eq!(
        enrollments(&store, 3),
        Vec::new(),
        "no campaign takes we_ended"
    );

    // Came back, then left again for another reason: the new sequence is in `everyone`,
    // the old one stays stopped.
    let back = ClientRecord {
        returned_at: ChurnedAt::parse("2025-12-01"),
        ..row(1, "2025-06-01", Some("competitor"))
    };
    import_one(&mut store, &config, now, back);
    assert_eq!(
        enrollments(&store, 1),
        vec![("price".to_string(), "returned".to_string(), 1)]
    );
    let left = ClientRecord {
        returned_at: ChurnedAt::parse("2025-12-01"),
        ..row(1, "2025-12-20", Some("competitor"))
    };
    import_one(&mut store, &config, now, left);
    assert_eq!(
        enrollments(&store, 1),
        vec![
            ("everyone".to_string(), "active".to_string(), 1),
            ("price".to_string(), "returned".to_string(), 1)
        ]
    );
}
