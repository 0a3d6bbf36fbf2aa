#!/usr/bin/env bash
# Instructions per UpdateObjectEncryption request of the S3 client (user space, cachegrind), for comparing builds on a
# VM whose timings vary by 20% between identical runs: the count repeats to about 0.1%. Asserts nothing.
#
#   scripts/instructions.sh [CLIENT_BENCH...]     default: .build/release/client-bench
#   TOP=40 scripts/instructions.sh                also list the 40 costliest functions per request
#
# Two runs (2,000 and 10,000 requests, 64 in flight) against the simulator on loopback; their difference per request
# leaves start-up out. Needs valgrind (apt-get install valgrind). For names inside libcurl, point CURL_LIB at a
# libcurl built with symbols from the same version (it is put first on LD_LIBRARY_PATH for the client only).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind > /dev/null || { echo "instructions.sh: valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
SIM=.build/release/s3sim
[ $# -gt 0 ] || set -- .build/release/client-bench
N1=2000
N2=10000
OUT=$(mktemp -d)
"$SIM" --population 2000 --manifest-dir "$OUT" --port-file "$OUT/port" > "$OUT/log" 2>&1 &
SIM_PID=$!
trap 'kill $SIM_PID 2> /dev/null || true; rm -rf "$OUT"' EXIT
for _ in $(seq 1 100); do [ -s "$OUT/port" ] && break; sleep 0.1; done
URL=http://127.0.0.1:$(cat "$OUT/port")
for bin in "$@"; do
    for n in $N1 $N2; do
        LD_LIBRARY_PATH=${CURL_LIB:-}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} valgrind --tool=cachegrind --cache-sim=no \
            --cachegrind-out-file="$OUT/cg.$n" "$bin" "$URL" "$OUT/manifest.csv" $n 64 > /dev/null 2>&1
        cg_annotate --threshold=0 "$OUT/cg.$n" > "$OUT/annotated.$n" 2> /dev/null
    done
    python3 scripts/cachegrind_per_unit.py "$bin" request "$OUT/annotated.$N1" "$OUT/annotated.$N2" $N1 $N2 "${TOP:-0}"
done
