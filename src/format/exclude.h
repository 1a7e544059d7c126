/*
 * exclude.h: the --exclude rules of a backup.  A pattern matches a path
 * (relative to the backup root, as written in the metadata) when it is
 * the path itself, a glob on the whole path ('*' and '?' stay inside one
 * component), or, if it has no '/' at all, a glob on the last component.
 * Leading '/' are dropped before matching the whole path, but still make
 * the pattern one with a '/': "/tmp" matches the path "tmp" only.
 */
#ifndef CUMULUS_EXCLUDE_H
#define CUMULUS_EXCLUDE_H

#include <stdbool.h>
#include <stddef.h>

bool exclude_match(const char *const *patterns, size_t npatterns,
    const char *path);

#endif
