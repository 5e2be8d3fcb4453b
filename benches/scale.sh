#!/usr/bin/env bash
# Operator commands at scale: builds a database of N former clients (default 1,000,000),
# all due, and then N messages sent, and prints each operator command's wall time, the
# time to its first line of output and its peak memory (benches/measure.py).
#
#   bash benches/scale.sh [--keep DIR] [N]
#   WINBACK_BIN=/path/to/winback bash benches/scale.sh ...   (that binary, not a fresh build)
#
# The database is built by the release binary as a user would: `import` of N generated
# clients (benches/gen_clients.py --contactable), a first set of figures (before any
# message), then `run --once` against a local Postfix smtp-sink (its rate and peak memory
# are printed), then `optout --file` and `returned --file` for 1% of the clients each.
# Two things are written straight into the database, as the daemon itself would record
# them: survey answers for every fifth client (what the survey form stores) and 1% of
# the messages marked `failed` (what `outbox list` shows). The commands are then measured
# again. With --keep DIR, the database is kept in DIR, and a later run with the same DIR
# and N only measures. The bounds: under 100 MiB peak for every command, `report` under
# 3 s, `plan`'s first line under 1 s. Figures depend on the machine: note its load.
set -euo pipefail
keep=""
if [ "${1:-}" = "--keep" ]; then
    keep="$2"
    shift 2
fi
n=${1:-1000000}
root=$(cd "$(dirname "$0")/.." && pwd)
bin="${WINBACK_BIN:-$root/target/release/winback}"
measure() { python3 "$root/benches/measure.py" "$@"; }
. "$root/benches/sink.sh"

if [ -n "$keep" ]; then
    mkdir -p "$keep"
    WORK_DIR=$(cd "$keep" && pwd)
else
    WORK_DIR=$(mktemp -d -t winback-scale.XXXXXX)
fi
cleanup() {
    stop_sink
    [ -n "$keep" ] || rm -rf "$WORK_DIR"
}
trap cleanup EXIT
work=$WORK_DIR
[ -n "${WINBACK_BIN:-}" ] || cargo build --release --quiet --manifest-path "$root/Cargo.toml"

# Every generated client left by 2026-11-01, so all are past the 90 quiet days; `send_at`
# is every minute, so the pass a minute after the import finds every survey due (as in
# smtp_bench.sh), and each newsletter falls 14 days later, inside `plan --days 30`.
imported_at=2027-02-09T09:59:00Z
now=2027-02-09T10:00:00Z
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg) at start"

write_config() {
    cat > "$work/winback.toml" <<TOML
[database]
path = "bench.db"
[smtp]
url = "smtp://127.0.0.1:${SINK_PORT:-25}"
from = "Acme <success@acme.example>"
connections = 4
[http]
public_url = "https://winback.acme.example"
[sender]
company = "Acme"
postal_address = "1 Main St"
[templates]
dir = "$root/templates"
[[campaign]]
name = "former-clients"
send_at = "* * * * *"
  [[campaign.step]]
  kind = "survey"
  template = "survey"
  subject = "Hi"
  [[campaign.step]]
  kind = "newsletter"
  after_days = 14
  template = "newsletter"
  subject = "News"
TOML
}

winback() { "$bin" --config "$work/winback.toml" --now "$now" "$@"; }

measure_all() {
    local when="$1" report="$work/report.html" someone
    someone=$(sqlite3 "$work/bench.db" "SELECT email FROM clients ORDER BY id LIMIT 1")
    echo "-- $when"
    measure "plan --days 30" "$bin" --config "$work/winback.toml" --now "$now" plan --days 30
    measure "plan --days 30 --format json" "$bin" --config "$work/winback.toml" --now "$now" plan --days 30 --format json
    measure "plan --days 30 --format csv" "$bin" --config "$work/winback.toml" --now "$now" plan --days 30 --format csv
    measure "report --html" "$bin" --config "$work/winback.toml" --now "$now" report --html "$report" --force
    for format in table json csv; do
        measure "report --format $format" "$bin" --config "$work/winback.toml" --now "$now" report --format "$format"
    done
    measure "status" "$bin" --config "$work/winback.toml" --now "$now" status
    measure "status --format json" "$bin" --config "$work/winback.toml" --now "$now" status --format json
    measure "survey" "$bin" --config "$work/winback.toml" --now "$now" survey
    measure "survey --format csv" "$bin" --config "$work/winback.toml" --now "$now" survey --format csv
    measure "outbox list" "$bin" --config "$work/winback.toml" --now "$now" outbox list
    measure "outbox list --format csv" "$bin" --config "$work/winback.toml" --now "$now" outbox list --format csv
    measure "export ONE" "$bin" --config "$work/winback.toml" --now "$now" export "$someone"
}

built="$work/built-$n"
if [ ! -e "$built" ]; then
    rm -f "$work"/bench.db*
    write_config
    python3 "$root/benches/gen_clients.py" "$n" --contactable > "$work/clients.csv"
    WINBACK_LOG=warn measure "import $n" "$bin" --config "$work/winback.toml" --now "$imported_at" import "$work/clients.csv"
    measure_all "$n clients, no message yet"

    start_sink
    write_config
    WINBACK_LOG=warn measure "run --once (send $n)" "$bin" --config "$work/winback.toml" --now "$now" run --once
    stop_sink
    sent=$(sqlite3 "$work/bench.db" "SELECT count(*) FROM messages WHERE state = 'sent'")
    [ "$sent" -eq "$n" ] || { echo "scale.sh: $sent of $n messages sent" >&2; exit 1; }

    # 1% opt out and 1% come back, by the commands a user runs.
    sqlite3 "$work/bench.db" "SELECT email FROM clients WHERE id % 100 = 1" > "$work/optout.txt"
    sqlite3 "$work/bench.db" "SELECT email FROM clients WHERE id % 100 = 2" > "$work/returned.txt"
    winback optout --file "$work/optout.txt" >/dev/null
    winback returned --file "$work/returned.txt" >/dev/null
    sqlite3 "$work/bench.db" <<'SQL'
BEGIN;
INSERT INTO survey_answers (enrollment_id, client_id, campaign, reason, better, would_return, created_at, updated_at)
SELECT enrollment_id, client_id, campaign,
       CASE id % 4 WHEN 0 THEN 'price' WHEN 1 THEN 'competitor' WHEN 2 THEN 'needs_changed' ELSE 'other' END,
       CASE WHEN id % 3 = 0 THEN 'Faster support, and a clearer invoice' ELSE '' END,
       CASE id % 3 WHEN 0 THEN 'yes' WHEN 1 THEN 'maybe' ELSE 'no' END,
       sent_at, sent_at
FROM messages WHERE kind = 'survey' AND state = 'sent' AND client_id % 5 = 0;
UPDATE messages SET state = 'failed', last_error = '550 5.1.1 mailbox unavailable'
WHERE id % 100 = 3;
COMMIT;
SQL
    touch "$built"
fi
write_config
measure_all "$n clients, $n messages, $(sqlite3 "$work/bench.db" "SELECT count(*) FROM survey_answers") answers"
echo "machine: load $(cut -d' ' -f1-3 /proc/loadavg) at end"
