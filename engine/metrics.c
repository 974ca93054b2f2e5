/*
 * metrics.c — Prometheus text exposition served by libmicrohttpd.
 */
#include "metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A scrape of a busy switch is a few tens of KiB; this bounds a runaway one. */
#define METRICS_TEXT_MAX (16u << 20)

void metrics_histogram_observe(struct metrics_histogram *histogram, uint64_t value)
{
	unsigned bucket = value <= 1 ? 0 : 64 - (unsigned)__builtin_clzll(value - 1);
	if (bucket >= METRICS_HISTOGRAM_BUCKETS)
		bucket = METRICS_HISTOGRAM_BUCKETS - 1;
	metrics_add(&histogram->buckets[bucket], 1);
	metrics_add(&histogram->sum, value);
	metrics_add(&histogram->count, 1);
}

void metrics_text_printf(struct metrics_text *text, const char *format, ...)
{
	if (text->failed)
		return;
	for (;;) {
		size_t room = text->capacity - text->length;
		va_list arguments;
		va_start(arguments, format);
		int wanted = vsnprintf(text->data ? text->data + text->length : NULL, room, format,
				       arguments);
		va_end(arguments);
		if (wanted < 0) {
			text->failed = 1;
			return;
		}
		if ((size_t)wanted < room) {
			text->length += (size_t)wanted;
			return;
		}
		size_t capacity = text->capacity ? text->capacity * 2 : 65536;
		while (capacity - text->length <= (size_t)wanted)
			capacity *= 2;
		char *data = capacity <= METRICS_TEXT_MAX ? realloc(text->data, capacity) : NULL;
		if (data == NULL) {
			text->failed = 1;
			return;
		}
		text->data = data;
		text->capacity = capacity;
	}
}

void metrics_text_header(struct metrics_text *text, const char *name, const char *type,
			 const char *help)
{
	metrics_text_printf(text, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void metrics_text_histogram(struct metrics_text *text, const char *name, const char *labels,
			    const struct metrics_histogram *histogram)
{
	const char *separator = labels[0] ? "," : "";
	uint64_t cumulative = 0;
	for (unsigned i = 0; i < METRICS_HISTOGRAM_BUCKETS - 1; i++) {
		cumulative += metrics_read(&histogram->buckets[i]);
		metrics_text_printf(text, "%s_bucket{%s%sle=\"%llu\"} %llu\n", name, labels, separator,
				    1ull << i, (unsigned long long)cumulative);
	}
	cumulative += metrics_read(&histogram->buckets[METRICS_HISTOGRAM_BUCKETS - 1]);
	metrics_text_printf(text, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, separator,
			    (unsigned long long)cumulative);
	metrics_text_printf(text, "%s_sum{%s} %llu\n%s_count{%s} %llu\n", name, labels,
			    (unsigned long long)metrics_read(&histogram->sum), name, labels,
			    (unsigned long long)cumulative);
}

struct metrics_server {
	struct MHD_Daemon *daemon;
	metrics_render_fn render;
	void *context;
};

static enum MHD_Result answer(void *closure, struct MHD_Connection *connection, const char *url,
			      const char *method, const char *version, const char *upload_data,
			      size_t *upload_data_size, void **request_state)
{
	(void)version;
	(void)upload_data;
	(void)upload_data_size;
	(void)request_state;
	struct metrics_server *server = closure;
	struct MHD_Response *response = NULL;
	unsigned status = MHD_HTTP_OK;
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		static const char refused[] = "only GET\n";
		status = MHD_HTTP_METHOD_NOT_ALLOWED;
		response = MHD_create_response_from_buffer(sizeof(refused) - 1, (void *)refused,
							    MHD_RESPMEM_PERSISTENT);
	} else if (strcmp(url, "/metrics") == 0) {
		struct metrics_text text = { 0 };
		server->render(server->context, &text);
		if (text.failed) {
			free(text.data);
			static const char failed[] = "metrics: out of memory\n";
			status = MHD_HTTP_INTERNAL_SERVER_ERROR;
			response = MHD_create_response_from_buffer(sizeof(failed) - 1, (void *)failed,
								    MHD_RESPMEM_PERSISTENT);
		} else {
			response = MHD_create_response_from_buffer(text.length, text.data,
								    MHD_RESPMEM_MUST_FREE);
			MHD_add_response_header(response, "Content-Type",
						"text/plain; version=0.0.4; charset=utf-8");
		}
	} else {
		static const char index_page[] = "payswitch: metrics are at /metrics\n";
		status = strcmp(url, "/") == 0 ? MHD_HTTP_OK : MHD_HTTP_NOT_FOUND;
		response = MHD_create_response_from_buffer(sizeof(index_page) - 1, (void *)index_page,
							    MHD_RESPMEM_PERSISTENT);
	}
	if (response == NULL)
		return MHD_NO;
	enum MHD_Result result = MHD_queue_response(connection, status, response);
	MHD_destroy_response(response);
	return result;
}

struct metrics_server *metrics_server_start(const char *host, uint16_t port,
					    metrics_render_fn render, void *context, int *error)
{
	struct sockaddr_in address = { .sin_family = AF_INET, .sin_port = htons(port) };
	if (inet_pton(AF_INET, host, &address.sin_addr) != 1) {
		*error = -EINVAL;
		return NULL;
	}
	struct metrics_server *server = calloc(1, sizeof(*server));
	if (server == NULL) {
		*error = -ENOMEM;
		return NULL;
	}
	server->render = render;
	server->context = context;
	server->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, port,
					  NULL, NULL, answer, server, MHD_OPTION_SOCK_ADDR,
					  (struct sockaddr *)&address, MHD_OPTION_CONNECTION_TIMEOUT,
					  (unsigned)10, MHD_OPTION_END);
	if (server->daemon == NULL) {
		*error = errno ? -errno : -EADDRINUSE;
		free(server);
		return NULL;
	}
	return server;
}

void metrics_server_stop(struct metrics_server *server)
{
	if (server == NULL)
		return;
	MHD_stop_daemon(server->daemon);
	free(server);
}
