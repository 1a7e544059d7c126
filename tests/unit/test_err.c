/* test_err: recorded messages and printable text never carry a terminal
 * control: C0, DEL, C1 (raw or UTF-8 encoded) and bytes that are not
 * UTF-8 are shown as "\xNN"; valid UTF-8 passes. */
#include <string.h>

#include "err.h"
#include "tap.h"

static const char *
shown(const char *s)
{
	static char out[256];

	err_printable(out, sizeof(out), s);
	return out;
}

int
main(void)
{
	char small[8];

	is_str(shown("plain ascii"), "plain ascii", "ASCII passes");
	is_str(shown("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
	    "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "UTF-8 passes");
	is_str(shown("a\x1b[2Jb\x07"), "a\\x1b[2Jb\\x07", "ESC and BEL escaped");
	is_str(shown("x\x7fy"), "x\\x7fy", "DEL escaped");
	is_str(shown("\x9b" "31m"), "\\x9b31m", "a raw C1 byte escaped");
	is_str(shown("\xc2\x9b" "31m"), "\\xc2\\x9b31m",
	    "U+009B (C1, UTF-8 encoded) escaped");
	is_str(shown("\xc2\xa0"), "\xc2\xa0", "U+00A0 passes");
	is_str(shown("latin1 \xe9t\xe9"), "latin1 \\xe9t\\xe9",
	    "bytes that are not UTF-8 escaped");
	is_str(shown("\xc0\xaf"), "\\xc0\\xaf", "an overlong form escaped");
	is_str(shown("\xed\xa0\x80"), "\\xed\\xa0\\x80", "a surrogate escaped");
	is_str(shown("\xe2\x82"), "\\xe2\\x82", "a cut sequence escaped");
	err_printable(small, sizeof(small), "abcd\x1b" "efgh");
	is_str(small, "abcd", "cut short before an escape that does not fit");
	err_printable(small, sizeof(small), "ab\xe2\x82\xac\xe2\x82\xac");
	is_str(small, "ab\xe2\x82\xac", "cut short between characters");
	err_set("name '%s'", "e\x1b]0;x\x07\xc2\x85");
	is_str(err_msg(), "name 'e\\x1b]0;x\\x07\\xc2\\x85'",
	    "err_set escapes the same way");
	err_prefix("ctx \x9b");
	is_str(err_msg(), "ctx \\x9b: name 'e\\x1b]0;x\\x07\\xc2\\x85'",
	    "err_prefix escapes its part and keeps the rest as it was");
	return tap_done();
}
