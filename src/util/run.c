/* run: filter child processes (see run.h). */
#include "run.h"

#include <sys/wait.h>
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "err.h"

extern char **environ;

static int
spawn(char *const argv[], int in_fd, int out_fd, pid_t *pid, const char *what,
    bool group)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	int rc;

	if (posix_spawn_file_actions_init(&fa)) {
		err_set("out of memory");
		return -1;
	}
	if (posix_spawnattr_init(&at)) {
		posix_spawn_file_actions_destroy(&fa);
		err_set("out of memory");
		return -1;
	}
	/* dup2 clears close-on-exec on the target descriptor. */
	rc = (in_fd != 0 && posix_spawn_file_actions_adddup2(&fa, in_fd, 0)) ||
	    (out_fd != 1 && posix_spawn_file_actions_adddup2(&fa, out_fd, 1));
	/* A group of its own (its id is the child's pid): what the child
	 * starts can be killed with it. */
	if (rc == 0 && group)
		rc = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP) ||
		    posix_spawnattr_setpgroup(&at, 0);
	if (rc == 0)
		rc = posix_spawnp(pid, argv[0], &fa, &at, argv, environ);
	posix_spawnattr_destroy(&at);
	posix_spawn_file_actions_destroy(&fa);
	if (rc) {
		errno = rc;
		err_setp("cannot start '%s'", what);
		return -1;
	}
	return 0;
}

static int
spawn_sh(const char *cmd, int in_fd, int out_fd, pid_t *pid, bool group)
{
	char sh[] = "/bin/sh", dash_c[] = "-c";
	char *copy = strdup(cmd);
	char *argv[] = { sh, dash_c, copy, NULL };
	int rc;

	if (copy == NULL) {
		err_set("out of memory");
		return -1;
	}
	rc = spawn(argv, in_fd, out_fd, pid, cmd, group);
	free(copy);
	return rc;
}

int
run_spawn_sh(const char *cmd, int in_fd, int out_fd, pid_t *pid)
{
	return spawn_sh(cmd, in_fd, out_fd, pid, false);
}

int
run_spawn_sh_group(const char *cmd, int in_fd, int out_fd, pid_t *pid)
{
	return spawn_sh(cmd, in_fd, out_fd, pid, true);
}

int
run_spawn_argv(char *const argv[], int in_fd, int out_fd, pid_t *pid)
{
	return spawn(argv, in_fd, out_fd, pid, argv[0], false);
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
	/* Its group too, when it leads one (run_spawn_sh_group()): a shell
	 * killed alone would leave what it started running. */
	if (getpgid(pid) == pid)
		kill(-pid, SIGKILL);
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
