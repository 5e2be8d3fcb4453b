#!/usr/bin/env bash
# Bulk opt-outs and returns: imports CLIENTS former clients (default 20,000), then times
# `optout --file` and `returned --file` on lists of N addresses (default 10,000): the
# first half imported clients, written as people paste them (`Name <addr>`, quotes,
# upper case), the other half never imported. Each list is applied in one transaction;
# the done-when figure is "well under a second" for 10,000 opt-outs. Figures depend on the
# machine; run it on an otherwise idle one.
#
#   bash benches/bulk_lists.sh [N] [CLIENTS]
set -euo pipefail
n=${1:-10000}
CLIENTS=${2:-20000}
. "$(dirname "$0")/common.sh"
now=2026-11-01T00:00:00Z
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
"$bin" --config "$work/winback.toml" --now "$now" import "$work/clients.csv" | tail -1
python3 - "$n" "$work" <<'PY'
import csv, sys
n, work = int(sys.argv[1]), sys.argv[2]
with open(f"{work}/clients.csv", newline="", encoding="utf-8") as f:
    known = [row["email"] for row in csv.DictReader(f)]
half = n // 2
shapes = ["{}", "\"{}\"", "Someone <{}>", "  {}  "]
for name, offset in (("optout", 0), ("returned", half)):
    picked = known[offset:offset + half]
    with open(f"{work}/{name}.txt", "w", encoding="utf-8") as out:
        for i, email in enumerate(picked):
            out.write(shapes[i % len(shapes)].format(email.upper() if i % 3 == 0 else email) + "\n")
        for i in range(n - len(picked)):
            out.write(f"stranger{i}.{name}@elsewhere.example\n")
PY
for command in optout returned; do
  start=$(date +%s.%N)
  "$bin" --config "$work/winback.toml" --now "$now" "$command" --file "$work/$command.txt" | tail -1
  end=$(date +%s.%N)
  python3 -c "print(f'$command --file: $n addresses in {($end-$start)*1000:.0f} ms')"
done
