#!/usr/bin/env bash
# extensibility.sh — IPR's "add a model without retraining" claim, measured:
# train a RouterBench router on 10 of its 11 models, `ipr add-model` the 11th
# (timed), and compare the test ARQGC of the result with a router trained on
# all 11 at once. Usage: bench/extensibility.sh [MODEL...]
# (default: claude-instant-v1 mistralai/mixtral-8x7b-chat). Figures only.
set -euo pipefail
cd "$(dirname "$0")/.."
IPR=${IPR:-build/ipr}
d=data/routerbench
out=build/bench/extensibility
mkdir -p "$out"
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(claude-instant-v1 mistralai/mixtral-8x7b-chat)

arqgc() { # router -> test ARQGC of its default rule
    "$IPR" eval --router "$1" --data "$d/test.jsonl" --expected-cost auto --train "$d/train.jsonl" \
        --json "$out/eval.json" >/dev/null
    python3 -c 'import json,sys; print("%.4f" % json.load(open(sys.argv[1]))["routers"]["ipr"]["arqgc"])' "$out/eval.json"
}

all=$(python3 -c 'import json; print(",".join(m["name"] for m in json.load(open("data/routerbench/registry.json"))["models"]))')
"$IPR" train --quiet --data "$d/train.jsonl" --registry "$d/registry.json" -o "$out/all.ipr" >/dev/null
base=$(arqgc "$out/all.ipr")
echo "router trained on all 11 models: test ARQGC $base"
for m in "${models[@]}"; do
    rest=$(tr ',' '\n' <<<"$all" | grep -vxF "$m" | paste -sd,)
    safe=${m//\//_}
    "$IPR" train --quiet --data "$d/train.jsonl" --registry "$d/registry.json" --models "$rest" \
        -o "$out/without-$safe.ipr" >/dev/null
    t0=$(date +%s.%N)
    "$IPR" add-model --quiet --router "$out/without-$safe.ipr" --model "$m" --data "$d/train.jsonl" \
        --registry "$d/registry.json" -o "$out/added-$safe.ipr" >"$out/add-$safe.json"
    t1=$(date +%s.%N)
    a=$(arqgc "$out/added-$safe.ipr")
    awk -v m="$m" -v t="$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" -v a="$a" -v b="$base" \
        'BEGIN { printf "%-32s add-model %.2f s wall; test ARQGC %s (all-at-once %s, difference %+.4f)\n", m, t, a, b, a - b }'
done
