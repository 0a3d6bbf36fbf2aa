#!/usr/bin/env bash
# Benchmarks (make bench). Prints figures; asserts nothing. Uses the release build.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.build/release/reencryptd
SIM=.build/release/s3sim
CLIENT_BENCH=.build/release/client-bench
OUT=${BENCH_OUT:-.build/bench}
OBJECTS=${BENCH_OBJECTS:-1000000}
SIMS=()
cleanup() { for p in "${SIMS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
# BENCH_SECTIONS picks sections: submit simulator client engine (default: all).
SECTIONS=${BENCH_SECTIONS:-submit simulator client engine}
want() { case " $SECTIONS " in *" $1 "*) return 0;; *) return 1;; esac; }

# Starts s3sim in the background with the given flags; sets SIM_PORT and SIM_PID. Loopback only.
start_sim() {
    local dir=$1; shift
    rm -rf "$dir"; mkdir -p "$dir"
    "$@" --port-file "$dir/port" > "$dir/log" 2>&1 &
    SIM_PID=$!
    SIMS+=("$SIM_PID")
    for _ in $(seq 1 600); do [ -s "$dir/port" ] && break; sleep 0.1; done
    SIM_PORT=$(cat "$dir/port")
}
stop_sim() { kill "$SIM_PID" 2>/dev/null || true; wait "$SIM_PID" 2>/dev/null || true; }
# The daemon's environment for a run against the simulator (never anything but loopback).
sim_env() {
    echo REENCRYPTD_CONFIG=/dev/null REENCRYPTD_S3_ENDPOINT=http://127.0.0.1:$1 AWS_ACCESS_KEY_ID=AKIDSIMULATOR \
        AWS_SECRET_ACCESS_KEY=simulator/secret+key AWS_EC2_METADATA_DISABLED=true REENCRYPTD_LOG_LEVEL=warning
}
ROWS=${BENCH_ROWS:-1000000}
mkdir -p "$OUT"
ARN=arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab

if want submit; then
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
fi

if want simulator; then
echo
echo "== simulator (issue 4): UpdateObjectEncryption with wrk, s3sim on one core (CPU 1), wrk on CPU 0 =="
for verify in on off; do
    flags=""; [ $verify = off ] && flags="--no-verify-signatures"
    start_sim "$OUT/sim-wrk" taskset -c 1 $SIM --population 1000 --manifest-dir "$OUT/sim-wrk" $flags
    python3 scripts/wrk_request.py "http://127.0.0.1:$SIM_PORT" sim-bucket-0 data/0/object-0.bin "$OUT/sim-wrk/req.lua"
    # Three 10-second runs after a 2-second warm-up; the median is the figure (this VM's neighbours are noisy).
    taskset -c 0 wrk -t1 -c64 -d2s -s "$OUT/sim-wrk/req.lua" "http://127.0.0.1:$SIM_PORT" > /dev/null
    runs=$(for _ in 1 2 3; do
        taskset -c 0 wrk -t1 -c64 -d10s -s "$OUT/sim-wrk/req.lua" "http://127.0.0.1:$SIM_PORT" | awk '/Requests\/sec/ {print $2}'
    done | sort -n | tr '\n' ' ')
    median=$(echo "$runs" | awk '{print $2}')
    echo "signature checks $verify: median $median requests/s of runs [ $runs] (target >= 40000 with checks on)"
    # Every answer must have been a success: a benchmark of refusals would measure nothing.
    curl -s "http://127.0.0.1:$SIM_PORT/_sim/counters" | python3 -c 'import json,sys; c=json.load(sys.stdin); print("  answers:", c["byStatus"], "signature failures:", c["signatureFailures"])'
    stop_sim
done
fi

if want client; then
echo
echo "== S3 client (issue 3): UpdateObjectEncryption requests/s and client CPU per request =="
start_sim "$OUT/sim-client" taskset -c 1 $SIM --population 2000 --manifest-dir "$OUT/sim-client"
echo -n "zero latency, 64 in flight (client on CPU 0, simulator on CPU 1): "
taskset -c 0 $CLIENT_BENCH "http://127.0.0.1:$SIM_PORT" "$OUT/sim-client/manifest.csv" 300000 64 | head -1
stop_sim
start_sim "$OUT/sim-client-shared" $SIM --population 2000 --manifest-dir "$OUT/sim-client-shared"
echo -n "zero latency, 64 in flight (one transport thread; client and simulator placed by the scheduler): "
$CLIENT_BENCH "http://127.0.0.1:$SIM_PORT" "$OUT/sim-client-shared/manifest.csv" 300000 64 | head -1
stop_sim
# The client as the daemon runs it: two transport threads (TransportConfiguration's default), 64 in flight each; and a
# simulator with two event loops, as S3 is no single thread. Both cores are then busy, so the figure is bound by the
# client's and the simulator's CPU per request together.
start_sim "$OUT/sim-client-daemon" $SIM --population 2000 --threads 2 --manifest-dir "$OUT/sim-client-daemon"
echo -n "zero latency, 128 in flight (two transport threads, the daemon's default; simulator on two threads; target >= 30000/s): "
$CLIENT_BENCH "http://127.0.0.1:$SIM_PORT" "$OUT/sim-client-daemon/manifest.csv" 300000 128 2 | head -1
# utime + stime in clock ticks (proc(5)); start-up is included, a fraction of a µs per request.
echo "  simulator CPU: $(awk -v n=300000 -v hz="$(getconf CLK_TCK)" '{printf "%.1f µs/request", ($14 + $15) * 1e6 / hz / n}' /proc/$SIM_PID/stat)"
stop_sim
start_sim "$OUT/sim-client50" $SIM --population 2000 --manifest-dir "$OUT/sim-client50" --latency-ms 50
echo -n "50 ms latency, 512 in flight (bound 10240/s, target >= 9216/s): "
$CLIENT_BENCH "http://127.0.0.1:$SIM_PORT" "$OUT/sim-client50/manifest.csv" 150000 512 | head -1
stop_sim
fi

if want engine; then
echo
echo "== engine (issue 5): reencryptd run on a queue of $OBJECTS tasks =="
ARN_SIM=arn:aws:kms:us-east-1:111122223333:key/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0
# name, sim flags...; leaves the store in $OUT/$name/store.sqlite3. With SORTED=1 the manifest lists each bucket's
# objects together, as S3 Inventory reports do (the simulator writes them interleaved).
run_engine() {
    local name=$1; shift
    local manifest="$OUT/$name/manifest.csv"
    start_sim "$OUT/$name" $SIM --population "$OBJECTS" --plain --manifest-dir "$OUT/$name" "$@"
    if [ "${SORTED:-0}" = 1 ]; then
        sort -t, -k1,1 -s "$manifest" > "$OUT/$name/sorted.csv"
        manifest="$OUT/$name/sorted.csv"
    fi
    env $(sim_env "$SIM_PORT") $BIN submit --db "$OUT/$name/store.sqlite3" --job bench --kms-key-arn $ARN_SIM \
        "$manifest" > /dev/null
}

# (a) zero latency. The per-bucket ceiling (3,500/s by default: S3's documented PUT rate per prefix) is lifted to
# 20,000/s as in (c): the simulator has no per-prefix limit, and with its four buckets the default would cap the
# run at 14,000/s, measuring the setting rather than the engine. In flight: the daemon's default, 256, as an operator
# runs it (512 is for latency, as in (b)); at zero latency 512 cost 13% more CPU per object and ran 10% slower in six
# interleaved pairs (eighth session): more connections on both sides, for round trips that need no more.
run_engine engine-a
start=$(date +%s.%N)
env $(sim_env "$SIM_PORT") REENCRYPTD_ENGINE_MAX_RPS_PER_BUCKET=20000 /usr/bin/time -f "%e %U %S %M" -o "$OUT/engine-a/time" \
    $BIN run --db "$OUT/engine-a/store.sqlite3" --until-idle --concurrency 256
read -r el us sy kb < "$OUT/engine-a/time"
awk -v n=$OBJECTS -v el=$el -v us=$us -v sy=$sy -v kb=$kb 'BEGIN {
    printf "(a) zero latency, default concurrency (256): %d objects in %.1f s = %.0f objects/s, daemon CPU %.1f us/object, peak RSS %.0f MB (targets >= 20000/s; RSS < 200 MB)\n",
        n, el, n / el, (us + sy) * 1e6 / n, kb / 1024 }' | tee "$OUT/engine-a/result"
python3 scripts/boto3_baseline.py "http://127.0.0.1:$SIM_PORT" "$OUT/engine-a/manifest.csv" 30 32 | tee "$OUT/engine-a/boto3"
awk -v a="$(awk '{print $0}' "$OUT/engine-a/result" | sed 's/.*= \([0-9]*\) objects\/s.*/\1/')" \
    -v b="$(sed 's/.*= \([0-9]*\) objects\/s.*/\1/' "$OUT/engine-a/boto3")" \
    'BEGIN { printf "    reencryptd / boto3 = %.1fx (target >= 20x)\n", a / b }'
stop_sim

# `reencryptd run` on TASKS tasks over BUCKETS buckets, the manifest sorted by bucket as S3 Inventory reports list
# objects. Usage: many_buckets LABEL TASKS BUCKETS
many_buckets() {
    local label=$1 tasks=$2 buckets=$3
    OBJECTS=$tasks SORTED=1 run_engine engine-$label --buckets "$buckets"
    env $(sim_env "$SIM_PORT") /usr/bin/time -f "%e %U %S %M" -o "$OUT/engine-$label/time" \
        $BIN run --db "$OUT/engine-$label/store.sqlite3" --until-idle --concurrency 256
    read -r el us sy kb < "$OUT/engine-$label/time"
    awk -v label=$label -v n=$tasks -v b=$buckets -v el=$el -v us=$us -v sy=$sy -v kb=$kb 'BEGIN {
        printf "(%s) zero latency, %d tasks over %d buckets (manifest sorted by bucket): %.0f objects/s, daemon CPU %.1f us/object, peak RSS %.0f MB (no target; compare with (a))\n",
            label, n, b, n / el, (us + sy) * 1e6 / n, kb / 1024 }'
    stop_sim
}

# (a2) Many buckets: no target of its own; it watches how claims spread over buckets (each run of a bucket's tasks
# dirties a leaf or two; one task per bucket per claim took this shape from 22,000 to 10,000 objects/s).
many_buckets a2 300000 2000
# (a3) Very many buckets, two tasks each (an account may hold up to a million). No target; it watches that a claim's
# cost and the daemon's memory do not grow with the number of buckets: listing every bucket per claim, and a lane
# kept per bucket ever touched, made this 8,200 objects/s at 147 MB (thirteenth session).
many_buckets a3 200000 100000

# (b) 50 ms latency, 512 in flight
run_engine engine-b --latency-ms 50
env $(sim_env "$SIM_PORT") /usr/bin/time -f "%e %U %S %M" -o "$OUT/engine-b/time" $BIN run --db "$OUT/engine-b/store.sqlite3" \
    --until-idle --concurrency 512
read -r el us sy kb < "$OUT/engine-b/time"
awk -v n=$OBJECTS -v el=$el -v kb=$kb 'BEGIN {
    printf "(b) 50 ms latency, 512 in flight: %.0f objects/s = %.1f%% of 512/0.05 s, peak RSS %.0f MB (target >= 90%%)\n",
        n / el, n / el / 10240 * 100, kb / 1024 }'
stop_sim

# (c) simulator throttling above 2000 requests/s, daemon ceiling 20000
run_engine engine-c --throttle-rps 2000
env $(sim_env "$SIM_PORT") REENCRYPTD_ENGINE_MAX_RPS_PER_BUCKET=20000 /usr/bin/time -f "%e %U %S %M" -o "$OUT/engine-c/time" \
    $BIN run --db "$OUT/engine-c/store.sqlite3" --max-rps 20000 --concurrency 256 &
DAEMON=$!
sleep 10
curl -s "http://127.0.0.1:$SIM_PORT/_sim/counters" > "$OUT/engine-c/at10.json"
sleep 60
curl -s "http://127.0.0.1:$SIM_PORT/_sim/counters" > "$OUT/engine-c/at70.json"
# Signal the daemon itself (not /usr/bin/time around it), so it drains and time(1) writes its figures.
pkill -TERM -x reencryptd || true  # -x: the daemon, not time(1) whose arguments name it too
wait $DAEMON || true
read -r el us sy kb < "$OUT/engine-c/time" || true
python3 - "$OUT/engine-c/at10.json" "$OUT/engine-c/at70.json" "$kb" <<'PY'
import json, sys
a, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
ok = b["updateSuccesses"] - a["updateSuccesses"]
thr = b["throttled"] - a["throttled"]
req = b["requests"] - a["requests"]
print("(c) throttled at 2000/s, ceiling 20000: after the first 10 s, goodput %.0f/s = %.1f%% of 2000 with %.2f%% of responses throttled, peak RSS %.0f MB (targets >= 90%%, <= 5%%)"
      % (ok / 60, ok / 60 / 2000 * 100, thr * 100 / max(1, req), int(sys.argv[3]) / 1024))
PY
stop_sim
echo "(d) peak RSS: see each line above (target < 200 MB throughout)"
fi
