#!/usr/bin/env bash
# Runs every test binary given, then the shell-level tests (tests/*.sh), adds
# their counts up and ends with the line "N passed, N failed". Exit status is
# non-zero if anything failed or a binary crashed.
set -u
here=$(cd "$(dirname "$0")" && pwd)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export IPR_TESTS="$here"
passed=0; failed=0; crashed=0
run_one() {
    local name=$1; shift
    local out rc line p f
    out=$("$@" 2>&1); rc=$?
    line=$(printf '%s\n' "$out" | grep -E '[0-9]+ passed, [0-9]+ failed' | tail -n 1)
    if [ -n "$line" ]; then
        p=$(sed -E 's/^(.*[^0-9])?([0-9]+) passed, ([0-9]+) failed.*/\2/' <<<"$line")
        f=$(sed -E 's/^(.*[^0-9])?([0-9]+) passed, ([0-9]+) failed.*/\3/' <<<"$line")
    else
        p=0; f=0
    fi
    passed=$((passed + p)); failed=$((failed + f))
    if [ "$rc" -ne 0 ] || [ "$f" -ne 0 ]; then
        [ "$f" -eq 0 ] && { failed=$((failed + 1)); crashed=$((crashed + 1)); }
        printf '%s\n' "$out" | tail -n 60
        echo "FAIL $name (exit $rc)"
    else
        echo "ok   $name: $p passed"
    fi
}
for bin in "$@"; do
    run_one "$(basename "$bin")" "$bin"
done
for sh in "$here"/test_*.sh; do
    [ -e "$sh" ] || continue
    run_one "$(basename "$sh")" bash "$sh"
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
