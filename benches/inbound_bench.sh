#!/usr/bin/env bash
# Returned mail at scale: `winback inbound` over a folder of N messages (default 1,000),
# made from the fixtures in tests/fixtures/inbound/ (bounces from several servers,
# feedback reports, out-of-office notes, replies), each with a Message-ID of its own,
# against a database of M former clients (default 100,000). Times the first read (every
# message parsed, classified, matched and recorded) and a second read of the same folder
# (every message already seen), with peak memory from /usr/bin/time. Figures depend on
# the machine: compare ratios, not absolute numbers.
#
#   bash benches/inbound_bench.sh [N] [M]
set -euo pipefail
n=${1:-1000}
clients=${2:-100000}
CLIENTS=$clients
. "$(dirname "$0")/common.sh"
now=2026-11-01T00:00:00Z
"$bin" --config "$work/winback.toml" --now "$now" import "$work/clients.csv" > /dev/null
mkdir "$work/in"
python3 - "$root/tests/fixtures/inbound" "$work/in" "$n" <<'PY'
import os, re, sys
src, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
fixtures = [open(os.path.join(src, f), 'rb').read() for f in sorted(os.listdir(src)) if f.endswith('.eml')]
for i in range(n):
    raw = fixtures[i % len(fixtures)]
    head, sep, body = raw.partition(b'\r\n\r\n') if b'\r\n\r\n' in raw else raw.partition(b'\n\n')
    head = re.sub(rb'(?im)^message-id:.*(\r?\n[ \t].*)*\r?\n?', b'', head)
    nl = b'\r\n' if sep == b'\r\n\r\n' else b'\n'
    head = head + nl + b'Message-ID: <bench-%d@bench.example>' % i
    open(os.path.join(dst, '%05d.eml' % i), 'wb').write(head + sep + body)
PY
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); $n messages, $clients clients"
for pass in first again; do
  start=$(date +%s.%N)
  /usr/bin/time -f "%M" -o "$work/mem" "$bin" --config "$work/winback.toml" --now "$now" inbound --format json "$work/in" > "$work/out-$pass"
  end=$(date +%s.%N)
  python3 - "$n" "$start" "$end" "$(cat "$work/mem")" "$pass" <<'PY'
import sys
n, start, end, mem, label = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
secs = end - start
print(f"inbound ({label} read): {n} messages in {secs:.2f} s = {n / secs:,.0f} messages/s, peak {mem / 1024:.0f} MiB")
PY
done
python3 - "$work/out-first" <<'PY'
import collections, json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
print("outcomes of the first read:", dict(collections.Counter(r["outcome"] for r in rows)))
PY
