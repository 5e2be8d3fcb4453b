//! How values are written in and read out of the database: instants (text and
//! microseconds), the suppression key of an address, hex.
//!
//! Pure conversions: no queries here.

use chrono::{DateTime, NaiveDateTime, Utc};
use rusqlite::Connection;
use sha2::{Digest, Sha256};

use super::{Result, StoreError};

/// Hex SHA-256 of a normalized address: the suppression key, which survives `forget`.
pub(crate) fn email_hash(email: &str) -> String {
    let digest = Sha256::digest(crate::domain::model::normalize_email(email).as_bytes());
    lower_hex(&digest)
}

/// [`email_hash`] as an SQL function, `email_hash(email)` (NULL for NULL), for the queries
/// that join a client to their suppression: computing it there is cheaper than storing a
/// copy with every client.
pub(super) fn add_email_hash_function(conn: &Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    conn.create_scalar_function(
        "email_hash",
        1,
        FunctionFlags::SQLITE_UTF8
            | FunctionFlags::SQLITE_DETERMINISTIC
            | FunctionFlags::SQLITE_INNOCUOUS,
        |ctx| {
            Ok(ctx
                .get::<Option<String>>(0)?
                .map(|email| email_hash(&email)))
        },
    )
}

/// Lower-case hex, by table rather than `format!` per byte: an import hashes every row,
/// and every claimed message gets a random id.
pub(crate) fn lower_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for &byte in bytes {
        text.push(HEX[usize::from(byte >> 4)] as char);
        text.push(HEX[usize::from(byte & 0xf)] as char);
    }
    text
}

/// The one text form of an instant in the database; it sorts as time does.
pub(crate) fn fmt_time(t: DateTime<Utc>) -> String {
    use chrono::{Datelike, Timelike};
    // Digit by digit into a fixed buffer: this runs several times per imported row, and
    // the formatting machinery costs more than the SQLite insert it feeds.
    let mut out = *b"0000-00-00T00:00:00.000000Z";
    let mut put = |end: usize, width: usize, mut value: u32| {
        for i in (end - width..end).rev() {
            out[i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(4, 4, t.year().clamp(0, 9999) as u32);
    put(7, 2, t.month());
    put(10, 2, t.day());
    put(13, 2, t.hour());
    put(16, 2, t.minute());
    put(19, 2, t.second());
    put(26, 6, t.timestamp_subsec_micros().min(999_999));
    out.iter().map(|&b| b as char).collect()
}

pub(crate) fn parse_time(text: &str) -> Result<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.6fZ")
        .map(|t| t.and_utc())
        .map_err(|e| StoreError::Corrupt(format!("time {text:?}: {e}")))
}

/// `enrollments.send_at` as stored: microseconds since the Unix epoch, exact for every
/// instant [`fmt_time`] writes. A number rather than text because the index of waiting
/// enrollments is on it, and every imported client adds to that index.
pub(crate) fn moment(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

pub(crate) fn from_moment(micros: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(micros)
        .ok_or_else(|| StoreError::Corrupt(format!("send_at {micros} is out of range")))
}

pub(crate) fn parse_opt_time(text: Option<String>) -> Result<Option<DateTime<Utc>>> {
    text.as_deref().map(parse_time).transpose()
}

#[cfg(test)]
mod time_tests {
    use super::*;

    #[test]
    fn time_text_round_trips_and_sorts() {
        let cases = [
            "2026-03-08T07:00:00.000000Z",
            "0999-01-02T03:04:05.123456Z",
            "2026-12-31T23:59:59.999999Z",
        ];
        for text in cases {
            let t = parse_time(text).unwrap();
            assert_eq!(fmt_time(t), text);
        }
        // The fast path writes what strftime writes, over a spread of instants.
        for secs in (0..4_000_000_000i64).step_by(7_777_777) {
            let t = DateTime::from_timestamp(secs, (secs % 1_000_000) as u32 * 1000).unwrap();
            assert_eq!(fmt_time(t), t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string());
        }
        let expected: String = Sha256::digest(b"ann@x.example")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(email_hash(" Ann@X.example"), expected);
        let a = fmt_time(parse_time("2026-03-08T07:00:00.000000Z").unwrap());
        let b = fmt_time(parse_time("2026-03-08T07:00:00.000001Z").unwrap());
        assert!(a < b);
    }
}
