#!/usr/bin/env bash
# SMTP throughput: the raw-rate baseline, and (later) winback's own rate against it.
#
#   bash benches/smtp_bench.sh [-n MESSAGES] [-s SESSIONS] [-l BYTES] [-r RUNS] [--winback]
#
# Baseline: Postfix's smtp-sink (an SMTP server that accepts and discards everything)
# listens on 127.0.0.1; Postfix's smtp-source sends MESSAGES messages to it over SESSIONS
# parallel connections, several messages per connection (-d), each with a BYTES payload
# (default 4096, about a real survey email: text + HTML parts). The script prints the
# wall time and messages/s of each run and the median. That is the ceiling any SMTP
# client on this machine can reach against a server that costs nothing; winback's
# delivery rate (same sink, `connections` = SESSIONS) is to be read against it.
#
# Defaults: -n 10000 -s 4 -l 4096 -r 3. Everything stays on 127.0.0.1, every run is
# bounded by `timeout`, and the sink is stopped on exit.
#
# Needs smtp-sink and smtp-source from Debian's `postfix` package (`bash .ci/run --deps-only`
# installs it without configuring a mail server) and python3 (to find a free port).
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

find_postfix_tool() {
    local name="$1" directory
    if command -v "$name" >/dev/null 2>&1; then
        command -v "$name"
        return
    fi
    for directory in /usr/sbin /usr/lib/postfix /usr/lib/postfix/sbin /usr/libexec/postfix; do
        if [ -x "$directory/$name" ]; then
            echo "$directory/$name"
            return
        fi
    done
    echo "smtp_bench.sh: $name not found; install Debian's postfix package (bash .ci/run --deps-only)" >&2
    exit 1
}

SMTP_SINK="$(find_postfix_tool smtp-sink)"
SMTP_SOURCE="$(find_postfix_tool smtp-source)"

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

now() {
    date +%s.%N
}

SINK_PID=""
WORK_DIR="$(mktemp -d -t winback-smtp-bench.XXXXXX)"
cleanup() {
    if [ -n "$SINK_PID" ] && kill -0 "$SINK_PID" 2>/dev/null; then
        kill "$SINK_PID" 2>/dev/null || true
        wait "$SINK_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK_DIR"
}
trap cleanup EXIT

# Starts smtp-sink on 127.0.0.1:$SINK_PORT and waits (at most 5 s) until it listens.
start_sink() {
    SINK_PORT="$(free_port)"
    local user_option=()
    if [ "$(id -u)" -eq 0 ]; then
        user_option=(-u nobody)   # smtp-sink refuses to keep root privileges
    fi
    "$SMTP_SINK" "${user_option[@]}" 127.0.0.1:"$SINK_PORT" 1000 \
        >"$WORK_DIR/sink.log" 2>&1 &
    SINK_PID=$!
    local attempt
    for attempt in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$SINK_PORT") 2>/dev/null; then
            return
        fi
        if ! kill -0 "$SINK_PID" 2>/dev/null; then
            echo "smtp_bench.sh: smtp-sink exited:" >&2
            cat "$WORK_DIR/sink.log" >&2
            exit 1
        fi
        sleep 0.05
    done
    echo "smtp_bench.sh: smtp-sink did not listen on 127.0.0.1:$SINK_PORT within 5 s" >&2
    exit 1
}

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

# ------------------------------------------------------------------------------------
# WINBACK MEASUREMENT: TO BE ADDED once `winback run --once` delivers over SMTP.
#
# It belongs here, against the same smtp-sink, so that both figures come from one run:
#   1. cargo build --release; BIN=target/release/winback
#   2. python3 benches/gen_clients.py "$MESSAGES" --lf > "$WORK_DIR/clients.csv", then make
#      every row due: churned_at far enough back (>= quiet_days before --now) and no
#      `we_ended` reason (or write the CSV here directly: email,name,churned_at).
#   3. Write "$WORK_DIR/winback.toml": [database] path = "bench.db";
#      [smtp] url = "smtp://127.0.0.1:$SINK_PORT", connections = $SESSIONS, no
#      max_per_minute / max_per_day; [http] listen on a free 127.0.0.1 port;
#      templates = the repo's templates/; one campaign, one survey step,
#      send_at = "* * * * *" so every client is due at --now.
#   4. "$BIN" --config "$WORK_DIR/winback.toml" import "$WORK_DIR/clients.csv" (not timed)
#   5. time: timeout "$RUN_TIMEOUT_SECONDS" "$BIN" --config ... run --once --now <instant>
#   6. count what arrived (winback status, or smtp-sink -c counters) and print
#      "winback: N messages in T s = R messages/s (X% of the smtp-source baseline)".
# Mind the rule "at most one message per person per local day": N distinct emails.
# ------------------------------------------------------------------------------------
measure_winback() {
    echo "winback: not measured yet (see WINBACK MEASUREMENT in $0)"
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
printf 'smtp-source baseline (median of %d): %s messages/s\n' "$RUNS" \
    "$(printf '%s\n' "${rates[@]}" | median)"

if [ -n "$MEASURE_WINBACK" ]; then
    measure_winback
fi
