/*
 * task_stat.h: what /proc says of this process's threads, for unit tests
 * that check the scheduling hints of worker threads.
 */
#ifndef CUMULUS_TEST_TASK_STAT_H
#define CUMULUS_TEST_TASK_STAT_H

#include <dirent.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Field ${want} of /proc/self/task/${tid}/stat (counted as in proc(5):
 * the state is 3, nice 19, the scheduling policy 41), or -100. */
static inline int
stat_field(const char *tid, int want)
{
	char path[300], buf[1024], *p;
	FILE *f;
	int field = 3, v = -100;

	snprintf(path, sizeof(path), "/proc/self/task/%s/stat", tid);
	if ((f = fopen(path, "r")) == NULL)
		return -100;
	if (fgets(buf, sizeof(buf), f) != NULL
	    && (p = strrchr(buf, ')')) != NULL) {
		for (p = strtok(p + 1, " "); p; p = strtok(NULL, " "), field++)
			if (field == want) {
				v = atoi(p);
				break;
			}
	}
	fclose(f);
	return v;
}

/* Threads of this process other than the caller whose stat field
 * ${field} is ${value}; the caller's own value in ${self_value}. */
static inline int
count_threads_now(int field, int value, int *self_value)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *de;
	char self[32];
	int n = 0;

	snprintf(self, sizeof(self), "%ld", (long)gettid());
	*self_value = -100;
	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		int v;

		if (de->d_name[0] == '.')
			continue;
		v = stat_field(de->d_name, field);
		if (strcmp(de->d_name, self) == 0)
			*self_value = v;
		else if (v == value)
			n++;
	}
	closedir(d);
	return n;
}

/* count_threads_now() once it says ${want}, or after a second: a worker
 * sets its priority when it starts, a moment after it is created, and a
 * thread just joined can stay listed in /proc/self/task while it ends. */
static inline int
count_threads(int field, int value, int *self_value, int want)
{
	struct timespec pause = { 0, 1000 * 1000 };
	int n = count_threads_now(field, value, self_value);

	for (int ms = 0; n != want && ms < 1000; ms++) {
		nanosleep(&pause, NULL);
		n = count_threads_now(field, value, self_value);
	}
	return n;
}

/* Other threads that are SCHED_BATCH (policy, field 41), waiting as
 * count_threads() for ${want}; the caller's policy in ${self_policy}. */
static inline int
count_batch_wait(int *self_policy, int want)
{
	return count_threads(41, SCHED_BATCH, self_policy, want);
}

#endif
