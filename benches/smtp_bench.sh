#!/usr/bin/env bash
# SMTP throughput: the raw-rate baseline, and winback's own rate against it (--winback).
#
#   bash benches/smtp_bench.sh [-n MESSAGES] [-s SESSIONS] [-l BYTES] [-r RUNS] [--winback]
#
# Baseline: Postfix's smtp-sink (an SMTP server that accepts and discards everything)
# listens on 127.0.0.1; Postfix's smtp-source sends MESSAGES messages to it over SESSIONS
# parallel connections, several messages per connection (-d), each with a BYTES payload
# (default 4096, about a real survey email: text + HTML parts). The script prints the
# wall time and messages/s of each run and the median. That is the ceiling any SMTP
# client on this machine can reach against a server that costs nothing; winback's
# delivery rate (same sink, `connections` = SESSIONS) is to be read against it. With
# --winback, RUNS timed winback passes alternate with RUNS more smtp-source runs, and the
# ratio of the two medians is printed.
#
# Defaults: -n 10000 -s 4 -l 4096 -r 3. Everything stays on 127.0.0.1, every run is
# bounded by `timeout`, and the sink is stopped on exit.
#
# Needs smtp-sink and smtp-source from Debian's `postfix` package (see benches/sink.sh).
set -euo pipefail

MESSAGES=10000
SESSIONS=4
PAYLOAD_BYTES=4096
RUNS=3
MEASURE_WINBACK=""
RUN_TIMEOUT_SECONDS=300

usage() {
    sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
    case "$1" in
        -n) MESSAGES="$2"; shift 2 ;;
        -s) SESSIONS="$2"; shift 2 ;;
        -l) PAYLOAD_BYTES="$2"; shift 2 ;;
        -r) RUNS="$2"; shift 2 ;;
        --winback) MEASURE_WINBACK=yes; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "smtp_bench.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done
for number in "$MESSAGES" "$SESSIONS" "$PAYLOAD_BYTES" "$RUNS"; do
    [[ "$number" =~ ^[1-9][0-9]*$ ]] || { echo "smtp_bench.sh: not a positive number: $number" >&2; exit 2; }
done

cd "$(dirname "${BASH_SOURCE[0]}")/.."

. benches/sink.sh
SMTP_SOURCE="$(find_postfix_tool smtp-source)"

now() {
    date +%s.%N
}

WORK_DIR="$(mktemp -d -t winback-smtp-bench.XXXXXX)"
cleanup() {
    stop_sink
    rm -rf "$WORK_DIR"
}
trap cleanup EXIT

# One smtp-source run; prints "SECONDS RATE".
measure_smtp_source() {
    local start end
    start="$(now)"
    timeout "$RUN_TIMEOUT_SECONDS" "$SMTP_SOURCE" -d -s "$SESSIONS" -m "$MESSAGES" \
        -l "$PAYLOAD_BYTES" -S "winback smtp baseline" \
        -f bench@winback.test -t sink@winback.test -M winback.test \
        127.0.0.1:"$SINK_PORT" >&2
    end="$(now)"
    awk -v s="$start" -v e="$end" -v n="$MESSAGES" 'BEGIN { t = e - s; printf "%.3f %.0f\n", t, n / t }'
}

median() {
    sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.0f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# winback against the same sink: N distinct clients all due at --now, one survey step,
# `connections` = SESSIONS, no rate limits; `run --once` is timed (claims committed before
# each SMTP transaction, results committed in batches: every message durably recorded).
# The import into a fresh database is not timed.
# WINBACK_BIN: a winback binary to time instead of this tree's release build (for A/B runs).
WINBACK_BIN="${WINBACK_BIN:-}"
prepare_winback() {
    if [ -z "$WINBACK_BIN" ]; then
        cargo build --release --quiet
        WINBACK_BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/winback"
    fi
    python3 - "$MESSAGES" >"$WORK_DIR/clients.csv" <<'PY'
import sys
n = int(sys.argv[1])
print("email,name,company,churned_at,churn_reason,timezone")
for i in range(n):
    print(f"client{i}@bench.example,Client {i},Company {i % 97},2025-06-01,competitor,Europe/Paris")
PY
    cat >"$WORK_DIR/winback.toml" <<TOML
[database]
path = "bench.db"
[smtp]
url = "smtp://127.0.0.1:$SINK_PORT"
from = "Acme <success@acme.example>"
connections = $SESSIONS
[http]
listen = "127.0.0.1:$(free_port)"
public_url = "https://winback.acme.example"
[sender]
company = "Acme Corp"
postal_address = "1 Main Street, Springfield"
[templates]
dir = "$PWD/templates"
[[campaign]]
name = "bench"
send_at = "* * * * *"
  [[campaign.step]]
  kind = "survey"
  template = "survey"
  subject = "{{first_name}}, may we ask why you left?"
TOML
}

# One timed `run --once`; prints "SECONDS RATE".
measure_winback() {
    # Imported a minute before the pass: an import makes a due message's first moment the
    # import's own clock reading, which a pass started at the same --now could precede.
    local bin="$WINBACK_BIN" imported_at="2026-11-03T09:59:00Z" at="2026-11-03T10:00:00Z"
    rm -f "$WORK_DIR"/bench.db*
    WINBACK_LOG=warn "$bin" --config "$WORK_DIR/winback.toml" --now "$imported_at" import "$WORK_DIR/clients.csv" >/dev/null
    local start end
    start="$(now)"
    local status=0
    WINBACK_LOG=warn timeout "$RUN_TIMEOUT_SECONDS" ${WINBACK_PROFILE:-} "$bin" --config "$WORK_DIR/winback.toml" --now "$at" run --once \
        >/dev/null 2>"$WORK_DIR/run.log" || status=$?
    end="$(now)"
    local sent
    sent="$("$bin" --config "$WORK_DIR/winback.toml" --now "$at" status --format json \
        | python3 -c 'import json,sys; print(sum(m.get("sent", 0) for m in json.load(sys.stdin)["messages"].values()))')"
    if [ "$sent" -ne "$MESSAGES" ]; then
        echo "smtp_bench.sh: winback sent $sent of $MESSAGES messages (exit status $status); its log:" >&2
        tail -n 20 "$WORK_DIR/run.log" >&2
        exit 1
    fi
    awk -v s="$start" -v e="$end" -v n="$sent" 'BEGIN { t = e - s; printf "%.3f %.0f\n", t, n / t }'
}

start_sink
echo "smtp-sink:   $SMTP_SINK on 127.0.0.1:$SINK_PORT"
echo "smtp-source: $SMTP_SOURCE -d -s $SESSIONS -m $MESSAGES -l $PAYLOAD_BYTES"
echo "machine:     $(nproc) cores, $(uname -r)"

rates=()
for run in $(seq 1 "$RUNS"); do
    result="$(measure_smtp_source)"
    read -r seconds rate <<<"$result"
    printf 'run %d: %d messages in %s s = %s messages/s\n' "$run" "$MESSAGES" "$seconds" "$rate"
    rates+=("$rate")
done
baseline="$(printf '%s\n' "${rates[@]}" | median)"
printf 'smtp-source baseline (median of %d): %s messages/s\n' "$RUNS" "$baseline"

if [ -n "$MEASURE_WINBACK" ]; then
    # Runs alternate with smtp-source runs, so that both see the same moments of a busy
    # machine; the ratio is of the two medians.
    prepare_winback
    winback_rates=()
    source_rates=("${rates[@]}")
    for run in $(seq 1 "$RUNS"); do
        result="$(measure_winback)"
        read -r seconds rate <<<"$result"
        printf 'winback run %d: %d messages sent and recorded in %s s = %s messages/s\n' "$run" "$MESSAGES" "$seconds" "$rate"
        winback_rates+=("$rate")
        result="$(measure_smtp_source)"
        read -r seconds rate <<<"$result"
        source_rates+=("$rate")
    done
    source_median="$(printf '%s\n' "${source_rates[@]}" | median)"
    winback_median="$(printf '%s\n' "${winback_rates[@]}" | median)"
    awk -v w="$winback_median" -v b="$source_median" -v n="${#source_rates[@]}" 'BEGIN {
        printf "smtp-source median of %d runs: %.0f messages/s\nwinback median: %.0f messages/s = %.0f%% of smtp-source\n", n, b, w, 100 * w / b }'
fi
