//! The report's time axis: which weeks or months a period is cut into, and which message
//! a return is credited to. Plain functions over dates and rows the store already
//! aggregated; no database, no clock.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;

/// Spans up to this many days are shown week by week, longer ones month by month: about
/// 13 columns either way, which a table and a chart can still show side by side.
pub(crate) const WEEKLY_UP_TO_DAYS: i64 = 91;

/// How a period is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Grain {
    Week,
    Month,
}

/// One column of the time axis: the days `start..end` (end excluded), clipped to the period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Bucket {
    pub start: NaiveDate,
    pub end: NaiveDate,
    /// `2026-W07` for a week (ISO), `2026-02` for a month.
    pub label: String,
}

/// Weeks for a span up to [`WEEKLY_UP_TO_DAYS`] days, else months; `until` is included.
pub(crate) fn grain(since: NaiveDate, until: NaiveDate) -> Grain {
    if (until - since).num_days() < WEEKLY_UP_TO_DAYS {
        Grain::Week
    } else {
        Grain::Month
    }
}

/// The buckets covering `since..=until`, in order; weeks start on Monday (ISO weeks), the
/// first and last bucket are clipped to the period. Empty when `until` is before `since`.
pub(crate) fn buckets(since: NaiveDate, until: NaiveDate) -> Vec<Bucket> {
    let Some(stop) = until.succ_opt() else {
        return Vec::new();
    };
    let grain = grain(since, until);
    let mut out = Vec::new();
    let mut start = since;
    while start < stop {
        let (natural_start, next) = match grain {
            Grain::Week => {
                let monday = start - Duration::days(start.weekday().num_days_from_monday() as i64);
                (monday, monday + Duration::days(7))
            }
            Grain::Month => {
                let first = start.with_day(1).unwrap_or(start);
                let next = if first.month() == 12 {
                    NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)
                } else {
                    NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)
                };
                (first, next.unwrap_or(stop))
            }
        };
        let label = match grain {
            Grain::Week => {
                let w = natural_start.iso_week();
                format!("{}-W{:02}", w.year(), w.week())
            }
            Grain::Month => natural_start.format("%Y-%m").to_string(),
        };
        let end = next.min(stop);
        out.push(Bucket { start, end, label });
        start = end;
    }
    out
}

/// The zone whose days the report counts in: the campaigns' own when they all share one,
/// else UTC (a day is then the same for every campaign).
pub(crate) fn report_zone(zones: impl IntoIterator<Item = Tz>) -> Tz {
    let mut zones = zones.into_iter();
    match zones.next() {
        Some(first) if zones.all(|z| z == first) => first,
        _ => Tz::UTC,
    }
}

/// The instant a day of `zone` starts (the first instant that exists, across a DST gap).
pub(crate) fn day_start(day: NaiveDate, zone: Tz) -> DateTime<Utc> {
    let midnight = day.and_hms_opt(0, 0, 0).unwrap_or_default();
    (0..24)
        .find_map(|h| {
            zone.from_local_datetime(&(midnight + Duration::hours(h)))
                .earliest()
        })
        .map_or_else(|| midnight.and_utc(), |t| t.with_timezone(&Utc))
}

/// The day of `zone` an hour counted in SQL falls on: `hour` is the stored time's first 13
/// characters (`2026-06-02T15`, UTC). Zones half an hour off UTC put that hour's first
/// half on the same day as its second.
pub(crate) fn local_day(hour: &str, zone: Tz) -> Option<NaiveDate> {
    let start =
        chrono::NaiveDateTime::parse_from_str(&format!("{hour}:30"), "%Y-%m-%dT%H:%M").ok()?;
    Some(start.and_utc().with_timezone(&zone).date_naive())
}

/// The bucket a day falls in, if it falls in the period.
pub(crate) fn bucket_of(buckets: &[Bucket], day: NaiveDate) -> Option<usize> {
    buckets.iter().position(|b| b.start <= day && day < b.end)
}

/// One return as the store reads it: when, and the last message sent to that person
/// before it (any age; [`Attribution`] decides whether it is recent enough).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Return {
    pub returned_at: DateTime<Utc>,
    /// (campaign, step, sent at).
    pub last_message: Option<(String, u32, DateTime<Utc>)>,
}

/// "Came back after step N" of a campaign; `campaign` and `step` are `None` for returns
/// with no message within the attribution window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Credit {
    pub campaign: Option<String>,
    pub step: Option<u32>,
    pub returns: u64,
    /// Of all returns in the period, 0.0..=1.0.
    pub share: f64,
}

/// Credits each return to the last message the person got before returning, if it went
/// at most `days` days before; folds returns one at a time so the caller can stream them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Attribution {
    days: i64,
    counts: std::collections::BTreeMap<(Option<String>, Option<u32>), u64>,
    total: u64,
}

impl Attribution {
    pub(crate) fn new(days: u32) -> Self {
        Attribution {
            days: i64::from(days),
            ..Default::default()
        }
    }

    pub(crate) fn add(&mut self, r: Return) {
        let key = match r.last_message {
            Some((campaign, step, sent_at))
                if sent_at <= r.returned_at
                    && r.returned_at - sent_at <= Duration::days(self.days) =>
            {
                (Some(campaign), Some(step))
            }
            _ => (None, None),
        };
        *self.counts.entry(key).or_insert(0) += 1;
        self.total += 1;
    }

    /// By campaign and step; the unattributed returns last.
    pub(crate) fn credits(&self) -> Vec<Credit> {
        let mut out: Vec<Credit> = self
            .counts
            .iter()
            .map(|((campaign, step), &n)| Credit {
                campaign: campaign.clone(),
                step: *step,
                returns: n,
                share: n as f64 / self.total.max(1) as f64,
            })
            .collect();
        out.sort_by_key(|c| c.campaign.is_none());
        out
    }

    #[cfg(test)]
    pub(crate) fn total(&self) -> u64 {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }
    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_short_span_is_cut_in_iso_weeks_clipped_to_the_period() {
        // 2026-01-07 is a Wednesday.
        let b = buckets(d("2026-01-07"), d("2026-01-20"));
        assert_eq!(grain(d("2026-01-07"), d("2026-01-20")), Grain::Week);
        let got: Vec<_> = b
            .iter()
            .map(|b| (b.label.as_str(), b.start.to_string(), b.end.to_string()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("2026-W02", "2026-01-07".into(), "2026-01-12".into()),
                ("2026-W03", "2026-01-12".into(), "2026-01-19".into()),
                ("2026-W04", "2026-01-19".into(), "2026-01-21".into()),
            ]
        );
        assert_eq!(bucket_of(&b, d("2026-01-11")), Some(0));
        assert_eq!(bucket_of(&b, d("2026-01-12")), Some(1));
        assert_eq!(bucket_of(&b, d("2026-01-20")), Some(2));
        assert_eq!(bucket_of(&b, d("2026-01-21")), None);
        assert_eq!(bucket_of(&b, d("2026-01-06")), None);
    }

    #[test]
    fn thirteen_weeks_stay_weekly_and_longer_spans_go_monthly_across_the_year_end() {
        assert_eq!(grain(d("2026-01-01"), d("2026-04-01")), Grain::Week);
        assert_eq!(grain(d("2026-01-01"), d("2026-04-02")), Grain::Month);
        let b = buckets(d("2025-11-15"), d("2026-02-03"));
        let labels: Vec<_> = b.iter().map(|b| b.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "2025-W46", "2025-W47", "2025-W48", "2025-W49", "2025-W50", "2025-W51", "2025-W52",
                "2026-W01", "2026-W02", "2026-W03", "2026-W04", "2026-W05", "2026-W06"
            ]
        );
        let b = buckets(d("2025-11-15"), d("2026-03-03"));
        let labels: Vec<_> = b.iter().map(|b| b.label.as_str()).collect();
        assert_eq!(
            labels,
            ["2025-11", "2025-12", "2026-01", "2026-02", "2026-03"]
        );
        assert_eq!(b[0].start, d("2025-11-15"));
        assert_eq!(b[4].end, d("2026-03-04"));
        assert!(buckets(d("2026-02-01"), d("2026-01-01")).is_empty());
    }

    #[test]
    fn days_are_the_report_zones_own_across_a_dst_change() {
        let paris: Tz = "Europe/Paris".parse().unwrap();
        assert_eq!(report_zone([paris, paris]), paris);
        assert_eq!(report_zone([paris, Tz::UTC]), Tz::UTC);
        assert_eq!(report_zone([]), Tz::UTC);
        assert_eq!(day_start(d("2026-01-10"), paris), t("2026-01-09T23:00:00Z"));
        assert_eq!(day_start(d("2026-07-10"), paris), t("2026-07-09T22:00:00Z"));
        // 22:xx UTC is the next day in Paris in summer, the same day in winter.
        assert_eq!(local_day("2026-07-09T22", paris), Some(d("2026-07-10")));
        assert_eq!(local_day("2026-01-09T22", paris), Some(d("2026-01-09")));
        assert_eq!(local_day("2026-01-09T22", Tz::UTC), Some(d("2026-01-09")));
        assert_eq!(local_day("garbage", paris), None);
    }

    #[test]
    fn a_return_is_credited_to_the_last_message_within_the_window_only() {
        let mut a = Attribution::new(90);
        let back = t("2026-06-01T10:00:00Z");
        a.add(Return {
            returned_at: back,
            last_message: Some(("winback".into(), 2, t("2026-05-01T10:00:00Z"))),
        });
        a.add(Return {
            returned_at: back,
            last_message: Some(("winback".into(), 2, t("2026-03-03T10:00:00Z"))),
        });
        // 91 days before: too old.
        a.add(Return {
            returned_at: back,
            last_message: Some(("winback".into(), 1, t("2026-03-02T10:00:00Z"))),
        });
        a.add(Return {
            returned_at: back,
            last_message: None,
        });
        assert_eq!(a.total(), 4);
        let c = a.credits();
        assert_eq!(c.len(), 2);
        assert_eq!(
            (c[0].campaign.as_deref(), c[0].step, c[0].returns),
            (Some("winback"), Some(2), 2)
        );
        assert!((c[0].share - 0.5).abs() < 1e-9);
        assert_eq!((c[1].campaign.as_deref(), c[1].returns), (None, 2));
        let mut short = Attribution::new(30);
        short.add(Return {
            returned_at: back,
            last_message: Some(("winback".into(), 2, t("2026-05-01T10:00:00Z"))),
        });
        assert_eq!(short.credits()[0].campaign, None);
    }
}
