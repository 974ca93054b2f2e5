#!/usr/bin/env python3
"""Prints one closing line over meson's test logs: 'N passed, N failed, N skipped'.

Meson counts test programs; Criterion prints its own per-program lines above.
This line counts programs across every build given, so CI can read one total.
"""
import json
import sys

passed = failed = skipped = 0
for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as log:
        for line in log:
            line = line.strip()
            if not line:
                continue
            result = json.loads(line).get("result")
            if result == "OK":
                passed += 1
            elif result in ("SKIP",):
                skipped += 1
            else:
                failed += 1
if passed + failed == 0:
    print("tests: no test executed", file=sys.stderr)
    sys.exit(1)
print(f"{passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed else 0)
