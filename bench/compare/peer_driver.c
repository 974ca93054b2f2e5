/*
 * peer_driver.c — drives PostgreSQL (one pl/pgsql function call per payment)
 * or Redis (one Lua script per payment) with the payswitch-load workload:
 * the same account layout, payers, payees and amounts (bench/load/workload.c),
 * N client threads with one payment in flight each.
 *
 *   peer_driver postgres CONNINFO --clients 32 --duration 10 [--sync on|off]
 *   peer_driver redis HOST:PORT --clients 32 --duration 10
 *   peer_driver postgres-setup CONNINFO / redis-setup HOST:PORT  (accounts + funds)
 *
 * Prints one JSON line: {"system", "payments", "seconds", "per_s", "p50_ms",
 * "p99_ms", "codes": {...}}. Built by bench/compare/run with libpq and hiredis.
 */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "histogram.h"
#include "workload.h"

#define CLIENTS_MAX 256

/* The payswitch-load defaults for the comparison workload (bench/compare/run
 * passes the same values to payswitch-load). */
static void comparison_config(struct load_config *config, uint64_t seed)
{
	memset(config, 0, sizeof(*config));
	load_workload_defaults(config);
	config->seed = seed;
}

enum system { SYSTEM_POSTGRES, SYSTEM_REDIS };

struct shared {
	enum system system;
	const char *target;
	const char *sync;            /* postgres synchronous_commit */
	double duration_s;
	atomic_bool failed;
	uint64_t id_base;
};

struct client {
	struct shared *shared;
	uint32_t index;
	pthread_t thread;
	struct histogram histogram;
	uint64_t codes[4];           /* 0 ok, 1 insufficient funds, 2 duplicate, 3 error */
};

static const char pg_pay_sql[] = "SELECT pay($1::bigint, $2::bigint, $3::bigint, $4::bigint)";

static const char lua_pay[] =
	"if redis.call('SET', KEYS[3], 1, 'NX', 'EX', 600) == false then return 2 end\n"
	"local balance = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
	"local amount = tonumber(ARGV[1])\n"
	"if balance < amount then return 1 end\n"
	"redis.call('DECRBY', KEYS[1], amount)\n"
	"redis.call('INCRBY', KEYS[2], amount)\n"
	"return 0\n";

static int pg_pay(PGconn *connection, uint64_t id, const struct ledger_request *request)
{
	char values[4][24];
	snprintf(values[0], sizeof(values[0]), "%llu", (unsigned long long)id);
	snprintf(values[1], sizeof(values[1]), "%llu", (unsigned long long)request->account_id);
	snprintf(values[2], sizeof(values[2]), "%llu", (unsigned long long)request->other_id);
	snprintf(values[3], sizeof(values[3]), "%llu", (unsigned long long)request->amount);
	const char *parameters[4] = { values[0], values[1], values[2], values[3] };
	PGresult *result = PQexecPrepared(connection, "pay", 4, parameters, NULL, NULL, 0);
	int code = 3;
	if (PQresultStatus(result) == PGRES_TUPLES_OK && PQntuples(result) == 1)
		code = atoi(PQgetvalue(result, 0, 0));
	else
		fprintf(stderr, "peer_driver: postgres: %s", PQerrorMessage(connection));
	PQclear(result);
	return code;
}

static int redis_pay(redisContext *context, const char *sha, uint64_t id,
		     const struct ledger_request *request)
{
	redisReply *reply = redisCommand(context, "EVALSHA %s 3 b:%llu b:%llu t:%llu %llu", sha,
					 (unsigned long long)request->account_id,
					 (unsigned long long)request->other_id,
					 (unsigned long long)id, (unsigned long long)request->amount);
	int code = 3;
	if (reply != NULL && reply->type == REDIS_REPLY_INTEGER)
		code = (int)reply->integer;
	else
		fprintf(stderr, "peer_driver: redis: %s\n",
			reply && reply->str ? reply->str : context->errstr);
	if (reply)
		freeReplyObject(reply);
	return code;
}

static redisContext *redis_connect(const char *target)
{
	char host[128];
	snprintf(host, sizeof(host), "%s", target);
	char *colon = strrchr(host, ':');
	if (colon == NULL)
		return NULL;
	*colon = '\0';
	redisContext *context = redisConnect(host, atoi(colon + 1));
	if (context == NULL || context->err) {
		fprintf(stderr, "peer_driver: redis %s: %s\n", target,
			context ? context->errstr : "out of memory");
		return NULL;
	}
	return context;
}

static PGconn *pg_connect(const char *target, const char *sync)
{
	PGconn *connection = PQconnectdb(target);
	if (PQstatus(connection) != CONNECTION_OK) {
		fprintf(stderr, "peer_driver: postgres: %s", PQerrorMessage(connection));
		PQfinish(connection);
		return NULL;
	}
	char set[96];
	snprintf(set, sizeof(set), "SET synchronous_commit = %s", sync ? sync : "on");
	PGresult *result = PQexec(connection, set);
	PQclear(result);
	result = PQprepare(connection, "pay", pg_pay_sql, 4, NULL);
	bool ok = PQresultStatus(result) == PGRES_COMMAND_OK;
	PQclear(result);
	if (!ok) {
		fprintf(stderr, "peer_driver: postgres prepare: %s", PQerrorMessage(connection));
		PQfinish(connection);
		return NULL;
	}
	return connection;
}

static void *client_main(void *context)
{
	struct client *client = context;
	struct shared *shared = client->shared;
	struct load_config config;
	comparison_config(&config, 0x5eed0000u + client->index);
	struct load_accounts accounts;
	load_accounts_layout(&config, &accounts);
	struct load_workload workload;
	if (load_workload_init(&workload, &config, &accounts) != 0) {
		atomic_store(&shared->failed, true);
		return NULL;
	}
	histogram_reset(&client->histogram);
	PGconn *pg = NULL;
	redisContext *redis = NULL;
	char sha[64] = "";
	if (shared->system == SYSTEM_POSTGRES) {
		pg = pg_connect(shared->target, shared->sync);
	} else if ((redis = redis_connect(shared->target)) != NULL) {
		redisReply *reply = redisCommand(redis, "SCRIPT LOAD %s", lua_pay);
		if (reply && reply->type == REDIS_REPLY_STRING)
			snprintf(sha, sizeof(sha), "%s", reply->str);
		if (reply)
			freeReplyObject(reply);
	}
	if ((pg == NULL && redis == NULL) || (redis != NULL && sha[0] == '\0')) {
		atomic_store(&shared->failed, true);
		goto out;
	}
	uint64_t end = ledger_monotonic_ns() + (uint64_t)(shared->duration_s * 1e9);
	uint64_t id = shared->id_base + ((uint64_t)client->index << 32);
	for (uint64_t start = ledger_monotonic_ns(); start < end && !atomic_load(&shared->failed);
	     start = ledger_monotonic_ns()) {
		struct ledger_request request;
		struct load_meta meta;
		load_workload_next(&workload, start, &request, &meta);
		int code = pg ? pg_pay(pg, ++id, &request) : redis_pay(redis, sha, ++id, &request);
		histogram_record(&client->histogram, ledger_monotonic_ns() - start);
		client->codes[code >= 0 && code <= 3 ? code : 3]++;
		if (code == 3) {
			atomic_store(&shared->failed, true);
			break;
		}
	}
out:
	if (pg)
		PQfinish(pg);
	if (redis)
		redisFree(redis);
	load_workload_fini(&workload);
	return NULL;
}

static int run(enum system system, const char *target, uint32_t clients, double duration_s,
	       const char *sync, const char *label)
{
	static struct client list[CLIENTS_MAX];
	struct shared shared = { .system = system, .target = target, .sync = sync,
				 .duration_s = duration_s };
	struct timespec wall;
	clock_gettime(CLOCK_REALTIME, &wall);
	shared.id_base = ((uint64_t)wall.tv_sec & 0xffffu) << 44;
	uint64_t start = ledger_monotonic_ns();
	for (uint32_t i = 0; i < clients; i++) {
		list[i] = (struct client){ .shared = &shared, .index = i };
		pthread_create(&list[i].thread, NULL, client_main, &list[i]);
	}
	struct histogram all;
	histogram_reset(&all);
	uint64_t codes[4] = { 0 };
	for (uint32_t i = 0; i < clients; i++) {
		pthread_join(list[i].thread, NULL);
		histogram_merge(&all, &list[i].histogram);
		for (int c = 0; c < 4; c++)
			codes[c] += list[i].codes[c];
	}
	double seconds = (double)(ledger_monotonic_ns() - start) / 1e9;
	printf("{\"system\": \"%s\", \"clients\": %u, \"payments\": %llu, \"seconds\": %.3f, "
	       "\"per_s\": %.1f, \"p50_ms\": %.4f, \"p99_ms\": %.4f, \"max_ms\": %.4f, "
	       "\"codes\": {\"OK\": %llu, \"INSUFFICIENT_FUNDS\": %llu, \"DUPLICATE\": %llu, "
	       "\"ERROR\": %llu}}\n",
	       label, clients, (unsigned long long)all.count, seconds, (double)all.count / seconds,
	       (double)histogram_percentile(&all, 50) / 1e6,
	       (double)histogram_percentile(&all, 99) / 1e6, (double)all.max_ns / 1e6,
	       (unsigned long long)codes[0], (unsigned long long)codes[1],
	       (unsigned long long)codes[2], (unsigned long long)codes[3]);
	return atomic_load(&shared.failed) ? 1 : 0;
}

/* Accounts and funds: the same layout and deposits as payswitch-load. */
static int setup_postgres(const char *target)
{
	struct load_config config;
	comparison_config(&config, 1);
	struct load_accounts accounts;
	load_accounts_layout(&config, &accounts);
	PGconn *connection = PQconnectdb(target);
	if (PQstatus(connection) != CONNECTION_OK) {
		fprintf(stderr, "peer_driver: postgres: %s", PQerrorMessage(connection));
		return 1;
	}
	char sql[4096];
	snprintf(sql, sizeof(sql),
		 "DROP TABLE IF EXISTS transfers; DROP TABLE IF EXISTS accounts;"
		 "CREATE TABLE accounts (id bigint PRIMARY KEY, balance bigint NOT NULL);"
		 "CREATE TABLE transfers (id bigint PRIMARY KEY, payer bigint NOT NULL,"
		 "  payee bigint NOT NULL, amount bigint NOT NULL, code int NOT NULL,"
		 "  at timestamptz NOT NULL DEFAULT now());"
		 "INSERT INTO accounts SELECT %llu + i, CASE WHEN i = 0 THEN 0"
		 "  WHEN i <= %u THEN %llu WHEN i <= %u THEN %llu ELSE 0 END"
		 "  FROM generate_series(0, %u) AS i;"
		 "UPDATE accounts SET balance = -(SELECT sum(balance) FROM accounts) WHERE id = %llu;"
		 "CREATE OR REPLACE FUNCTION pay(p_id bigint, p_payer bigint, p_payee bigint,"
		 "  p_amount bigint) RETURNS int LANGUAGE plpgsql AS $$\n"
		 "DECLARE v_balance bigint;\n"
		 "BEGIN\n"
		 "  PERFORM 1 FROM transfers WHERE id = p_id;\n"
		 "  IF FOUND THEN RETURN 2; END IF;\n"
		 "  SELECT balance INTO v_balance FROM accounts WHERE id = p_payer FOR UPDATE;\n"
		 "  IF v_balance IS NULL OR v_balance < p_amount THEN\n"
		 "    INSERT INTO transfers (id, payer, payee, amount, code) VALUES (p_id, p_payer, p_payee, p_amount, 1);\n"
		 "    RETURN 1;\n"
		 "  END IF;\n"
		 "  UPDATE accounts SET balance = balance - p_amount WHERE id = p_payer;\n"
		 "  UPDATE accounts SET balance = balance + p_amount WHERE id = p_payee;\n"
		 "  INSERT INTO transfers (id, payer, payee, amount, code) VALUES (p_id, p_payer, p_payee, p_amount, 0);\n"
		 "  RETURN 0;\n"
		 "END $$;",
		 (unsigned long long)accounts.base, accounts.broke,
		 (unsigned long long)config.broke_funds_cents, accounts.payers,
		 (unsigned long long)config.payer_funds_cents, accounts.total - 1,
		 (unsigned long long)accounts.base);
	PGresult *result = PQexec(connection, sql);
	int status = PQresultStatus(result) == PGRES_COMMAND_OK ? 0 : 1;
	if (status)
		fprintf(stderr, "peer_driver: postgres setup: %s", PQerrorMessage(connection));
	PQclear(result);
	PQfinish(connection);
	return status;
}

static int setup_redis(const char *target)
{
	struct load_config config;
	comparison_config(&config, 1);
	struct load_accounts accounts;
	load_accounts_layout(&config, &accounts);
	redisContext *context = redis_connect(target);
	if (context == NULL)
		return 1;
	int64_t funded = 0;
	for (uint32_t i = 1; i < accounts.total; i++) {
		uint64_t balance = 0;
		if (i <= accounts.broke)
			balance = config.broke_funds_cents;
		else if (i <= accounts.payers)
			balance = config.payer_funds_cents;
		funded += (int64_t)balance;
		redisAppendCommand(context, "SET b:%llu %llu",
				   (unsigned long long)load_account_id(&accounts, i),
				   (unsigned long long)balance);
	}
	redisAppendCommand(context, "SET b:%llu %lld", (unsigned long long)accounts.base,
			   (long long)-funded);
	int status = 0;
	for (uint32_t i = 0; i < accounts.total; i++) {
		redisReply *reply = NULL;
		if (redisGetReply(context, (void **)&reply) != REDIS_OK || reply == NULL ||
		    reply->type == REDIS_REPLY_ERROR)
			status = 1;
		if (reply)
			freeReplyObject(reply);
	}
	redisFree(context);
	return status;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: peer_driver postgres|redis|postgres-setup|redis-setup TARGET "
				"[--clients N] [--duration S] [--sync on|off] [--label NAME]\n");
		return 2;
	}
	uint32_t clients = 32;
	double duration_s = 10;
	const char *sync = "on";
	const char *label = argv[1];
	for (int i = 3; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--clients"))
			clients = (uint32_t)atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--duration"))
			duration_s = atof(argv[i + 1]);
		else if (!strcmp(argv[i], "--sync"))
			sync = argv[i + 1];
		else if (!strcmp(argv[i], "--label"))
			label = argv[i + 1];
	}
	if (clients == 0 || clients > CLIENTS_MAX)
		return 2;
	if (!strcmp(argv[1], "postgres-setup"))
		return setup_postgres(argv[2]);
	if (!strcmp(argv[1], "redis-setup"))
		return setup_redis(argv[2]);
	if (!strcmp(argv[1], "postgres"))
		return run(SYSTEM_POSTGRES, argv[2], clients, duration_s, sync, label);
	if (!strcmp(argv[1], "redis"))
		return run(SYSTEM_REDIS, argv[2], clients, duration_s, sync, label);
	return 2;
}
