#!/usr/bin/env bash
# test_data_shipped.sh — the shipped data (data/) through the built `ipr`:
# prompt and model counts of every file, the RouterBench figures of the issue
# (GPT-4-1106 mean quality 0.874, mean cost $0.00503 on test), registries that
# parse and match their datasets, and bad input rejected with file:line.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
ipr=${IPR:-$here/build/ipr}
tmp=$(mktemp -d /tmp/ipr_test_shipped.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
expect() { # DESCRIPTION PATTERN TEXT
    if grep -qE -- "$2" <<<"$3"; then ok; else bad "$1: no /$2/ in:"; printf '%s\n' "$3" | head -20 >&2; fi
}

counts() { # FILE PROMPTS MODELS
    local out
    out=$("$ipr" data stats "$here/data/$1" 2>&1) || { bad "ipr data stats $1 failed: $out"; return; }
    expect "$1 prompts" "^  prompts  $2\$" "$out"
    expect "$1 models" "^  models   $3\$" "$out"
}
counts routerbench/train.jsonl 2225 11
counts routerbench/test.jsonl 953 11
counts routerdc/train.jsonl 7598 7
counts routerdc/test.jsonl 13002 7
counts llmrouter/train.jsonl 5608 9
counts llmrouter/test.jsonl 500 9

out=$("$ipr" data stats "$here/data/routerbench/test.jsonl" --registry "$here/data/routerbench/registry.json" 2>&1)
expect "gpt-4 quality and cost" "gpt-4-1106-preview +947 +99.4% +0.880 +0.874 +0.00503 " "$out"
expect "missing labels said" "missing labels excluded" "$out"
out=$("$ipr" data stats "$here/data/routerbench/train.jsonl" --registry "$here/data/routerbench/registry.json" 2>&1)
expect "registry reproduces the mean training cost" "gpt-4-1106-preview .* 0.00504 +0.00504\$" "$out"
for pool in routerdc llmrouter; do
    out=$("$ipr" data stats "$here/data/$pool/test.jsonl" --registry "$here/data/$pool/registry.json" 2>&1)
    if grep -q "(absent)" <<<"$out"; then bad "$pool registry lacks a model of its data"; else ok; fi
done

# bad input: named with file and line, and a failed import writes nothing
printf '{"id":"a","prompt":"x","scores":{"m":1}}\n{"id":"a","prompt":"y","scores":{}}\n' > "$tmp/dup.jsonl"
out=$("$ipr" data stats "$tmp/dup.jsonl" 2>&1) && bad "duplicate id accepted" || ok
expect "duplicate id message" "dup.jsonl:2: duplicate id \"a\" \(first on line 1\)" "$out"
printf '[{"question": "q", "scores": {"m": 3}}]' > "$tmp/x_train.json"
out=$("$ipr" import --format routerdc "$tmp/x_train.json" -o "$tmp/out.jsonl" 2>&1) && bad "score 3 accepted" || ok
expect "import error message" "x_train.json:1: item 0: score 3 of \"m\" is outside \[0,1\]" "$out"
[ -e "$tmp/out.jsonl" ] && bad "failed import wrote output" || ok

echo "test_data_shipped.sh: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
