//! `plan`'s rows come in the order of a lower bound of their first moment, then of their
//! enrollment, and read again as they were read.

use chrono::{DateTime, Duration, Utc};
use rusqlite::params;

use crate::store::{PlanQuery, PlanRow, Store, StoreError, fmt_time, moment, parse_time};

/// Six people, each with a waiting survey; their due times set by hand (hours from `now`).
fn store_with_due(dir: &std::path::Path, now: DateTime<Utc>, due_hours: &[i64]) -> Store {
    let config = crate::test_support::config(dir, "", crate::test_support::SURVEY_ONLY);
    let mut store = Store::open(&dir.join("winback.db")).unwrap();
    let rows = due_hours.iter().enumerate().map(|(i, _)| {
        Ok((
            i as u64 + 2,
            crate::test_support::left_on_june_1(&format!("p{}@client.example", i + 1)),
        ))
    });
    assert!(
        store
            .import(rows, &config, now, false, &mut |_| {})
            .unwrap()
            .applied
    );
    for (i, hours) in due_hours.iter().enumerate() {
        let due = now + Duration::hours(*hours);
        store
            .conn
            .execute(
                "UPDATE enrollments SET due_at = ?2, send_at = ?3
                 WHERE client_id = (SELECT id FROM clients WHERE email = ?1)",
                params![
                    format!("p{}@client.example", i + 1),
                    fmt_time(due),
                    moment(due)
                ],
            )
            .unwrap();
    }
    store
}

/// The next day from `now`, with two days of history.
fn next_day(now: DateTime<Utc>, accounts: bool) -> PlanQuery {
    PlanQuery {
        now,
        until: now + Duration::days(1),
        lookback: Duration::hours(48),
        accounts,
    }
}

/// What `pick` takes of each row `query` reads, in the order it reads them.
fn scan<T>(store: &Store, query: &PlanQuery, mut pick: impl FnMut(PlanRow) -> T) -> Vec<T> {
    let mut picked = Vec::new();
    store
        .plan_scan::<StoreError>(query, |row| {
            picked.push(pick(row));
            Ok(())
        })
        .unwrap();
    picked
}

#[test]
fn rows_come_overdue_first_in_enrollment_order_then_by_due_time() {
    let dir = tempfile::tempdir().unwrap();
    let now = parse_time("2026-06-01T00:00:00.000000Z").unwrap();
    // p1 in 2 hours, p2 overdue, p3 in an hour, p4 overdue, p5 in an hour, p6 now.
    let store = store_with_due(dir.path(), now, &[2, -30, 1, -2, 1, 0]);
    let query = next_day(now, true);
    let expected = ["p2", "p4", "p6", "p3", "p5", "p1"].map(|p| format!("{p}@client.example"));
    assert_eq!(scan(&store, &query, |row| row.email), expected);
    let ids: Vec<i64> = store
        .conn
        .prepare("SELECT id FROM enrollments ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    // An enrollment's row is read again by its order, as it was read.
    let again = store
        .plan_row(&query, ids[1] * super::ORDER_SPAN)
        .unwrap()
        .unwrap();
    assert_eq!(again.email, "p2@client.example");
    assert_eq!(again.order, ids[1] * super::ORDER_SPAN);
    assert!(
        store
            .plan_row(&query, (ids[5] + 100) * super::ORDER_SPAN)
            .unwrap()
            .is_none()
    );
}

/// Two messages of one sequence resent (`outbox resend`): each retry has an order of its
/// own, odd (kept whole), after its enrollment's, the first message first.
#[test]
fn two_retries_of_one_enrollment_have_orders_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let now = parse_time("2026-06-01T00:00:00.000000Z").unwrap();
    let store = store_with_due(dir.path(), now, &[5]);
    let (enrollment, client): (i64, i64) = store
        .conn
        .query_row("SELECT id, client_id FROM enrollments", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    let t = fmt_time(now - Duration::hours(1));
    for (step, id) in [(2, "<b@x>"), (1, "<a@x>")] {
        store
            .conn
            .execute(
                "INSERT INTO messages (enrollment_id, client_id, campaign, cycle, step, kind, state, message_id,
                                       due_at, first_claimed_at, claimed_at, next_attempt_at, updated_at)
                 VALUES (?1, ?2, 'former-clients', 1, ?3, 'survey', 'retry', ?4, ?5, ?5, ?5, ?5, ?5)",
                params![enrollment, client, step, id, t],
            )
            .unwrap();
    }
    let query = next_day(now, false);
    let orders = scan(&store, &query, |row| (row.next_step, row.order));
    let base = enrollment * super::ORDER_SPAN;
    assert_eq!(orders, [(2, base + 1), (1, base + 3), (1, base)]);
}

/// A claim that had to wait moved an enrollment's `send_at` past its due time: `plan`
/// reads it at its `send_at`, its not-before time, as the daemon will claim it.
#[test]
fn an_enrollment_the_claim_moved_on_is_read_at_its_send_at() {
    let dir = tempfile::tempdir().unwrap();
    let now = parse_time("2026-06-01T00:00:00.000000Z").unwrap();
    // p1 due in an hour, p2 in two; then p1's claim waits until hour 5.
    let store = store_with_due(dir.path(), now, &[1, 2]);
    store
        .conn
        .execute(
            "UPDATE enrollments SET send_at = ?1
             WHERE client_id = (SELECT id FROM clients WHERE email = 'p1@client.example')",
            params![moment(now + Duration::hours(5))],
        )
        .unwrap();
    let query = next_day(now, false);
    let rows = scan(&store, &query, |row| (row.email, row.not_before));
    assert_eq!(
        rows,
        [
            ("p2@client.example".to_string(), now + Duration::hours(2)),
            ("p1@client.example".to_string(), now + Duration::hours(5)),
        ]
    );
}
