#!/usr/bin/env bash
# test_eval_cli.sh — `ipr eval` end to end on small generated files: the JSON
# schema of DESIGN.md §5, well-formed SVG (linear and log axes), Markdown,
# degenerate splits, and clear errors (exit code and message) for bad input.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
IPR=${IPR:-$root/build/ipr}
PY=/usr/bin/python3
passed=0; failed=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export IPR_HOME=$tmp/home   # no default encoder: k-NN only where asked for

ok()  { passed=$((passed + 1)); echo "ok   $1"; }
bad() { failed=$((failed + 1)); echo "FAIL $1"; }
expect_rc() { # want, name, cmd...
    local want=$1 name=$2; shift 2
    "$@" >"$tmp/out" 2>"$tmp/err"; local rc=$?
    if [ "$rc" -eq "$want" ]; then ok "$name"; else bad "$name (exit $rc, want $want)"; cat "$tmp/err"; fi
}
expect_err() { # pattern, name: the last command's stderr contains pattern
    if grep -q -- "$1" "$tmp/err"; then ok "$2"; else bad "$2: stderr lacks '$1'"; cat "$tmp/err"; fi
}

"$PY" - "$tmp" <<'EOF'
import json, random, sys
out = sys.argv[1]
rnd = random.Random(3)
models = ["big", "mid", "small"]
price = [0.01, 0.002, 0.0003]
with open(out + "/test.jsonl", "w") as f, open(out + "/flat.jsonl", "w") as g:
    for i in range(60):
        sc = {m: float(rnd.random() < p) for m, p in zip(models, (0.9, 0.7, 0.5))}
        if i == 5:
            del sc["mid"]                      # a missing label counts as 0
        co = {m: pr for m, pr in zip(models, price)}
        f.write(json.dumps({"id": "t%d" % i, "prompt": "p %d" % i, "scores": sc, "costs": co}) + "\n")
        g.write(json.dumps({"id": "t%d" % i, "prompt": "p %d" % i, "scores": sc,
                            "costs": {m: 0.001 for m in models}}) + "\n")
    json.dump({"models": [{"name": m, "price_in": p * 1e5, "price_out": p * 1e5, "mean_out_tokens": 10}
                          for m, p in zip(models, price)], "fallback": "big"}, open(out + "/reg.json", "w"))
EOF

expect_rc 0 "baseline mode runs" "$IPR" eval --data "$tmp/test.jsonl" --registry "$tmp/reg.json" \
    --json "$tmp/r.json" --svg "$tmp/r.svg" --markdown "$tmp/r.md"
if "$PY" - "$tmp/r.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
for k in ("dataset", "n_prompts", "strongest", "cheapest", "candidates", "routers"):
    assert k in r, k
assert r["n_prompts"] == 60 and r["strongest"] == "big" and r["cheapest"] == "small"
assert set(r["routers"]) == {"random", "oracle", "single-models"}, r["routers"].keys()
for name, e in r["routers"].items():
    for k in ("arqgc", "cost_save_at_parity", "cost_save_at_pgr50", "cost_save_at_pgr80",
              "cost_save_at_pgr95", "max_quality", "curve"):
        assert k in e, (name, k)
    for p in e["curve"]:
        assert set(p) >= {"tau", "quality", "cost", "share"}
        assert abs(sum(p["share"].values()) - 1) < 1e-12
assert len(r["routers"]["oracle"]["curve"]) == 101
assert r["routers"]["oracle"]["curve"][100]["tau"] == 1.0
assert len(r["routers"]["single-models"]["curve"]) == 3
assert r["routers"]["single-models"]["cost_save_at_parity"] == 0
assert r["routers"]["oracle"]["qe"]["top1"] == 1.0
EOF
then ok "JSON schema"; else bad "JSON schema"; fi
if "$PY" -c "import sys, xml.etree.ElementTree as E; t = E.parse(sys.argv[1]); s = open(sys.argv[1]).read(); assert 'Mean cost per prompt (USD)' in s and 'oracle' in s" "$tmp/r.svg"; then
    ok "SVG well-formed with axis labels"; else bad "SVG well-formed"; fi
grep -q "| oracle |" "$tmp/r.md" && ok "Markdown table" || bad "Markdown table"

expect_rc 0 "log-x SVG" "$IPR" eval --data "$tmp/test.jsonl" --registry "$tmp/reg.json" --svg "$tmp/l.svg" --log-x
"$PY" -c "import sys, xml.etree.ElementTree as E; E.parse(sys.argv[1])" "$tmp/l.svg" && ok "log-x SVG well-formed" || bad "log-x SVG well-formed"

expect_rc 0 "narrowed candidates" "$IPR" eval --data "$tmp/test.jsonl" --registry "$tmp/reg.json" --models big,small --json "$tmp/n.json"
"$PY" -c "import json,sys; r=json.load(open(sys.argv[1])); assert r['candidates']==['big','small'], r['candidates']" "$tmp/n.json" \
    && ok "--models narrows" || bad "--models narrows"

expect_rc 0 "degenerate split (equal costs)" "$IPR" eval --data "$tmp/flat.jsonl" --expected-cost mean-train --train "$tmp/flat.jsonl" --json "$tmp/f.json"
"$PY" -c "import json,sys; r=json.load(open(sys.argv[1])); assert r['routers']['oracle']['arqgc'] is None and r['notes']" "$tmp/f.json" \
    && ok "degenerate: arqgc null with a note" || bad "degenerate: arqgc null with a note"

expect_rc 2 "no --data" "$IPR" eval --registry "$tmp/reg.json"
expect_rc 2 "unknown option" "$IPR" eval --data "$tmp/test.jsonl" --registry "$tmp/reg.json" --bogus
expect_rc 1 "unknown model" "$IPR" eval --data "$tmp/test.jsonl" --registry "$tmp/reg.json" --models big,nope
expect_err "nope" "unknown model named"
expect_rc 1 "bad rule" "$IPR" eval --data "$tmp/test.jsonl" --registry "$tmp/reg.json" --rule sideways
expect_rc 1 "missing file" "$IPR" eval --data "$tmp/none.jsonl" --registry "$tmp/reg.json"
expect_err "none.jsonl" "missing file named"
expect_rc 1 "mean-train without --train" "$IPR" eval --data "$tmp/test.jsonl" --registry "$tmp/reg.json" --expected-cost mean-train
expect_rc 1 "dump of an absent k-NN" "$IPR" eval --data "$tmp/test.jsonl" --registry "$tmp/reg.json" --dump "$tmp/d.jsonl" --dump-router knn
[ ! -e "$tmp/d.jsonl" ] && ok "failed dump leaves no file" || bad "failed dump leaves no file"
printf '{"id": "x", "prompt": "p", "scores": {"big": 1' > "$tmp/broken.jsonl"
expect_rc 1 "truncated data" "$IPR" eval --data "$tmp/broken.jsonl" --registry "$tmp/reg.json"
expect_rc 2 "negative delta" "$IPR" eval --data "$tmp/test.jsonl" --registry "$tmp/reg.json" --delta -1

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
