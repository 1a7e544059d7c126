/*
 * descriptor: snapshot descriptor parsing (see descriptor.h).  Input is
 * hostile: sizes are bounded and every field used later is validated.
 */
#include "descriptor.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"

static const char ARMOUR_BEGIN[] = "-----BEGIN PGP SIGNED MESSAGE-----";
static const char SIG_BEGIN[] = "-----BEGIN PGP SIGNATURE-----";

int
descriptor_parse_format(const char *s, int *v, size_t max)
{
	static const char *const prefixes[] = { "LBS Snapshot v",
		"Cumulus Snapshot v" };
	const char *p = NULL;
	size_t n = 0;

	for (size_t i = 0; i < 2; i++)
		if (strncmp(s, prefixes[i], strlen(prefixes[i])) == 0)
			p = s + strlen(prefixes[i]);
	if (p == NULL)
		goto bad;
	for (;;) {
		long x = 0;

		if (*p < '0' || *p > '9' || n >= max)
			goto bad;
		while (*p >= '0' && *p <= '9') {
			x = x * 10 + (*p++ - '0');
			if (x > 1000000)
				goto bad;
		}
		v[n++] = (int)x;
		if (*p == '\0' || *p == ' ' || *p == '\t' || *p == '\r')
			break;
		if (*p++ != '.')
			goto bad;
	}
	return (int)n;
bad:
	err_set("unrecognised snapshot format '%.100s'", s);
	return -1;
}

/* Compare version tuples like Python tuples. */
static int
vcmp(const int *a, size_t na, const int *b, size_t nb)
{
	for (size_t i = 0; i < na && i < nb; i++)
		if (a[i] != b[i])
			return a[i] < b[i] ? -1 : 1;
	return na < nb ? -1 : na > nb ? 1 : 0;
}

bool
descriptor_is_v011(const struct descriptor *d)
{
	static const int v011[] = { 0, 11 };

	return vcmp(d->version, d->nversion, v011, 2) >= 0;
}

bool
descriptor_has_segment(const struct descriptor *d, const char *uuid)
{
	for (size_t i = 0; i < d->nsegments; i++)
		if (strcmp(d->segments[i], uuid) == 0)
			return true;
	return false;
}

void
descriptor_release(struct descriptor *d)
{
	for (size_t i = 0; i < d->nsegments; i++)
		free(d->segments[i]);
	free(d->segments);
	d->segments = NULL;
	d->nsegments = 0;
	stanza_release(&d->fields);
}

/* Feed one line (armour already handled) to the stanza. */
static int
add_line(struct descriptor *d, const char *line, size_t n)
{
	if (meta_line_kind(line, n) == META_LINE_BLANK)
		return 0; /* a descriptor is one stanza; blanks separate nothing */
	return stanza_add_line(&d->fields, line, n);
}

static int
split_segments(struct descriptor *d, const char *s)
{
	size_t cap = 0;

	while (*s) {
		const char *start;
		size_t len;

		while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
			s++;
		if (*s == '\0')
			break;
		start = s;
		while (*s && *s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
			s++;
		len = (size_t)(s - start);
		if (len > REF_SEGMENT_MAX ||
		    strspn(start, "0123456789abcdef-") < len) {
			err_set("descriptor lists a malformed segment name '%.*s'",
			    (int)(len > 80 ? 80 : len), start);
			return -1;
		}
		if (d->nsegments == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			char **nv = realloc(d->segments, ncap * sizeof(*nv));

			if (nv == NULL)
				goto nomem;
			d->segments = nv;
			cap = ncap;
		}
		d->segments[d->nsegments] = strndup(start, len);
		if (d->segments[d->nsegments] == NULL)
			goto nomem;
		d->nsegments++;
	}
	return 0;
nomem:
	err_set("out of memory");
	return -1;
}

int
descriptor_parse(const char *text, size_t n, struct descriptor *d)
{
	size_t pos = 0;
	bool armoured = false, in_body = true;
	const char *seg;

	memset(d, 0, sizeof(*d));
	stanza_init(&d->fields);
	if (n > DESCRIPTOR_MAX) {
		err_set("descriptor is larger than %zu bytes", DESCRIPTOR_MAX);
		goto fail;
	}
	if (n >= sizeof(ARMOUR_BEGIN) - 1 &&
	    memcmp(text, ARMOUR_BEGIN, sizeof(ARMOUR_BEGIN) - 1) == 0) {
		/* Skip the armour header lines up to the first blank line. */
		armoured = true;
		in_body = false;
	}
	while (pos < n) {
		const char *line = text + pos;
		const char *nl = memchr(line, '\n', n - pos);
		size_t len = nl ? (size_t)(nl - line) : n - pos;

		pos += len + (nl ? 1 : 0);
		if (len > 0 && line[len - 1] == '\r')
			len--;
		if (!armoured) {
			if (add_line(d, line, len))
				goto fail;
			continue;
		}
		if (!in_body) {
			if (len == 0)
				in_body = true;
			continue;
		}
		if (len >= sizeof(SIG_BEGIN) - 1 &&
		    memcmp(line, SIG_BEGIN, sizeof(SIG_BEGIN) - 1) == 0)
			break;
		/* Undo dash-escaping ("- " in front of lines starting '-'). */
		if (len >= 2 && line[0] == '-' && line[1] == ' ') {
			line += 2;
			len -= 2;
		}
		if (add_line(d, line, len))
			goto fail;
	}
	d->format = stanza_get(&d->fields, "Format", NULL);
	d->producer = stanza_get(&d->fields, "Producer", NULL);
	d->date = stanza_get(&d->fields, "Date", NULL);
	d->scheme = stanza_get(&d->fields, "Scheme", NULL);
	d->backup_intent = stanza_get(&d->fields, "Backup-Intent", NULL);
	d->root_text = stanza_get(&d->fields, "Root", NULL);
	d->checksums = stanza_get(&d->fields, "Checksums", NULL);
	d->segment_metadata = stanza_get(&d->fields, "Segment-metadata", NULL);
	if (d->format) {
		static const int newest[] = { 0, 11 };
		int r = descriptor_parse_format(d->format, d->version,
		    DESCRIPTOR_VERSION_MAX);

		if (r < 0)
			goto fail;
		d->nversion = (size_t)r;
		if (vcmp(d->version, d->nversion, newest, 2) > 0) {
			err_set("snapshot format '%.100s' is newer than this "
				"program understands (v0.11)",
			    d->format);
			goto fail;
		}
	}
	if (d->root_text == NULL) {
		err_set("descriptor has no Root");
		goto fail;
	}
	{
		/* The value may carry trailing blanks; the ref itself none. */
		size_t rl = strlen(d->root_text);

		while (rl > 0 && (d->root_text[rl - 1] == ' ' ||
				     d->root_text[rl - 1] == '\t'))
			rl--;
		if (ref_parse(d->root_text, rl, &d->root) ||
		    d->root.kind != REF_OBJECT) {
			err_prefix("descriptor Root");
			if (d->root.kind != REF_OBJECT)
				err_set("descriptor Root is not an object");
			goto fail;
		}
	}
	seg = stanza_get(&d->fields, "Segments", NULL);
	if (seg && split_segments(d, seg))
		goto fail;
	return 0;
fail:
	descriptor_release(d);
	return -1;
}
