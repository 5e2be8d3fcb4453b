#!/usr/bin/env python3
"""Writes N realistic former-client rows as CSV, for measuring `winback import`.

    python3 benches/gen_clients.py N [--seed S] [--lf] [--contactable] > clients.csv

Columns: email,name,company,churned_at,churn_reason,timezone,plan. Dates fall within the
three years before 2026-11-01 (fixed, so output does not depend on the day it runs); most
are bare dates, some RFC 3339 instants with an offset. Emails are unique. Some names and
companies need quoting (commas, quotes) or are non-ASCII; a few optional cells are empty.
The same N and seed always give the same bytes. Line breaks are CRLF, as spreadsheets
write them, unless --lf is given. With --contactable no row has the reason `we_ended`
(never contacted), so every client can be enrolled. Python 3 standard library only.
"""

import argparse
import csv
import datetime
import random
import sys

REFERENCE = datetime.datetime(2026, 11, 1, tzinfo=datetime.timezone.utc)
SPAN_SECONDS = 3 * 365 * 24 * 3600

FIRST_NAMES = [
    "Ann", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy",
    "Karim", "Li", "Mallory", "Nadia", "Oscar", "Peggy", "Quentin", "Rupert", "Sybil",
    "Trent", "Ursula", "Victor", "Wendy", "Xavier", "Yara", "Zoë", "José", "Søren",
    "Chloé", "Łukasz", "Aoife", "Mei", "Priya", "Tomás", "Ngozi", "Björn",
]
LAST_NAMES = [
    "Smith", "Jones", "Lee", "Martin", "Bernard", "Dubois", "Müller", "Schmidt", "Rossi",
    "García", "O'Brien", "Nakamura", "Kowalski", "Novák", "Andersen", "Silva", "Khan",
    "Van der Berg", "De la Cruz", "Okafor", "Chen", "Ivanova", "Haddad", "Fischer",
]
COMPANY_STEMS = [
    "Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Stark", "Wayne",
    "Tyrell", "Cyberdyne", "Soylent", "Wonka", "Gringotts", "Aperture", "Monarch",
    "Oceanic", "Nakatomi", "Pied Piper", "Dunder Mifflin", "Blue Sun", "Bluth",
]
COMPANY_SUFFIXES = [
    "", " Inc.", ", Inc.", " GmbH", " SARL", " Ltd", " & Sons", " AG", " S.p.A.",
    " \"The Original\"", " Holdings, LLC", " BV",
]
DOMAINS_TLD = [".com", ".de", ".fr", ".co.uk", ".io", ".it", ".nl", ".example"]
# Weighted: `we_ended` and `price` are common, empty means "unknown".
REASONS = (
    ["competitor"] * 6 + ["price"] * 5 + ["we_ended"] * 4 + ["needs_changed"] * 4
    + ["contact_left"] * 3 + ["acquisition"] * 2 + ["other"] * 2 + [""] * 3
)
TIMEZONES = (
    ["Europe/Paris"] * 4 + ["Europe/Berlin"] * 3 + ["Europe/London"] * 3
    + ["America/New_York"] * 3 + ["America/Los_Angeles"] * 2 + ["America/Sao_Paulo"]
    + ["Asia/Tokyo"] + ["Asia/Kolkata"] + ["Australia/Sydney"] + ["Pacific/Auckland"]
    + ["Africa/Lagos"] + ["UTC"] + [""] * 3
)
OFFSETS_MINUTES = [-480, -300, 0, 60, 120, 330, 540]
PLANS = ["starter", "team", "business", "enterprise"]


def ascii_slug(text):
    table = str.maketrans("äöüéèëøåóáíłñç", "aoueeeoaoailnc")
    text = text.lower().replace("ß", "ss").translate(table)
    return "".join(c for c in text if c.isascii() and c.isalnum())


def churned_at(rng):
    moment = REFERENCE - datetime.timedelta(seconds=rng.randrange(SPAN_SECONDS))
    if rng.random() < 0.8:
        return moment.date().isoformat()
    offset = datetime.timezone(datetime.timedelta(minutes=rng.choice(OFFSETS_MINUTES)))
    return moment.astimezone(offset).replace(microsecond=0).isoformat()


def rows(count, rng, reasons):
    for index in range(count):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        stem = rng.choice(COMPANY_STEMS)
        domain = ascii_slug(stem) + rng.choice(DOMAINS_TLD)
        local = f"{ascii_slug(first)}.{ascii_slug(last)}{index}"
        if rng.random() < 0.1:
            local = local.capitalize()  # mixed case: the importer lower-cases it
        name = f"{first} {last}" if rng.random() < 0.95 else ""
        company = stem + rng.choice(COMPANY_SUFFIXES) if rng.random() < 0.97 else ""
        yield [
            f"{local}@{domain}",
            name,
            company,
            churned_at(rng),
            rng.choice(reasons),
            rng.choice(TIMEZONES),
            rng.choice(PLANS),
        ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int, help="number of rows to write")
    parser.add_argument("--seed", type=int, default=20261101)
    parser.add_argument("--lf", action="store_true", help="end lines with LF, not CRLF")
    parser.add_argument("--contactable", action="store_true", help="no `we_ended` reasons")
    args = parser.parse_args()
    if args.count < 0:
        parser.error("count must not be negative")
    rng = random.Random(args.seed)
    out = open(sys.stdout.fileno(), "w", encoding="utf-8", newline="", closefd=False)
    writer = csv.writer(out, lineterminator="\n" if args.lf else "\r\n")
    writer.writerow(["email", "name", "company", "churned_at", "churn_reason", "timezone", "plan"])
    reasons = [r for r in REASONS if r != "we_ended"] if args.contactable else REASONS
    writer.writerows(rows(args.count, rng, reasons))
    out.flush()


if __name__ == "__main__":
    main()
