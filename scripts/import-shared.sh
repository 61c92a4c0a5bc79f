#!/usr/bin/env bash
# Regenerates the shipped data in data/ from the public sources in ../shared/data
# (or the folder given as $1) with `ipr import`, so the conversion is reproducible.
# Needs build/ipr (run `make` first). Writes atomically file by file; files
# larger than 4 MB are written gzip'd (NAME.jsonl.gz; every ipr command also
# accepts NAME.jsonl for them). See data/README.md and docs/data.md.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
src=$(cd "${1:-$here/../shared/data}" && pwd)
ipr=${IPR:-$here/build/ipr}
out=$here/data
[ -x "$ipr" ] || { echo "import-shared: $ipr not built; run make" >&2; exit 1; }
[ -d "$src/routerbench_zs" ] || { echo "import-shared: $src has no routerbench_zs/" >&2; exit 1; }

# Runs a command quietly; shows its output only when it fails.
run() {
    local log
    log=$("$@" 2>&1) || { printf '%s\n' "$log" >&2; echo "import-shared: failed: $*" >&2; exit 1; }
}

# ipr import into a temporary name, then keep it plain or gzip'd by size.
convert() { # FORMAT OUT_BASE INPUT...
    local fmt=$1 base=$2; shift 2
    run "$ipr" import --format "$fmt" "$@" -o "$base.jsonl"
    rm -f "$base.jsonl.gz"
    if [ "$(stat -c %s "$base.jsonl")" -gt 4000000 ]; then
        run "$ipr" import --format "$fmt" "$@" -o "$base.jsonl.gz"
        rm -f "$base.jsonl"
    fi
    echo "  $(cd "$here" && ls "${base#$here/}".jsonl*) ($(stat -c %s "$base".jsonl*) bytes)"
}

echo "routerbench (RouterDC's routerbench_zs: ARC-Challenge, MBPP, Winogrande)"
rb=$src/routerbench_zs
convert routerbench "$out/routerbench/train" "$rb/arc_challenge_train.csv" "$rb/mbpp_train.csv" "$rb/winograde_train.csv"
convert routerbench "$out/routerbench/test" "$rb/arc_challenge_test.csv" "$rb/mbpp_test.csv" "$rb/winograde_test.csv"
# list prices (prices.json) + mean output tokens fitted to the training costs
"$ipr" data fit-registry "$out/routerbench/train.jsonl" --registry "$out/routerbench/prices.json" \
    -o "$out/routerbench/registry.json"

echo "routerdc (split2_model7: RouterDC's own train/test files; single files are test-only)"
dc=$src/routerdc_split2_model7
convert routerdc "$out/routerdc/train" "$dc/arc_challenge_train.json" "$dc/arc_easy_train.json" \
    "$dc/cmmlu_train.json" "$dc/gsm8k-train.json" "$dc/humaneval_train.json" "$dc/mmlu_train.json"
convert routerdc "$out/routerdc/test" "$dc/arc_challenge_test.json" "$dc/arc_easy_test.json" \
    "$dc/cmmlu_test.json" "$dc/gsm8k-test.json" "$dc/humaneval_test.json" "$dc/mmlu_test.json" \
    "$dc/MATH_prealgebra.json" "$dc/ceval.json" "$dc/javascript.json" "$dc/mbpp.json"

echo "llmrouter (dcrouter_preprocessed train/test)"
convert llmrouter "$out/llmrouter/train" "$src/llmrouter/train.json"
convert llmrouter "$out/llmrouter/test" "$src/llmrouter/test.json"

big=$(find "$out" -type f -size +5M)
[ -z "$big" ] || { echo "import-shared: files over 5 MB: $big" >&2; exit 1; }
echo "done: $(du -sh "$out" | cut -f1) in data/"
