/*
 * err: the error of the last failed call, per thread.
 *
 * Library code never prints: a function that fails records one message here
 * with err_set() (or err_setp(), which appends strerror(errno)) and returns
 * -1 or NULL.  The command layer prints err_msg() and decides the exit code.
 * A caller that adds context uses err_prefix().
 */
#ifndef CUMULUS_ERR_H
#define CUMULUS_ERR_H

#define ERR_PRINTF(a, b) __attribute__((format(printf, a, b)))

/* Record a message (replaces any earlier one). */
void err_set(const char *fmt, ...) ERR_PRINTF(1, 2);
/* Record a message followed by ": " and strerror(errno). */
void err_setp(const char *fmt, ...) ERR_PRINTF(1, 2);
/* Put "<context>: " in front of the recorded message. */
void err_prefix(const char *fmt, ...) ERR_PRINTF(1, 2);
/* The recorded message; "" when none.  Valid until the next err_ call. */
const char *err_msg(void);
/* Forget the recorded message. */
void err_clear(void);

#endif
