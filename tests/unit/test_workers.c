/*
 * test_workers: how many compression and read-ahead workers a backup
 * starts for --threads and the number of cores.
 */
#include "backup.h"
#include "tap.h"

int
main(void)
{
	/* The default: one more than the cores when there are several. */
	ok(backup_worker_count(0, 2) == 3, "two cores: three workers");
	ok(backup_worker_count(0, 8) == 9, "eight cores: nine workers");
	ok(backup_worker_count(0, 1) == 1, "one core: one worker, no threads");
	ok(backup_worker_count(0, -1) == 1, "sysconf failed: one worker");
	ok(backup_worker_count(0, 0) == 1, "no core reported: one worker");
	ok(backup_worker_count(0, 63) == 64, "63 cores: 64 workers");
	ok(backup_worker_count(0, 500) == 64, "at most 64 by default");
	/* --threads=N is taken as given. */
	ok(backup_worker_count(1, 8) == 1, "--threads=1 on eight cores: one");
	ok(backup_worker_count(2, 2) == 2, "--threads=2 on two cores: two");
	ok(backup_worker_count(5, 1) == 5, "--threads=5 on one core: five");
	ok(backup_worker_count(256, 2) == 256, "--threads=256: 256");
	return tap_done();
}
