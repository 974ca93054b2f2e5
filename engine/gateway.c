/*
 * gateway.c — `payswitch gateway`: options and config file, the directory
 * (loaded here, reloaded on SIGHUP, looked up by netio through
 * struct iso_gateway_directory), the acquirer key, and netio's gateway
 * (netio/iso_gateway.h) which does the ISO 8583 work.
 */
#include "gateway.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "directory.h"
#include "engine.h"
#include "iso_gateway.h"
#include "netio.h"

_Static_assert((int)ISO_GATEWAY_KEY_PAN == (int)DIRECTORY_PAN, "kinds agree");
_Static_assert((int)ISO_GATEWAY_KEY_MERCHANT == (int)DIRECTORY_MERCHANT, "kinds agree");
_Static_assert((int)ISO_GATEWAY_KEY_TERMINAL == (int)DIRECTORY_TERMINAL, "kinds agree");

#define CONFIG_LINE_BYTES_MAX 8192u

struct gateway_options {
	struct iso_gateway_config gateway;
	char directory_path[4096];
	char key_path[4096];
};

/* The directory the gateway looks up; replaced whole on SIGHUP. */
struct gateway_wiring {
	const char *directory_path;
	struct directory *directory;
};

static bool wiring_find(const void *context, enum iso_gateway_key_kind kind, const uint8_t *key,
			size_t length, uint64_t *account)
{
	const struct gateway_wiring *wiring = context;
	return directory_find(wiring->directory, (enum directory_kind)kind, key, length, account);
}

static void wiring_log(void *context, const char *level, const char *line)
{
	(void)context;
	engine_log(level, "%s", line);
}

static void wiring_reload(void *context)
{
	struct gateway_wiring *wiring = context;
	char error[1024];
	struct directory *fresh = directory_load(wiring->directory_path, error, sizeof(error));
	if (fresh == NULL) {
		engine_log("error", "SIGHUP: %s; keeping the directory loaded before", error);
		return;
	}
	directory_destroy(wiring->directory);
	wiring->directory = fresh;
	engine_log("info", "SIGHUP: directory %s reloaded: %llu pan, %llu merchant, "
		   "%llu terminal", wiring->directory_path,
		   (unsigned long long)directory_count(fresh, DIRECTORY_PAN),
		   (unsigned long long)directory_count(fresh, DIRECTORY_MERCHANT),
		   (unsigned long long)directory_count(fresh, DIRECTORY_TERMINAL));
}

/* ------------------------------------------------------------------------ */
/* `payswitch gateway`                                                       */
/* ------------------------------------------------------------------------ */
static const char gateway_help[] =
	"usage: payswitch gateway --directory FILE [OPTIONS]\n"
	"\n"
	"The ISO 8583:1987 gateway: accepts terminals and acquirers over TCP, turns\n"
	"each message into a switch request over the native UDP protocol and answers\n"
	"with the ISO response. Runs until SIGTERM or SIGINT; SIGHUP reloads the\n"
	"directory. Formats, flows and response codes: netio/ISO8583.md.\n"
	"\n"
	"  --directory FILE        card/terminal directory (payswitch directory --help)\n"
	"  --switch HOST:PORT      the switch's native protocol (default 127.0.0.1:7000)\n"
	"  --listen-binary HOST:PORT  2-byte binary length, binary bitmap (jPOS\n"
	"                          PostChannel/PostPackager) (default 127.0.0.1:8583;\n"
	"                          'off' disables)\n"
	"  --listen-ascii HOST:PORT   4 ASCII digits of length, hex bitmap (jPOS\n"
	"                          ASCIIChannel/ISO87APackager) (default off)\n"
	"  --connections N         open connections at once (default 1024)\n"
	"  --pipeline N            requests in flight per connection (default 64)\n"
	"  --timeout-ms N          wait for the switch before resending (default 250)\n"
	"  --retries N             resends before answering 91 (default 8)\n"
	"  --currency N            ISO 4217 code of balance inquiries without field 49\n"
	"                          (default 978)\n"
	"  --verbose               a log line per format error\n"
	"  --key FILE              the gateway's acquirer key (payswitch client add\n"
	"                          NAME --role acquirer); without it, key id 0, which\n"
	"                          only a switch run --insecure-no-auth accepts\n"
	"  --config FILE           'name = value' lines, names as these options without\n"
	"                          '--' (e.g. 'binary-allow = 10.0.0.0/8'); flags after\n"
	"                          it override it\n"
	"\n"
	"Per listener (L = binary or ascii):\n"
	"  --L-tls-cert FILE       TLS on this listener: server certificate (PEM chain)\n"
	"  --L-tls-key FILE        its private key (PEM); both or neither\n"
	"  --L-tls-client-ca FILE  acquirers must present a certificate signed by a CA\n"
	"                          of this PEM file (needs --L-tls-cert)\n"
	"  --L-allow CIDR[,CIDR..] only these source networks may connect (IPv4, IPv6;\n"
	"                          e.g. 10.0.0.0/8,::1/128); others are closed at accept,\n"
	"                          counted and logged at a bounded rate (default: all)\n";

static const struct option gateway_long_options[] = {
	{ "directory", required_argument, NULL, 'd' },
	{ "switch", required_argument, NULL, 's' },
	{ "listen-binary", required_argument, NULL, 'b' },
	{ "listen-ascii", required_argument, NULL, 'a' },
	{ "connections", required_argument, NULL, 'c' },
	{ "pipeline", required_argument, NULL, 'p' },
	{ "timeout-ms", required_argument, NULL, 't' },
	{ "retries", required_argument, NULL, 'r' },
	{ "currency", required_argument, NULL, 'C' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "key", required_argument, NULL, 'k' },
	{ "config", required_argument, NULL, 'f' },
	{ "binary-tls-cert", required_argument, NULL, 0x100 },
	{ "binary-tls-key", required_argument, NULL, 0x101 },
	{ "binary-tls-client-ca", required_argument, NULL, 0x102 },
	{ "binary-allow", required_argument, NULL, 0x103 },
	{ "ascii-tls-cert", required_argument, NULL, 0x110 },
	{ "ascii-tls-key", required_argument, NULL, 0x111 },
	{ "ascii-tls-client-ca", required_argument, NULL, 0x112 },
	{ "ascii-allow", required_argument, NULL, 0x113 },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int parse_bounded(const char *text, const char *what, uint64_t low, uint64_t high,
			 uint64_t *value)
{
	if (engine_parse_u64(text, value) != 0 || *value < low || *value > high) {
		fprintf(stderr, "payswitch gateway: %s '%s' is not in %llu..%llu\n", what, text,
			(unsigned long long)low, (unsigned long long)high);
		return -1;
	}
	return 0;
}

static int parse_listen(const char *text, struct gateway_options *o, int framing)
{
	struct iso_gateway_listener *listener = &o->gateway.listeners[framing];
	listener->enabled = strcmp(text, "off") != 0;
	if (!listener->enabled)
		return 0;
	char host[128];
	uint16_t port = 0;
	if (engine_parse_address(text, host, sizeof(host), &port) != 0) {
		fprintf(stderr, "payswitch gateway: '%s' is not HOST:PORT\n", text);
		return -1;
	}
	snprintf(listener->host, sizeof(listener->host), "%s", host);
	listener->port = port;
	return 0;
}

/* A path or list into a fixed buffer; refused rather than truncated. */
static int copy_text(char *out, size_t capacity, const char *text, const char *what)
{
	size_t length = strlen(text);
	if (length == 0 || length >= capacity) {
		fprintf(stderr, "payswitch gateway: %s: empty or longer than %zu bytes\n", what,
			capacity - 1);
		return -1;
	}
	memcpy(out, text, length + 1);
	return 0;
}

/* --binary-* / --ascii-* (option 0x1FK: F framing, K field). */
static int parse_listener_option(int option, const char *text, struct gateway_options *o)
{
	struct iso_gateway_listener *listener = &o->gateway.listeners[(option >> 4) & 1];
	switch (option & 0xf) {
	case 0: return copy_text(listener->tls_certificate, sizeof(listener->tls_certificate),
				 text, "tls-cert");
	case 1: return copy_text(listener->tls_key, sizeof(listener->tls_key), text, "tls-key");
	case 2: return copy_text(listener->tls_client_ca, sizeof(listener->tls_client_ca), text,
				 "tls-client-ca");
	default: return copy_text(listener->allow, sizeof(listener->allow), text, "allow");
	}
}

static int config_file(const char *path, struct gateway_options *o);

static int parse_option(int option, const char *argument, struct gateway_options *o)
{
	uint64_t value = 0;
	if (option >= 0x100 && option < 0x120)
		return parse_listener_option(option, argument, o);
	switch (option) {
	case 'd': return copy_text(o->directory_path, sizeof(o->directory_path), argument,
				   "--directory");
	case 'k': return copy_text(o->key_path, sizeof(o->key_path), argument, "--key");
	case 'f': return config_file(argument, o);
	case 's':
		if (engine_parse_address(argument, o->gateway.switch_host,
					 sizeof(o->gateway.switch_host), &o->gateway.switch_port) == 0)
			return 0;
		fprintf(stderr, "payswitch gateway: --switch '%s' is not HOST:PORT\n", argument);
		return -1;
	case 'b': return parse_listen(argument, o, ISO8583_FRAMING_BINARY);
	case 'a': return parse_listen(argument, o, ISO8583_FRAMING_ASCII);
	case 'c':
		if (parse_bounded(argument, "--connections", 1, 65536, &value) != 0)
			return -1;
		o->gateway.connections_max = (uint32_t)value;
		return 0;
	case 'p':
		if (parse_bounded(argument, "--pipeline", 1, 4096, &value) != 0)
			return -1;
		o->gateway.pipeline_max = (uint32_t)value;
		return 0;
	case 't':
		if (parse_bounded(argument, "--timeout-ms", 1, 60000, &value) != 0)
			return -1;
		o->gateway.timeout_ms = (int)value;
		return 0;
	case 'r':
		if (parse_bounded(argument, "--retries", 0, 100, &value) != 0)
			return -1;
		o->gateway.retries = (int)value;
		return 0;
	case 'C':
		if (parse_bounded(argument, "--currency", 1, 999, &value) != 0)
			return -1;
		o->gateway.default_currency = (uint16_t)value;
		return 0;
	case 'v': o->gateway.verbose = true; return 0;
	default: return -1;
	}
}

static void options_default(struct gateway_options *o)
{
	memset(o, 0, sizeof(*o));
	struct iso_gateway_config *g = &o->gateway;
	snprintf(g->switch_host, sizeof(g->switch_host), "127.0.0.1");
	g->switch_port = 7000;
	struct iso_gateway_listener *binary = &g->listeners[ISO8583_FRAMING_BINARY];
	snprintf(binary->host, sizeof(binary->host), "127.0.0.1");
	binary->port = 8583;
	binary->enabled = true;
	o->gateway.connections_max = 1024;
	o->gateway.pipeline_max = 64;
	o->gateway.timeout_ms = 250;
	o->gateway.retries = 8;
	o->gateway.default_currency = 978;
}

/* One `name = value` line of a config file (the name of a long option). */
static int config_line(char *line, struct gateway_options *o, const char *path, unsigned number)
{
	char *hash = strchr(line, '#');
	if (hash != NULL)
		*hash = '\0';
	char *name = line + strspn(line, " \t\r\n");
	if (*name == '\0')
		return 0;
	char *equals = strchr(name, '=');
	char *end = equals == NULL ? NULL : equals;
	while (end != NULL && end > name && strchr(" \t=", end[-1]) != NULL)
		end--;
	if (equals == NULL || end == name) {
		fprintf(stderr, "payswitch gateway: %s:%u: not 'name = value'\n", path, number);
		return -1;
	}
	*end = '\0';
	char *value = equals + 1 + strspn(equals + 1, " \t");
	size_t length = strlen(value);
	while (length > 0 && strchr(" \t\r\n", value[length - 1]) != NULL)
		value[--length] = '\0';
	for (const struct option *option = gateway_long_options; option->name; option++) {
		if (strcmp(option->name, name) != 0 || option->val == 'h' || option->val == 'f')
			continue;
		if (option->has_arg == no_argument) {
			o->gateway.verbose = strcmp(value, "true") == 0 || strcmp(value, "1") == 0;
			return 0;
		}
		if (parse_option(option->val, value, o) == 0)
			return 0;
		fprintf(stderr, "payswitch gateway: %s:%u: bad value for %s\n", path, number, name);
		return -1;
	}
	fprintf(stderr, "payswitch gateway: %s:%u: unknown setting '%s'\n", path, number, name);
	return -1;
}

/* Reads whole lines (getline) and refuses any longer than the limit, so a
 * long comment's tail can never become a setting (issue 16, defect 10). */
static int config_file(const char *path, struct gateway_options *o)
{
	FILE *file = fopen(path, "r");
	if (file == NULL) {
		fprintf(stderr, "payswitch gateway: --config %s: %s\n", path, strerror(errno));
		return -1;
	}
	char *line = NULL;
	size_t capacity = 0;
	int status = 0;
	for (unsigned number = 1; status == 0; number++) {
		ssize_t length = getline(&line, &capacity, file);
		if (length < 0)
			break;
		if ((size_t)length > CONFIG_LINE_BYTES_MAX) {
			fprintf(stderr, "payswitch gateway: %s:%u: line longer than %u bytes\n",
				path, number, CONFIG_LINE_BYTES_MAX);
			status = -1;
			break;
		}
		status = config_line(line, o, path, number);
	}
	free(line);
	fclose(file);
	return status;
}

static int options_check(const struct gateway_options *options)
{
	const struct iso_gateway_config *g = &options->gateway;
	if (options->directory_path[0] == '\0' ||
	    (!g->listeners[0].enabled && !g->listeners[1].enabled)) {
		fprintf(stderr, "payswitch gateway: --directory and one listener are needed\n%s",
			gateway_help);
		return -1;
	}
	if ((uint64_t)g->connections_max * g->pipeline_max > (1u << 22)) {
		fprintf(stderr, "payswitch gateway: --connections x --pipeline above 4M\n");
		return -1;
	}
	for (int f = 0; f < 2; f++) {
		const struct iso_gateway_listener *l = &g->listeners[f];
		bool certificate = l->tls_certificate[0] != '\0', key = l->tls_key[0] != '\0';
		if (certificate != key || (l->tls_client_ca[0] != '\0' && !certificate)) {
			fprintf(stderr, "payswitch gateway: --%s-tls-cert and --%s-tls-key go "
				"together (and --%s-tls-client-ca needs them)\n",
				f == 0 ? "binary" : "ascii", f == 0 ? "binary" : "ascii",
				f == 0 ? "binary" : "ascii");
			return -1;
		}
	}
	return 0;
}

static int gateway_serve(struct gateway_options *options, struct gateway_wiring *wiring)
{
	struct netio_key key;
	if (options->key_path[0] != '\0') {
		int code = netio_key_load(options->key_path, &key);
		if (code != 0) {
			engine_log("error", "gateway: --key %s: %s", options->key_path,
				   code == -EINVAL ? "not a payswitch key file" : strerror(-code));
			return 1;
		}
		options->gateway.key = &key;
	}
	options->gateway.directory = (struct iso_gateway_directory){ .find = wiring_find,
								     .context = wiring };
	options->gateway.reload = wiring_reload;
	options->gateway.log = wiring_log;
	options->gateway.context = wiring;
	char error[1024];
	struct iso_gateway *g = iso_gateway_create(&options->gateway, error, sizeof(error));
	if (g == NULL) {
		engine_log("error", "gateway: %s", error);
		return 1;
	}
	const struct iso_gateway_config *c = &options->gateway;
	engine_log("info", "gateway serving: iso8583 binary %s:%u%s%s, ascii %s:%u%s%s, switch "
		   "%s:%u (key id %u), directory %s (%llu pan, %llu merchant, %llu terminal)",
		   c->listeners[0].host, iso_gateway_port(g, 0),
		   c->listeners[0].enabled ? "" : " (off)",
		   c->listeners[0].tls_certificate[0] ? " tls" : "", c->listeners[1].host,
		   iso_gateway_port(g, 1), c->listeners[1].enabled ? "" : " (off)",
		   c->listeners[1].tls_certificate[0] ? " tls" : "", c->switch_host,
		   c->switch_port, c->key != NULL ? c->key->id : 0u, options->directory_path,
		   (unsigned long long)directory_count(wiring->directory, DIRECTORY_PAN),
		   (unsigned long long)directory_count(wiring->directory, DIRECTORY_MERCHANT),
		   (unsigned long long)directory_count(wiring->directory, DIRECTORY_TERMINAL));
	int status = iso_gateway_run(g);
	iso_gateway_destroy(g);
	return status;
}

int gateway_main(int argc, char **argv)
{
	static struct gateway_options options; /* large: paths per listener */
	options_default(&options);
	optind = 1;
	int option;
	while ((option = getopt_long(argc, argv, "h", gateway_long_options, NULL)) != -1) {
		if (option == 'h') {
			fputs(gateway_help, stdout);
			return 0;
		}
		if (parse_option(option, optarg, &options) != 0)
			return 2;
	}
	if (optind < argc) {
		fprintf(stderr, "payswitch gateway: unexpected argument '%s'\n%s", argv[optind],
			gateway_help);
		return 2;
	}
	if (options_check(&options) != 0)
		return 2;
	char error[1024];
	struct gateway_wiring wiring = { .directory_path = options.directory_path };
	wiring.directory = directory_load(options.directory_path, error, sizeof(error));
	if (wiring.directory == NULL) {
		engine_log("error", "gateway: %s", error);
		return 1;
	}
	int status = gateway_serve(&options, &wiring);
	directory_destroy(wiring.directory);
	return status;
}
