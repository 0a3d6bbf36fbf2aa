"""Instructions per unit of work from two cachegrind runs of different sizes, for scripts/instructions.sh and
scripts/engine-instructions.sh. The difference between the runs, divided by the difference in size, leaves start-up
out. Usage: cachegrind_per_unit.py LABEL UNIT ANNOTATED_SMALL ANNOTATED_LARGE N_SMALL N_LARGE TOP
(the ANNOTATED files are `cg_annotate --threshold=0` output; TOP > 0 also lists the costliest functions per unit)."""
import re
import sys

label, unit, small, large = sys.argv[1:5]
n1, n2, top = int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])


def load(path):
    total, functions = 0, {}
    for line in open(path):
        m = re.match(r"\s*([\d,]+)\s+\(100.0%\)\s+PROGRAM TOTALS", line)
        if m:
            total = int(m.group(1).replace(",", ""))
            continue
        m = re.match(r"\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(\S+:.*)$", line)
        if m:
            functions[m.group(2)] = functions.get(m.group(2), 0) + int(m.group(1).replace(",", ""))
    return total, functions


(t1, f1), (t2, f2) = load(small), load(large)
per = (t2 - t1) / (n2 - n1)
print(f"{label}: {per:,.0f} instructions per {unit}")
rows = sorted(((f2.get(k, 0) - f1.get(k, 0)) / (n2 - n1), k) for k in set(f1) | set(f2))
for v, k in reversed(rows[-top:] if top else []):
    print(f"  {v:9,.0f}  {100 * v / per:4.1f}%  {k[:110]}")
