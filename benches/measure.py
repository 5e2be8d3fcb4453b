#!/usr/bin/env python3
"""Runs one command and prints its wall time, the time to its first line of output, and
its peak resident memory (from /usr/bin/time, which forks from a small process: a
child forked from Python would inherit Python's resident size), as one line: `LABEL  total 1.23 s  first line 0.05 s  peak 42 MiB`.

    python3 benches/measure.py LABEL COMMAND [ARG ...]

The command's output is read and thrown away (counted in lines); its error output is
kept and shown if it fails. Needs /usr/bin/time (Debian's `time` package) and Python 3's
standard library.
"""

import subprocess
import sys
import tempfile
import time


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    label, command = sys.argv[1], sys.argv[2:]
    with tempfile.TemporaryFile() as errors, tempfile.NamedTemporaryFile("r") as peak:
        start = time.monotonic()
        child = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", peak.name] + command,
                                 stdout=subprocess.PIPE, stderr=errors)
        first_line = None
        lines = 0
        for _ in child.stdout:
            if first_line is None:
                first_line = time.monotonic() - start
            lines += 1
        child.wait()
        total = time.monotonic() - start
        peak_kib = int(peak.read().split()[-1]) if child.returncode == 0 else 0
        if child.returncode != 0:
            errors.seek(0)
            sys.stderr.write(errors.read().decode("utf-8", "replace")[-2000:])
            sys.exit(f"{label}: exit status {child.returncode}")
    first = f"{first_line:.2f} s" if first_line is not None else "-"
    print(f"{label:<32} total {total:6.2f} s  first line {first:>7}  "
          f"peak {peak_kib / 1024:5.0f} MiB  ({lines} lines)")


if __name__ == "__main__":
    main()
