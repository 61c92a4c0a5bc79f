#!/usr/bin/python3
"""eval_reference.py — an independent numpy implementation of the metrics of
DESIGN.md §4 (as pinned down in include/ipr/eval.h), checked against
`ipr eval --json` from the per-(prompt, tau) decisions of `ipr eval --dump`.

    eval_reference.py --data TEST.jsonl --dump D.jsonl --json R.json
                      [--train TRAIN.jsonl] [--router NAME] [--delta D]

For every rule in the dump it recomputes each tau's mean quality, mean cost and
shares from the chosen models and the test data, then ARQGC, the savings at
parity and PGR 50/80/95 % and the maximum quality, and compares them with the
JSON entry (`ipr-<rule>` for an ipr dump, else --router NAME) to 1e-9. With
--train (expected cost = mean training cost per model, the JSON's
"expected_cost" must be "mean-train") it also re-applies the tau rule to the
dumped predictions and checks every decision. Exit status 0 when all agree.
Only numpy and the standard library; /usr/bin/python3 on Debian.
"""
import argparse
import gzip
import json
import math
import os
import sys

import numpy as np

EPS = 1e-12  # the parity epsilon of include/ipr/eval.h
TOL = 1e-9


def read_jsonl(path):
    """JSON Lines, gzip-compressed when the name ends in .gz; like ipr, a
    missing "x.jsonl" falls back to "x.jsonl.gz"."""
    if not os.path.exists(path) and os.path.exists(path + ".gz"):
        path += ".gz"
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def truth(rows, cands):
    """q (missing label = 0) and c (true cost; must be present) over cands."""
    n, m = len(rows), len(cands)
    q = np.zeros((n, m))
    c = np.full((n, m), np.nan)
    for i, r in enumerate(rows):
        for j, name in enumerate(cands):
            s = (r.get("scores") or {}).get(name)
            q[i, j] = 0.0 if s is None else float(s)
            v = (r.get("costs") or {}).get(name)
            if v is not None:
                c[i, j] = float(v)
    if np.isnan(c).any():
        sys.exit("eval_reference: the test data lacks some costs; the reference needs them all")
    return q, c


def ref_models(q, c):
    Q = q.sum(0) / len(q)
    C = c.sum(0) / len(c)
    s = 0
    w = 0
    for j in range(1, q.shape[1]):
        if Q[j] > Q[s] or (Q[j] == Q[s] and C[j] < C[s]):
            s = j
        if C[j] < C[w] or (C[j] == C[w] and Q[j] > Q[w]):
            w = j
    return Q, C, s, w


def arqgc(xs, ys):
    pts = [(0.0, 0.0), (1.0, 1.0)]
    for x, y in zip(xs, ys):
        if math.isnan(x) or math.isnan(y) or x > 1.0:
            continue
        pts.append((min(max(x, 0.0), 1.0), min(max(y, 0.0), 1.0)))
    pts.sort()
    best_at_x = {}
    for x, y in pts:
        best_at_x[x] = max(best_at_x.get(x, -1.0), y)
    frontier, top = [], -1.0
    for x in sorted(best_at_x):
        y = best_at_x[x]
        if y >= top:
            frontier.append((x, y))
            top = y
    hull = []
    for p in frontier:
        while len(hull) >= 2:
            (ox, oy), (ax, ay) = hull[-2], hull[-1]
            cross = (ax - ox) * (p[1] - oy) - (ay - oy) * (p[0] - ox)
            if cross < 0:
                break
            hull.pop()
        hull.append(p)
    hx = np.array([p[0] for p in hull])
    hy = np.array([p[1] for p in hull])
    return float(np.sum(np.diff(hx) * (hy[1:] + hy[:-1]) / 2.0))


def saving(Qp, Cp, qs, qw, cs, p):
    target = qs if p == 1.0 else qw + p * (qs - qw)
    tol = EPS * max(1.0, abs(target))
    ok = [cc for qq, cc in zip(Qp, Cp) if qq >= target - tol]
    return None if not ok else 1.0 - min(ok) / cs


def apply_rule(rule, tau, delta, pred, cost):
    hi, lo = pred.max(), pred.min()
    if rule == "range":
        thr = lo if tau >= 1.0 else hi - tau * (hi - lo)
    elif rule == "dynmax":
        thr = (1.0 - tau) * hi - delta
    else:
        thr = hi - tau
    thr = min(thr, hi)
    best = -1
    for j in range(len(pred)):
        if pred[j] < thr:
            continue
        if best < 0 or cost[j] < cost[best] or (cost[j] == cost[best] and pred[j] > pred[best]):
            best = j
    return best


def close(a, b):
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= TOL


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--dump", required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--train")
    ap.add_argument("--router")
    ap.add_argument("--delta", type=float, default=0.0)
    a = ap.parse_args()

    res = json.load(open(a.json, encoding="utf-8"))
    cands = res["candidates"]
    rows = read_jsonl(a.data)
    row_of = {r["id"]: i for i, r in enumerate(rows)}
    q, c = truth(rows, cands)
    n, m = q.shape
    Q1, C1, s, w = ref_models(q, c)
    failures = []

    def expect(what, got, want):
        if not close(got, want):
            failures.append("%s: reference %r, ipr %r" % (what, got, want))

    if cands[s] != res["strongest"]:
        failures.append("strongest: reference %s, ipr %s" % (cands[s], res["strongest"]))
    if cands[w] != res["cheapest"]:
        failures.append("cheapest: reference %s, ipr %s" % (cands[w], res["cheapest"]))
    qs, cs, qw, cw = Q1[s], C1[s], Q1[w], C1[w]

    E = None
    if a.train:
        if res.get("expected_cost") != "mean-train":
            sys.exit("eval_reference: --train given but the run used expected cost %r" % res.get("expected_cost"))
        tr = read_jsonl(a.train)
        E = np.zeros(m)
        for j, name in enumerate(cands):
            vals = [float(r["costs"][name]) for r in tr if name in (r.get("costs") or {})]
            E[j] = sum(vals) / len(vals)  # plain sum in file order, as the C code does

    # decisions[rule][tau] = array of chosen candidate per prompt
    col = {name: j for j, name in enumerate(cands)}
    decisions = {}
    n_checked = 0
    with open(a.dump, encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            per_tau = decisions.setdefault(d["rule"], {})
            ch = per_tau.setdefault(d["tau"], np.full(n, -1))
            i = row_of[d["id"]]
            ch[i] = col[d["model"]]
            if E is not None:
                pred = np.array([d["pred"][name] for name in cands])
                want = apply_rule(d["rule"], d["tau"], a.delta, pred, E)
                if want != ch[i] and len(failures) < 20:
                    failures.append("decision %s tau %g rule %s: reference %s, dump %s"
                                    % (d["id"], d["tau"], d["rule"], cands[want], d["model"]))
                n_checked += 1

    for rule, per_tau in decisions.items():
        name = a.router if a.router else "ipr-" + rule
        entry = res["routers"].get(name)
        if entry is None:
            failures.append("no router %s in %s" % (name, a.json))
            continue
        taus = sorted(per_tau)
        if len(taus) != 101:
            failures.append("%s: %d taus in the dump, expected 101" % (name, len(taus)))
        Qp, Cp = [], []
        for k, tau in enumerate(taus):
            ch = per_tau[tau]
            if (ch < 0).any():
                failures.append("%s tau %g: prompts missing from the dump" % (name, tau))
                continue
            qq = q[np.arange(n), ch].sum() / n
            cc = c[np.arange(n), ch].sum() / n
            Qp.append(qq)
            Cp.append(cc)
            pt = entry["curve"][k]
            expect("%s tau %g tau" % (name, tau), tau, pt["tau"])
            expect("%s tau %g quality" % (name, tau), qq, pt["quality"])
            expect("%s tau %g cost" % (name, tau), cc, pt["cost"])
            share = np.bincount(ch, minlength=m) / n
            for j, mname in enumerate(cands):
                expect("%s tau %g share %s" % (name, tau, mname), share[j], pt["share"][mname])
        xs = [(cc - cw) / (cs - cw) for cc in Cp]
        ys = [(qq - qw) / (qs - qw) for qq in Qp]
        expect(name + " arqgc", arqgc(xs, ys), entry["arqgc"])
        expect(name + " parity", saving(Qp, Cp, qs, qw, cs, 1.0), entry["cost_save_at_parity"])
        for p, key in ((0.5, "cost_save_at_pgr50"), (0.8, "cost_save_at_pgr80"), (0.95, "cost_save_at_pgr95")):
            expect(name + " " + key, saving(Qp, Cp, qs, qw, cs, p), entry[key])
        expect(name + " max_quality", max(Qp), entry["max_quality"])
        print("%-16s ARQGC %.12f  parity %s  PGR95 %s  (%d taus, reference)"
              % (name, arqgc(xs, ys), saving(Qp, Cp, qs, qw, cs, 1.0), saving(Qp, Cp, qs, qw, cs, 0.95), len(taus)))

    if E is not None:
        print("re-applied the rule to %d dumped decisions" % n_checked)
    for msg in failures[:30]:
        print("MISMATCH " + msg)
    print("%d mismatches" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
