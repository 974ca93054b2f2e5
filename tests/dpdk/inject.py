#!/usr/bin/env python3
"""Sends malformed Ethernet frames to the DPDK switch through a raw AF_PACKET
socket: N of each kind the switch must count and drop.

usage: inject.py IFACE SRC_IP DST_IP DST_MAC PORT N
       inject.py --tx-checksum-off IFACE
       inject.py --ping DST_IP      (ICMP echo without the ping command)

The second form is `ethtool -K IFACE tx off` without ethtool: a veth hands
its peer frames whose UDP checksum the kernel left for a NIC to fill in
(CHECKSUM_PARTIAL), and net_af_packet delivers them as they are, so the DPDK
switch, which validates checksums, would drop every datagram as bad.
"""
import array
import fcntl
import os
import socket
import struct
import sys


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def frame(src_mac, dst_mac, src_ip, dst_ip, port, payload, *, ether_type=0x0800,
          bad_ip_checksum=False, udp_length_extra=0, bad_udp_checksum=False, cut=0):
    udp_length = 8 + len(payload)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_length, 0, 0x4000, 64, 17, 0,
                     src_ip, dst_ip)
    ip_sum = checksum(ip) ^ (0x5A5A if bad_ip_checksum else 0)
    ip = ip[:10] + struct.pack("!H", ip_sum) + ip[12:]
    pseudo = src_ip + dst_ip + struct.pack("!BBH", 0, 17, udp_length)
    udp = struct.pack("!HHHH", 40001, port, udp_length, 0) + payload
    udp_sum = checksum(pseudo + udp) or 0xFFFF
    if bad_udp_checksum:
        udp_sum ^= 0x0101
    udp = struct.pack("!HHHH", 40001, port, udp_length + udp_length_extra, udp_sum) + payload
    data = dst_mac + src_mac + struct.pack("!H", ether_type) + ip + udp
    return data[:len(data) - cut] if cut else data


def tx_checksum_off(iface):
    siocethtool, ethtool_stxcsum = 0x8946, 0x17
    value = array.array("B", struct.pack("II", ethtool_stxcsum, 0))
    request = struct.pack("16sP", iface.encode(), value.buffer_info()[0])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        fcntl.ioctl(sock.fileno(), siocethtool, request)
    print("tx checksum offload off on %s" % iface)


def ping(destination):
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as sock:
        sock.settimeout(2)
        body = struct.pack("!HH", 0x5053, 1) + b"payswitch-ping"
        message = struct.pack("!BBH", 8, 0, 0) + body
        message = struct.pack("!BBH", 8, 0, checksum(message)) + body
        sock.sendto(message, (destination, 0))
        for _ in range(10):
            reply, source = sock.recvfrom(2048)
            icmp = reply[(reply[0] & 0x0F) * 4:]
            if source[0] == destination and icmp[0] == 0 and icmp[4:] == body:
                print("ping %s answered" % destination)
                return
    sys.exit("ping %s: no echo reply" % destination)


def main():
    if sys.argv[1] == "--ping":
        ping(sys.argv[2])
        return
    if sys.argv[1] == "--tx-checksum-off":
        tx_checksum_off(sys.argv[2])
        return
    iface, src, dst, dst_mac_text, port, count = sys.argv[1:7]
    port, count = int(port), int(count)
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sock.bind((iface, 0))
    src_mac = sock.getsockname()[4]
    dst_mac = bytes(int(x, 16) for x in dst_mac_text.split(":"))
    src_ip, dst_ip = socket.inet_aton(src), socket.inet_aton(dst)
    # A well-formed native version 2 header (48 bytes: REQUEST, count 1, key
    # id 0, client 7, sequence 1, MAC 0) and one zero request: only the
    # framing below is wrong.
    payload = struct.pack("<IHBBHHIQQ16s", 0x4E575350, 2, 1, 0, 1, 0, 0, 7, 1, bytes(16)) + bytes(64)
    kinds = {
        "ether_type": dict(ether_type=0x88B5),
        "ip_checksum": dict(bad_ip_checksum=True),
        "truncated": dict(cut=40),
        "udp_length": dict(udp_length_extra=64),
        "udp_checksum": dict(bad_udp_checksum=True),
        "udp_port": dict(),
    }
    for name, change in kinds.items():
        p = port + 1 if name == "udp_port" else port
        for _ in range(count):
            sock.send(frame(src_mac, dst_mac, src_ip, dst_ip, p, payload, **change))
        print("malformed %-13s sent %d" % (name, count))
    for _ in range(count):
        sock.send(dst_mac + os.urandom(14 + int.from_bytes(os.urandom(1), "big") % 200))
    print("malformed %-13s sent %d" % ("random", count))


if __name__ == "__main__":
    main()
