#!/usr/bin/env python3
"""Makes a synthetic routing dataset of N prompts from real ones, for scale
benchmarks: each row is a random source prompt with ~10 % of its words replaced
by words of other prompts and a random numeric suffix, the source's labels with
5 % of them flipped, and the source's costs. Deterministic for a seed.

usage: bench/make_synthetic.py SOURCE.jsonl[.gz] N OUT.jsonl [SEED [ID_PREFIX]]
"""
import gzip
import json
import random
import sys


def main():
    src, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    rng = random.Random(int(sys.argv[4]) if len(sys.argv) > 4 else 1)
    prefix = sys.argv[5] if len(sys.argv) > 5 else "syn"
    opener = gzip.open if src.endswith(".gz") else open
    with opener(src, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    vocab = [w for r in rows[:500] for w in r["prompt"].split()]
    with open(out, "w", encoding="utf-8") as f:
        for i in range(n):
            r = rows[rng.randrange(len(rows))]
            words = r["prompt"].split(" ")
            for _ in range(max(1, len(words) // 10)):
                words[rng.randrange(len(words))] = rng.choice(vocab)
            scores = {m: (1.0 - q if rng.random() < 0.05 and q in (0.0, 1.0) else q)
                      for m, q in r["scores"].items()}
            row = {"id": "%s.%d" % (prefix, i), "prompt": " ".join(words) + " #%d" % rng.randrange(10**6),
                   "task": r.get("task"), "scores": scores}
            if r.get("costs"):
                row["costs"] = r["costs"]
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
