#!/usr/bin/env bash
# scale.sh — end-to-end training at IPR's training-set scale: synthetic
# datasets of N prompts x 11 models made from the RouterBench training prompts
# (bench/make_synthetic.py), then `ipr train` (read, view, embed, train), timed
# with peak RSS. Figures only. Usage: bench/scale.sh [N...] (default 100000 300000)
# Extra `ipr train` flags in IPR_TRAIN_FLAGS (e.g. "--input full --patience 3").
set -euo pipefail
cd "$(dirname "$0")/.."
IPR=${IPR:-build/ipr}
out=build/bench/scale
mkdir -p "$out"
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(100000 300000)
# Files of at most 500k rows (the dataset reader takes files up to 2 GiB).
part=500000
for n in "${sizes[@]}"; do
    args=()
    for ((k = 0; k * part < n; k++)); do
        rows=$(( n - k * part < part ? n - k * part : part ))
        data=$out/syn-$n-$k.jsonl
        [ -f "$data" ] || python3 bench/make_synthetic.py data/routerbench/train.jsonl.gz "$rows" "$data" "$((k + 1))" "syn$k"
        args+=(--data "$data")
    done
    /usr/bin/time -f "%e %M" -o "$out/time-$n" "$IPR" train --quiet ${IPR_TRAIN_FLAGS:-} "${args[@]}" \
        --registry data/routerbench/registry.json -o "$out/syn-$n.ipr" >"$out/train-$n.json"
    rm -f "$out"/syn-"$n"-*.jsonl
    read -r secs kb <"$out/time-$n"
    emb=$(python3 -c 'import json,sys; print("%.1f" % json.load(open(sys.argv[1]))["embed_seconds"])' "$out/train-$n.json")
    tr=$(python3 -c 'import json,sys; print("%.1f" % json.load(open(sys.argv[1]))["validation"]["train_seconds"])' "$out/train-$n.json")
    printf '%8d prompts x 11 models: %7.1f s wall (embed %s s, train %s s), peak RSS %.0f MiB\n' \
        "$n" "$secs" "$emb" "$tr" "$((kb / 1024))"
done
