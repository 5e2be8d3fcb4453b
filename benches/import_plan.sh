#!/usr/bin/env bash
# Import and plan at scale: generates N former clients (default 1,000,000), imports them
# into a fresh database with the release binary, then times `plan` over 1, 7 and 30 days.
# Prints rows/s and peak memory (from /usr/bin/time). Figures depend on the machine; run
# it on an otherwise idle one and compare ratios, not absolute numbers.
#
#   bash benches/import_plan.sh [N]
set -euo pipefail
n=${1:-1000000}
CLIENTS=$n
. "$(dirname "$0")/common.sh"
now=2026-11-01T00:00:00Z
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
start=$(date +%s.%N)
/usr/bin/time -f "%M" -o "$work/mem" "$bin" --config "$work/winback.toml" --now "$now" import "$work/clients.csv" | tail -1
end=$(date +%s.%N)
python3 - "$n" "$start" "$end" "$(cat "$work/mem")" <<'PY'
import sys
n, start, end, mem = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
print(f"import: {n} rows in {end-start:.1f} s = {n/(end-start):,.0f} rows/s, peak RSS {mem/1024:.0f} MiB")
PY
for days in 1 7 30; do
  start=$(date +%s.%N)
  count=$("$bin" --config "$work/winback.toml" --now "$now" plan --days "$days" --format json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
  end=$(date +%s.%N)
  python3 -c "print(f'plan --days $days: $count messages in {($end-$start)*1000:.0f} ms')"
done
