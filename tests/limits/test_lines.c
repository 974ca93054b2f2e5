/*
 * test_lines.c — config and directory files are read a whole line at a time
 * (issue 16, defect 10): the tail of a long '#' comment never becomes a
 * setting or an entry, and a line longer than the stated limit is refused
 * naming file:line.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "directory.h"

static char dir[64];

static void make_dir(void)
{
	snprintf(dir, sizeof(dir), "/tmp/payswitch-lines-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void remove_dir(void)
{
	char command[128];
	snprintf(command, sizeof(command), "rm -rf '%s'", dir);
	cr_assert_eq(system(command), 0);
}

TestSuite(lines, .init = make_dir, .fini = remove_dir);

/* Writes to path a '#' comment of comment_bytes bytes (its '#' included)
 * followed on the same line by `tail`, then the text `after`. */
static void write_file(const char *path, size_t comment_bytes, const char *tail,
		       const char *after)
{
	FILE *file = fopen(path, "w");
	cr_assert_not_null(file);
	fputc('#', file);
	for (size_t i = 1; i < comment_bytes; i++)
		fputc('x', file);
	fprintf(file, "%s\n%s", tail, after);
	cr_assert_eq(fclose(file), 0);
}

/* The old reader's buffer was 2,048 bytes: a 2,047-byte comment put the rest
 * of the line in a part of its own. Every length around it and the limit. */
Test(lines, config_long_comment_stays_a_comment)
{
	static const size_t lengths[] = { 2046, 2047, 2048, 3000, ENGINE_CONFIG_LINE_BYTES_MAX - 40 };
	char path[128];
	snprintf(path, sizeof(path), "%s/switch.conf", dir);
	for (size_t i = 0; i < sizeof(lengths) / sizeof(lengths[0]); i++) {
		write_file(path, lengths[i], "durability = unsafe-ack-before-sync",
			   "ring-size = 1024\n");
		struct engine_config config;
		engine_config_default(&config);
		char error[512] = "";
		cr_assert_eq(engine_config_load_file(&config, path, error, sizeof(error)), 0,
			     "comment of %zu bytes: %s", lengths[i], error);
		cr_assert_eq(config.durability, ENGINE_DURABLE,
			     "the tail of a %zu-byte comment became a setting", lengths[i]);
		cr_assert_eq(config.ring_size, 1024, "the line after the comment was lost");
	}
}

Test(lines, config_line_over_the_limit_is_refused_with_file_and_line)
{
	char path[128], expected[256];
	snprintf(path, sizeof(path), "%s/switch.conf", dir);
	/* Line 3 of exactly the limit passes; one byte longer is refused. */
	for (unsigned over = 0; over <= 1; over++) {
		FILE *file = fopen(path, "w");
		cr_assert_not_null(file);
		fputs("ring-size = 1024\n\n#", file);
		for (unsigned i = 1; i < ENGINE_CONFIG_LINE_BYTES_MAX + over; i++)
			fputc('y', file);
		fputs("\nworkers = 2\n", file);
		cr_assert_eq(fclose(file), 0);
		struct engine_config config;
		engine_config_default(&config);
		char error[512] = "";
		int result = engine_config_load_file(&config, path, error, sizeof(error));
		if (!over) {
			cr_assert_eq(result, 0, "a line of the limit is refused: %s", error);
			cr_assert_eq(config.workers, 2);
			continue;
		}
		cr_assert_lt(result, 0, "a line over the limit is accepted");
		snprintf(expected, sizeof(expected), "%s:3: line of %u bytes, longer than the limit"
			 " of %u", path, ENGINE_CONFIG_LINE_BYTES_MAX + 1, ENGINE_CONFIG_LINE_BYTES_MAX);
		cr_assert_str_eq(error, expected);
		cr_assert_eq(config.workers, 1, "a line after the refused one was applied");
	}
}

Test(lines, config_data_dir_over_the_path_limit_is_refused)
{
	char value[JOURNAL_DATA_DIR_BYTES_MAX + 2];
	memset(value, 'd', sizeof(value) - 1);
	value[sizeof(value) - 1] = '\0';
	struct engine_config config;
	engine_config_default(&config);
	char error[1024] = "";
	cr_assert_neq(engine_config_set(&config, "data-dir", value, error, sizeof(error)), 0);
	cr_assert_not_null(strstr(error, "the limit is 461 bytes"), "%s", error);
	cr_assert_str_eq(config.data_dir, "data");
	value[JOURNAL_DATA_DIR_BYTES_MAX] = '\0';
	cr_assert_eq(engine_config_set(&config, "data-dir", value, error, sizeof(error)), 0,
		     "%s", error);
	cr_assert_str_eq(config.data_dir, value);
}

/* The old reader's buffer was 512 bytes: a commented-out card line long
 * enough put "pan ... ACCOUNT" in a part of its own, which routed the card. */
Test(lines, directory_long_comment_does_not_route_a_card)
{
	static const size_t lengths[] = { 500, 510, 511, 512, 900 };
	char path[128];
	snprintf(path, sizeof(path), "%s/cards", dir);
	for (size_t i = 0; i < sizeof(lengths) / sizeof(lengths[0]); i++) {
		write_file(path, lengths[i], " pan 4111111111111111 42", "merchant M1 7\n");
		char error[512] = "";
		struct directory *directory = directory_load(path, error, sizeof(error));
		cr_assert_not_null(directory, "comment of %zu bytes: %s", lengths[i], error);
		uint64_t account = 0;
		cr_assert_not(directory_find(directory, DIRECTORY_PAN, "4111111111111111", 16,
					     &account),
			      "the tail of a %zu-byte comment routed the card to %llu", lengths[i],
			      (unsigned long long)account);
		cr_assert_eq(directory_count(directory, DIRECTORY_PAN), 0);
		cr_assert(directory_find(directory, DIRECTORY_MERCHANT, "M1", 2, &account));
		cr_assert_eq(account, 7);
		directory_destroy(directory);
	}
}

/* Many long comment lines: the table is sized by newlines, so parts read as
 * lines once overflowed it ("appears twice"). Read whole, they all pass. */
Test(lines, directory_many_long_comments_fit)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/cards", dir);
	FILE *file = fopen(path, "w");
	cr_assert_not_null(file);
	for (int line = 0; line < 100; line++) {
		fputc('#', file);
		for (int i = 0; i < 1000; i++)
			fputc(i % 60 == 0 ? ' ' : 'z', file);
		fputc('\n', file);
	}
	fprintf(file, "terminal T1 9\n");
	fclose(file);
	char error[512] = "";
	struct directory *directory = directory_load(path, error, sizeof(error));
	cr_assert_not_null(directory, "%s", error);
	cr_assert_eq(directory_count(directory, DIRECTORY_TERMINAL), 1);
	directory_destroy(directory);
}

Test(lines, directory_line_over_the_limit_is_refused_with_file_and_line)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/cards", dir);
	FILE *file = fopen(path, "w");
	cr_assert_not_null(file);
	fprintf(file, "pan 4000 1\n# a short comment\n#");
	for (int i = 1; i < 1025; i++)
		fputc('w', file);
	fprintf(file, "\npan 5000 2\n");
	fclose(file);
	char error[512] = "", expected[256];
	cr_assert_null(directory_load(path, error, sizeof(error)));
	snprintf(expected, sizeof(expected), "directory %s:3: line of 1025 bytes, longer than the"
		 " limit of 1024", path);
	cr_assert_str_eq(error, expected);
	/* A line of exactly the limit is a comment like any other. */
	file = fopen(path, "w");
	fprintf(file, "pan 4000 1\n#");
	for (int i = 1; i < 1024; i++)
		fputc('w', file);
	fprintf(file, "\npan 5000 2\n");
	fclose(file);
	struct directory *directory = directory_load(path, error, sizeof(error));
	cr_assert_not_null(directory, "%s", error);
	cr_assert_eq(directory_count(directory, DIRECTORY_PAN), 2);
	directory_destroy(directory);
}
