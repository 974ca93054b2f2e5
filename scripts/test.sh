#!/usr/bin/env bash
# The README's test command: installs what is missing, builds the release and
# the sanitizer (address, undefined) builds, and runs every test in both.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh release
scripts/build.sh asan
status=0
echo "== tests: release build"
meson test -C build --print-errorlogs --num-processes 2 || status=1
echo "== tests: address/undefined sanitizer build"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  meson test -C build-asan --print-errorlogs --num-processes 2 --timeout-multiplier 3 || status=1
scripts/fuzz.sh 60 || status=1
scripts/summarize-tests.py build/meson-logs/testlog.json build-asan/meson-logs/testlog.json || status=1
exit $status
