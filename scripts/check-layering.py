#!/usr/bin/env python3
"""The layering check (run by `meson test`, suite `layering`).

Each folder may include only the public headers of the folders below it:

    ledger  <-  netio  <-  engine
       ^          ^
       +-- bench -+        (bench: ledger and netio; engine is a command, not a library)

A folder's internal headers (every header not in PUBLIC) are reachable only
from the folder itself and from the test folders that test it (TESTS_MAY_OPEN).
The ledger must stay pure: no DPDK, crypto, HTTP or NATS headers in ledger/.

Exit status 1 and one line per violation (file:line: what, and the rule) when
anything breaks a rule; a summary line either way.

    scripts/check-layering.py [REPO]
    scripts/check-layering.py --self-test   # the check catches what it claims
"""
import os
import re
import sys

# Folder -> its headers that other folders may include.
PUBLIC = {
    "ledger": {"ledger.h", "journal.h"},
    "netio": {"netio.h", "transport.h", "auth.h", "iso8583.h", "iso_gateway.h",
              "tcp_server.h", "dpdk_port.h", "dpdk_packet.h"},
    "engine": set(),   # the top: nothing includes the command's headers
    "bench": set(),
}
# Folder -> the folders whose public headers it may include.
MAY_USE = {
    "ledger": set(),
    "netio": {"ledger"},
    "engine": {"ledger", "netio"},
    "bench": {"ledger", "netio"},
    "tests": {"ledger", "netio", "engine", "bench"},
}
# Test folder -> the folders whose internals it tests (white-box).
TESTS_MAY_OPEN = {
    "tests/ledger": {"ledger", "engine"},   # cross_sim models engine/claims.h
    "tests/journal": {"ledger"},
    "tests/limits": {"ledger", "engine"},
    "tests/netio": {"netio"},
    "tests/iso8583": {"netio", "engine"},
    "tests/engine": {"engine", "netio"},
    "tests/load": {"bench"},
    "tests/dpdk": {"netio", "bench"},
    "tests/fuzz": {"netio", "ledger"},
}
# System headers the pure ledger must never include.
LEDGER_FORBIDDEN_SYSTEM = re.compile(
    r"^(rte_|sodium|openssl/|nats|microhttpd|pthread\.h|sys/socket\.h|netinet/)")

INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')
SOURCE_SUFFIXES = (".c", ".h")


def folder_of(path):
    parts = path.split("/")
    return parts[0]


def test_folder_of(path):
    parts = path.split("/")
    return "/".join(parts[:2]) if parts[0] == "tests" and len(parts) > 2 else None


def self_test():
    """Builds a small tree with one violation of each rule and one allowed
    include of each kind; the check must report exactly the violations."""
    import tempfile
    cases = {
        "ledger/ledger.h": "",
        "ledger/ledger_internal.h": '#include "ledger.h"\n',
        "ledger/journal.h": "",
        "ledger/ledger.c": '#include "ledger_internal.h"\n#include <rte_ring.h>\n',
        "netio/netio.h": '#include "ledger.h"\n',
        "netio/codec.c": '#include "ledger_internal.h"\n',
        "netio/transport.h": "",
        "engine/engine.h": '#include "netio.h"\n#include "journal.h"\n',
        "engine/shard.c": '#include "engine.h"\n',
        "bench/load.c": '#include "engine.h"\n',
        "tests/journal/test_x.c": '#include "ledger_internal.h"\n',
        "tests/netio/test_y.c": '#include "ledger_internal.h"\n#include "engine.h"\n',
    }
    expected = {"ledger/ledger.c:2", "netio/codec.c:1", "bench/load.c:1", "tests/netio/test_y.c:1",
                "tests/netio/test_y.c:2"}
    with tempfile.TemporaryDirectory() as root:
        for relative, text in cases.items():
            os.makedirs(os.path.dirname(os.path.join(root, relative)), exist_ok=True)
            with open(os.path.join(root, relative), "w", encoding="utf-8") as handle:
                handle.write(text)
        found = {":".join(v.split(":")[:2]) for v in check(root)[0]}
    if found != expected:
        print(f"layering self-test FAILED: expected {sorted(expected)}, found {sorted(found)}")
        return 1
    print(f"layering self-test: {len(expected)} planted violations caught, allowed includes passed")
    return 0


def main():
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    repo = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                           os.path.join(os.path.dirname(__file__), ".."))
    violations, files, includes = check(repo)
    for violation in violations:
        print(violation)
    print(f"layering: {files} files, {includes} includes, {len(violations)} violations")
    return 1 if violations else 0


def check(repo):
    """Returns (violations, files read, includes read) for the tree at repo."""
    # Which folder owns each header name (names are unique across the tree).
    owner = {}
    sources = []
    for top in ("ledger", "netio", "engine", "bench", "tests"):
        for dirpath, _, files in os.walk(os.path.join(repo, top)):
            for name in sorted(files):
                if not name.endswith(SOURCE_SUFFIXES):
                    continue
                relative = os.path.relpath(os.path.join(dirpath, name), repo)
                sources.append(relative)
                if name.endswith(".h") and top != "tests":
                    if name in owner and owner[name] != top:
                        raise SystemExit(f"{relative}: header name {name} also exists in "
                                         f"{owner[name]}/: header names must be unique across folders")
                    owner[name] = top
    violations = []
    includes = 0
    for relative in sorted(sources):
        here = folder_of(relative)
        test_folder = test_folder_of(relative)
        with open(os.path.join(repo, relative), encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, 1):
                match = INCLUDE.match(line)
                if not match:
                    continue
                includes += 1
                kind, target = match.groups()
                if kind == "<":
                    if here == "ledger" and LEDGER_FORBIDDEN_SYSTEM.match(target):
                        violations.append(f"{relative}:{number}: <{target}> in ledger/: "
                                          "the ledger is pure (libc, liburing, xxhash, jemalloc)")
                    continue
                name = os.path.basename(target)
                there = owner.get(name)
                if there is None or there == here:
                    continue   # the folder's own header, or a test's own helper
                opened = TESTS_MAY_OPEN.get(test_folder, set()) if test_folder else set()
                if there in opened:
                    continue
                if there not in MAY_USE.get(here, set()):
                    violations.append(f"{relative}:{number}: \"{target}\" is {there}/'s; "
                                      f"{here}/ may use only {sorted(MAY_USE.get(here, set()))}")
                elif name not in PUBLIC[there]:
                    violations.append(f"{relative}:{number}: \"{target}\" is internal to {there}/ "
                                      f"(public: {', '.join(sorted(PUBLIC[there])) or 'none'})")
    return violations, len(sources), includes


if __name__ == "__main__":
    sys.exit(main())
