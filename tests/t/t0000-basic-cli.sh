#!/bin/bash
# The command-line entry points answer --version and --help, and reject an
# unknown cumulus-util command.
. "$(dirname "$0")/../lib.sh"

test_ok "cumulus --version exits 0" "$CUMULUS" --version
cp "$T/.stdout" "$T/version"
test_ok "cumulus --version prints a version" \
	grep -Eq '[0-9]+\.[0-9]+' "$T/version"
test_ok "cumulus --help exits 0" "$CUMULUS" --help
cp "$T/.stdout" "$T/help"
test_ok "cumulus --help prints help on stdout" test -s "$T/help"
test_fail "cumulus-util with an unknown command fails" \
	"$CUMULUS_UTIL" no-such-command

done_testing
