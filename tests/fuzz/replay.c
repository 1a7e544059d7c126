/*
 * replay: run a fuzz target over every file of a corpus directory and
 * print TAP, one "ok N - file" per input.  A crash kills the process,
 * which tests/run.sh counts as a failure; so do a missing or empty corpus.
 *   replay_fuzz_X CORPUS_DIR
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

static int
cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Read all of ${path} into a buffer of exactly its size (so that ASan
 * catches reads past the end).  NULL on error. */
static unsigned char *
slurp(const char *path, size_t *size)
{
	FILE *f = fopen(path, "rb");
	unsigned char *data = NULL;
	long n;

	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 &&
	    fseek(f, 0, SEEK_SET) == 0) {
		data = malloc(n > 0 ? (size_t)n : 1);
		if (data && fread(data, 1, (size_t)n, f) != (size_t)n) {
			free(data);
			data = NULL;
		}
		*size = (size_t)n;
	}
	fclose(f);
	return data;
}

int
main(int argc, char **argv)
{
	DIR *d;
	struct dirent *de;
	char **names = NULL;
	size_t count = 0, cap = 0;
	int failed = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
		return 2;
	}
	if ((d = opendir(argv[1])) == NULL) {
		printf("not ok 1 - cannot open corpus %s\n1..1\n", argv[1]);
		return 1;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (count == cap) {
			cap = cap ? 2 * cap : 64;
			if ((names = realloc(names, cap * sizeof(*names))) == NULL)
				abort();
		}
		if ((names[count++] = strdup(de->d_name)) == NULL)
			abort();
	}
	closedir(d);
	if (count == 0) {
		printf("not ok 1 - empty corpus %s\n1..1\n", argv[1]);
		return 1;
	}
	qsort(names, count, sizeof(*names), cmp_names);
	for (size_t i = 0; i < count; i++) {
		char path[4096];
		unsigned char *data;
		size_t size = 0;

		snprintf(path, sizeof(path), "%s/%s", argv[1], names[i]);
		if ((data = slurp(path, &size)) == NULL) {
			printf("not ok %zu - %s: cannot read\n", i + 1, names[i]);
			failed = 1;
		} else {
			fflush(stdout);
			LLVMFuzzerTestOneInput(data, size);
			printf("ok %zu - %s\n", i + 1, names[i]);
		}
		free(data);
		free(names[i]);
	}
	free(names);
	printf("1..%zu\n", count);
	return failed;
}
