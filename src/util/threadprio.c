/*
 * threadprio: scheduling hints for the calling thread (threadprio.h).
 */
#include "threadprio.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <errno.h>
#include <sched.h>
#include <unistd.h>

int
threadprio_lower(int delta)
{
	/* PRIO_PROCESS with a thread id: Linux keeps nice per thread. */
	id_t tid = (id_t)syscall(SYS_gettid);
	int nice;

	errno = 0;
	nice = getpriority(PRIO_PROCESS, tid);
	if (nice == -1 && errno != 0)
		return -1;
	return setpriority(PRIO_PROCESS, tid, nice + delta);
}

int
threadprio_batch(void)
{
#ifdef SCHED_BATCH
	/* pid 0: the calling thread.  The nice value is kept. */
	struct sched_param sp = { 0 };

	return sched_setscheduler(0, SCHED_BATCH, &sp);
#else
	return -1;
#endif
}
