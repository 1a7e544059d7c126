/*
 * cmd_remote: cumulus-store URL, the upload helper of the original's
 * --upload-script protocol (reference 5.1), for any store URL:
 *
 *   PUT <type> <name> <local-file>   store the file as <name>   -> OK
 *   LIST <type>                      "* <name>" per file, then     OK
 *
 * Tokens are %-encoded.  Errors answer "ERR" (the message goes to
 * stderr) and the helper goes on; end of input ends it.  Fixed against
 * the original: PUT works for every backend (HEAD called a removed
 * method), files are copied as bytes, and a PUT answers OK only once the
 * store has the file durably (remote: checksum confirmed).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "cli.h"
#include "err.h"
#include "escape.h"
#include "fileio.h"
#include "store.h"

#define LINE_LIMIT 65536

static int
put_file(struct store *st, const char *name, const char *local)
{
	struct store_writer *w;
	char tmp[65536];
	int fd = open(local, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		err_setp("cannot open '%s'", local);
		return -1;
	}
	if (store_create(st, name, &w)) {
		close(fd);
		return -1;
	}
	for (;;) {
		ssize_t n = fileio_read_full(fd, tmp, sizeof(tmp));

		if (n < 0 || (n > 0 && fileio_write_full(store_writer_fd(w), tmp,
					   (size_t)n))) {
			close(fd);
			store_writer_abort(w);
			return -1;
		}
		if (n == 0)
			break;
	}
	close(fd);
	return store_writer_commit(w, false);
}

/* Does ${name} (a base name) belong to the protocol type ${type}? */
static int
type_matches(const char *type, const char *name)
{
	size_t l = strlen(name);

	if (strncmp(type, "segments", 8) == 0)
		return strspn(name, "0123456789abcdef-") == 36 &&
		    strncmp(name + 36, ".tar", 4) == 0;
	if (strcmp(type, "snapshots") == 0)
		return strncmp(name, "snapshot-", 9) == 0 &&
		    ((l > 4 && strcmp(name + l - 4, ".lbs") == 0) ||
			(l > 8 && strcmp(name + l - 8, ".cumulus") == 0));
	if (strcmp(type, "checksums") == 0)
		return strncmp(name, "snapshot-", 9) == 0 && l > 4 &&
		    strcmp(name + l - 4, "sums") == 0;
	if (strcmp(type, "meta") == 0)
		return strncmp(name, "snapshot-", 9) == 0 &&
		    strstr(name, ".meta") != NULL;
	return 0;
}

struct lister {
	const char *type;
	const char *dir;
	struct buf line;
};

static int
list_cb(void *arg, const char *name)
{
	struct lister *l = arg;

	if (!type_matches(l->type, name))
		return 0;
	buf_reset(&l->line);
	if (buf_puts(&l->line, "* ") ||
	    (l->dir[0] && (escape_encode(&l->line, l->dir, strlen(l->dir)) ||
			      buf_putc(&l->line, '/'))) ||
	    escape_encode(&l->line, name, strlen(name)))
		return -1;
	printf("%s\n", l->line.data);
	return 0;
}

static int
do_list(struct store *st, const char *type)
{
	struct lister l = { type, "", { NULL, 0, 0, 0 } };
	int rc;

	/* Flat stores keep every type in the root; HEAD-style stores use a
	 * directory per type. */
	buf_init(&l.line, LINE_LIMIT);
	rc = store_list(st, "", list_cb, &l);
	if (rc == 0 && strchr(type, '/') == NULL && strcmp(type, "..") &&
	    strcmp(type, ".")) {
		l.dir = type;
		rc = store_list(st, type, list_cb, &l);
	}
	buf_release(&l.line);
	return rc;
}

/* Split ${line} at whitespace and decode each token. */
static size_t
tokens(char *line, struct buf *tok, size_t max)
{
	size_t n = 0;

	for (char *p = strtok(line, " \t\r"); p && n < max;
	     p = strtok(NULL, " \t\r")) {
		buf_init(&tok[n], LINE_LIMIT);
		if (escape_decode(&tok[n], p, strlen(p)) ||
		    strlen(buf_str(&tok[n])) != tok[n].len) {
			buf_release(&tok[n]);
			break;
		}
		n++;
	}
	return n;
}

int
cli_store_main(int argc, char **argv)
{
	struct store *st;
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;

	if (argc != 2 || argv[1][0] == '-') {
		fprintf(stderr, "Usage: cumulus-store STORE-URL\n"
				"Reads PUT/LIST commands on standard input "
				"(the --upload-script protocol).\n");
		return argc == 2 && strcmp(argv[1], "--help") == 0 ? CLI_OK
								   : CLI_USAGE;
	}
	if (store_open(argv[1], true, &st)) {
		fprintf(stderr, "cumulus-store: %s\n", err_msg());
		return CLI_FAIL;
	}
	while ((len = getline(&line, &cap, stdin)) > 0) {
		struct buf tok[5];
		size_t n;
		int ok = -1;

		if (line[len - 1] == '\n')
			line[--len] = '\0';
		if ((size_t)len > LINE_LIMIT) {
			fprintf(stderr, "cumulus-store: command line too long\n");
			puts("ERR");
			fflush(stdout);
			continue;
		}
		n = tokens(line, tok, 5);
		err_clear();
		if (n == 4 && strcmp(tok[0].data, "PUT") == 0) {
			ok = put_file(st, tok[2].data, tok[3].data);
			if (ok)
				err_prefix("PUT %s", tok[2].data);
		} else if (n == 2 && strcmp(tok[0].data, "LIST") == 0) {
			ok = do_list(st, tok[1].data);
			if (ok)
				err_prefix("LIST %s", tok[1].data);
		} else {
			err_set("unknown command");
		}
		if (ok)
			fprintf(stderr, "cumulus-store: %s\n", err_msg());
		puts(ok ? "ERR" : "OK");
		fflush(stdout);
		for (size_t i = 0; i < n; i++)
			buf_release(&tok[i]);
	}
	free(line);
	store_close(st);
	return CLI_OK;
}
