/*
 * dpdk_load.c — payswitch-dpdk-load: the DPDK load generator.
 *
 * Drives a switch over a DPDK port (normally net_memif, role=client, against
 * a switch running `--transport dpdk` as the memif server) with the native
 * protocol: one payment per packet (a terminal) or K per packet (a gateway),
 * closed loop with a window of datagrams in flight.
 *
 * Phases, each run to completion before the next:
 *   1. resolve the switch's MAC with ARP (or peer-mac=),
 *   2. OPEN a funding account and N accounts, DEPOSIT the initial balance,
 *   3. PAY between random accounts for --duration seconds (measured),
 *   4. BALANCE of every account, compared with the model: the initial
 *      balance plus every approved payment's credits minus its debits.
 * Every result is checked: its id belongs to the datagram it answers, each
 * request is answered once (a retransmission's duplicate answer is ignored),
 * and its code is one the phase expects. BUSY requests are sent again with
 * the same id (nothing was decided). Exit status 0 only when every check held.
 *
 * --malformed N instead sends N frames of each kind the switch must drop
 * (bad EtherType, bad IPv4 checksum, truncated IPv4, bad UDP length, bad UDP
 * checksum, wrong UDP port, random bytes), then checks that ARP and ICMP echo
 * are answered and that the switch still serves (phases 1, 2 and 4).
 *
 * Authentication (protocol version 2): every datagram carries a 48-byte
 * header whose sequence is the realtime clock in µs (strictly increasing),
 * sealed with netio_seal: the admin key (--admin-key) for OPEN, DEPOSIT and
 * BALANCE, the acquirer key (--key) for PAY; one of them alone signs
 * everything, neither means key id 0 (a switch run --insecure-no-auth).
 * Replies count only when their MAC is the key's (netio_mac_ok). A
 * retransmission is a new datagram: a new sequence, the same requests.
 *
 * Latency: one sample per payment, from the first transmission of its
 * datagram to the arrival of the reply that carries its result, in the
 * shared histogram (bench/common), nanoseconds.
 */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdalign.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_udp.h>

#include "dpdk_packet.h"
#include "dpdk_port.h"
#include "histogram.h"
#include "netio.h"

#define SLOT_BITS 12u
#define UDP_SLOT_MAP (1u << 20)     /* sequence -> slot, by the low bits (~1 s of µs) */
#define WINDOW_MAX (1u << SLOT_BITS)
#define UDP_UNNUMBERED UINT64_MAX  /* a sequence never used: --udp, a datagram that never
                                    * went out; sequence_previous, no earlier one */
#define CURRENCY LEDGER_CURRENCY_DEFAULT
#define RETRANSMIT_NS (500u * 1000000u)
#define RETRANSMITS_MAX 20u
#define PHASE_TIMEOUT_NS (60ull * 1000000000ull)
#define LOCAL_PORT 40000

struct options {
	const char *dpdk_args;
	const char *udp;            /* HOST:PORT: kernel sockets instead of DPDK */
	uint64_t accounts;
	uint64_t first_account;
	uint64_t initial_balance;
	double duration_s;
	uint32_t per_packet;
	uint32_t window;
	uint32_t malformed;
	const char *label;
	const char *key_path;       /* --key: PAY */
	const char *admin_key_path; /* --admin-key: OPEN, DEPOSIT, BALANCE */
	bool header;
	bool verify;
};

enum phase_kind { PHASE_OPEN, PHASE_DEPOSIT, PHASE_PAY, PHASE_BALANCE };

/* One datagram in flight. */
struct slot {
	uint64_t sequence;          /* 0: free */
	uint64_t sequence_previous; /* the transmission before (a late answer counts) */
	uint64_t sent_ns;           /* first transmission */
	uint64_t resent_ns;         /* last transmission */
	uint32_t retransmits;
	uint32_t count;             /* requests */
	uint32_t answered;
	uint32_t length;            /* datagram bytes */
	bool done[NETIO_BATCH_MAX];
	alignas(64) uint8_t datagram[NETIO_DATAGRAM_MAX];
};

struct load {
	struct options options;
	struct dpdk_options dpdk;
	struct dpdk_port port;
	struct dpdk_endpoint local, peer;
	struct netio_client *udp;   /* --udp: the netio client library instead (the
	                             * phase's: udp_admin or udp_payments) */
	struct netio_client *udp_admin, *udp_payments;
	uint32_t *udp_slot_of;      /* UDP_SLOT_MAP entries: sequence -> slot */
	uint64_t client_id;
	uint64_t sequence_last;     /* DPDK: the last sequence used (realtime µs) */
	bool keyed;                 /* keys loaded (else key id 0) */
	struct netio_key key;       /* PAY */
	struct netio_key admin_key; /* OPEN, DEPOSIT, BALANCE */
	uint64_t replies_invalid;   /* replies whose key id or MAC is not ours */
	uint64_t next_id;
	struct slot *slots;
	uint32_t *free_slots;       /* stack of free slot indexes */
	uint32_t free_count;
	uint32_t in_flight;
	int64_t *model;             /* expected balance per account */
	int64_t *seen;              /* BALANCE answers */
	/* the current phase */
	enum phase_kind phase;
	uint64_t phase_next;        /* next account index (OPEN, DEPOSIT, BALANCE) */
	uint64_t phase_total;       /* requests of the phase (PAY: unbounded) */
	uint64_t phase_answered;
	bool phase_open;            /* PAY: still generating */
	struct ledger_request *retry;   /* BUSY requests to send again */
	uint32_t retry_count;
	uint64_t random_state;
	uint32_t idle_polls;        /* receive() turns without traffic */
	/* figures */
	struct histogram latency;
	uint64_t datagrams_sent, datagrams_answered, retransmits, replies;
	uint64_t approved, declined, busy, errors, ignored;
	alignas(64) uint8_t rx_buffer[NETIO_RX_BUFFER_BYTES];
};

static const char help_text[] =
	"usage: payswitch-dpdk-load --dpdk-args \"EAL ARGS -- ip=A peer-ip=B\" [OPTIONS]\n"
	"       payswitch-dpdk-load --udp HOST:PORT [OPTIONS]\n"
	"\n"
	"DPDK load generator for payswitch (normally a net_memif client). Opens and\n"
	"funds accounts, pays between them in a closed loop for --duration seconds,\n"
	"then checks every balance against a model. Prints one table row.\n"
	"\n"
	"  --dpdk-args TEXT    EAL arguments, then `--` and ip= (ours), peer-ip= (the\n"
	"                      switch), peer-port= (default 7000), peer-mac= (skip ARP),\n"
	"                      port= (our UDP port, default 40000), mtu=, mbufs=\n"
	"  --udp HOST:PORT     instead of DPDK: kernel UDP sockets (the netio client\n"
	"                      library), same workload and accounting, for comparison\n"
	"  --accounts N        accounts to open and fund (default 10000)\n"
	"  --first-account ID  first account id (default 1000000); runs against one\n"
	"                      switch must use disjoint ranges\n"
	"  --initial-balance C cents deposited into each account (default 1000000)\n"
	"  --duration S        seconds of payments (default 5)\n"
	"  --per-packet K      payments per datagram, 1..128 (default 1); more than 22\n"
	"                      needs a link MTU above 1500 (mtu=9000 on both ends)\n"
	"  --window W          datagrams in flight, 1..4096 (default 256)\n"
	"  --malformed N       send N bad frames of each kind, check ARP and ping,\n"
	"                      then open, fund and check accounts (no payments)\n"
	"  --key FILE          acquirer key (payswitch client add ... --role acquirer)\n"
	"                      that signs the payments\n"
	"  --admin-key FILE    admin key that signs OPEN, DEPOSIT and BALANCE; one of\n"
	"                      the two alone signs everything; neither: no key (only a\n"
	"                      switch started --insecure-no-auth answers)\n"
	"  --label TEXT        first column of the row (default dpdk)\n"
	"  --no-header         print the row without the header line\n"
	"  --no-verify         skip the final BALANCE check\n"
	"  --help\n";

static uint64_t next_random(struct load *load)
{
	/* xorshift64*: the workload only needs spread, not secrecy. */
	uint64_t x = load->random_state;
	x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
	load->random_state = x;
	return x * 0x2545f4914f6cdd1dull;
}

static int parse_options(int argc, char **argv, struct options *options)
{
	static const struct option long_options[] = {
		{ "dpdk-args", required_argument, NULL, 'E' },
		{ "udp", required_argument, NULL, 'U' },
		{ "accounts", required_argument, NULL, 'a' },
		{ "first-account", required_argument, NULL, 'f' },
		{ "initial-balance", required_argument, NULL, 'b' },
		{ "duration", required_argument, NULL, 'd' },
		{ "per-packet", required_argument, NULL, 'k' },
		{ "window", required_argument, NULL, 'w' },
		{ "malformed", required_argument, NULL, 'M' },
		{ "label", required_argument, NULL, 'L' },
		{ "key", required_argument, NULL, 'K' },
		{ "admin-key", required_argument, NULL, 'A' },
		{ "no-header", no_argument, NULL, 'H' },
		{ "no-verify", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	*options = (struct options){ .accounts = 10000, .first_account = 1000000,
				     .initial_balance = 1000000, .duration_s = 5, .per_packet = 1,
				     .window = 256, .label = "dpdk", .header = true, .verify = true };
	int option;
	while ((option = getopt_long(argc, argv, "h", long_options, NULL)) != -1) {
		switch (option) {
		case 'E': options->dpdk_args = optarg; break;
		case 'U': options->udp = optarg; options->label = "udp"; break;
		case 'a': options->accounts = strtoull(optarg, NULL, 0); break;
		case 'f': options->first_account = strtoull(optarg, NULL, 0); break;
		case 'b': options->initial_balance = strtoull(optarg, NULL, 0); break;
		case 'd': options->duration_s = strtod(optarg, NULL); break;
		case 'k': options->per_packet = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'w': options->window = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'M': options->malformed = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'L': options->label = optarg; break;
		case 'K': options->key_path = optarg; break;
		case 'A': options->admin_key_path = optarg; break;
		case 'H': options->header = false; break;
		case 'V': options->verify = false; break;
		case 'h': fputs(help_text, stdout); exit(0);
		default: return -EINVAL;
		}
	}
	if ((options->dpdk_args == NULL) == (options->udp == NULL) || options->accounts < 2 || options->accounts > 10000000 ||
	    options->first_account == 0 || options->per_packet < 1 ||
	    options->per_packet > NETIO_BATCH_MAX || options->window < 1 ||
	    options->window > WINDOW_MAX || options->duration_s < 0 ||
	    options->initial_balance == 0 || options->initial_balance > INT64_MAX / 4) {
		fputs(help_text, stderr);
		return -EINVAL;
	}
	return 0;
}

/* Reads one key file; prints the path and the reason when it cannot. */
static int key_read(const char *option, const char *path, struct netio_key *key)
{
	int error = netio_key_load(path, key);
	if (error != 0)
		fprintf(stderr, "payswitch-dpdk-load: %s %s: %s\n", option, path,
			error == -EACCES ? "readable by group or others (a key file must be mode "
					   "0600: chmod 600 it)"
			: error == -EINVAL ? "not a payswitch key file (from 'payswitch client add')"
					   : strerror(-error));
	return error;
}

/* --key and --admin-key; one alone signs everything. */
static int keys_load(struct load *load)
{
	const struct options *o = &load->options;
	if (o->key_path && key_read("--key", o->key_path, &load->key) != 0)
		return -EINVAL;
	if (o->admin_key_path && key_read("--admin-key", o->admin_key_path, &load->admin_key) != 0)
		return -EINVAL;
	if (o->key_path == NULL && o->admin_key_path == NULL) {
		fprintf(stderr, "payswitch-dpdk-load: WARNING: no --key / --admin-key: only a switch "
				"started --insecure-no-auth answers\n");
		return 0;
	}
	if (o->key_path == NULL)
		load->key = load->admin_key;
	if (o->admin_key_path == NULL)
		load->admin_key = load->key;
	load->keyed = true;
	return 0;
}

/* The key of the current phase: the payments' (acquirer) or the admin's. */
static const struct netio_key *phase_key(const struct load *load)
{
	if (!load->keyed)
		return NULL;
	return load->phase == PHASE_PAY ? &load->key : &load->admin_key;
}

/* The next datagram sequence: the realtime clock in µs, or just past the
 * last one (the switch refuses a sequence it has seen or one far off its clock). */
static uint64_t sequence_take(struct load *load)
{
	uint64_t now = ledger_realtime_us();
	load->sequence_last = now > load->sequence_last ? now : load->sequence_last + 1;
	return load->sequence_last;
}

/* Gives the slot's datagram a new sequence and seals it (a first
 * transmission or a retransmission: a new datagram, the same requests). */
static void slot_number(struct load *load, struct slot *slot)
{
	uint64_t sequence = sequence_take(load);
	struct netio_header *header = (struct netio_header *)(void *)slot->datagram;
	header->sequence = sequence;
	netio_seal(phase_key(load), slot->datagram, slot->length);
	slot->sequence_previous = slot->sequence;
	slot->sequence = sequence;
	load->udp_slot_of[sequence & (UDP_SLOT_MAP - 1)] = (uint32_t)(slot - load->slots);
}

/* ------------------------------------------------------------------------ */
/* Frames                                                                    */
/* ------------------------------------------------------------------------ */

/* Sends frames[0..count); retries a full queue a bounded number of times. */
static uint32_t send_frames(struct load *load, struct rte_mbuf **frames, uint32_t count)
{
	uint32_t sent = 0;
	for (uint32_t attempt = 0; sent < count && attempt < 100000; attempt++)
		sent += rte_eth_tx_burst(load->port.port_id, 0, frames + sent,
					 (uint16_t)(count - sent));
	if (sent < count)
		rte_pktmbuf_free_bulk(frames + sent, count - sent);
	return sent;
}

static struct rte_mbuf *udp_frame(struct load *load, const struct dpdk_endpoint *to,
				  const void *payload, uint32_t length)
{
	struct rte_mbuf *frame = rte_pktmbuf_alloc(load->port.pool);
	if (frame == NULL)
		return NULL;
	if (dpdk_udp_build(frame, load->port.pool, &load->local, to, payload, length) != 0) {
		rte_pktmbuf_free(frame);
		return NULL;
	}
	return frame;
}

/* Answers ARP requests for our address (a kernel peer asks before replying). */
static void answer_arp(struct load *load, struct rte_mbuf *frame)
{
	dpdk_arp_reply_in_place(frame, &load->local);
	send_frames(load, &frame, 1);
}

/* Polls until an ARP reply from peer-ip arrives (at most 10 s). */
static int resolve_peer(struct load *load)
{
	if (load->dpdk.peer_mac_set) {
		load->peer.mac = load->dpdk.peer_mac;
		return 0;
	}
	uint64_t deadline = dpdk_now_ns() + 10000000000ull, next_ask = 0;
	while (dpdk_now_ns() < deadline) {
		if (dpdk_now_ns() >= next_ask) {
			struct rte_mbuf *ask = rte_pktmbuf_alloc(load->port.pool);
			if (ask != NULL && dpdk_arp_request_build(ask, &load->local,
								  load->peer.ip_be) == 0)
				send_frames(load, &ask, 1);
			else if (ask != NULL)
				rte_pktmbuf_free(ask);
			next_ask = dpdk_now_ns() + 100000000ull;
		}
		struct rte_mbuf *frames[NETIO_BURST_MAX];
		uint16_t n = rte_eth_rx_burst(load->port.port_id, 0, frames, NETIO_BURST_MAX);
		bool found = false;
		for (uint16_t i = 0; i < n; i++) {
			struct dpdk_parsed parsed;
			dpdk_parse(frames[i], &load->local, &parsed);
			if (parsed.kind == DPDK_FRAME_ARP_REPLY &&
			    parsed.source.ip_be == load->peer.ip_be) {
				load->peer.mac = parsed.source.mac;
				found = true;
			}
			if (parsed.kind == DPDK_FRAME_ARP_REQUEST)
				answer_arp(load, frames[i]);
			else
				rte_pktmbuf_free(frames[i]);
		}
		if (found)
			return 0;
		if (n == 0)
			usleep(1000);
	}
	return -ETIMEDOUT;
}

/* ------------------------------------------------------------------------ */
/* Requests                                                                  */
/* ------------------------------------------------------------------------ */

static struct ledger_request request_make(struct load *load, uint8_t kind, uint64_t account,
					  uint64_t other, uint64_t amount)
{
	struct ledger_request request;
	memset(&request, 0, sizeof(request));
	request.id = load->next_id++;
	request.timestamp_us = ledger_realtime_us();
	request.account_id = account;
	request.other_id = other;
	request.amount = amount;
	request.currency = CURRENCY;
	request.kind = kind;
	return request;
}

static uint64_t funding_account(const struct load *load)
{
	return load->options.first_account + load->options.accounts;
}

/* The next request of the phase; false when the phase has no more to send. */
static bool phase_next(struct load *load, struct ledger_request *request)
{
	if (load->retry_count > 0) {
		*request = load->retry[--load->retry_count]; /* same id, same fields */
		return true;
	}
	const struct options *o = &load->options;
	switch (load->phase) {
	case PHASE_OPEN:
		if (load->phase_next > o->accounts)
			return false;
		*request = request_make(load, LEDGER_KIND_OPEN,
					o->first_account + load->phase_next, 0, 0);
		if (load->phase_next == o->accounts)
			request->flags = LEDGER_ACCOUNT_FUNDING;
		load->phase_next++;
		return true;
	case PHASE_DEPOSIT:
		if (load->phase_next >= o->accounts)
			return false;
		*request = request_make(load, LEDGER_KIND_DEPOSIT, funding_account(load),
					o->first_account + load->phase_next++, o->initial_balance);
		return true;
	case PHASE_BALANCE:
		if (load->phase_next >= o->accounts)
			return false;
		*request = request_make(load, LEDGER_KIND_BALANCE,
					o->first_account + load->phase_next++, 0, 0);
		return true;
	case PHASE_PAY: {
		if (!load->phase_open)
			return false;
		uint64_t payer = next_random(load) % o->accounts;
		uint64_t payee = (payer + 1 + next_random(load) % (o->accounts - 1)) % o->accounts;
		*request = request_make(load, LEDGER_KIND_PAY, o->first_account + payer,
					o->first_account + payee, 1 + next_random(load) % 100);
		return true;
	}
	}
	return false;
}

/* Checks one result against its request and applies it to the model. */
static void account_result(struct load *load, const struct ledger_request *request,
			   const struct ledger_result *result)
{
	const struct options *o = &load->options;
	if (result->code == LEDGER_BUSY) {
		load->busy++;
		assert(load->retry_count < (uint64_t)o->window * NETIO_BATCH_MAX);
		load->retry[load->retry_count++] = *request;
		return;
	}
	load->phase_answered++;
	bool ok = result->code == LEDGER_OK;
	switch (request->kind) {
	case LEDGER_KIND_PAY:
		if (ok) {
			load->approved++;
			load->model[request->account_id - o->first_account] -= (int64_t)request->amount;
			load->model[request->other_id - o->first_account] += (int64_t)request->amount;
		} else if (result->code == LEDGER_INSUFFICIENT_FUNDS) {
			load->declined++;
		} else {
			load->errors++;
		}
		return;
	case LEDGER_KIND_DEPOSIT:
		if (ok)
			load->model[request->other_id - o->first_account] += (int64_t)request->amount;
		break;
	case LEDGER_KIND_BALANCE:
		if (ok)
			load->seen[request->account_id - o->first_account] = result->balance;
		break;
	default:
		break;
	}
	if (!ok) {
		if (load->errors++ < 10)
			fprintf(stderr, "payswitch-dpdk-load: request kind %u account %" PRIu64
				" answered code %u\n", request->kind, request->account_id,
				result->code);
	}
}

/* ------------------------------------------------------------------------ */
/* The closed loop                                                           */
/* ------------------------------------------------------------------------ */

/* --udp: one datagram through the client library, which numbers datagrams
 * itself: the slot takes that sequence (a retransmission gets a new one; the
 * request ids stay, so the switch answers it from its deduplication window).
 * A full socket buffer is left to the retransmission timer. */
static void send_udp(struct load *load, struct slot *slot)
{
	uint64_t sequence = 0;
	int sent = netio_client_send(load->udp,
				     (const struct ledger_request *)(slot->datagram + NETIO_HEADER_SIZE),
				     slot->count, slot->count, &sequence);
	if (sent != 1)
		return;
	slot->sequence_previous = slot->sequence;
	slot->sequence = sequence;
	load->udp_slot_of[sequence & (UDP_SLOT_MAP - 1)] = (uint32_t)(slot - load->slots);
}

/* Setup and checks go 22 to a datagram (a 1500-byte MTU); payments as asked. */
static uint32_t phase_per_packet(const struct load *load)
{
	return load->phase == PHASE_PAY ? load->options.per_packet : NETIO_BATCH_MTU1500;
}

/* Fills free slots and sends their datagrams in bursts. */
static void fill_window(struct load *load)
{
	struct rte_mbuf *frames[NETIO_BURST_MAX];
	uint32_t frame_count = 0;
	uint32_t per_packet = phase_per_packet(load);
	/* At most two bursts per turn, so that replies are drained in between
	 * and the switch's TX ring toward us never fills. */
	for (uint32_t turn = 0; load->free_count > 0 && turn < 2 * NETIO_BURST_MAX; turn++) {
		uint32_t index = load->free_slots[load->free_count - 1];
		struct slot *slot = &load->slots[index];
		assert(slot->sequence == 0);
		struct ledger_request *requests =
			(struct ledger_request *)(slot->datagram + NETIO_HEADER_SIZE);
		uint32_t count = 0;
		while (count < per_packet && phase_next(load, &requests[count]))
			count++;
		if (count == 0)
			break;
		load->free_count--;
		slot->length = (uint32_t)netio_encode_requests(slot->datagram, NETIO_DATAGRAM_MAX,
							       load->client_id, 0, requests, count);
		slot->sequence = 0;
		slot->count = count;
		slot->answered = 0;
		slot->retransmits = 0;
		memset(slot->done, 0, count);
		slot->sent_ns = slot->resent_ns = dpdk_now_ns();
		load->in_flight++;
		load->datagrams_sent++;
		if (load->udp != NULL) {
			/* Numbered by the client library; until a send succeeds the
			 * slot matches no reply (the retransmission timer sends it). */
			slot->sequence = UDP_UNNUMBERED;
			send_udp(load, slot);
			continue;
		}
		slot_number(load, slot);
		slot->sequence_previous = UDP_UNNUMBERED;
		frames[frame_count] = udp_frame(load, &load->peer, slot->datagram, slot->length);
		frame_count += frames[frame_count] != NULL;
		if (frame_count == NETIO_BURST_MAX) {
			send_frames(load, frames, frame_count);
			frame_count = 0;
		}
	}
	send_frames(load, frames, frame_count);
}

static void complete_request(struct load *load, struct slot *slot, uint32_t index,
			     const struct ledger_result *result, uint64_t now_ns)
{
	const struct ledger_request *requests =
		(const struct ledger_request *)(slot->datagram + NETIO_HEADER_SIZE);
	if (slot->done[index])
		return; /* the answer to a retransmission */
	slot->done[index] = true;
	slot->answered++;
	if (load->phase == PHASE_PAY && result->code != LEDGER_BUSY)
		histogram_record(&load->latency, now_ns - slot->sent_ns);
	account_result(load, &requests[index], result);
}

/* The position of request `id` in the slot's datagram, or slot->count when
 * it is not there. Ids are consecutive in a fresh datagram, but BUSY requests
 * sent again keep their ids and share datagrams with fresh ones (in any
 * order), so a result is found by its id, not by its distance to the first. */
static uint32_t request_index(const struct slot *slot, const struct ledger_request *requests,
			      uint64_t id)
{
	uint64_t guess = id - requests[0].id;
	if (guess < slot->count && requests[guess].id == id)
		return (uint32_t)guess;
	for (uint32_t i = 0; i < slot->count; i++)
		if (requests[i].id == id)
			return i;
	return slot->count;
}

static void handle_reply(struct load *load, const struct netio_view *view, uint64_t now_ns)
{
	uint64_t sequence = view->header.sequence;
	uint32_t slot_index = load->udp_slot_of[sequence & (UDP_SLOT_MAP - 1)];
	struct slot *slot = &load->slots[slot_index];
	if (view->header.client_id != load->client_id || slot_index >= load->options.window ||
	    slot->sequence == 0 ||
	    (slot->sequence != sequence && slot->sequence_previous != sequence) ||
	    view->header.type == NETIO_TYPE_REQUEST) {
		load->ignored++;
		return;
	}
	load->replies++;
	const struct ledger_request *requests =
		(const struct ledger_request *)(slot->datagram + NETIO_HEADER_SIZE);
	if (view->header.type == NETIO_TYPE_ERROR) {
		/* The whole datagram was refused (BUSY: no slot in the switch):
		 * every unanswered request gets the code. */
		for (uint32_t i = 0; i < slot->count; i++) {
			struct ledger_result result = { .id = requests[i].id,
							.code = view->results[0].code };
			complete_request(load, slot, i, &result, now_ns);
		}
	}
	for (uint32_t i = 0; view->header.type == NETIO_TYPE_REPLY && i < view->count; i++) {
		const struct ledger_result *result = &view->results[i];
		uint32_t index = request_index(slot, requests, result->id);
		if (index >= slot->count) {
			load->errors++;
			continue;
		}
		complete_request(load, slot, (uint32_t)index, result, now_ns);
	}
	if (slot->answered == slot->count) {
		slot->sequence = 0;
		load->free_slots[load->free_count++] = slot_index;
		load->in_flight--;
		load->datagrams_answered++;
	}
}

/* A reply counts when it is sealed with one of our keys (a late answer of
 * the phase before carries the other one). Without keys: key id 0. */
static bool reply_authentic(const struct load *load, const struct netio_view *view,
			    size_t length)
{
	if (!load->keyed)
		return true;
	const struct netio_key *key = view->header.key_id == load->key.id ? &load->key
				      : view->header.key_id == load->admin_key.id ? &load->admin_key
										 : NULL;
	return key != NULL && netio_mac_ok(key->secret, load->rx_buffer, length);
}

/* One RX burst; returns the frames received. */
static uint16_t receive_burst(struct load *load)
{
	struct rte_mbuf *frames[NETIO_BURST_MAX];
	uint16_t n = rte_eth_rx_burst(load->port.port_id, 0, frames, NETIO_BURST_MAX);
	uint64_t now_ns = n ? dpdk_now_ns() : 0;
	for (uint16_t i = 0; i < n; i++) {
		struct dpdk_parsed parsed;
		dpdk_parse(frames[i], &load->local, &parsed);
		if (parsed.kind == DPDK_FRAME_ARP_REQUEST) {
			answer_arp(load, frames[i]);
			continue;
		}
		if (parsed.kind == DPDK_FRAME_UDP && parsed.payload_length <= sizeof(load->rx_buffer)) {
			const void *bytes = rte_pktmbuf_read(frames[i], parsed.payload_offset,
							     parsed.payload_length, load->rx_buffer);
			if (bytes != load->rx_buffer)
				memcpy(load->rx_buffer, bytes, parsed.payload_length);
			struct netio_view view;
			if (netio_decode(load->rx_buffer, parsed.payload_length, &view) != LEDGER_OK)
				load->errors++;
			else if (!reply_authentic(load, &view, parsed.payload_length))
				load->replies_invalid++;   /* not from the switch we share a key with */
			else
				handle_reply(load, &view, now_ns);
		}
		rte_pktmbuf_free(frames[i]);
	}
	return n;
}

/* --udp: up to 32 replies; waits up to 1 ms only when the window is full. */
static uint32_t receive_udp(struct load *load)
{
	struct netio_reply replies[NETIO_BURST_MAX];
	int n = netio_client_poll(load->udp, replies, NETIO_BURST_MAX,
				  load->free_count == 0 ? 1 : 0);
	uint64_t now_ns = n > 0 ? dpdk_now_ns() : 0;
	for (int i = 0; i < n; i++) {
		struct netio_view view;
		memset(&view, 0, sizeof(view));
		view.header.client_id = load->client_id;
		view.header.sequence = replies[i].sequence;
		view.header.type = replies[i].type;
		view.count = replies[i].count;
		view.results = replies[i].results;
		handle_reply(load, &view, now_ns);
	}
	return n > 0 ? (uint32_t)n : 0;
}

/* Drains up to 8 bursts; when nothing came for a while, sleeps 20 us so that
 * a load generator sharing a small machine leaves the switch its CPU. */
static void receive(struct load *load)
{
	uint32_t total = 0;
	if (load->udp != NULL) {
		receive_udp(load);
		return;
	}
	for (int burst = 0; burst < 8; burst++) {
		uint16_t n = receive_burst(load);
		total += n;
		if (n < NETIO_BURST_MAX)
			break;
	}
	if (total > 0 || load->free_count > 0) {
		load->idle_polls = 0;
		return;
	}
	if (++load->idle_polls > 256) {
		struct timespec pause = { .tv_sec = 0, .tv_nsec = 20000 };
		nanosleep(&pause, NULL);
	}
}

/* Sends again the datagrams not fully answered in time: the same requests in
 * a new datagram (a new sequence and MAC: the switch refuses one it has seen). */
static int retransmit(struct load *load)
{
	uint64_t now_ns = dpdk_now_ns();
	for (uint32_t s = 0; s < load->options.window; s++) {
		struct slot *slot = &load->slots[s];
		if (slot->sequence == 0 || now_ns - slot->resent_ns < RETRANSMIT_NS)
			continue;
		if (++slot->retransmits > RETRANSMITS_MAX)
			return -ETIMEDOUT;
		slot->resent_ns = now_ns;
		load->retransmits++;
		if (load->udp != NULL) {
			send_udp(load, slot);
			continue;
		}
		slot_number(load, slot);
		struct rte_mbuf *frame = udp_frame(load, &load->peer, slot->datagram, slot->length);
		if (frame != NULL)
			send_frames(load, &frame, 1);
	}
	return 0;
}

/* Runs one phase to completion (PAY: for duration_ns, then drains). */
static int run_phase(struct load *load, enum phase_kind phase, uint64_t duration_ns)
{
	load->phase = phase;
	if (load->udp != NULL) {
		/* --udp: the client library seals with the phase's key. */
		load->udp = phase == PHASE_PAY ? load->udp_payments : load->udp_admin;
		load->client_id = netio_client_id(load->udp);
	}
	load->phase_next = 0;
	load->phase_answered = 0;
	load->phase_open = true;
	uint64_t start = dpdk_now_ns(), last_check = start;
	for (;;) {
		uint64_t now = dpdk_now_ns();
		if (phase == PHASE_PAY && load->phase_open && now - start >= duration_ns)
			load->phase_open = false;
		fill_window(load);
		receive(load);
		if (now - last_check > 10000000u) {
			last_check = now;
			if (retransmit(load) != 0 || now - start > duration_ns + PHASE_TIMEOUT_NS) {
				fprintf(stderr, "payswitch-dpdk-load: no answer from the switch "
					"(%u datagrams in flight; retransmits %" PRIu64 ", unmatched "
					"or failed results %" PRIu64 ")\n", load->in_flight,
					load->retransmits, load->errors);
				return -ETIMEDOUT;
			}
		}
		if (load->in_flight == 0 && load->retry_count == 0) {
			struct ledger_request probe;
			if (!phase_next(load, &probe))
				return 0;
			load->retry[load->retry_count++] = probe;
		}
	}
}

/* ------------------------------------------------------------------------ */
/* Malformed frames                                                          */
/* ------------------------------------------------------------------------ */

enum bad_kind { BAD_ETHER_TYPE, BAD_IP_CHECKSUM, BAD_TRUNCATED, BAD_UDP_LENGTH,
		BAD_UDP_CHECKSUM, BAD_PORT, BAD_RANDOM, BAD_KINDS };
static const char *const bad_names[BAD_KINDS] = {
	"ether_type", "ip_checksum", "truncated", "udp_length", "udp_checksum", "udp_port",
	"random",
};

static struct rte_mbuf *bad_frame(struct load *load, enum bad_kind kind)
{
	uint8_t payload[NETIO_HEADER_SIZE + NETIO_REQUEST_SIZE];
	struct ledger_request request = request_make(load, LEDGER_KIND_BALANCE,
						     load->options.first_account, 0, 0);
	size_t length = netio_encode_requests(payload, sizeof(payload), load->client_id,
					      sequence_take(load), &request, 1);
	netio_seal(load->keyed ? &load->admin_key : NULL, payload, length);
	struct dpdk_endpoint to = load->peer;
	if (kind == BAD_PORT)
		to.port_be = htons((uint16_t)(ntohs(to.port_be) + 1));
	struct rte_mbuf *frame = udp_frame(load, &to, payload, (uint32_t)length);
	if (frame == NULL)
		return NULL;
	struct rte_ether_hdr *ether = rte_pktmbuf_mtod(frame, struct rte_ether_hdr *);
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(ether + 1);
	struct rte_udp_hdr *udp = (struct rte_udp_hdr *)(ip + 1);
	switch (kind) {
	case BAD_ETHER_TYPE: ether->ether_type = htons(0x88b5); break;
	case BAD_IP_CHECKSUM: ip->hdr_checksum ^= 0x5a5a; break;
	case BAD_TRUNCATED: rte_pktmbuf_trim(frame, 40); break;
	case BAD_UDP_LENGTH: udp->dgram_len = htons(ntohs(udp->dgram_len) + 64); break;
	case BAD_UDP_CHECKSUM: udp->dgram_cksum ^= 0x0101; break;
	case BAD_PORT: break;
	case BAD_RANDOM: {
		uint32_t size = 14 + (uint32_t)(next_random(load) % 200);
		rte_pktmbuf_reset(frame);
		uint8_t *bytes = (uint8_t *)rte_pktmbuf_append(frame, (uint16_t)size);
		for (uint32_t i = 0; i < size; i++)
			bytes[i] = (uint8_t)next_random(load);
		/* To our switch, so that the frame is parsed beyond the MAC. */
		memcpy(bytes, load->peer.mac.addr_bytes, RTE_ETHER_ADDR_LEN);
		break;
	}
	default: break;
	}
	return frame;
}

/* An ICMP echo request to the switch; true when the reply came (2 s). */
static bool ping(struct load *load)
{
	static const uint8_t echo[8 + 16] = { 8, 0, 0, 0, 0x12, 0x34, 0, 1, 'p', 'a', 'y' };
	struct rte_mbuf *frame = udp_frame(load, &load->peer, echo, sizeof(echo) - 8);
	if (frame == NULL)
		return false;
	/* Rewrite the UDP frame as ICMP: same addresses, protocol 1. */
	struct rte_ipv4_hdr *ip = rte_pktmbuf_mtod_offset(frame, struct rte_ipv4_hdr *, 14);
	uint8_t *icmp = (uint8_t *)(ip + 1);
	memcpy(icmp, echo, sizeof(echo));
	ip->next_proto_id = IPPROTO_ICMP;
	ip->hdr_checksum = 0;
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	uint16_t sum = (uint16_t)~rte_raw_cksum(icmp, sizeof(echo));
	memcpy(icmp + 2, &sum, 2);
	send_frames(load, &frame, 1);
	uint64_t deadline = dpdk_now_ns() + 2000000000ull;
	while (dpdk_now_ns() < deadline) {
		struct rte_mbuf *frames[NETIO_BURST_MAX];
		uint16_t n = rte_eth_rx_burst(load->port.port_id, 0, frames, NETIO_BURST_MAX);
		bool found = false;
		for (uint16_t i = 0; i < n; i++) {
			const struct rte_ipv4_hdr *in =
				rte_pktmbuf_mtod_offset(frames[i], struct rte_ipv4_hdr *, 14);
			if (rte_pktmbuf_data_len(frames[i]) >= 14 + 20 + 8 &&
			    in->next_proto_id == IPPROTO_ICMP && ((const uint8_t *)(in + 1))[0] == 0)
				found = true;
			rte_pktmbuf_free(frames[i]);
		}
		if (found)
			return true;
	}
	return false;
}

static int send_malformed(struct load *load)
{
	for (uint32_t kind = 0; kind < BAD_KINDS; kind++) {
		uint32_t sent = 0;
		for (uint32_t i = 0; i < load->options.malformed; i++) {
			struct rte_mbuf *frame = bad_frame(load, (enum bad_kind)kind);
			if (frame != NULL)
				sent += send_frames(load, &frame, 1);
		}
		printf("malformed %-13s sent %u\n", bad_names[kind], sent);
	}
	usleep(200000);
	bool ponged = ping(load);
	printf("icmp echo %s\n", ponged ? "answered" : "NOT answered");
	return ponged ? 0 : -EPROTO;
}

/* ------------------------------------------------------------------------ */
/* Start, report                                                             */
/* ------------------------------------------------------------------------ */

static int wait_link(struct load *load)
{
	for (int i = 0; i < 1000; i++) {
		struct rte_eth_link link;
		if (rte_eth_link_get_nowait(load->port.port_id, &link) == 0 && link.link_status)
			return 0;
		usleep(10000);
	}
	return -ENOLINK;
}

static int start_udp(struct load *load)
{
	char host[256];
	snprintf(host, sizeof(host), "%s", load->options.udp);
	char *colon = strrchr(host, ':');
	if (colon == NULL) {
		fprintf(stderr, "payswitch-dpdk-load: --udp wants HOST:PORT\n");
		return -EINVAL;
	}
	*colon = '\0';
	int error = 0;
	uint16_t port = (uint16_t)atoi(colon + 1);
	load->udp_admin = netio_client_open_key(host, port, load->keyed ? &load->admin_key : NULL,
						&error);
	if (load->udp_admin != NULL)
		load->udp_payments = netio_client_open_key(host, port,
							   load->keyed ? &load->key : NULL, &error);
	if (load->udp_admin == NULL || load->udp_payments == NULL) {
		fprintf(stderr, "payswitch-dpdk-load: %s: %s\n", load->options.udp, strerror(-error));
		return error;
	}
	load->udp = load->udp_admin;
	load->client_id = netio_client_id(load->udp);
	return 0;
}

static int start(struct load *load)
{
	char error[512];
	if (keys_load(load) != 0)
		return -EINVAL;
	if (load->options.udp != NULL)
		return start_udp(load);
	int result = dpdk_eal_start(load->options.dpdk_args, &load->dpdk, error, sizeof(error));
	if (result == 0)
		result = dpdk_port_start(&load->dpdk, 1, &load->port, error, sizeof(error));
	if (result != 0) {
		fprintf(stderr, "payswitch-dpdk-load: %s\n", error);
		return result;
	}
	if (load->dpdk.ip_be == 0 || load->dpdk.peer_ip_be == 0) {
		fprintf(stderr, "payswitch-dpdk-load: give ip= and peer-ip= after '--'\n");
		return -EINVAL;
	}
	uint32_t frame_bytes = 28 + NETIO_HEADER_SIZE + load->options.per_packet * NETIO_REQUEST_SIZE;
	if (frame_bytes > (load->port.mtu ? load->port.mtu : 1500)) {
		fprintf(stderr, "payswitch-dpdk-load: %u per packet makes %u-byte IPv4 packets, "
			"beyond the MTU %u: set mtu= on both ends\n", load->options.per_packet,
			frame_bytes, load->port.mtu);
		return -EMSGSIZE;
	}
	load->local = (struct dpdk_endpoint){ .mac = load->port.mac, .ip_be = load->dpdk.ip_be,
		.port_be = htons(load->dpdk.udp_port ? load->dpdk.udp_port : LOCAL_PORT) };
	load->peer = (struct dpdk_endpoint){ .ip_be = load->dpdk.peer_ip_be,
					     .port_be = htons(load->dpdk.peer_udp_port) };
	if (wait_link(load) != 0) {
		fprintf(stderr, "payswitch-dpdk-load: link down after 10 s (is the switch up?)\n");
		return -ENOLINK;
	}
	if (resolve_peer(load) != 0) {
		fprintf(stderr, "payswitch-dpdk-load: no ARP reply from the switch in 10 s\n");
		return -ETIMEDOUT;
	}
	return 0;
}

static void print_row(const struct load *load, double seconds)
{
	if (load->options.header)
		printf("%-14s %6s %6s %7s %11s %11s %9s %9s %9s %9s %8s %6s %6s\n", "transport",
		       "k/pkt", "window", "seconds", "packets/s", "payments/s", "p50_us", "p99_us",
		       "p99.9_us", "approved", "declined", "busy", "errors");
	double packets = (double)load->datagrams_answered;
	printf("%-14s %6u %6u %7.2f %11.0f %11.0f %9.1f %9.1f %9.1f %9" PRIu64 " %8" PRIu64
	       " %6" PRIu64 " %6" PRIu64 "\n", load->options.label, load->options.per_packet,
	       load->options.window, seconds, packets / seconds,
	       (double)load->approved / seconds,
	       (double)histogram_percentile(&load->latency, 50) / 1000.0,
	       (double)histogram_percentile(&load->latency, 99) / 1000.0,
	       (double)histogram_percentile(&load->latency, 99.9) / 1000.0, load->approved,
	       load->declined, load->busy, load->errors);
	fflush(stdout);
}

/* BALANCE of every account against the model; a few tries, since credits to
 * other shards may still be on their way. */
static int verify(struct load *load)
{
	for (int attempt = 0; attempt < 20; attempt++) {
		if (run_phase(load, PHASE_BALANCE, 0) != 0)
			return -ETIMEDOUT;
		uint64_t wrong = 0;
		for (uint64_t a = 0; a < load->options.accounts; a++)
			wrong += load->seen[a] != load->model[a];
		if (wrong == 0) {
			printf("verified: %" PRIu64 " balances equal the model\n",
			       load->options.accounts);
			return 0;
		}
		if (attempt == 19)
			fprintf(stderr, "payswitch-dpdk-load: %" PRIu64 " balances differ from "
				"the model\n", wrong);
		usleep(50000);
	}
	return -EPROTO;
}

static int run(struct load *load)
{
	if (start(load) != 0)
		return 1;
	if (load->options.malformed > 0 && load->udp == NULL && send_malformed(load) != 0)
		return 1;
	if (run_phase(load, PHASE_OPEN, 0) != 0 || run_phase(load, PHASE_DEPOSIT, 0) != 0)
		return 1;
	uint64_t setup_errors = load->errors;
	load->errors = load->busy = 0;
	histogram_reset(&load->latency);
	if (load->options.malformed == 0) {
		uint64_t begin = dpdk_now_ns();
		if (run_phase(load, PHASE_PAY, (uint64_t)(load->options.duration_s * 1e9)) != 0)
			return 1;
		print_row(load, (double)(dpdk_now_ns() - begin) / 1e9);
	}
	int verified = load->options.verify ? verify(load) : 0;
	if (load->udp != NULL) {
		struct netio_client_stats stats;
		netio_client_stats_read(load->udp_admin, &stats);
		load->replies_invalid += stats.replies_invalid;
		netio_client_stats_read(load->udp_payments, &stats);
		load->replies_invalid += stats.replies_invalid;
	}
	fprintf(stderr, "payswitch-dpdk-load: datagrams %" PRIu64 " retransmits %" PRIu64
		" replies %" PRIu64 " ignored %" PRIu64 " replies failing authentication %" PRIu64
		" setup errors %" PRIu64 " (key id payments %u, admin %u)\n",
		load->datagrams_sent, load->retransmits, load->replies, load->ignored,
		load->replies_invalid, setup_errors, load->keyed ? load->key.id : 0,
		load->keyed ? load->admin_key.id : 0);
	return verified == 0 && load->errors == 0 && setup_errors == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
	static struct load load;
	if (parse_options(argc, argv, &load.options) != 0)
		return 2;
	uint64_t seed[2] = { 0, 0 };
	if (getrandom(seed, sizeof(seed), 0) != (ssize_t)sizeof(seed))
		seed[0] = seed[1] = (uint64_t)ledger_realtime_us();
	load.client_id = seed[0] | 1;
	load.random_state = seed[1] | 1;
	/* Ids unique across runs against one switch: a random 30-bit prefix. */
	load.next_id = ((seed[1] >> 34) << 34) | 1;
	load.slots = aligned_alloc(64, sizeof(struct slot) * load.options.window);
	load.free_slots = calloc(load.options.window, sizeof(uint32_t));
	load.model = calloc(load.options.accounts, sizeof(int64_t));
	load.seen = calloc(load.options.accounts, sizeof(int64_t));
	load.retry = calloc((size_t)load.options.window * NETIO_BATCH_MAX + 1,
			    sizeof(struct ledger_request));
	load.udp_slot_of = calloc(UDP_SLOT_MAP, sizeof(uint32_t));
	if (!load.slots || !load.free_slots || !load.model || !load.seen || !load.retry ||
	    !load.udp_slot_of) {
		fprintf(stderr, "payswitch-dpdk-load: out of memory\n");
		return 1;
	}
	memset(load.slots, 0, sizeof(struct slot) * load.options.window);
	for (uint32_t s = 0; s < load.options.window; s++)
		load.free_slots[load.free_count++] = load.options.window - 1 - s;
	histogram_reset(&load.latency);
	int status = run(&load);
	if (load.port.pool != NULL) {
		dpdk_port_stop(&load.port);
		(void)rte_eal_cleanup();
	}
	if (load.udp_admin != NULL)
		netio_client_close(load.udp_admin);
	if (load.udp_payments != NULL)
		netio_client_close(load.udp_payments);
	return status;
}
