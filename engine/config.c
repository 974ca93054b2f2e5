/*
 * config.c — defaults, `key = value` files and flag values for the switch.
 */
#include "config.h"

#include <ctype.h>
#include <stddef.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void engine_config_default(struct engine_config *config)
{
	memset(config, 0, sizeof(*config));
	snprintf(config->data_dir, sizeof(config->data_dir), "data");
	snprintf(config->listen_host, sizeof(config->listen_host), "127.0.0.1");
	config->listen_port = 7000;
	snprintf(config->metrics_host, sizeof(config->metrics_host), "127.0.0.1");
	config->metrics_port = 9100;
	config->shards = 1;
	config->workers = 1;
	for (uint32_t i = 0; i < ENGINE_CPUS_MAX; i++)
		config->cpus[i] = -1;
	config->accounts_max = 1000000;
	config->transfers_max = 1000000;
	config->holds_max = 65536;
	config->dedup_window_s = 600;
	config->hold_timeout_s = 900;
	config->ring_size = 65536;
	config->latency_bound_us = 5000;
	config->group_bytes_max = 1u << 20;
	config->journal_in_flight = 4;  /* bench/journal_bench: JOURNAL.md */
	config->group_wait_us = 1000;   /* measured: 200 cost ~20% of the closed-loop peak (engine/README.md) */
	config->durability = ENGINE_DURABLE;
	config->transport = ENGINE_TRANSPORT_UDP;
	config->snapshot_on_stop = true;
	/* At 1M accounts replay runs at ~3M records/s: 4M records of tail is
	 * about 1.5 s of recovery after the snapshot's load (engine/README.md). */
	config->snapshot_every_records = 4000000;
	config->snapshot_every_seconds = 300;
	config->snapshot_retain = 2;
	config->auth_sessions = 65536;
	config->auth_max_age_ms = 60000;
}

static int fail(char *error, size_t error_size, const char *format, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(char *error, size_t error_size, const char *format, ...)
{
	va_list arguments;
	va_start(arguments, format);
	vsnprintf(error, error_size, format, arguments);
	va_end(arguments);
	return -EINVAL;
}

int engine_parse_u64(const char *text, uint64_t *value)
{
	if (text == NULL || !isdigit((unsigned char)text[0]))
		return -EINVAL;
	errno = 0;
	char *end = NULL;
	unsigned long long number = strtoull(text, &end, 10);
	if (errno != 0)
		return -EINVAL;
	uint64_t scale = 1;
	if (*end == 'k' || *end == 'K')
		scale = 1000;
	else if (*end == 'M')
		scale = 1000000;
	else if (*end == 'G')
		scale = 1000000000;
	if (scale != 1)
		end++;
	if (*end != '\0')
		return -EINVAL;
	if (__builtin_mul_overflow((uint64_t)number, scale, value))
		return -EINVAL;
	return 0;
}

int engine_parse_address(const char *text, char *host, size_t host_size, uint16_t *port)
{
	const char *colon = strrchr(text, ':');
	const char *port_text = colon ? colon + 1 : text;
	uint64_t number = 0;
	if (engine_parse_u64(port_text, &number) != 0 || number > 65535)
		return -EINVAL;
	if (colon == NULL) {
		snprintf(host, host_size, "127.0.0.1");
	} else {
		size_t length = (size_t)(colon - text);
		if (length == 0 || length >= host_size)
			return -EINVAL;
		memcpy(host, text, length);
		host[length] = '\0';
	}
	*port = (uint16_t)number;
	return 0;
}

static int parse_cpus(struct engine_config *config, const char *value, char *error,
		      size_t error_size)
{
	char copy[512];
	snprintf(copy, sizeof(copy), "%s", value);
	config->cpu_count = 0;
	for (char *save = NULL, *item = strtok_r(copy, ",", &save); item != NULL;
	     item = strtok_r(NULL, ",", &save)) {
		uint64_t cpu = 0;
		if (config->cpu_count == ENGINE_CPUS_MAX || engine_parse_u64(item, &cpu) != 0 ||
		    cpu > 4095)
			return fail(error, error_size, "cpus: '%s' is not a list of CPU numbers", value);
		config->cpus[config->cpu_count++] = (int32_t)cpu;
	}
	return 0;
}

static int parse_bool(const char *value, bool *out)
{
	if (!strcmp(value, "1") || !strcmp(value, "true") || !strcmp(value, "yes") ||
	    !strcmp(value, "on")) {
		*out = true;
		return 0;
	}
	if (!strcmp(value, "0") || !strcmp(value, "false") || !strcmp(value, "no") ||
	    !strcmp(value, "off")) {
		*out = false;
		return 0;
	}
	return -EINVAL;
}

/* Numeric keys: name, where the value goes, its width in bytes, bounds. */
struct numeric_key {
	const char *name;
	size_t offset;
	size_t width;
	uint64_t minimum;
	uint64_t maximum;
};

#define NUMERIC(name, field, minimum, maximum)                                          \
	{ name, offsetof(struct engine_config, field),                                  \
	  sizeof(((struct engine_config *)0)->field), minimum, maximum }

static const struct numeric_key numeric_keys[] = {
	NUMERIC("shards", shards, 1, ENGINE_SHARDS_MAX),
	NUMERIC("workers", workers, 1, ENGINE_WORKERS_MAX),
	NUMERIC("accounts", accounts_max, 1, 1ull << 32),
	NUMERIC("transfers", transfers_max, 1024, 1ull << 31),
	NUMERIC("holds", holds_max, 16, 1ull << 28),
	NUMERIC("dedup-window", dedup_window_s, 1, 86400 * 7),
	NUMERIC("hold-timeout", hold_timeout_s, 1, 86400 * 30),
	NUMERIC("ring-size", ring_size, 16, 1u << 24),
	NUMERIC("latency-bound-us", latency_bound_us, 0, 10000000),
	NUMERIC("auth-sessions", auth_sessions, 16, 1u << 24),
	NUMERIC("auth-max-age-ms", auth_max_age_ms, 1000, 3600000),
	NUMERIC("group-bytes", group_bytes_max, 4096, 64u << 20),
	NUMERIC("journal-preallocate", journal_preallocate, 0, 1u << 30),
	NUMERIC("journal-in-flight", journal_in_flight, 1, 16),
	NUMERIC("group-wait-us", group_wait_us, 0, 1000000),
	NUMERIC("snapshot-every-records", snapshot_every_records, 0, 1ull << 40),
	NUMERIC("snapshot-every-seconds", snapshot_every_seconds, 0, 86400 * 7),
	NUMERIC("snapshot-retain", snapshot_retain, 1, 64),
};

static int set_numeric(struct engine_config *config, const struct numeric_key *key,
		       const char *value, char *error, size_t error_size)
{
	uint64_t number = 0;
	if (engine_parse_u64(value, &number) != 0 || number < key->minimum ||
	    number > key->maximum)
		return fail(error, error_size, "%s: '%s' is not a number from %llu to %llu",
			    key->name, value, (unsigned long long)key->minimum,
			    (unsigned long long)key->maximum);
	char *field = (char *)config + key->offset;
	if (key->width == sizeof(uint64_t)) {
		uint64_t wide = number;
		memcpy(field, &wide, sizeof(wide));
	} else {
		uint32_t narrow = (uint32_t)number;
		memcpy(field, &narrow, sizeof(narrow));
	}
	return 0;
}

static int set_text(struct engine_config *config, const char *key, const char *value,
		    char *error, size_t error_size)
{
	if (!strcmp(key, "data-dir")) {
		struct journal_error checked = { 0 };
		if (journal_data_dir_check(value, &checked) != 0)
			return fail(error, error_size, "data-dir: %s", checked.text);
		_Static_assert(sizeof(config->data_dir) == JOURNAL_DATA_DIR_BYTES_MAX + 1, "fits");
		memcpy(config->data_dir, value, strlen(value) + 1);
		return 0;
	}
	if (!strcmp(key, "listen")) {
		if (engine_parse_address(value, config->listen_host, sizeof(config->listen_host),
					 &config->listen_port) != 0)
			return fail(error, error_size, "listen: '%s' is not HOST:PORT", value);
		return 0;
	}
	if (!strcmp(key, "metrics")) {
		if (engine_parse_address(value, config->metrics_host, sizeof(config->metrics_host),
					 &config->metrics_port) != 0)
			return fail(error, error_size, "metrics: '%s' is not HOST:PORT (port 0 disables)",
				    value);
		return 0;
	}
	if (!strcmp(key, "dpdk-args")) {
		if (strlen(value) >= sizeof(config->dpdk_args))
			return fail(error, error_size, "dpdk-args: %zu bytes, longer than %zu",
				    strlen(value), sizeof(config->dpdk_args) - 1);
		memcpy(config->dpdk_args, value, strlen(value) + 1);
		return 0;
	}
	return 1;
}

int engine_config_set(struct engine_config *config, const char *key, const char *value,
		      char *error, size_t error_size)
{
	for (size_t i = 0; i < sizeof(numeric_keys) / sizeof(numeric_keys[0]); i++)
		if (!strcmp(key, numeric_keys[i].name))
			return set_numeric(config, &numeric_keys[i], value, error, error_size);
	int text = set_text(config, key, value, error, error_size);
	if (text <= 0)
		return text;
	if (!strcmp(key, "cpus"))
		return parse_cpus(config, value, error, error_size);
	if (!strcmp(key, "durability")) {
		if (!strcmp(value, "durable"))
			config->durability = ENGINE_DURABLE;
		else if (!strcmp(value, "unsafe-ack-before-sync"))
			config->durability = ENGINE_UNSAFE_ACK_BEFORE_SYNC;
		else
			return fail(error, error_size,
				    "durability: '%s' is not 'durable' or 'unsafe-ack-before-sync'", value);
		return 0;
	}
	if (!strcmp(key, "transport")) {
		if (!strcmp(value, "udp"))
			config->transport = ENGINE_TRANSPORT_UDP;
		else if (!strcmp(value, "dpdk"))
			config->transport = ENGINE_TRANSPORT_DPDK;
		else
			return fail(error, error_size, "transport: '%s' is not 'udp' or 'dpdk'", value);
		return 0;
	}
	if (!strcmp(key, "insecure-no-auth")) {
		if (parse_bool(value, &config->insecure_no_auth) != 0)
			return fail(error, error_size, "%s: '%s' is not true or false", key, value);
		return 0;
	}
	if (!strcmp(key, "snapshot-on-stop") || !strcmp(key, "verbose")) {
		bool *field = key[0] == 's' ? &config->snapshot_on_stop : &config->verbose;
		if (parse_bool(value, field) != 0)
			return fail(error, error_size, "%s: '%s' is not true or false", key, value);
		return 0;
	}
	return fail(error, error_size, "unknown setting '%s'", key);
}

static char *trim(char *text)
{
	while (isspace((unsigned char)*text))
		text++;
	size_t length = strlen(text);
	while (length > 0 && isspace((unsigned char)text[length - 1]))
		text[--length] = '\0';
	return text;
}

/* One line of a config file (modified in place): blank, a comment, or a
 * `key = value` setting. */
static int config_line(struct engine_config *config, char *line, const char *path,
		       unsigned line_number, char *error, size_t error_size)
{
	char *hash = strchr(line, '#');
	if (hash != NULL)
		*hash = '\0';
	char *text = trim(line);
	if (*text == '\0')
		return 0;
	char *equals = strchr(text, '=');
	if (equals == NULL)
		return fail(error, error_size, "%s:%u: expected 'key = value'", path, line_number);
	*equals = '\0';
	char reason[512];
	if (engine_config_set(config, trim(text), trim(equals + 1), reason, sizeof(reason)) != 0)
		return fail(error, error_size, "%s:%u: %s", path, line_number, reason);
	return 0;
}

int engine_config_load_file(struct engine_config *config, const char *path, char *error,
			    size_t error_size)
{
	FILE *file = fopen(path, "r");
	if (file == NULL) {
		int code = -errno;
		snprintf(error, error_size, "%s: %s", path, strerror(errno));
		return code;
	}
	/* getline reads a line whole, so a '#' comment stays one comment however
	 * long it is: no tail of it is ever parsed as a setting. */
	char *line = NULL;
	size_t capacity = 0;
	ssize_t length;
	unsigned line_number = 0;
	int result = 0;
	while (result == 0 && (length = getline(&line, &capacity, file)) >= 0) {
		line_number++;
		size_t content = (size_t)length - (length > 0 && line[length - 1] == '\n');
		if (content > ENGINE_CONFIG_LINE_BYTES_MAX) {
			fail(error, error_size, "%s:%u: line of %zu bytes, longer than the limit of %u",
			     path, line_number, content, ENGINE_CONFIG_LINE_BYTES_MAX);
			result = -E2BIG;
		} else if (memchr(line, '\0', (size_t)length) != NULL) {
			result = fail(error, error_size, "%s:%u: a NUL byte in the line", path,
				      line_number);
		} else {
			result = config_line(config, line, path, line_number, error, error_size);
		}
	}
	if (result == 0 && ferror(file))
		result = fail(error, error_size, "%s: read error after line %u", path, line_number);
	free(line);
	fclose(file);
	return result;
}

int engine_config_validate(const struct engine_config *config, char *error, size_t error_size)
{
	if (config->ring_size & (config->ring_size - 1))
		return fail(error, error_size, "ring-size %u is not a power of two",
			    config->ring_size);
	if (config->listen_port == 0)
		return fail(error, error_size, "listen port 0 is not allowed");
	if (config->metrics_port != 0 && config->metrics_port == config->listen_port &&
	    !strcmp(config->metrics_host, config->listen_host))
		return fail(error, error_size, "metrics and listen use the same address");
	if (config->journal_preallocate % 4096 != 0)
		return fail(error, error_size, "journal-preallocate %u is not a multiple of 4096",
			    config->journal_preallocate);
	if (config->transfers_max < config->holds_max)
		return fail(error, error_size, "transfers (%llu) must be at least holds (%llu)",
			    (unsigned long long)config->transfers_max,
			    (unsigned long long)config->holds_max);
	return 0;
}

void engine_config_print(const struct engine_config *config, FILE *out)
{
	fprintf(out, "data-dir = %s\n", config->data_dir);
	fprintf(out, "listen = %s:%u\n", config->listen_host, config->listen_port);
	fprintf(out, "metrics = %s:%u\n", config->metrics_host, config->metrics_port);
	fprintf(out, "transport = %s\n", config->transport == ENGINE_TRANSPORT_DPDK ? "dpdk" : "udp");
	if (config->dpdk_args[0] != '\0')
		fprintf(out, "dpdk-args = %s\n", config->dpdk_args);
	for (size_t i = 0; i < sizeof(numeric_keys) / sizeof(numeric_keys[0]); i++) {
		const char *field = (const char *)config + numeric_keys[i].offset;
		uint64_t value = 0;
		if (numeric_keys[i].width == sizeof(uint64_t)) {
			memcpy(&value, field, sizeof(value));
		} else {
			uint32_t narrow = 0;
			memcpy(&narrow, field, sizeof(narrow));
			value = narrow;
		}
		fprintf(out, "%s = %llu\n", numeric_keys[i].name, (unsigned long long)value);
	}
	fprintf(out, "durability = %s\n",
		config->durability == ENGINE_DURABLE ? "durable" : "unsafe-ack-before-sync");
	fprintf(out, "snapshot-on-stop = %s\n", config->snapshot_on_stop ? "true" : "false");
	fprintf(out, "insecure-no-auth = %s\n", config->insecure_no_auth ? "true" : "false");
	if (config->cpu_count > 0) {
		fprintf(out, "cpus = ");
		for (uint32_t i = 0; i < config->cpu_count; i++)
			fprintf(out, "%s%d", i ? "," : "", config->cpus[i]);
		fprintf(out, "\n");
	}
}
