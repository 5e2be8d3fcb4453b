//! What validation says a person probably meant, and what a path or link really is:
//! "did you mean" for churn reasons and TOML keys, time zone abbreviations and fixed
//! offsets, links recipients cannot open, `..` in paths.
//!
//! Pure text in, text out: no file access, no DNS, no problem lists (the validator
//! words and records those).

use std::path::{Path, PathBuf};

/// `a/config/../outbox` → `a/outbox`, without touching the file system (the path may not
/// exist yet), so logs and errors show the place an operator would type.
pub(super) fn lexically_normal(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir
                if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
            {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Why links under `public_url` would not open for a recipient, in plain words: not
/// HTTPS (RFC 8058 one-click unsubscribe, and Gmail's and Yahoo's sender rules, need it),
/// or a host only this machine or this network can reach. Empty when nothing is wrong.
/// Pure: no DNS lookup, so a public name that resolves privately is not caught.
pub(super) fn unreachable_link_reasons(url: &str) -> Vec<String> {
    use std::net::IpAddr;
    let mut reasons = Vec::new();
    let Some((scheme, rest)) = url.split_once("://") else {
        return reasons;
    };
    if !scheme.eq_ignore_ascii_case("https") {
        reasons.push(format!(
            "starts with {scheme}://, and mail programs only offer one-click unsubscribe (RFC 8058) over https://"
        ));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or(""),
        None => host_port.split(':').next().unwrap_or(""),
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host.is_empty() {
        reasons.push("names no host".to_string());
    } else if let Ok(ip) = host.parse::<IpAddr>() {
        let what = match ip {
            IpAddr::V4(v4) if v4.is_loopback() || v4.is_unspecified() => {
                "this machine's own address"
            }
            IpAddr::V6(v6) if v6.is_loopback() || v6.is_unspecified() => {
                "this machine's own address"
            }
            IpAddr::V4(v4)
                if v4.is_private()
                    || v4.is_link_local()
                    || v4.octets()[0] == 100 && (64..128).contains(&v4.octets()[1]) =>
            {
                "a private network address, reachable only inside your network"
            }
            IpAddr::V6(v6)
                if (v6.segments()[0] & 0xfe00) == 0xfc00
                    || (v6.segments()[0] & 0xffc0) == 0xfe80 =>
            {
                "a private network address, reachable only inside your network"
            }
            _ => "a bare IP address, which no HTTPS certificate names for mail programs to trust",
        };
        reasons.push(format!("points at {host}, {what}"));
    } else if host == "localhost" || host.ends_with(".localhost") {
        reasons.push(format!("points at {host}, this machine itself"));
    } else if !host.contains('.')
        || [
            ".local",
            ".internal",
            ".lan",
            ".home.arpa",
            ".intranet",
            ".corp",
        ]
        .iter()
        .any(|suffix| host.ends_with(suffix))
    {
        reasons.push(format!(
            "points at {host}, a name only your own network knows"
        ));
    }
    reasons
}

/// The churn reasons the README lists; a campaign may name others.
pub(crate) const KNOWN_REASONS: [&str; 7] = [
    "competitor",
    "acquisition",
    "contact_left",
    "price",
    "needs_changed",
    "we_ended",
    "other",
];

/// The known reason `reason` is likely a misspelling of (`we-ended`, `we ended`,
/// `competiter`), or None when it is known or not close to any.
pub(super) fn likely_reason(reason: &str) -> Option<&'static str> {
    let reason = reason.trim().to_lowercase();
    if KNOWN_REASONS.contains(&reason.as_str()) {
        return None;
    }
    let normal: String = reason
        .chars()
        .map(|c| if c == '-' || c == ' ' { '_' } else { c })
        .collect();
    KNOWN_REASONS
        .iter()
        .copied()
        .find(|known| *known == normal)
        .or_else(|| {
            KNOWN_REASONS
                .iter()
                .copied()
                .find(|known| edit_distance(known, &normal) <= 2)
        })
}

/// Levenshtein distance, for "did you mean".
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// For a zone name that is a fixed offset from UTC (no daylight saving), the zone names
/// to suggest instead, quoted.
pub(super) fn fixed_offset_zone(name: &str) -> Option<&'static str> {
    match name {
        "EST" => Some("\"America/New_York\""),
        "MST" => {
            Some("\"America/Denver\" (or \"America/Phoenix\", which keeps no daylight saving)")
        }
        _ if name.starts_with("Etc/GMT")
            && name
                .trim_start_matches("Etc/GMT")
                .trim_start_matches(['+', '-'])
                .parse::<u8>()
                .is_ok_and(|h| h > 0) =>
        {
            Some("\"America/New_York\" or \"Europe/Paris\"")
        }
        _ => None,
    }
}

/// The zone meant by a common abbreviation that is not itself a zone name.
pub(super) fn zone_for_abbreviation(name: &str) -> Option<&'static str> {
    match name.to_ascii_uppercase().as_str() {
        "EDT" | "ET" => Some("America/New_York"),
        "CST" | "CDT" | "CT" => Some("America/Chicago"),
        "MDT" | "MT" => Some("America/Denver"),
        "PST" | "PDT" | "PT" => Some("America/Los_Angeles"),
        "BST" => Some("Europe/London"),
        "CEST" => Some("Europe/Paris"),
        "IST" => Some("Asia/Kolkata"),
        "JST" => Some("Asia/Tokyo"),
        "AEST" | "AEDT" => Some("Australia/Sydney"),
        _ => None,
    }
}
