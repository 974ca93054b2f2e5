/* Every result code has a distinct stable name; others are UNKNOWN. */
#include <string.h>

#include "ledger_test_util.h"

Test(results, every_code_named_once)
{
	unsigned named = 0;
	for (unsigned a = 0; a < LEDGER_RESULT_CODE_COUNT; a++) {
		const char *name = ledger_result_name(a);
		cr_assert_not_null(name);
		if (strcmp(name, "UNKNOWN") == 0)
			continue;
		named++;
		for (unsigned b = a + 1; b < LEDGER_RESULT_CODE_COUNT; b++)
			cr_assert_str_neq(name, ledger_result_name(b), "codes %u and %u share a name", a, b);
	}
	cr_assert_eq(named, 36, "31 ledger codes + 5 engine and netio codes");
}

Test(results, known_names)
{
	cr_assert_str_eq(ledger_result_name(LEDGER_OK), "OK");
	cr_assert_str_eq(ledger_result_name(LEDGER_INSUFFICIENT_FUNDS), "INSUFFICIENT_FUNDS");
	cr_assert_str_eq(ledger_result_name(LEDGER_INVALID_LIMITS), "INVALID_LIMITS");
	cr_assert_str_eq(ledger_result_name(LEDGER_WRONG_VERSION), "WRONG_VERSION");
	cr_assert_str_eq(ledger_result_name(31), "UNKNOWN");
	cr_assert_str_eq(ledger_result_name(39), "UNKNOWN");
	cr_assert_str_eq(ledger_result_name(LEDGER_RESULT_CODE_COUNT), "UNKNOWN");
	cr_assert_str_eq(ledger_result_name(~0u), "UNKNOWN");
}
