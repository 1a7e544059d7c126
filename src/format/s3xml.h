/*
 * s3xml: the few pieces of S3's XML responses the S3 backend needs
 * (ListObjectsV2 pages, error codes, multipart upload ids).
 *
 * Responses are hostile input: the parser works on a bounded byte range
 * (no NUL needed), accepts only the five XML entities and numeric
 * character references, refuses keys that are not UTF-8, hold control
 * characters (C0, DEL, C1) or are longer than S3XML_KEY_MAX, and sizes
 * that do not fit in 63 bits.
 */
#ifndef CUMULUS_S3XML_H
#define CUMULUS_S3XML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf;

#define S3XML_KEY_MAX 1024

/*
 * Find the first element <${tag}> in ${xml} and append its decoded text
 * to ${out}.  1 found, 0 not there, -1 malformed (error recorded).
 */
int s3xml_find(const char *xml, size_t n, const char *tag, struct buf *out);

/*
 * Parse one ListObjectsV2 page: ${cb} gets each <Contents> object's key
 * and size, in document order (a non-zero return stops the parse and is
 * returned).  *truncated is set from <IsTruncated>; ${token} receives
 * <NextContinuationToken> when truncated.  0 or -1 (error recorded).
 */
int s3xml_parse_list(const char *xml, size_t n,
    int (*cb)(void *arg, const char *key, uint64_t size), void *arg,
    bool *truncated, struct buf *token);

#endif
