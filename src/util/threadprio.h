/*
 * threadprio: scheduling hints for the calling thread.
 *
 * Helper threads (compression, read-ahead) feed the main thread, which is
 * a backup's critical path.  These hints make the scheduler favour it.
 * They are hints: a system that refuses one (another kernel, a sandbox)
 * runs the same code, only slower, so callers ignore failures.
 */
#ifndef CUMULUS_THREADPRIO_H
#define CUMULUS_THREADPRIO_H

/* Lower the calling thread's priority by ${delta} nice steps (Linux: the
 * nice value is per thread, and threads it creates inherit it).  0, or -1
 * if refused. */
int threadprio_lower(int delta);

/* Make the calling thread a batch thread (Linux SCHED_BATCH, inherited
 * too): when woken, it does not preempt the thread running on its core,
 * usually the one that woke it, but waits for that thread to sleep or
 * use up its time slice.  0, or -1 if refused. */
int threadprio_batch(void);

#endif
