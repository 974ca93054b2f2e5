/*
 * tcp_tls.c — the OpenSSL server contexts of TLS listeners (tcp_server.h).
 * The record layer runs in tcp_server.c; this file only builds contexts.
 */
#include "tcp_server.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>

static void openssl_reason(const char *what, const char *path, char *error, size_t error_size)
{
	unsigned long code = ERR_get_error();
	char reason[256] = "unknown error";
	if (code != 0)
		ERR_error_string_n(code, reason, sizeof(reason));
	ERR_clear_error();
	snprintf(error, error_size, "tls: %s %s: %s", what, path, reason);
}

SSL_CTX *tcp_tls_context_create(const char *certificate, const char *key, const char *client_ca,
				char *error, size_t error_size)
{
	SSL_CTX *context = SSL_CTX_new(TLS_server_method());
	if (context == NULL) {
		openssl_reason("context", "", error, error_size);
		return NULL;
	}
	/* TLS 1.2 at least; the write buffer moves between retries (memmove). */
	SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION);
	SSL_CTX_set_mode(context, SSL_MODE_ENABLE_PARTIAL_WRITE |
				  SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (SSL_CTX_use_certificate_chain_file(context, certificate) != 1) {
		openssl_reason("certificate", certificate, error, error_size);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(context, key, SSL_FILETYPE_PEM) != 1) {
		openssl_reason("key", key, error, error_size);
		goto fail;
	}
	if (SSL_CTX_check_private_key(context) != 1) {
		openssl_reason("key does not match the certificate", key, error, error_size);
		goto fail;
	}
	if (client_ca != NULL && client_ca[0] != '\0') {
		if (SSL_CTX_load_verify_locations(context, client_ca, NULL) != 1) {
			openssl_reason("client CA", client_ca, error, error_size);
			goto fail;
		}
		STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(client_ca);
		if (names != NULL)
			SSL_CTX_set_client_CA_list(context, names);
		SSL_CTX_set_verify(context, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	}
	return context;
fail:
	SSL_CTX_free(context);
	return NULL;
}

void tcp_tls_context_destroy(SSL_CTX *context)
{
	SSL_CTX_free(context);
}
