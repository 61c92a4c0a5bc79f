#!/usr/bin/env bash
# test_encoder_cli.sh — `ipr encoder convert|info` and `ipr embed` end to end
# on a tiny generated vocabulary (no network): the cache is identical for 1
# and 3 threads, bad input fails with a message and a non-zero exit, and a
# failed conversion leaves no file.
set -u
IPR=${IPR:-$(cd "$(dirname "$0")/.." && pwd)/build/ipr}
passed=0; failed=0
ok()   { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL: $*" >&2; }
d=$(mktemp -d /tmp/ipr_test_enccli.XXXXXX)
trap 'rm -rf "$d"' EXIT
cat > "$d/v.json" <<'J'
{"dimensions":3,"size":4,"words":["the","king","queen","carrot"],
 "vectors":{"the":[0.1,0.2,0.3,0.4,0],"king":[1,0,0.5,1.1,1],"queen":[0.9,0.1,0.5,1.0,2],"carrot":[-1,1,0,1.4,3]},
 "unkVector":[0,0,0,-1]}
J
"$IPR" encoder convert "$d/v.json" -o "$d/v.ipre" 2>/dev/null && ok || fail "convert"
[ "$("$IPR" encoder info "$d/v.ipre" | awk '$1=="words"{print $2}')" = 4 ] && ok || fail "info words"
[ "$("$IPR" encoder info "$d/v.ipre" --word king)" = "1 0 0.5" ] && ok || fail "info --word"
"$IPR" encoder info "$d/v.ipre" --word kubernetes >/dev/null 2>&1 && fail "unknown word accepted" || ok
for i in $(seq 1 40); do
    printf '{"id":"p%d","prompt":"The king %d asks the queen about carrot %d?","scores":{"m":%d}}\n' $i $i $i $((i % 2))
done > "$d/data.jsonl"
IPR_PROGRESS=0 "$IPR" embed --encoder "$d/v.ipre" --data "$d/data.jsonl" -o "$d/a.emb" --threads 1 2>/dev/null && ok || fail "embed 1 thread"
IPR_PROGRESS=0 "$IPR" embed --encoder "$d/v.ipre" --data "$d/data.jsonl" -o "$d/b.emb" --threads 3 2>/dev/null && ok || fail "embed 3 threads"
cmp -s "$d/a.emb" "$d/b.emb" && ok || fail "thread count changed the cache"
IPR_PROGRESS=0 "$IPR" embed --encoder "$d/v.ipre" --data "$d/data.jsonl" -o "$d/c.emb" --view-data "$d/data.jsonl" 2>/dev/null && ok || fail "embed --view-data"
head -c 300 "$d/v.ipre" > "$d/trunc.ipre"
msg=$("$IPR" encoder info "$d/trunc.ipre" 2>&1) && fail "truncated file accepted" || { grep -q truncated <<<"$msg" && ok || fail "message: $msg"; }
msg=$("$IPR" embed --encoder "$d/trunc.ipre" --data "$d/data.jsonl" -o "$d/x.emb" 2>&1) && fail "embed with bad encoder" || ok
[ ! -e "$d/x.emb" ] && ok || fail "embed left a file"
head -c 200 "$d/v.json" > "$d/bad.json"
"$IPR" encoder convert "$d/bad.json" -o "$d/bad.ipre" 2>/dev/null && fail "bad JSON accepted" || ok
[ -z "$(ls "$d" | grep bad.ipre)" ] && ok || fail "failed convert left a file"
"$IPR" encoder 2>/dev/null && fail "no subcommand accepted" || ok
echo "$(basename "$0"): $passed passed, $failed failed"
[ "$failed" -eq 0 ]
