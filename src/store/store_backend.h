/*
 * store_backend: the interface between store.c (names, staging, the
 * listing cache and the upload queue) and one storage backend
 * (store_file.c, store_s3.c, store_script.c, store_sftp.c).
 *
 * store.c checks every name before a backend sees it, so backends get
 * relative names without "." or ".." components.  A backend either writes
 * natively (w_create/w_commit/w_abort: the file backend's temp file in
 * the store directory) or receives a finished local file through put():
 * store.c stages the bytes in a temp file under $TMPDIR first.  Reads
 * work the same way: open_read() natively, or get() into an unlinked temp
 * file that store.c hands to the caller; get() is told the size the
 * store's listing gave (STORE_SIZE_UNKNOWN if none) and accepts at most
 * STORE_GET_SLACK bytes more (a small file rewritten since it was listed,
 * such as a lease), whatever the server sends.
 *
 * Every function returns 0 on success and -1 with an error recorded;
 * get/stat/del return 1 when the name does not exist.  put() and get()
 * may be called from several upload threads at once when max_jobs > 1.
 */
#ifndef CUMULUS_STORE_BACKEND_H
#define CUMULUS_STORE_BACKEND_H

#include <stdbool.h>
#include <stdint.h>

#define STORE_SIZE_UNKNOWN UINT64_MAX
#define STORE_GET_SLACK ((uint64_t)64 << 10)

typedef int (*store_list_cb)(void *arg, const char *name, uint64_t size);

struct store_ops {
	const char *scheme; /* "s3://"; NULL for the file backend */
	int (*open)(const char *url, bool create, void **impl);
	void (*close)(void *impl);
	/* Optional: end the session after the last write and report what
	 * went wrong at its end (an upload helper's exit status).  0/-1. */
	int (*finish)(void *impl);
	/* File backend: the directory; others NULL. */
	const char *(*local_dir)(void *impl);

	/* Native writes (all three, or none). */
	int (*w_create)(void *impl, const char *name, void **w, int *fd);
	int (*w_commit)(void *w, bool noreplace);
	void (*w_abort)(void *w);

	/*
	 * Staged writes: store ${fd} (a regular file at offset 0, read with
	 * pread; ${path} is its name, or NULL once it is unlinked) as
	 * ${name}.  Returns only when the store has confirmed the bytes.
	 */
	int (*put)(void *impl, const char *name, int fd, const char *path,
	    bool noreplace);
	bool put_needs_path; /* keep the staged file's name until put() */
	unsigned default_jobs, max_jobs; /* parallel put() calls */
	bool cache_listing; /* store.c answers stat() from listings */

	int (*open_read)(void *impl, const char *name, int *fd);
	int (*get)(void *impl, const char *name, int fd, uint64_t listed);
	int (*stat)(void *impl, const char *name, uint64_t *size);
	int (*del)(void *impl, const char *name);
	/* Plain files directly in ${dir} ("" = root), any order. */
	int (*list)(void *impl, const char *dir, store_list_cb cb, void *arg);
};

extern const struct store_ops store_file_ops;
extern const struct store_ops store_s3_ops;
extern const struct store_ops store_script_ops;
extern const struct store_ops store_sftp_ops;

/*
 * The upload-script answers (store_script.c), pure so they can be fuzzed.
 * store_script_parse_reply() moves the first complete line of ${in} (bytes
 * received from the helper, not yet used) into ${line}, without its "\n"
 * or a "\r" before it, and drops it from ${in}: 1 if a line was taken, 0
 * if ${in} holds no complete line yet, -1 if the line does not fit in
 * ${line} (error recorded).  store_script_reply_ok() says whether an
 * answer line means "stored": exactly "OK".
 */
struct buf;
int store_script_parse_reply(struct buf *in, struct buf *line);
bool store_script_reply_ok(const struct buf *line);

#endif
