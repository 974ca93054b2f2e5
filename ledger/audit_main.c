/* audit_main.c — the standalone `payswitch-audit` command (the engine's
 * `payswitch audit` calls the same journal_audit_main()). */
#include "journal.h"

int main(int argc, char **argv)
{
	argv[0] = "audit";
	return journal_audit_main(argc, argv);
}
