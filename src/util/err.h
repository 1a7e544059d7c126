/*
 * err: the error of the last failed call, per thread.
 *
 * Library code never prints: a function that fails records one message here
 * with err_set() (or err_setp(), which appends strerror(errno)) and returns
 * -1 or NULL.  The command layer prints err_msg() and decides the exit code.
 * A caller that adds context uses err_prefix().
 *
 * Messages often quote what a store holds (names, references), and a
 * hostile store must not reach the terminal with escape sequences: every
 * recorded message shows control bytes (below 0x20, and 0x7f), C1
 * controls (U+0080..U+009F) and bytes that are not UTF-8 as "\xNN".
 */
#ifndef CUMULUS_ERR_H
#define CUMULUS_ERR_H

#include <stdarg.h>
#include <stddef.h>

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
/* Format into ${dst} (${cap} > 0 bytes, always terminated, cut short if
 * need be) escaped as recorded messages are: for messages that do not go
 * through err_set(), such as warnings. */
void err_vformat(char *dst, size_t cap, const char *fmt, va_list ap)
    ERR_PRINTF(3, 0);
/* Copy ${src} into ${dst} (${cap} > 0 bytes, always terminated, cut short
 * between characters if need be) escaped as recorded messages are: for
 * text that is printed without a message around it, such as names. */
void err_printable(char *dst, size_t cap, const char *src);

#endif
