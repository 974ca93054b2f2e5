/*
 * dpdk_packet.h — Ethernet / IPv4 / UDP frames for the DPDK transport and the
 * DPDK load generator: parse with checksum validation, answer ARP and ICMP
 * echo, build UDP frames in mbufs.
 *
 * Pure functions over mbufs (no EAL state, no allocation except where a
 * function takes a mempool); any thread. Multi-byte fields in the structs
 * below are in network order where named _be.
 *
 * Only IPv4 without fragments: the link MTU bounds a datagram (use jumbo
 * frames, MTU 9000, for batches of more than NETIO_BATCH_MTU1500 requests).
 */
#ifndef PAYSWITCH_NETIO_DPDK_PACKET_H
#define PAYSWITCH_NETIO_DPDK_PACKET_H

#include <stdbool.h>
#include <stdint.h>

#include <rte_ether.h>
#include <rte_mbuf.h>

#include "transport.h"

/* Ethernet (14) + IPv4 without options (20) + UDP (8). */
#define DPDK_UDP_HEADERS_BYTES 42u

/* One end of a UDP flow. */
struct dpdk_endpoint {
	struct rte_ether_addr mac;
	uint16_t port_be;
	uint32_t ip_be;
};

/* What a received frame is. */
enum dpdk_frame_kind {
	DPDK_FRAME_DROP = 0,       /* counted under a drop reason and freed */
	DPDK_FRAME_UDP,            /* a UDP datagram for our address and port */
	DPDK_FRAME_ARP_REQUEST,    /* who-has our IPv4 address: answer it */
	DPDK_FRAME_ARP_REPLY,      /* someone's MAC (the load generator learns the switch's) */
	DPDK_FRAME_ICMP_ECHO,      /* ping to our address: answer it */
};

/* Why a frame was dropped. Stable order: the names below and the transport
 * stats follow it. */
enum dpdk_drop {
	DPDK_DROP_NONE = 0,
	DPDK_DROP_ETHER_TYPE,      /* neither IPv4 nor ARP (IPv6, VLAN, LLDP, junk) */
	DPDK_DROP_ETHER_DST,       /* unicast to another MAC */
	DPDK_DROP_TRUNCATED,       /* shorter than its headers, or than IPv4 total length */
	DPDK_DROP_IP_HEADER,       /* version != 4, header length < 20 or > total length */
	DPDK_DROP_IP_CHECKSUM,
	DPDK_DROP_IP_FRAGMENT,     /* MF set or offset != 0: no reassembly */
	DPDK_DROP_IP_DST,          /* another IPv4 address */
	DPDK_DROP_IP_PROTOCOL,     /* neither UDP nor ICMP */
	DPDK_DROP_UDP_LENGTH,      /* UDP length < 8 or beyond the IPv4 payload */
	DPDK_DROP_UDP_CHECKSUM,
	DPDK_DROP_UDP_PORT,        /* another destination port */
	DPDK_DROP_ARP,             /* ARP not for us, or not Ethernet/IPv4 */
	DPDK_DROP_ICMP,            /* ICMP other than echo request, or bad checksum */
	DPDK_DROP_KINDS,
};

/* "ether_type", "ip_checksum", ...; "unknown" beyond the table. */
const char *dpdk_drop_name(unsigned drop);

/* A parsed frame. */
struct dpdk_parsed {
	enum dpdk_frame_kind kind;
	enum dpdk_drop drop;           /* DPDK_DROP_NONE unless kind == DROP */
	struct dpdk_endpoint source;   /* UDP / ICMP / ARP sender */
	uint32_t payload_offset;       /* UDP: bytes from the frame start */
	uint32_t payload_length;       /* UDP: payload bytes */
};

/*
 * Classifies one frame for `local` (our MAC, IPv4 address and UDP port).
 * Validates the IPv4 header checksum and, when not 0, the UDP checksum;
 * accepts unicast to local->mac and broadcast. Never reads beyond the frame.
 */
void dpdk_parse(const struct rte_mbuf *frame, const struct dpdk_endpoint *local,
		struct dpdk_parsed *parsed);

/* Turns an ARP request (DPDK_FRAME_ARP_REQUEST) into our reply in place. */
void dpdk_arp_reply_in_place(struct rte_mbuf *frame, const struct dpdk_endpoint *local);

/* Turns an ICMP echo request (DPDK_FRAME_ICMP_ECHO) into the echo reply in
 * place (addresses swapped, type 0, checksums recomputed). */
void dpdk_icmp_reply_in_place(struct rte_mbuf *frame, const struct dpdk_endpoint *local);

/* Writes an ARP request for target_ip_be from `local` into frame (reset
 * first). Returns 0 or -ENOSPC. */
int dpdk_arp_request_build(struct rte_mbuf *frame, const struct dpdk_endpoint *local,
			   uint32_t target_ip_be);

/*
 * Builds one UDP frame from `from` to `to` carrying payload[0..length) into
 * frame (reset first), chaining segments from `pool` when the payload does not
 * fit one mbuf. IPv4 and UDP checksums are computed in software.
 * Returns 0, -ENOSPC (no room / no mbuf for a segment) or -EMSGSIZE (the IPv4
 * packet would exceed 65535 bytes).
 */
int dpdk_udp_build(struct rte_mbuf *frame, struct rte_mempool *pool,
		   const struct dpdk_endpoint *from, const struct dpdk_endpoint *to,
		   const void *payload, uint32_t length);

/* A netio_peer holding a DPDK endpoint (the sender of a datagram). */
void dpdk_peer_store(struct netio_peer *peer, const struct dpdk_endpoint *endpoint);
/* Returns false when the peer was not stored by dpdk_peer_store. */
bool dpdk_peer_load(const struct netio_peer *peer, struct dpdk_endpoint *endpoint);

#endif
