/* run: filter child processes (see run.h). */
#include "run.h"

#include <sys/wait.h>
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "err.h"

extern char **environ;

static int
spawn(char *const argv[], int in_fd, int out_fd, pid_t *pid, const char *what)
{
	posix_spawn_file_actions_t fa;
	int rc;

	if (posix_spawn_file_actions_init(&fa)) {
		err_set("out of memory");
		return -1;
	}
	/* dup2 clears close-on-exec on the target descriptor. */
	rc = (in_fd != 0 && posix_spawn_file_actions_adddup2(&fa, in_fd, 0)) ||
	    (out_fd != 1 && posix_spawn_file_actions_adddup2(&fa, out_fd, 1));
	if (rc == 0)
		rc = posix_spawnp(pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc) {
		errno = rc;
		err_setp("cannot start '%s'", what);
		return -1;
	}
	return 0;
}

int
run_spawn_sh(const char *cmd, int in_fd, int out_fd, pid_t *pid)
{
	char sh[] = "/bin/sh", dash_c[] = "-c";
	char *copy = strdup(cmd);
	char *argv[] = { sh, dash_c, copy, NULL };
	int rc;

	if (copy == NULL) {
		err_set("out of memory");
		return -1;
	}
	rc = spawn(argv, in_fd, out_fd, pid, cmd);
	free(copy);
	return rc;
}

int
run_spawn_argv(char *const argv[], int in_fd, int out_fd, pid_t *pid)
{
	return spawn(argv, in_fd, out_fd, pid, argv[0]);
}

static int
exit_status(int status, const char *what)
{
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFEXITED(status))
		err_set("'%s' failed with exit status %d", what,
		    WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		err_set("'%s' was killed by signal %d", what, WTERMSIG(status));
	else
		err_set("'%s' failed", what);
	return -1;
}

int
run_wait(pid_t pid, const char *what)
{
	int status;

	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			err_setp("waiting for '%s'", what);
			return -1;
		}
	}
	return exit_status(status, what);
}

int
run_wait_timeout(pid_t pid, const char *what, int timeout_ms)
{
	int status, waited_ms = 0, step_ms = 1;

	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			return exit_status(status, what);
		if (r < 0 && errno != EINTR) {
			err_setp("waiting for '%s'", what);
			return -1;
		}
		if (waited_ms >= timeout_ms)
			break;
		/* Polled, from 1 ms up to 100 ms: a child usually exits at
		 * once, and nothing else here can wait for it. */
		{
			struct timespec ts = { 0, (long)step_ms * 1000000L };

			nanosleep(&ts, NULL);
		}
		waited_ms += step_ms;
		if (step_ms < 100)
			step_ms *= 2;
	}
	kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	err_set("'%s' did not exit within %d ms, and was killed", what,
	    timeout_ms);
	return -2;
}

void
run_ignore_sigpipe(void)
{
	signal(SIGPIPE, SIG_IGN);
}
