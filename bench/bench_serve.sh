#!/usr/bin/env bash
# bench_serve.sh — figures (not assertions) for `ipr serve`, on loopback:
#  1. POST /v1/route under wrk (a separate process): requests/s and latency
#     percentiles for one short prompt, then for real prompts from the shipped
#     RouterBench test split (rotated per request), with and without the
#     decision log; plus the server's own CPU time per request, which does not
#     depend on what else the machine is running.
#  2. memory: the server's RSS sampled while it answers REQS /v1/route requests.
#  3. gateway added latency: time to first byte of a streamed completion
#     through ipr minus directly from the upstream stub (p50, p90), over
#     persistent connections.
# Usage: bench/bench_serve.sh [ROUTER.ipr [ENCODER.ipre]]
#   Without arguments it trains build/routers/routerbench.ipr with the default
#   encoder (run `ipr encoder fetch` first) if that bundle is missing.
#   env: DURATION (s, default 10), CONNS (64), WRK_THREADS (1), SERVER_THREADS
#   (2), REQS (1000000; 0 skips the memory run), TTFB_N (300).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
IPR=${IPR:-$here/build/ipr}
PY=/usr/bin/python3
DURATION=${DURATION:-10}; CONNS=${CONNS:-64}; WRK_THREADS=${WRK_THREADS:-1}
SERVER_THREADS=${SERVER_THREADS:-2}; REQS=${REQS:-1000000}; TTFB_N=${TTFB_N:-300}
ROUTER=${1:-$here/build/routers/routerbench.ipr}
ENC_ARGS=()
[ -n "${2:-}" ] && ENC_ARGS=(--encoder "$2")
command -v wrk >/dev/null || { echo "bench_serve: wrk is needed (apt-get install wrk)" >&2; exit 1; }
if [ ! -f "$ROUTER" ]; then
    mkdir -p "$(dirname "$ROUTER")"
    echo "== training $ROUTER"
    "$IPR" train --data "$here/data/routerbench/train.jsonl.gz" --registry "$here/data/routerbench/registry.json" \
        -o "$ROUTER" "${ENC_ARGS[@]}" >/dev/null
fi
tmp=$(mktemp -d /tmp/ipr-bench-serve.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

start() { # start NAME ARGS...: sets PORT and SPID
    local name=$1; shift
    "$IPR" serve --router "$ROUTER" "${ENC_ARGS[@]}" --port 0 --threads "$SERVER_THREADS" "$@" >"$tmp/$name.log" 2>&1 &
    SPID=$!; pids+=("$SPID"); PORT=""
    for _ in $(seq 1 200); do
        PORT=$(grep -o 'listening on http://[0-9.]*:[0-9]*' "$tmp/$name.log" 2>/dev/null | sed 's/.*://') && [ -n "$PORT" ] && return 0
        sleep 0.05
    done
    cat "$tmp/$name.log" >&2; exit 1
}
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# run_wrk LUA: wrk against $PORT, plus the server's CPU time per request (a
# figure that does not depend on what else the machine runs) and its mean
# decision latency from /metrics.
run_wrk() {
    local t0 t1 out n
    t0=$(cpu_ticks "$SPID")
    out=$(wrk -t"$WRK_THREADS" -c"$CONNS" -d"${DURATION}s" --latency -s "$1" "http://127.0.0.1:$PORT/v1/route")
    t1=$(cpu_ticks "$SPID")
    echo "$out" | grep -E 'Requests/sec|Latency  |50%|90%|99%|requests in|Non-2xx|Socket errors'
    n=$(echo "$out" | sed -nE 's/^ *([0-9]+) requests in.*/\1/p')
    $PY -c "import sys; t=(int(sys.argv[2])-int(sys.argv[1]))/$(getconf CLK_TCK); n=int(sys.argv[3]); print('   server CPU per request: %.1f us (%d requests) -> %.0f requests/s per fully used core' % (t/n*1e6, n, n/t))" "$t0" "$t1" "${n:-1}"
    curl -s "http://127.0.0.1:$PORT/metrics" | $PY -c "
import sys
v = {l.split()[0].split('{')[0]: float(l.split()[1]) for l in sys.stdin if l.startswith('ipr_decision_latency_seconds_')}
print('   mean decision latency (encode + predict + rule): %.1f us' % (v['ipr_decision_latency_seconds_sum'] / max(1, v['ipr_decision_latency_seconds_count']) * 1e6))"
}

# wrk script: 200 real prompts, one per request in turn
$PY - "$here/data/routerbench/test.jsonl" >"$tmp/route.lua" <<'EOF'
import json, sys
bodies = []
for line in open(sys.argv[1]):
    p = json.loads(line)["prompt"][:4000]
    bodies.append(json.dumps({"prompt": p}))
    if len(bodies) == 200: break
print('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nlocal bodies = {')
for b in bodies:
    k = 0
    while ("]" + "=" * k + "]") in b: k += 1
    print("[" + "=" * k + "[" + b + "]" + "=" * k + "],")
print('}\nlocal i = 0\nrequest = function()\n  i = i % #bodies + 1\n  return wrk.format(nil, nil, nil, bodies[i])\nend')
EOF

cat >"$tmp/short.lua" <<'EOF'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"prompt": "Write a python function to check whether a number is prime."}'
EOF

echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
echo "== router: $ROUTER; server threads $SERVER_THREADS; wrk -t$WRK_THREADS -c$CONNS -d${DURATION}s"

echo "== 1a. /v1/route, no decision log, short prompt"
start short
run_wrk "$tmp/short.lua"
kill "$SPID"; wait "$SPID" 2>/dev/null || true

echo "== 1b. /v1/route, no decision log, real prompts"
start nolog
run_wrk "$tmp/route.lua"
echo "   server RSS after: $(rss_kb "$SPID") kB"
kill "$SPID"; wait "$SPID" 2>/dev/null || true

echo "== 1c. /v1/route, real prompts, decision log on (SQLite WAL, batched)"
start withlog --log "$tmp/decisions.db"
run_wrk "$tmp/route.lua"
kill "$SPID"; wait "$SPID" 2>/dev/null || true
echo "   rows logged: $($PY -c "import sqlite3; print(sqlite3.connect('$tmp/decisions.db').execute('select count(*) from decisions').fetchone()[0])")"

if [ "$REQS" -gt 0 ]; then
    echo "== 2. memory over $REQS /v1/route requests (RSS in kB, sampled after each wrk run)"
    start mem
    wrk -t1 -c"$CONNS" -d2s -s "$tmp/route.lua" "http://127.0.0.1:$PORT/v1/route" >/dev/null
    total=0; line="   after warm-up: $(rss_kb "$SPID")"
    while [ "$total" -lt "$REQS" ]; do
        n=$(wrk -t"$WRK_THREADS" -c"$CONNS" -d10s -s "$tmp/route.lua" "http://127.0.0.1:$PORT/v1/route" \
            | sed -nE 's/^ *([0-9]+) requests in.*/\1/p')
        total=$((total + ${n:-0}))
        [ "${n:-0}" -gt 0 ] || break
        line="$line | $total: $(rss_kb "$SPID")"
    done
    echo "$line"
    kill "$SPID"; wait "$SPID" 2>/dev/null || true
fi

echo "== 3. gateway added latency: streamed completion, time to first byte"
node "$here/tests/node/stub.js" 0 >"$tmp/stub.log" 2>&1 &
pids+=($!)
SP=""
for _ in $(seq 1 100); do SP=$(awk '/stub listening/ {print $3}' "$tmp/stub.log"); [ -n "$SP" ] && break; sleep 0.05; done
models=$("$IPR" route --router "$ROUTER" "${ENC_ARGS[@]}" --explain "hello" | $PY -c 'import json,sys; print(" ".join(c["model"] for c in json.load(sys.stdin)["explanation"]["candidates"]))')
$PY - "$SP" $models >"$tmp/gw.json" <<'EOF'
import json, sys
sp = sys.argv[1]
print(json.dumps({"upstreams": {m: {"base_url": "http://127.0.0.1:%s/ok/v1" % sp} for m in sys.argv[2:]}}))
EOF
"$IPR" serve --router "$ROUTER" "${ENC_ARGS[@]}" --config "$tmp/gw.json" --port 0 --threads "$SERVER_THREADS" >"$tmp/gw.log" 2>&1 &
SPID=$!; pids+=("$SPID"); PORT=""
for _ in $(seq 1 200); do PORT=$(grep -o 'listening on http://[0-9.]*:[0-9]*' "$tmp/gw.log" | sed 's/.*://') && [ -n "$PORT" ] && break; sleep 0.05; done
$PY - "$SP" "$PORT" "$TTFB_N" <<'EOF'
import http.client, json, sys, time
sp, ip, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
body = json.dumps({"model": "ipr", "stream": True,
                   "messages": [{"role": "user", "content": "Write a python function to check whether a number is prime."}]})
def ttfb(port, path, k):
    c = http.client.HTTPConnection("127.0.0.1", port)
    out = []
    for _ in range(k):
        t0 = time.perf_counter()
        c.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        r = c.getresponse()
        r.read(1)
        out.append(time.perf_counter() - t0)
        r.read()
    return sorted(out)
pct = lambda v, q: v[min(len(v) - 1, int(q * len(v)))] * 1e3
ttfb(sp, "/ok/v1/chat/completions", 20); ttfb(ip, "/v1/chat/completions", 20)   # warm up
d = ttfb(sp, "/ok/v1/chat/completions", n)
g = ttfb(ip, "/v1/chat/completions", n)
print("   direct to stub : p50 %.3f ms  p90 %.3f ms" % (pct(d, .5), pct(d, .9)))
print("   through ipr    : p50 %.3f ms  p90 %.3f ms" % (pct(g, .5), pct(g, .9)))
print("   added by ipr   : p50 %.3f ms  p90 %.3f ms  (includes routing the prompt)" % (pct(g, .5) - pct(d, .5), pct(g, .9) - pct(d, .9)))
EOF
