#!/usr/bin/env bash
# test_qe_reference.sh — the quality-estimator blob read by an independent
# numpy implementation (tests/qe_reference.py), which parses the documented
# format and recomputes the predictions of estimators of several shapes and
# calibrations written by tests/test_qe (QE_DUMP_DIR hook). Needs the built
# test binary and /usr/bin/python3 with numpy; skips cleanly without them.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
BUILD=${BUILD:-$root/build}
PY=/usr/bin/python3
bin=$BUILD/tests/test_qe
if ! "$PY" -c 'import numpy' 2>/dev/null || [ ! -x "$bin" ]; then
    echo "skip: no numpy in $PY or no $bin"
    echo "0 passed, 0 failed"
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if ! QE_DUMP_DIR=$tmp "$bin" test_dump_for_reference >"$tmp/log" 2>&1; then
    cat "$tmp/log"
    echo "FAIL dumping estimators"
    echo "0 passed, 1 failed"
    exit 1
fi
"$PY" "$here/qe_reference.py" "$tmp" mlp_shared mlp_auto mlp_isotonic linear_platt notrunk_off
