#!/usr/bin/env python3
"""Protocol version 2 MAC test vector, computed without payswitch's code.

Builds the datagram of netio/PROTOCOL.md "Test vector" byte by byte with
struct.pack and computes its MAC with Python's hashlib (BLAKE2b, keyed,
16-byte digest) over header bytes [0, 32) and the records. Exits 1 when the
MAC differs from the one PROTOCOL.md documents (and tests/netio/test_auth.c
asserts for the C code), so the two implementations agree byte for byte.
"""
import hashlib
import struct
import sys

EXPECTED = sys.argv[1] if len(sys.argv) > 1 else None

key = bytes(range(32))
key_id = 7
header_front = struct.pack("<IHBBHHIQQ", 0x4E575350, 2, 1, 0, 1, 0, key_id,
                           0x0102030405060708, 1767225600000000)
request = struct.pack("<QQQQQQQHBBI", 42, 1767225600000000, 1001, 2001, 250,
                      0, 0, 978, 3, 0, 0)
mac = hashlib.blake2b(header_front + request, key=key, digest_size=16).digest()
datagram = header_front + mac + request
assert len(datagram) == 48 + 64
print("datagram", datagram.hex())
print("mac", mac.hex())
if EXPECTED is not None and mac.hex() != EXPECTED:
    print(f"MAC {mac.hex()} != documented {EXPECTED}", file=sys.stderr)
    sys.exit(1)
