//! What stops all mail to an address (a suppression), and which of several recorded for
//! one address is kept: the one decision behind every opt-out, bounce and forget, and
//! behind a link's Undo. A stored suppression is decoded here and only here
//! ([`Suppression::decode`]), and what it means (an opt-out? a bounce? may a link lift
//! it?) is answered here once. Plain data and pure functions; the store reads and writes
//! the rows (one per address) and asks here. No I/O.

use std::fmt;

/// Why an address is suppressed (`suppressions.reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    /// Someone asked for no more mail: the person through a link or the survey, or the
    /// operator for them (a reply asking to stop, a complaint, `winback optout`).
    OptOut,
    /// A message to the address failed for good.
    Bounce,
    /// The person's data was erased; only the hash of the address is kept.
    Forgotten,
    /// A stored reason this build does not know (a newer one wrote it). Its row is kept
    /// as found; it stops all mail as an opt-out does, and nothing lifts or replaces it.
    Unknown,
}

impl Reason {
    /// The stored text. [`Reason::Unknown`] is never written: its row keeps its own text.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Reason::OptOut => "opt_out",
            Reason::Bounce => "bounce",
            Reason::Forgotten => "forgotten",
            Reason::Unknown => "unknown",
        }
    }

    /// Whether the address counts as opted out: someone asked for no more mail (an
    /// opt-out, or forgetting the person), or a reason this build does not know, which is
    /// never taken for less; as against a bounce.
    pub(crate) fn is_opt_out(self) -> bool {
        matches!(self, Reason::OptOut | Reason::Forgotten | Reason::Unknown)
    }

    /// The one reading of a stored reason; text this build does not know is
    /// [`Reason::Unknown`].
    pub(crate) fn decode(text: &str) -> Reason {
        match text {
            "opt_out" => Reason::OptOut,
            "bounce" => Reason::Bounce,
            "forgotten" => Reason::Forgotten,
            _ => Reason::Unknown,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The sources of an opt-out the person recorded themselves, through their own link (the
/// unsubscribe link, or the survey's "don't contact me again"): the only ones that link's
/// Undo may lift.
pub(crate) const PERSON_SOURCES: [&str; 2] = ["link", "survey"];

/// How hard a suppression is to lift, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Strength {
    /// The person's own opt-out through a link: they may undo it through the link.
    Person,
    /// A bounce: the address is likely dead; nothing a recipient does lifts it.
    Bounce,
    /// An opt-out the operator recorded (any source that is not the person's link): only
    /// the operator may lift it.
    Operator,
    /// A forgotten person: nothing lifts it.
    Forgotten,
    /// A reason this build does not know: kept as found, whatever is recorded later.
    Unknown,
}

/// One suppression: why, and who recorded it (`suppressions.source`: `link`, `survey`,
/// `cli`, `smtp`, `forget`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Suppression {
    pub reason: Reason,
    pub source: String,
}

impl Suppression {
    pub(crate) fn new(reason: Reason, source: &str) -> Suppression {
        Suppression {
            reason,
            source: source.to_string(),
        }
    }

    /// A stored row's reason and source: the one place a stored suppression is read.
    pub(crate) fn decode(reason: &str, source: &str) -> Suppression {
        Suppression::new(Reason::decode(reason), source)
    }

    pub(crate) fn strength(&self) -> Strength {
        match self.reason {
            Reason::OptOut if PERSON_SOURCES.contains(&self.source.as_str()) => Strength::Person,
            Reason::OptOut => Strength::Operator,
            Reason::Bounce => Strength::Bounce,
            Reason::Forgotten => Strength::Forgotten,
            Reason::Unknown => Strength::Unknown,
        }
    }

    /// See [`Reason::is_opt_out`].
    pub(crate) fn is_opt_out(&self) -> bool {
        self.reason.is_opt_out()
    }

    /// Whether the person may lift it through their own link's Undo.
    pub(crate) fn undoable_by_link(&self) -> bool {
        self.strength() == Strength::Person
    }
}

/// What recording a suppression does to the one already stored for the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recording {
    /// There was none: store the new one.
    Insert,
    /// The new one is stronger: it replaces the stored one.
    Replace,
    /// The stored one is as strong or stronger (or the same, recorded earlier): it stays,
    /// with its time.
    Keep,
}

/// Which suppression an address keeps when `new` is recorded over `existing`: the
/// strongest, whatever the order they came in.
pub(crate) fn record(existing: Option<&Suppression>, new: &Suppression) -> Recording {
    match existing {
        None => Recording::Insert,
        Some(old) if new.strength() > old.strength() => Recording::Replace,
        Some(_) => Recording::Keep,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(reason: Reason, source: &str) -> Suppression {
        Suppression::new(reason, source)
    }

    #[test]
    fn the_strongest_is_kept_whatever_the_order() {
        let all = [
            s(Reason::OptOut, "link"),
            s(Reason::OptOut, "survey"),
            s(Reason::Bounce, "smtp"),
            s(Reason::OptOut, "cli"),
            s(Reason::OptOut, "complaint"),
            s(Reason::Forgotten, "forget"),
        ];
        for first in &all {
            for second in &all {
                for (a, b) in [(first, second), (second, first)] {
                    let kept = match record(Some(a), b) {
                        Recording::Replace => b,
                        Recording::Keep => a,
                        Recording::Insert => panic!("{a:?} was there"),
                    };
                    assert_eq!(
                        kept.strength(),
                        a.strength().max(b.strength()),
                        "{a:?} then {b:?}"
                    );
                }
            }
            assert_eq!(record(None, first), Recording::Insert);
        }
        // The same strength again keeps the first record (and its time).
        assert_eq!(
            record(
                Some(&s(Reason::OptOut, "link")),
                &s(Reason::OptOut, "survey")
            ),
            Recording::Keep
        );
    }

    #[test]
    fn only_the_persons_own_opt_out_is_undoable_by_link() {
        assert!(s(Reason::OptOut, "link").undoable_by_link());
        assert!(s(Reason::OptOut, "survey").undoable_by_link());
        for other in [
            s(Reason::OptOut, "cli"),
            s(Reason::OptOut, "complaint"),
            s(Reason::OptOut, "something new"),
            s(Reason::Bounce, "smtp"),
            s(Reason::Bounce, "link"),
            s(Reason::Forgotten, "forget"),
        ] {
            assert!(!other.undoable_by_link(), "{other:?}");
        }
        // An operator's opt-out over the person's: no longer undoable.
        let link = s(Reason::OptOut, "link");
        let cli = s(Reason::OptOut, "cli");
        assert_eq!(record(Some(&link), &cli), Recording::Replace);
        assert_eq!(record(Some(&cli), &link), Recording::Keep);
    }

    #[test]
    fn what_counts_as_opted_out() {
        assert!(s(Reason::OptOut, "link").is_opt_out());
        assert!(s(Reason::Forgotten, "forget").is_opt_out());
        assert!(!s(Reason::Bounce, "smtp").is_opt_out());
        for reason in [Reason::OptOut, Reason::Bounce, Reason::Forgotten] {
            assert_eq!(Reason::decode(reason.as_str()), reason);
        }
        // A reason this build does not know stops all mail, and no link lifts it.
        let unknown = Suppression::decode("vacation", "link");
        assert_eq!(unknown.reason, Reason::Unknown);
        assert!(unknown.is_opt_out());
        assert!(!unknown.undoable_by_link());
    }

    /// A reason this build does not know is kept as found: nothing recorded over it
    /// replaces it (forgetting a person rewrites the row without asking here).
    #[test]
    fn an_unknown_reason_is_kept_whatever_comes_next() {
        let unknown = Suppression::decode("vacation", "cli");
        for new in [
            s(Reason::OptOut, "link"),
            s(Reason::OptOut, "cli"),
            s(Reason::Bounce, "smtp"),
            s(Reason::Forgotten, "forget"),
        ] {
            assert_eq!(record(Some(&unknown), &new), Recording::Keep, "{new:?}");
        }
    }
}
