/*
 * meta: metadata-log stanza parsing and formatting (see meta.h).  Input is
 * hostile: field count and total size are bounded, keys are checked
 * against the [-A-Za-z0-9_]+ grammar.
 */
#include "meta.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"

static int
is_key_char(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '-' || c == '_';
}

enum meta_line
meta_line_kind(const char *line, size_t n)
{
	size_t i = 0;

	while (i < n && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'))
		i++;
	if (i == n)
		return META_LINE_BLANK;
	if (i > 0)
		return META_LINE_CONT;
	if (line[0] == '@')
		return META_LINE_INCLUDE;
	while (i < n && is_key_char((unsigned char)line[i]))
		i++;
	if (i > 0 && i < n && line[i] == ':')
		return META_LINE_FIELD;
	return META_LINE_JUNK;
}

void
stanza_init(struct stanza *s)
{
	buf_init(&s->text, STANZA_MAX_BYTES);
	s->n = 0;
}

void
stanza_release(struct stanza *s)
{
	buf_release(&s->text);
	s->n = 0;
}

void
stanza_clear(struct stanza *s)
{
	buf_reset(&s->text);
	s->n = 0;
}

static int
find_key(const struct stanza *s, const char *key)
{
	for (size_t i = 0; i < s->n; i++) {
		const char *k = s->text.data + s->key_off[i];

		/* Keys mostly differ in their first byte: skip the call. */
		if (k[0] == key[0] && strcmp(k, key) == 0)
			return (int)i;
	}
	return -1;
}

/*
 * Values live in one buffer; replacing or extending a value that is not
 * the last one would need moving, so a changed field is re-appended at the
 * end and the old slot dropped.
 */
static int
append_field(struct stanza *s, const char *key, size_t klen, const char *v1,
    size_t l1, const char *v2, size_t l2)
{
	size_t koff, voff;

	if (s->n >= STANZA_MAX_FIELDS) {
		err_set("metadata stanza has too many fields");
		return -1;
	}
	koff = s->text.len;
	if (buf_append(&s->text, key, klen) || buf_putc(&s->text, 0))
		return -1;
	voff = s->text.len;
	if (buf_append(&s->text, v1, l1) || buf_append(&s->text, v2, l2) ||
	    buf_putc(&s->text, 0))
		return -1;
	s->key_off[s->n] = koff;
	s->val_off[s->n] = voff;
	s->val_len[s->n] = l1 + l2;
	s->n++;
	return 0;
}

static void
drop_field(struct stanza *s, size_t i)
{
	memmove(&s->key_off[i], &s->key_off[i + 1],
	    (s->n - i - 1) * sizeof(s->key_off[0]));
	memmove(&s->val_off[i], &s->val_off[i + 1],
	    (s->n - i - 1) * sizeof(s->val_off[0]));
	memmove(&s->val_len[i], &s->val_len[i + 1],
	    (s->n - i - 1) * sizeof(s->val_len[0]));
	s->n--;
}

int
stanza_add_line(struct stanza *s, const char *line, size_t n)
{
	enum meta_line kind = meta_line_kind(line, n);

	/* Values are C strings to their users: a NUL would cut one short
	 * (a name, a mode) without a word, so the stanza is refused. */
	if (memchr(line, '\0', n) != NULL) {
		err_set("metadata line contains a NUL byte");
		return -1;
	}
	if (kind == META_LINE_FIELD) {
		const char *colon = memchr(line, ':', n);
		size_t klen = (size_t)(colon - line);
		const char *v = colon + 1;
		size_t vlen = n - klen - 1;
		char key[128];
		int old;

		while (vlen > 0 && (*v == ' ' || *v == '\t')) {
			v++;
			vlen--;
		}
		if (klen >= sizeof(key)) {
			err_set("metadata key too long");
			return -1;
		}
		memcpy(key, line, klen);
		key[klen] = '\0';
		/* A repeated key: the later value wins, as in the original. */
		old = find_key(s, key);
		if (old >= 0)
			drop_field(s, (size_t)old);
		return append_field(s, key, klen, v, vlen, "", 0);
	}
	if (kind == META_LINE_CONT && s->n > 0) {
		size_t last = s->n - 1;
		char *key;
		int rc;

		if (s->key_off[last] + strlen(s->text.data + s->key_off[last]) +
			    1 + s->val_len[last] + 1 ==
		    s->text.len) {
			/* The last field ends the buffer: extend in place. */
			s->text.len--; /* drop its NUL */
			if (buf_putc(&s->text, '\n') ||
			    buf_append(&s->text, line, n) || buf_putc(&s->text, 0))
				return -1;
			s->val_len[last] += n + 1;
			return 0;
		}
		key = strdup(s->text.data + s->key_off[last]);
		if (key == NULL) {
			err_set("out of memory");
			return -1;
		}
		{
			size_t voff = s->val_off[last], vlen = s->val_len[last];
			struct buf tmp;

			buf_init(&tmp, STANZA_MAX_BYTES);
			rc = buf_append(&tmp, s->text.data + voff, vlen) ||
			    buf_putc(&tmp, '\n') || buf_append(&tmp, line, n);
			if (rc == 0) {
				drop_field(s, last);
				rc = append_field(s, key, strlen(key), tmp.data,
				    tmp.len, "", 0);
			}
			buf_release(&tmp);
		}
		free(key);
		return rc ? -1 : 0;
	}
	return 0;
}

int
stanza_set(struct stanza *s, const char *key, const char *value, size_t len)
{
	int old = find_key(s, key);

	if (old >= 0)
		drop_field(s, (size_t)old);
	return append_field(s, key, strlen(key), value, len, "", 0);
}

int
stanza_set_str(struct stanza *s, const char *key, const char *value)
{
	return stanza_set(s, key, value, strlen(value));
}

const char *
stanza_get(const struct stanza *s, const char *key, size_t *len)
{
	int i = find_key(s, key);

	if (i < 0)
		return NULL;
	if (len)
		*len = s->val_len[i];
	return s->text.data + s->val_off[i];
}

int
stanza_format(const struct stanza *s, struct buf *out)
{
	size_t order[STANZA_MAX_FIELDS] = { 0 }, n = 0;
	int name = find_key(s, "name");

	for (size_t i = 0; i < s->n; i++)
		if ((int)i != name)
			order[n++] = i;
	/* Insertion sort: stanzas have about a dozen fields. */
	for (size_t i = 1; i < n; i++) {
		size_t v = order[i], j = i;

		while (j > 0 && strcmp(s->text.data + s->key_off[order[j - 1]],
				    s->text.data + s->key_off[v]) > 0) {
			order[j] = order[j - 1];
			j--;
		}
		order[j] = v;
	}
	for (size_t k = 0; k < n + (name >= 0); k++) {
		size_t i = name >= 0 ? (k == 0 ? (size_t)name : order[k - 1])
				     : order[k];

		if (buf_puts(out, s->text.data + s->key_off[i]) ||
		    buf_append(out, ": ", 2) ||
		    buf_append(out, s->text.data + s->val_off[i], s->val_len[i]) ||
		    buf_putc(out, '\n'))
			return -1;
	}
	return 0;
}
