/*
 * run: child processes for filters ("/bin/sh -c CMD" with redirected
 * standard input and output).  No shell is involved unless asked for by a
 * user-given command; stderr is inherited so the user sees a filter's
 * complaints.
 */
#ifndef CUMULUS_RUN_H
#define CUMULUS_RUN_H

#include <sys/types.h>

/*
 * Start "/bin/sh -c ${cmd}" with standard input ${in_fd} and standard
 * output ${out_fd} (both borrowed: the parent keeps its copies).  Every
 * other descriptor of ours is close-on-exec.  0 with *pid set, or -1.
 */
int run_spawn_sh(const char *cmd, int in_fd, int out_fd, pid_t *pid);
/* Same, in a process group of its own (for run_wait_timeout()), so that
 * the Ctrl-C of a terminal does not reach it and a kill reaches all it
 * started. */
int run_spawn_sh_group(const char *cmd, int in_fd, int out_fd, pid_t *pid);
/* Same, running ${argv} directly (argv[0] looked up in PATH). */
int run_spawn_argv(char *const argv[], int in_fd, int out_fd, pid_t *pid);
/*
 * Wait for ${pid}.  0 if it exited with status 0; -1 otherwise, with an
 * error naming ${what} and the status recorded.
 */
int run_wait(pid_t pid, const char *what);
/*
 * Like run_wait(), but for at most ${timeout_ms} milliseconds: then the
 * child is killed (SIGKILL), with its process group when it leads one,
 * reaped, and -2 returned with an error that says so.
 */
int run_wait_timeout(pid_t pid, const char *what, int timeout_ms);
/* Ignore SIGPIPE process-wide, so a dead filter gives EPIPE, not death. */
void run_ignore_sigpipe(void);

#endif
