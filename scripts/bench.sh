#!/usr/bin/env bash
# Benchmarks (make bench). Prints figures; asserts nothing. Uses the release build.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.build/release/reencryptd
OUT=${BENCH_OUT:-.build/bench}
ROWS=${BENCH_ROWS:-1000000}
mkdir -p "$OUT"
ARN=arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab

echo "== submit: $ROWS-row Batch Operations CSV manifest (issue 2) =="
MANIFEST="$OUT/manifest-$ROWS.csv"
if [ ! -s "$MANIFEST" ]; then
    # Keys with URL-encoded spaces and unicode, spread over 4 buckets, in random order (as real inventories are not sorted).
    python3 - "$MANIFEST" "$ROWS" <<'PY'
import random, sys
path, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(42)
order = list(range(n)); rng.shuffle(order)
with open(path, "w") as f:
    for i in order:
        f.write(f"bench-bucket-{i % 4},data/2026/{i % 997:03d}/object%20{i:08d}-%C3%A9t%C3%A9.parquet\n")
PY
fi
ls -l "$MANIFEST" | awk '{print "manifest bytes:", $5}'

# Baseline: the sqlite3 shell's .import into a table with the same unique index, same pragmas (WAL, synchronous=NORMAL).
rm -f "$OUT/import.sqlite3"*
sqlite3 "$OUT/import.sqlite3" "PRAGMA journal_mode=WAL;" >/dev/null
/usr/bin/time -f "%e %M" -o "$OUT/import.time" sqlite3 "$OUT/import.sqlite3" \
    "PRAGMA synchronous=NORMAL;" \
    "CREATE TABLE t(bucket TEXT NOT NULL, key TEXT NOT NULL);" \
    "CREATE UNIQUE INDEX t_object ON t(bucket, key);" \
    ".mode csv" ".import $MANIFEST t"
read -r import_s import_kb < "$OUT/import.time"

rm -f "$OUT/submit.sqlite3"*
/usr/bin/time -f "%e %M" -o "$OUT/submit.time" env REENCRYPTD_CONFIG=/dev/null \
    $BIN submit --db "$OUT/submit.sqlite3" --job bench --kms-key-arn $ARN "$MANIFEST"
read -r submit_s submit_kb < "$OUT/submit.time"

awk -v i="$import_s" -v s="$submit_s" -v ikb="$import_kb" -v skb="$submit_kb" -v n="$ROWS" 'BEGIN {
    printf "sqlite3 .import:     %6.2f s  peak RSS %6.1f MB\n", i, ikb / 1024
    printf "reencryptd submit:   %6.2f s  peak RSS %6.1f MB  (%.0f rows/s)\n", s, skb / 1024, n / s
    printf "ratio submit/import: %6.2f  (target <= 2.0; RSS target < 100 MB)\n", s / i
}'
