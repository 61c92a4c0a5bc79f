#!/usr/bin/env bash
# test_eval_reference.sh — `ipr eval --json` against the independent numpy
# implementation in tests/eval_reference.py, which recomputes the curves,
# ARQGC and savings from `--dump` and re-applies the tau rule to every dumped
# decision. Runs on a seeded synthetic split (missing labels, fractional
# scores, ties) with every rule, and on the shipped RouterBench split when
# data/routerbench/ exists. Needs $IPR and /usr/bin/python3 with numpy.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
IPR=${IPR:-$root/build/ipr}
PY=/usr/bin/python3
passed=0; failed=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

ok()   { passed=$((passed + 1)); echo "ok   $1"; }
bad()  { failed=$((failed + 1)); echo "FAIL $1"; }

if ! "$PY" -c 'import numpy' 2>/dev/null; then
    echo "skip: $PY has no numpy"
    echo "0 passed, 0 failed"
    exit 0
fi

# A synthetic split: 240 test and 400 train prompts, 5 models with distinct
# price levels, 0/1 and fractional labels, about 3% missing labels.
"$PY" - "$tmp" <<'EOF'
import json, random, sys
out = sys.argv[1]
rnd = random.Random(7)
models = ["big", "mid-a", "mid-b", "small", "tiny"]
skill = [0.85, 0.7, 0.68, 0.55, 0.4]
price = [0.01, 0.003, 0.003, 0.0008, 0.0002]
for split, n in (("test", 240), ("train", 400)):
    with open("%s/%s.jsonl" % (out, split), "w") as f:
        for i in range(n):
            hard = rnd.random()
            scores, costs = {}, {}
            for m, sk, pr in zip(models, skill, price):
                costs[m] = round(pr * (0.5 + rnd.random()), 8)
                if rnd.random() < 0.03:
                    continue
                p = max(0.0, min(1.0, sk - 0.5 * hard + 0.25))
                scores[m] = float(rnd.random() < p) if i % 3 else round(min(1.0, p * rnd.random() + 0.1), 3)
            words = ["alpha", "beta", "gamma", "delta", "code", "math", "story", "list"]
            text = " ".join(rnd.choice(words) for _ in range(3 + int(10 * hard))) + " %d" % i
            f.write(json.dumps({"id": "%s.%d" % (split, i), "prompt": text,
                                "scores": scores, "costs": costs}) + "\n")
json.dump({"models": [{"name": m, "family": "synthetic", "price_in": p * 1e5, "price_out": p * 1e5,
                       "mean_out_tokens": 10} for m, p in zip(models, price)], "fallback": "big"},
          open(out + "/registry.json", "w"))
EOF

check() { # name, data, train, extra eval args...; $WHO: the dumped routers
    local name=$1 data=$2 train=$3; shift 3
    local who
    for who in ${WHO:-oracle random}; do
        if ! IPR_HOME=${EVAL_HOME:-$tmp/no-home} "$IPR" eval --data "$data" --train "$train" --expected-cost mean-train \
                --json "$tmp/r.json" --dump "$tmp/d.jsonl" --dump-router "$who" "$@" >"$tmp/out.txt" 2>"$tmp/err.txt"; then
            cat "$tmp/err.txt"; bad "$name $who: ipr eval failed"; continue
        fi
        local delta=0
        case " $* " in *" --delta "*) delta=$(sed -E 's/.*--delta ([^ ]+).*/\1/' <<<"$*");; esac
        if "$PY" "$here/eval_reference.py" --data "$data" --train "$train" --dump "$tmp/d.jsonl" \
                --json "$tmp/r.json" --router "$who" --delta "$delta" >"$tmp/ref.txt" 2>&1; then
            ok "$name $who $*"
        else
            tail -n 12 "$tmp/ref.txt"; bad "$name $who $*: reference disagrees"
        fi
    done
}

check synthetic "$tmp/test.jsonl" "$tmp/train.jsonl" --rule range
check synthetic "$tmp/test.jsonl" "$tmp/train.jsonl" --rule dynmax --delta 0.05
check synthetic "$tmp/test.jsonl" "$tmp/train.jsonl" --rule difference --seed 9
check synthetic "$tmp/test.jsonl" "$tmp/train.jsonl" --rule range --models big,small,tiny

# A trained router's decisions under all three rules (needs the encoder).
home=${IPR_HOME:-$HOME/.cache/ipr}
if [ -f "$home/encoder/glove6b-100d.ipre" ]; then
    if IPR_HOME=$home "$IPR" train --data "$tmp/train.jsonl" --registry "$tmp/registry.json" \
            -o "$tmp/router.ipr" >"$tmp/train.txt" 2>&1; then
        if IPR_HOME=$home "$IPR" eval --router "$tmp/router.ipr" --data "$tmp/test.jsonl" --train "$tmp/train.jsonl" \
                --expected-cost mean-train --json "$tmp/r.json" --dump "$tmp/d.jsonl" >"$tmp/out.txt" 2>"$tmp/err.txt" &&
           "$PY" "$here/eval_reference.py" --data "$tmp/test.jsonl" --train "$tmp/train.jsonl" \
                --dump "$tmp/d.jsonl" --json "$tmp/r.json" >"$tmp/ref.txt" 2>&1; then
            ok "synthetic ipr router, all rules"
        else
            cat "$tmp/err.txt"; tail -n 12 "$tmp/ref.txt"; bad "synthetic ipr router, all rules"
        fi
    else
        tail -n 5 "$tmp/train.txt"; bad "ipr train on the synthetic split"
    fi
else
    echo "skip: no encoder at $home/encoder (router dump)"
fi

rb=$root/data/routerbench
if [ -f "$rb/test.jsonl" ] && { [ -f "$rb/train.jsonl" ] || [ -f "$rb/train.jsonl.gz" ]; }; then
    check routerbench "$rb/test.jsonl" "$rb/train.jsonl" --rule range
    # the k-NN baseline too, when the default encoder is installed
    if [ -f "$home/encoder/glove6b-100d.ipre" ]; then
        WHO=knn EVAL_HOME=$home check routerbench "$rb/test.jsonl" "$rb/train.jsonl" --rule range --knn-k 50
    else
        echo "skip: no encoder at $home/encoder (k-NN dump)"
    fi
else
    echo "skip: $rb not present"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
