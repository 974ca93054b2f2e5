/*
 * dpdk_packet.c — Ethernet / IPv4 / UDP parsing and building (dpdk_packet.h).
 *
 * Every header is read through rte_pktmbuf_read(), which returns a pointer
 * into the frame when the bytes are contiguous and copies them into a local
 * buffer otherwise, so a chained (jumbo) frame parses like a flat one and no
 * read goes beyond the frame. Checksums are verified in software: the
 * virtual devices this runs on (memif, af_packet) offer no RX checksum
 * offload, and at 96 bytes a datagram the sum costs a few nanoseconds.
 */
#include "dpdk_packet.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

#include <rte_arp.h>
#include <rte_byteorder.h>
#include <rte_icmp.h>
#include <rte_ip.h>
#include <rte_udp.h>

#define ETHER_BYTES ((uint32_t)sizeof(struct rte_ether_hdr))
#define IPV4_BYTES ((uint32_t)sizeof(struct rte_ipv4_hdr))
#define UDP_BYTES ((uint32_t)sizeof(struct rte_udp_hdr))
#define ICMP_BYTES ((uint32_t)sizeof(struct rte_icmp_hdr))
#define PEER_TAG 0x4b445044u /* "DPDK" */

_Static_assert(ETHER_BYTES + IPV4_BYTES + UDP_BYTES == DPDK_UDP_HEADERS_BYTES, "header sizes");

static const char *const drop_names[DPDK_DROP_KINDS] = {
	[DPDK_DROP_NONE] = "none",
	[DPDK_DROP_ETHER_TYPE] = "ether_type",
	[DPDK_DROP_ETHER_DST] = "ether_dst",
	[DPDK_DROP_TRUNCATED] = "truncated",
	[DPDK_DROP_IP_HEADER] = "ip_header",
	[DPDK_DROP_IP_CHECKSUM] = "ip_checksum",
	[DPDK_DROP_IP_FRAGMENT] = "ip_fragment",
	[DPDK_DROP_IP_DST] = "ip_dst",
	[DPDK_DROP_IP_PROTOCOL] = "ip_protocol",
	[DPDK_DROP_UDP_LENGTH] = "udp_length",
	[DPDK_DROP_UDP_CHECKSUM] = "udp_checksum",
	[DPDK_DROP_UDP_PORT] = "udp_port",
	[DPDK_DROP_ARP] = "arp",
	[DPDK_DROP_ICMP] = "icmp",
};

const char *dpdk_drop_name(unsigned drop)
{
	return drop < DPDK_DROP_KINDS ? drop_names[drop] : "unknown";
}

static void drop(struct dpdk_parsed *parsed, enum dpdk_drop reason)
{
	parsed->kind = DPDK_FRAME_DROP;
	parsed->drop = reason;
}

/* Folds a 32-bit one's complement sum to 16 bits. */
static uint16_t fold(uint32_t sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

/* One's complement sum of the UDP pseudo header (addresses as stored). */
static uint32_t pseudo_header_sum(const struct rte_ipv4_hdr *ip, uint16_t udp_length)
{
	struct {
		uint32_t source;
		uint32_t destination;
		uint8_t zero;
		uint8_t protocol;
		uint16_t length_be;
	} __attribute__((packed)) pseudo = {
		.source = ip->src_addr, .destination = ip->dst_addr,
		.zero = 0, .protocol = IPPROTO_UDP, .length_be = rte_cpu_to_be_16(udp_length),
	};
	return rte_raw_cksum(&pseudo, sizeof(pseudo));
}

/* The UDP checksum over the segment chain: a valid datagram sums to 0xffff. */
static bool udp_checksum_ok(const struct rte_mbuf *frame, const struct rte_ipv4_hdr *ip,
			    uint32_t udp_offset, uint16_t udp_length)
{
	uint16_t raw = 0;
	if (rte_raw_cksum_mbuf(frame, udp_offset, udp_length, &raw) != 0)
		return false;
	return fold((uint32_t)raw + pseudo_header_sum(ip, udp_length)) == 0xffff;
}

static void parse_udp(const struct rte_mbuf *frame, const struct dpdk_endpoint *local,
		      const struct rte_ether_hdr *ether, const struct rte_ipv4_hdr *ip,
		      uint32_t l4_offset, uint32_t l4_length, struct dpdk_parsed *parsed)
{
	struct rte_udp_hdr copy;
	if (l4_length < UDP_BYTES)
		return drop(parsed, DPDK_DROP_UDP_LENGTH);
	const struct rte_udp_hdr *udp = rte_pktmbuf_read(frame, l4_offset, UDP_BYTES, &copy);
	assert(udp != NULL); /* l4_offset + l4_length <= frame length was checked */
	uint16_t udp_length = rte_be_to_cpu_16(udp->dgram_len);
	if (udp_length < UDP_BYTES || udp_length > l4_length)
		return drop(parsed, DPDK_DROP_UDP_LENGTH);
	if (udp->dst_port != local->port_be)
		return drop(parsed, DPDK_DROP_UDP_PORT);
	if (udp->dgram_cksum != 0 && !udp_checksum_ok(frame, ip, l4_offset, udp_length))
		return drop(parsed, DPDK_DROP_UDP_CHECKSUM);
	parsed->kind = DPDK_FRAME_UDP;
	rte_ether_addr_copy(&ether->src_addr, &parsed->source.mac);
	parsed->source.ip_be = ip->src_addr;
	parsed->source.port_be = udp->src_port;
	parsed->payload_offset = l4_offset + UDP_BYTES;
	parsed->payload_length = udp_length - UDP_BYTES;
}

static void parse_icmp(const struct rte_mbuf *frame, const struct rte_ether_hdr *ether,
		       const struct rte_ipv4_hdr *ip, uint32_t l4_offset, uint32_t l4_length,
		       struct dpdk_parsed *parsed)
{
	struct rte_icmp_hdr copy;
	/* Replies are written in place: the echo must sit in one segment. */
	if (l4_length < ICMP_BYTES || !rte_pktmbuf_is_contiguous(frame))
		return drop(parsed, DPDK_DROP_ICMP);
	const struct rte_icmp_hdr *icmp = rte_pktmbuf_read(frame, l4_offset, ICMP_BYTES, &copy);
	assert(icmp != NULL);
	if (icmp->icmp_type != RTE_IP_ICMP_ECHO_REQUEST || icmp->icmp_code != 0)
		return drop(parsed, DPDK_DROP_ICMP);
	const void *message = rte_pktmbuf_mtod_offset(frame, const void *, l4_offset);
	if (rte_raw_cksum(message, l4_length) != 0xffff)
		return drop(parsed, DPDK_DROP_ICMP);
	parsed->kind = DPDK_FRAME_ICMP_ECHO;
	rte_ether_addr_copy(&ether->src_addr, &parsed->source.mac);
	parsed->source.ip_be = ip->src_addr;
}

static void parse_ipv4(const struct rte_mbuf *frame, const struct dpdk_endpoint *local,
		       const struct rte_ether_hdr *ether, struct dpdk_parsed *parsed)
{
	uint32_t frame_length = rte_pktmbuf_pkt_len(frame);
	uint8_t copy[60];
	if (frame_length < ETHER_BYTES + IPV4_BYTES)
		return drop(parsed, DPDK_DROP_TRUNCATED);
	const struct rte_ipv4_hdr *ip = rte_pktmbuf_read(frame, ETHER_BYTES, IPV4_BYTES, copy);
	uint32_t header_length = (uint32_t)(ip->version_ihl & 0x0f) * 4u;
	uint32_t total_length = rte_be_to_cpu_16(ip->total_length);
	if ((ip->version_ihl >> 4) != 4 || header_length < IPV4_BYTES ||
	    total_length < header_length)
		return drop(parsed, DPDK_DROP_IP_HEADER);
	/* Ethernet pads short frames: the frame may be longer, never shorter. */
	if (ETHER_BYTES + total_length > frame_length)
		return drop(parsed, DPDK_DROP_TRUNCATED);
	if (header_length > IPV4_BYTES)
		ip = rte_pktmbuf_read(frame, ETHER_BYTES, header_length, copy);
	if (rte_raw_cksum(ip, header_length) != 0xffff)
		return drop(parsed, DPDK_DROP_IP_CHECKSUM);
	if (rte_be_to_cpu_16(ip->fragment_offset) &
	    (RTE_IPV4_HDR_MF_FLAG | RTE_IPV4_HDR_OFFSET_MASK))
		return drop(parsed, DPDK_DROP_IP_FRAGMENT);
	if (ip->dst_addr != local->ip_be)
		return drop(parsed, DPDK_DROP_IP_DST);
	uint32_t l4_offset = ETHER_BYTES + header_length;
	uint32_t l4_length = total_length - header_length;
	if (ip->next_proto_id == IPPROTO_UDP)
		return parse_udp(frame, local, ether, ip, l4_offset, l4_length, parsed);
	if (ip->next_proto_id == IPPROTO_ICMP)
		return parse_icmp(frame, ether, ip, l4_offset, l4_length, parsed);
	drop(parsed, DPDK_DROP_IP_PROTOCOL);
}

static void parse_arp(const struct rte_mbuf *frame, const struct dpdk_endpoint *local,
		      struct dpdk_parsed *parsed)
{
	struct rte_arp_hdr copy;
	if (rte_pktmbuf_pkt_len(frame) < ETHER_BYTES + sizeof(struct rte_arp_hdr))
		return drop(parsed, DPDK_DROP_TRUNCATED);
	const struct rte_arp_hdr *arp = rte_pktmbuf_read(frame, ETHER_BYTES, sizeof(copy), &copy);
	if (arp->arp_hardware != rte_cpu_to_be_16(RTE_ARP_HRD_ETHER) ||
	    arp->arp_protocol != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4) ||
	    arp->arp_hlen != RTE_ETHER_ADDR_LEN || arp->arp_plen != 4 ||
	    arp->arp_data.arp_tip != local->ip_be)
		return drop(parsed, DPDK_DROP_ARP);
	uint16_t opcode = rte_be_to_cpu_16(arp->arp_opcode);
	if (opcode == RTE_ARP_OP_REQUEST && rte_pktmbuf_is_contiguous(frame))
		parsed->kind = DPDK_FRAME_ARP_REQUEST;
	else if (opcode == RTE_ARP_OP_REPLY)
		parsed->kind = DPDK_FRAME_ARP_REPLY;
	else
		return drop(parsed, DPDK_DROP_ARP);
	rte_ether_addr_copy(&arp->arp_data.arp_sha, &parsed->source.mac);
	parsed->source.ip_be = arp->arp_data.arp_sip;
}

void dpdk_parse(const struct rte_mbuf *frame, const struct dpdk_endpoint *local,
		struct dpdk_parsed *parsed)
{
	assert(frame != NULL && local != NULL && parsed != NULL);
	memset(parsed, 0, sizeof(*parsed));
	struct rte_ether_hdr copy;
	if (rte_pktmbuf_pkt_len(frame) < ETHER_BYTES)
		return drop(parsed, DPDK_DROP_TRUNCATED);
	const struct rte_ether_hdr *ether = rte_pktmbuf_read(frame, 0, ETHER_BYTES, &copy);
	uint16_t type = rte_be_to_cpu_16(ether->ether_type);
	if (type != RTE_ETHER_TYPE_IPV4 && type != RTE_ETHER_TYPE_ARP)
		return drop(parsed, DPDK_DROP_ETHER_TYPE);
	if (!rte_is_same_ether_addr(&ether->dst_addr, &local->mac) &&
	    !rte_is_broadcast_ether_addr(&ether->dst_addr))
		return drop(parsed, DPDK_DROP_ETHER_DST);
	if (type == RTE_ETHER_TYPE_ARP)
		return parse_arp(frame, local, parsed);
	parse_ipv4(frame, local, ether, parsed);
}

void dpdk_arp_reply_in_place(struct rte_mbuf *frame, const struct dpdk_endpoint *local)
{
	assert(rte_pktmbuf_is_contiguous(frame));
	struct rte_ether_hdr *ether = rte_pktmbuf_mtod(frame, struct rte_ether_hdr *);
	struct rte_arp_hdr *arp = (struct rte_arp_hdr *)(ether + 1);
	rte_ether_addr_copy(&ether->src_addr, &ether->dst_addr);
	rte_ether_addr_copy(&local->mac, &ether->src_addr);
	arp->arp_opcode = rte_cpu_to_be_16(RTE_ARP_OP_REPLY);
	rte_ether_addr_copy(&arp->arp_data.arp_sha, &arp->arp_data.arp_tha);
	arp->arp_data.arp_tip = arp->arp_data.arp_sip;
	rte_ether_addr_copy(&local->mac, &arp->arp_data.arp_sha);
	arp->arp_data.arp_sip = local->ip_be;
}

void dpdk_icmp_reply_in_place(struct rte_mbuf *frame, const struct dpdk_endpoint *local)
{
	assert(rte_pktmbuf_is_contiguous(frame));
	struct rte_ether_hdr *ether = rte_pktmbuf_mtod(frame, struct rte_ether_hdr *);
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(ether + 1);
	uint32_t header_length = rte_ipv4_hdr_len(ip);
	uint32_t l4_length = rte_be_to_cpu_16(ip->total_length) - header_length;
	struct rte_icmp_hdr *icmp = (struct rte_icmp_hdr *)((uint8_t *)ip + header_length);
	rte_ether_addr_copy(&ether->src_addr, &ether->dst_addr);
	rte_ether_addr_copy(&local->mac, &ether->src_addr);
	ip->dst_addr = ip->src_addr;
	ip->src_addr = local->ip_be;
	ip->time_to_live = 64;
	ip->hdr_checksum = 0;
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	icmp->icmp_type = RTE_IP_ICMP_ECHO_REPLY;
	icmp->icmp_cksum = 0;
	icmp->icmp_cksum = (uint16_t)~rte_raw_cksum(icmp, l4_length);
}

int dpdk_arp_request_build(struct rte_mbuf *frame, const struct dpdk_endpoint *local,
			   uint32_t target_ip_be)
{
	rte_pktmbuf_reset(frame);
	struct rte_ether_hdr *ether = (struct rte_ether_hdr *)rte_pktmbuf_append(
		frame, ETHER_BYTES + sizeof(struct rte_arp_hdr));
	if (ether == NULL)
		return -ENOSPC;
	struct rte_arp_hdr *arp = (struct rte_arp_hdr *)(ether + 1);
	memset(&ether->dst_addr, 0xff, sizeof(ether->dst_addr));
	rte_ether_addr_copy(&local->mac, &ether->src_addr);
	ether->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP);
	arp->arp_hardware = rte_cpu_to_be_16(RTE_ARP_HRD_ETHER);
	arp->arp_protocol = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	arp->arp_hlen = RTE_ETHER_ADDR_LEN;
	arp->arp_plen = 4;
	arp->arp_opcode = rte_cpu_to_be_16(RTE_ARP_OP_REQUEST);
	rte_ether_addr_copy(&local->mac, &arp->arp_data.arp_sha);
	arp->arp_data.arp_sip = local->ip_be;
	memset(&arp->arp_data.arp_tha, 0, sizeof(arp->arp_data.arp_tha));
	arp->arp_data.arp_tip = target_ip_be;
	return 0;
}

/* Appends payload to the frame, chaining segments from pool when the last
 * one is full. Bounded: each turn appends >= 1 byte or chains a segment, and
 * a chain longer than RTE_MBUF_MAX_NB_SEGS is refused. */
static int append_payload(struct rte_mbuf *frame, struct rte_mempool *pool,
			  const uint8_t *payload, uint32_t length)
{
	uint32_t done = 0;
	while (done < length) {
		uint16_t room = rte_pktmbuf_tailroom(rte_pktmbuf_lastseg(frame));
		if (room == 0) {
			struct rte_mbuf *segment = pool ? rte_pktmbuf_alloc(pool) : NULL;
			if (segment == NULL)
				return -ENOSPC;
			if (rte_pktmbuf_chain(frame, segment) != 0) {
				rte_pktmbuf_free(segment);
				return -ENOSPC;
			}
			continue;
		}
		uint32_t piece = length - done < room ? length - done : room;
		char *into = rte_pktmbuf_append(frame, (uint16_t)piece);
		assert(into != NULL);
		memcpy(into, payload + done, piece);
		done += piece;
	}
	return 0;
}

int dpdk_udp_build(struct rte_mbuf *frame, struct rte_mempool *pool,
		   const struct dpdk_endpoint *from, const struct dpdk_endpoint *to,
		   const void *payload, uint32_t length)
{
	assert(frame != NULL && from != NULL && to != NULL && (payload != NULL || length == 0));
	if (length > UINT16_MAX - IPV4_BYTES - UDP_BYTES)
		return -EMSGSIZE;
	rte_pktmbuf_reset(frame);
	struct rte_ether_hdr *ether = (struct rte_ether_hdr *)rte_pktmbuf_append(
		frame, DPDK_UDP_HEADERS_BYTES);
	if (ether == NULL)
		return -ENOSPC;
	int error = append_payload(frame, pool, payload, length);
	if (error != 0) {
		/* Give back the segments chained so far: the frame may be reused. */
		if (frame->next != NULL)
			rte_pktmbuf_free(frame->next);
		frame->next = NULL;
		rte_pktmbuf_reset(frame);
		return error;
	}
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(ether + 1);
	struct rte_udp_hdr *udp = (struct rte_udp_hdr *)(ip + 1);
	rte_ether_addr_copy(&to->mac, &ether->dst_addr);
	rte_ether_addr_copy(&from->mac, &ether->src_addr);
	ether->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	*ip = (struct rte_ipv4_hdr){
		.version_ihl = RTE_IPV4_VHL_DEF,
		.total_length = rte_cpu_to_be_16((uint16_t)(IPV4_BYTES + UDP_BYTES + length)),
		.fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG),
		.time_to_live = 64,
		.next_proto_id = IPPROTO_UDP,
		.src_addr = from->ip_be,
		.dst_addr = to->ip_be,
	};
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	uint16_t udp_length = (uint16_t)(UDP_BYTES + length);
	*udp = (struct rte_udp_hdr){ .src_port = from->port_be, .dst_port = to->port_be,
				     .dgram_len = rte_cpu_to_be_16(udp_length) };
	uint16_t raw = 0;
	int summed = rte_raw_cksum_mbuf(frame, ETHER_BYTES + IPV4_BYTES, udp_length, &raw);
	assert(summed == 0);
	(void)summed;
	uint16_t checksum = (uint16_t)~fold((uint32_t)raw + pseudo_header_sum(ip, udp_length));
	udp->dgram_cksum = checksum == 0 ? 0xffff : checksum; /* 0 would mean "none" */
	return 0;
}

struct stored_peer {
	uint8_t mac[RTE_ETHER_ADDR_LEN];
	uint16_t port_be;
	uint32_t ip_be;
	uint32_t tag;
};
_Static_assert(sizeof(struct stored_peer) <= sizeof(struct netio_peer), "peer fits");

void dpdk_peer_store(struct netio_peer *peer, const struct dpdk_endpoint *endpoint)
{
	struct stored_peer stored = { .port_be = endpoint->port_be, .ip_be = endpoint->ip_be,
				      .tag = PEER_TAG };
	memcpy(stored.mac, endpoint->mac.addr_bytes, sizeof(stored.mac));
	memset(peer, 0, sizeof(*peer));
	memcpy(peer->bytes, &stored, sizeof(stored));
}

bool dpdk_peer_load(const struct netio_peer *peer, struct dpdk_endpoint *endpoint)
{
	struct stored_peer stored;
	memcpy(&stored, peer->bytes, sizeof(stored));
	if (stored.tag != PEER_TAG)
		return false;
	memcpy(endpoint->mac.addr_bytes, stored.mac, sizeof(stored.mac));
	endpoint->port_be = stored.port_be;
	endpoint->ip_be = stored.ip_be;
	return true;
}
