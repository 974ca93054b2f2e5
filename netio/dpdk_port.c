/*
 * dpdk_port.c — EAL start-up, argument splitting and port set-up (dpdk_port.h).
 */
#include "dpdk_port.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>

#define ARGS_MAX 64                    /* words in the backend arguments */
#define ARGS_TEXT_MAX 2048             /* bytes of the backend arguments */
#define DESCRIPTORS_DEFAULT 1024
#define MEMPOOL_CACHE 256
#define THREAD_TIMER_SLACK_NS 5000     /* netio workers sleep in 50 us steps */

static bool eal_started;

static int fail(char *error, size_t error_size, int code, const char *format, ...)
	__attribute__((format(printf, 4, 5)));
static int fail(char *error, size_t error_size, int code, const char *format, ...)
{
	va_list arguments;
	va_start(arguments, format);
	vsnprintf(error, error_size, format, arguments);
	va_end(arguments);
	return code;
}

/*
 * Splits text into words like a POSIX shell without expansions: blanks
 * separate, '...' is literal, "..." honours \" and \\, a backslash outside
 * quotes escapes the next character. Words are written into storage.
 * Returns the word count, or -EINVAL (unbalanced quote, too many words).
 */
static int split_words(const char *text, char *storage, size_t storage_size, char **words,
		       int words_max)
{
	size_t used = 0;
	int count = 0;
	const char *at = text;
	for (;;) {
		while (*at == ' ' || *at == '\t' || *at == '\n')
			at++;
		if (*at == '\0')
			return count;
		if (count == words_max)
			return -EINVAL;
		words[count++] = storage + used;
		char quote = 0;
		while (*at != '\0' && (quote || (*at != ' ' && *at != '\t' && *at != '\n'))) {
			char c = *at++;
			if (!quote && (c == '\'' || c == '"')) {
				quote = c;
				continue;
			}
			if (quote && c == quote) {
				quote = 0;
				continue;
			}
			if (c == '\\' && quote != '\'' && *at != '\0' &&
			    (!quote || *at == '"' || *at == '\\'))
				c = *at++;
			if (used + 1 >= storage_size)
				return -EINVAL;
			storage[used++] = c;
		}
		if (quote)
			return -EINVAL;
		storage[used++] = '\0';
	}
}

static int parse_number(const char *text, uint64_t max, uint64_t *value)
{
	char *end = NULL;
	errno = 0;
	unsigned long long parsed = strtoull(text, &end, 0);
	if (errno != 0 || end == text || *end != '\0' || parsed > max)
		return -EINVAL;
	*value = parsed;
	return 0;
}

static int parse_option(const char *word, struct dpdk_options *options)
{
	const char *equals = strchr(word, '=');
	if (equals == NULL)
		return -EINVAL;
	size_t key_length = (size_t)(equals - word);
	const char *value = equals + 1;
	uint64_t number = 0;
	struct in_addr address;
#define KEY(name) (key_length == strlen(name) && strncmp(word, name, key_length) == 0)
	if (KEY("ip") || KEY("peer-ip")) {
		if (inet_pton(AF_INET, value, &address) != 1 || address.s_addr == 0)
			return -EINVAL;
		*(KEY("ip") ? &options->ip_be : &options->peer_ip_be) = address.s_addr;
		return 0;
	}
	if (KEY("mac") || KEY("peer-mac")) {
		bool own = KEY("mac");
		if (rte_ether_unformat_addr(value, own ? &options->mac : &options->peer_mac) != 0)
			return -EINVAL;
		*(own ? &options->mac_set : &options->peer_mac_set) = true;
		return 0;
	}
	if (KEY("port") || KEY("peer-port")) {
		if (parse_number(value, UINT16_MAX, &number) != 0 || number == 0)
			return -EINVAL;
		*(KEY("port") ? &options->udp_port : &options->peer_udp_port) = (uint16_t)number;
		return 0;
	}
	if (KEY("port-id") || KEY("rxd") || KEY("txd")) {
		if (parse_number(value, UINT16_MAX, &number) != 0)
			return -EINVAL;
		*(KEY("port-id") ? &options->port_id
		  : KEY("rxd") ? &options->rx_descriptors : &options->tx_descriptors) =
			(uint16_t)number;
		return 0;
	}
	if (KEY("mtu") || KEY("mbufs")) {
		if (parse_number(value, UINT32_MAX, &number) != 0)
			return -EINVAL;
		*(KEY("mtu") ? &options->mtu : &options->mbufs) = (uint32_t)number;
		return 0;
	}
#undef KEY
	return -EINVAL;
}

static void options_default(struct dpdk_options *options)
{
	memset(options, 0, sizeof(*options));
	options->rx_descriptors = DESCRIPTORS_DEFAULT;
	options->tx_descriptors = DESCRIPTORS_DEFAULT;
	options->peer_udp_port = 7000;
}

/* Splits args; *eal_count = words before `--` (argv[0] is added by the caller). */
static int split_args(const char *args, char *storage, char **words, int *word_count,
		      int *eal_count, struct dpdk_options *options, char *error, size_t error_size)
{
	options_default(options);
	if (args == NULL)
		args = "";
	if (strlen(args) >= ARGS_TEXT_MAX)
		return fail(error, error_size, -EINVAL, "DPDK arguments longer than %d bytes",
			    ARGS_TEXT_MAX - 1);
	int count = split_words(args, storage, ARGS_TEXT_MAX, words, ARGS_MAX - 4);
	if (count < 0)
		return fail(error, error_size, -EINVAL,
			    "DPDK arguments: unbalanced quote or more than %d words", ARGS_MAX - 4);
	int eal = count;
	for (int i = 0; i < count; i++)
		if (strcmp(words[i], "--") == 0) {
			eal = i;
			break;
		}
	for (int i = eal + 1; i < count; i++)
		if (parse_option(words[i], options) != 0)
			return fail(error, error_size, -EINVAL,
				    "DPDK arguments: '%s' is not one of ip=, port=, mac=, "
				    "port-id=, rxd=, txd=, mtu=, mbufs=, peer-ip=, peer-port=, "
				    "peer-mac= with a valid value", words[i]);
	*word_count = count;
	*eal_count = eal;
	return 0;
}

int dpdk_options_parse(const char *args, struct dpdk_options *options, char *error,
		       size_t error_size)
{
	char storage[ARGS_TEXT_MAX];
	char *words[ARGS_MAX];
	int count = 0, eal = 0;
	return split_args(args, storage, words, &count, &eal, options, error, error_size);
}

static bool names_lcores(char *const *words, int count)
{
	for (int i = 0; i < count; i++)
		if (!strcmp(words[i], "-l") || !strncmp(words[i], "-l", 2) ||
		    !strcmp(words[i], "-c") || !strncmp(words[i], "--lcores", 8))
			return true;
	return false;
}

int dpdk_eal_start(const char *args, struct dpdk_options *options, char *error,
		   size_t error_size)
{
	static char storage[ARGS_TEXT_MAX];  /* the EAL may keep pointers into argv */
	static char *argv[ARGS_MAX];
	static char lcore_text[16];
	int count = 0, eal = 0;
	int result = split_args(args, storage, argv + 1, &count, &eal, options, error,
				error_size);
	if (result != 0)
		return result;
	if (eal_started)
		return -EALREADY;
	argv[0] = "payswitch";
	int argc = 1 + eal;
	cpu_set_t before;
	CPU_ZERO(&before);
	bool have_before = pthread_getaffinity_np(pthread_self(), sizeof(before), &before) == 0;
	if (!names_lcores(argv + 1, eal)) {
		int first = 0;
		while (have_before && first < CPU_SETSIZE && !CPU_ISSET(first, &before))
			first++;
		snprintf(lcore_text, sizeof(lcore_text), "%d", first < CPU_SETSIZE ? first : 0);
		argv[argc++] = "-l";
		argv[argc++] = lcore_text;
	}
	argv[argc] = NULL;
	int parsed = rte_eal_init(argc, argv);
	if (have_before)
		(void)pthread_setaffinity_np(pthread_self(), sizeof(before), &before);
	if (parsed < 0)
		return fail(error, error_size, rte_errno ? -rte_errno : -EINVAL,
			    "rte_eal_init failed: %s (arguments: %s)", rte_strerror(rte_errno),
			    args ? args : "");
	eal_started = true;
	return 0;
}

/* mbufs for every descriptor, bursts in flight, and every thread's cache. */
static uint32_t pool_size(const struct dpdk_options *options, uint16_t queues,
			  uint16_t rx_descriptors, uint16_t tx_descriptors)
{
	if (options->mbufs != 0)
		return options->mbufs;
	uint64_t need = (uint64_t)queues * (rx_descriptors + tx_descriptors + 4u * 32u) +
			(uint64_t)(queues + 2u) * MEMPOOL_CACHE * 3u / 2u + 1024u;
	uint32_t size = 1024;
	while (size - 1 < need)
		size <<= 1;
	return size - 1; /* 2^n - 1: the mempool ring's best size */
}

static int configure(const struct dpdk_options *options, uint16_t queues,
		     struct dpdk_port *port, const struct rte_eth_dev_info *info, char *error,
		     size_t error_size)
{
	struct rte_eth_conf conf;
	memset(&conf, 0, sizeof(conf));
	uint64_t rss = (RTE_ETH_RSS_IP | RTE_ETH_RSS_UDP) & info->flow_type_rss_offloads;
	if (queues > 1 && rss != 0) {
		conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
		conf.rx_adv_conf.rss_conf.rss_hf = rss;
		port->rss = true;
	}
	if (info->tx_offload_capa & RTE_ETH_TX_OFFLOAD_MULTI_SEGS)
		conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_MULTI_SEGS;
	if (options->mtu != 0)
		conf.rxmode.mtu = options->mtu;
	int result = rte_eth_dev_configure(options->port_id, queues, queues, &conf);
	if (result != 0)
		return fail(error, error_size, result, "port %u (%s): configure with %u queue(s): %s",
			    options->port_id, info->driver_name, queues, rte_strerror(-result));
	return 0;
}

static int setup_queues(const struct dpdk_options *options, struct dpdk_port *port,
			uint16_t rx_descriptors, uint16_t tx_descriptors, char *error,
			size_t error_size)
{
	int socket = rte_eth_dev_socket_id(options->port_id);
	for (uint16_t q = 0; q < port->queues; q++) {
		int result = rte_eth_rx_queue_setup(options->port_id, q, rx_descriptors,
						    (unsigned)socket, NULL, port->pool);
		if (result == 0)
			result = rte_eth_tx_queue_setup(options->port_id, q, tx_descriptors,
							(unsigned)socket, NULL);
		if (result != 0)
			return fail(error, error_size, result, "port %u: queue %u: %s",
				    options->port_id, q, rte_strerror(-result));
	}
	return 0;
}

int dpdk_port_start(const struct dpdk_options *options, uint16_t queues,
		    struct dpdk_port *port, char *error, size_t error_size)
{
	assert(options != NULL && port != NULL && queues > 0 && error_size > 0);
	memset(port, 0, sizeof(*port));
	error[0] = '\0';
	port->port_id = options->port_id;
	port->queues = queues;
	if (!rte_eth_dev_is_valid_port(options->port_id))
		return fail(error, error_size, -ENODEV,
			    "no DPDK port %u: give a --vdev (net_memif, net_af_packet, ...) or "
			    "bind a NIC to vfio-pci (%u port(s) found)",
			    options->port_id, (unsigned)rte_eth_dev_count_avail());
	struct rte_eth_dev_info info;
	int result = rte_eth_dev_info_get(options->port_id, &info);
	if (result != 0)
		return fail(error, error_size, result, "port %u: info: %s", options->port_id,
			    rte_strerror(-result));
	snprintf(port->driver, sizeof(port->driver), "%s", info.driver_name);
	if (queues > info.max_rx_queues || queues > info.max_tx_queues)
		return fail(error, error_size, -EINVAL,
			    "port %u (%s) offers %u RX / %u TX queues, %u workers need one each "
			    "(net_af_packet: qpairs=N)", options->port_id, info.driver_name,
			    info.max_rx_queues, info.max_tx_queues, queues);
	result = configure(options, queues, port, &info, error, error_size);
	if (result != 0)
		return result;
	uint16_t rx_descriptors = options->rx_descriptors, tx_descriptors = options->tx_descriptors;
	(void)rte_eth_dev_adjust_nb_rx_tx_desc(options->port_id, &rx_descriptors, &tx_descriptors);
	char name[RTE_MEMPOOL_NAMESIZE];
	snprintf(name, sizeof(name), "payswitch_port%u", options->port_id);
	port->pool = rte_pktmbuf_pool_create(name, pool_size(options, queues, rx_descriptors,
							     tx_descriptors),
					     MEMPOOL_CACHE, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
					     rte_eth_dev_socket_id(options->port_id));
	if (port->pool == NULL)
		return fail(error, error_size, -ENOMEM, "mbuf pool: %s (give the EAL more "
			    "memory: -m)", rte_strerror(rte_errno));
	result = setup_queues(options, port, rx_descriptors, tx_descriptors, error, error_size);
	if (result == 0)
		result = rte_eth_dev_start(options->port_id);
	if (result != 0) {
		if (error[0] == '\0')
			fail(error, error_size, result, "port %u: start: %s", options->port_id,
			     rte_strerror(-result));
		dpdk_port_stop(port);
		return result;
	}
	port->started = true;
	if (options->mac_set)
		port->mac = options->mac;
	else
		(void)rte_eth_macaddr_get(options->port_id, &port->mac);
	uint16_t mtu = 0;
	if (rte_eth_dev_get_mtu(options->port_id, &mtu) == 0)
		port->mtu = mtu;
	return 0;
}

void dpdk_port_stop(struct dpdk_port *port)
{
	if (port->started)
		(void)rte_eth_dev_stop(port->port_id);
	(void)rte_eth_dev_close(port->port_id);
	port->started = false;
	rte_mempool_free(port->pool);
	port->pool = NULL;
}

int dpdk_thread_attach(void)
{
	if (rte_lcore_id() != LCORE_ID_ANY)
		return 0;
	if (rte_thread_register() != 0)
		return -rte_errno;
	(void)prctl(PR_SET_TIMERSLACK, THREAD_TIMER_SLACK_NS, 0, 0, 0);
	return 0;
}

uint64_t dpdk_now_ns(void)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}
