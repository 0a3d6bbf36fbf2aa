#!/usr/bin/env bash
# Instructions per task of `reencryptd run`'s engine (user space, cachegrind), for comparing builds on a VM whose
# timings vary by 20% between identical runs: the count repeats to about 0.5% (the engine's batches follow timing a
# little). Asserts nothing. Client and store included; the simulator, a process of its own, is not.
#
#   scripts/engine-instructions.sh [ENGINE_BENCH...]     default: .build/release/engine-bench
#   TOP=40 scripts/engine-instructions.sh                also list the 40 costliest functions per task
#
# Two runs (4,000 and 20,000 tasks, 256 in flight) against the simulator on loopback, each on a freshly submitted
# store; their difference per task leaves start-up out. The engine runs in-process (bench/EngineBench): valgrind 3.19
# dies in libdispatch's signal thread under `reencryptd run`. Needs valgrind (apt-get install valgrind) and the release
# build of reencryptd and s3sim. For names inside libcurl, point CURL_LIB at a libcurl built with symbols from the same
# version (put first on LD_LIBRARY_PATH for the engine only). Run nothing else meanwhile: a busier machine batches
# answers differently.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind > /dev/null || { echo "engine-instructions.sh: valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
SIM=.build/release/s3sim
BIN=.build/release/reencryptd
[ $# -gt 0 ] || set -- .build/release/engine-bench
N1=4000
N2=20000
ARN=arn:aws:kms:us-east-1:111122223333:key/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0
OUT=$(mktemp -d)
SIM_PIDS=()
trap 'kill "${SIM_PIDS[@]}" 2> /dev/null || true; rm -rf "$OUT"' EXIT
for bin in "$@"; do
    for n in $N1 $N2; do
        D=$OUT/$n
        rm -rf "$D"
        mkdir -p "$D"
        "$SIM" --population $n --plain --manifest-dir "$D" --port-file "$D/port" > "$D/log" 2>&1 &
        SIM_PIDS+=($!)
        for _ in $(seq 1 300); do [ -s "$D/port" ] && break; sleep 0.1; done
        URL=http://127.0.0.1:$(cat "$D/port")
        env REENCRYPTD_CONFIG=/dev/null REENCRYPTD_S3_ENDPOINT="$URL" AWS_ACCESS_KEY_ID=AKIDSIMULATOR \
            AWS_SECRET_ACCESS_KEY=simulator/secret+key AWS_EC2_METADATA_DISABLED=true \
            "$BIN" submit --db "$D/store.sqlite3" --job bench --kms-key-arn $ARN "$D/manifest.csv" > /dev/null
        LD_LIBRARY_PATH=${CURL_LIB:-}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} valgrind --tool=cachegrind --cache-sim=no \
            --cachegrind-out-file="$OUT/cg.$n" "$bin" "$URL" "$D/store.sqlite3" > "$D/out" 2>&1
        kill "${SIM_PIDS[-1]}"
        cg_annotate --threshold=0 "$OUT/cg.$n" > "$OUT/annotated.$n" 2> /dev/null
    done
    python3 scripts/cachegrind_per_unit.py "$bin" task "$OUT/annotated.$N1" "$OUT/annotated.$N2" $N1 $N2 "${TOP:-0}"
done
