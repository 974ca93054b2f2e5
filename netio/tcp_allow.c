/*
 * tcp_allow.c — source allow-lists of the TCP listeners: CIDR networks, IPv4
 * and IPv6 (tcp_server.h). Pure.
 */
#include "tcp_server.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static int parse_network(const char *text, size_t length, struct tcp_allow_network *network)
{
	char buffer[INET6_ADDRSTRLEN + 8];
	if (length == 0 || length >= sizeof(buffer))
		return -EINVAL;
	memcpy(buffer, text, length);
	buffer[length] = '\0';
	char *slash = strchr(buffer, '/');
	if (slash != NULL)
		*slash = '\0';
	memset(network, 0, sizeof(*network));
	unsigned bits_max;
	if (inet_pton(AF_INET, buffer, network->address) == 1) {
		network->family = AF_INET;
		bits_max = 32;
	} else if (inet_pton(AF_INET6, buffer, network->address) == 1) {
		network->family = AF_INET6;
		bits_max = 128;
	} else {
		return -EINVAL;
	}
	unsigned long bits = bits_max;
	if (slash != NULL) {
		char *end = NULL;
		if (slash[1] < '0' || slash[1] > '9')
			return -EINVAL;
		bits = strtoul(slash + 1, &end, 10);
		if (*end != '\0' || bits > bits_max)
			return -EINVAL;
	}
	network->prefix_bits = (uint8_t)bits;
	return 0;
}

int tcp_allow_parse(const char *list, struct tcp_allow *allow, char *error, size_t error_size)
{
	memset(allow, 0, sizeof(*allow));
	const char *at = list;
	while (*at != '\0') {
		size_t length = strcspn(at, ", ");
		if (length > 0) {
			if (allow->count == TCP_ALLOW_NETWORKS_MAX) {
				snprintf(error, error_size, "more than %u networks",
					 TCP_ALLOW_NETWORKS_MAX);
				return -E2BIG;
			}
			if (parse_network(at, length, &allow->networks[allow->count]) != 0) {
				snprintf(error, error_size, "'%.*s' is not a network (CIDR)",
					 (int)length, at);
				return -EINVAL;
			}
			allow->count++;
		}
		at += length;
		at += strspn(at, ", ");
	}
	if (allow->count == 0) {
		snprintf(error, error_size, "an empty list of networks");
		return -EINVAL;
	}
	return 0;
}

static bool prefix_equal(const uint8_t *a, const uint8_t *b, unsigned bits)
{
	unsigned whole = bits / 8, rest = bits % 8;
	if (memcmp(a, b, whole) != 0)
		return false;
	if (rest == 0)
		return true;
	uint8_t mask = (uint8_t)(0xffu << (8 - rest));
	return (a[whole] & mask) == (b[whole] & mask);
}

bool tcp_allow_match(const struct tcp_allow *allow, const struct sockaddr *address)
{
	if (allow == NULL || allow->count == 0)
		return true;
	uint8_t bytes[16];
	int family = address->sa_family;
	if (family == AF_INET) {
		memcpy(bytes, &((const struct sockaddr_in *)address)->sin_addr, 4);
	} else if (family == AF_INET6) {
		const struct in6_addr *six = &((const struct sockaddr_in6 *)address)->sin6_addr;
		/* A v4 client of a dual-stack listener arrives as ::ffff:a.b.c.d:
		 * it matches the IPv4 networks. */
		if (IN6_IS_ADDR_V4MAPPED(six)) {
			family = AF_INET;
			memcpy(bytes, six->s6_addr + 12, 4);
		} else {
			memcpy(bytes, six->s6_addr, 16);
		}
	} else {
		return false;
	}
	assert(allow->count <= TCP_ALLOW_NETWORKS_MAX);
	for (uint32_t i = 0; i < allow->count; i++) {
		const struct tcp_allow_network *n = &allow->networks[i];
		if (n->family == family && prefix_equal(bytes, n->address, n->prefix_bits))
			return true;
	}
	return false;
}
