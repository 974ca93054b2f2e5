#!/usr/bin/env bash
# Builds and runs the cross-shard libFuzzer target (tests/fuzz/fuzz_cross.c)
# for a bounded time:
#   scripts/fuzz.sh [SECONDS]      (default 60)
# Compiled directly with clang -fsanitize=fuzzer,address,undefined (the meson
# build uses gcc, which has no libFuzzer): the ledger core, engine/claims.c,
# the simulator tests/ledger/cross_sim.c and the target, into build-fuzz/.
# Starts from the committed seeds in tests/fuzz/corpus/ (never written to);
# new inputs go to build-fuzz/corpus/. Prints libFuzzer's summary. Exits
# non-zero on a crash, a leak, a timeout or an out-of-memory, naming the
# reproducer file.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || ((seconds < 1)); then
  echo "usage: scripts/fuzz.sh [SECONDS]" >&2
  exit 2
fi
out=build-fuzz
mkdir -p "$out/corpus"

sources=(
  ledger/ledger.c ledger/ledger_accounts.c ledger/ledger_apply.c ledger/ledger_check.c
  ledger/ledger_holds.c ledger/ledger_state.c ledger/ledger_transfers.c ledger/ledger_window.c
  ledger/results.c engine/claims.c tests/ledger/cross_sim.c tests/fuzz/fuzz_cross.c
)
binary="$out/fuzz_cross"
newest=$(ls -t "${sources[@]}" ledger/*.h engine/claims.h tests/ledger/cross_sim.h "$0" | head -1)
if [[ ! -x "$binary" || "$newest" -nt "$binary" ]]; then
  echo "fuzz: building $binary"
  clang -std=gnu11 -g -O1 -D_GNU_SOURCE -march=native -fno-strict-aliasing \
    -Wall -Wextra -Werror \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    -Iledger -Itests/ledger "${sources[@]}" -lxxhash -o "$binary"
fi

log="$out/fuzz.log"
echo "fuzz: running $binary for ${seconds}s on tests/fuzz/corpus (log: $log)"
status=0
ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}" \
UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}" \
  "$binary" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -max_len=4096 \
    -print_final_stats=1 -artifact_prefix="$out/" "$out/corpus" tests/fuzz/corpus \
    >"$log" 2>&1 || status=$?

# The summary: the last coverage line, the final stats, and any report.
grep -E '^#[0-9]+[[:space:]]+(DONE|INITED)' "$log" | tail -2 || true
grep -E '^(stat::|Done )' "$log" || true
if ((status != 0)); then
  grep -E 'ERROR: |SUMMARY: |runtime error|Assertion|fuzz_cross: ' "$log" | head -20 || true
  reproducer=$(grep -oE 'Test unit written to [^ ]+' "$log" | tail -1 | sed 's/Test unit written to //')
  echo "fuzz: FAILED (libFuzzer exit status $status)"
  if [[ -n "$reproducer" ]]; then
    echo "fuzz: reproducer: $reproducer"
    echo "fuzz: replay with: $binary $reproducer"
  fi
  exit 1
fi
echo "fuzz: passed"
