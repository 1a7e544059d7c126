# cumulus: one non-recursive Makefile.  Every src/*/*.c except the CLI goes
# into libcumulus.a; every tests/unit/test_*.c is a TAP program.
CC ?= cc
PREFIX ?= /usr/local
VERSION := 0.1.0
PKGS := sqlite3 libcrypto uuid libzstd zlib liblzma libcurl libssh2
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
# libcurl: headers only; store_s3.c loads it when an S3 store is opened.
PKG_LIBS := $(shell pkg-config --libs $(filter-out libcurl,$(PKGS)) 2>/dev/null) \
	-lbz2 -lpthread -ldl

WARN := -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wcast-qual \
	-Wstrict-prototypes -Wmissing-prototypes -Wvla -Wformat=2 \
	-Wno-unused-parameter
CFLAGS ?= -O2 -g
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 \
	-DCUMULUS_VERSION='"$(VERSION)"' $(WARN) $(PKG_CFLAGS) \
	-Isrc/util -Isrc/format -Isrc/store -Isrc/core -Isrc/ops $(CFLAGS)
LDLIBS := $(PKG_LIBS)

BUILD ?= build
LIB_SRC := $(wildcard src/util/*.c src/format/*.c src/store/*.c src/core/*.c src/ops/*.c)
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_SRC := $(wildcard src/cli/*.c)
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/%.o)
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_REPLAY := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/tests/replay_%)
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz/%)
PROGS := cumulus cumulus-util cumulus-sync cumulus-store
BUILD_LINKS := $(addprefix $(BUILD)/,cumulus-util cumulus-sync cumulus-store)

.PHONY: all build-all clean check install demo fuzz fuzz-bin bench sanitize torture
all: $(PROGS) build-all
# Everything tests/run.sh $(BUILD) runs, kept inside $(BUILD).
build-all: $(BUILD)/cumulus $(BUILD_LINKS) $(UNIT_BIN) $(FUZZ_REPLAY)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libcumulus.a: $(LIB_OBJ)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/cumulus: $(CLI_OBJ) $(BUILD)/libcumulus.a
	$(CC) $(ALL_CFLAGS) -o $@ $(CLI_OBJ) $(BUILD)/libcumulus.a $(LDLIBS)

# One multi-call binary; the command name selects the tool.
cumulus: $(BUILD)/cumulus
	cp $< $@
cumulus-util cumulus-sync cumulus-store: cumulus
	ln -sf cumulus $@
$(BUILD_LINKS): $(BUILD)/cumulus
	ln -sf cumulus $@

$(BUILD)/tests/test_%: tests/unit/test_%.c $(wildcard tests/unit/*.h) $(BUILD)/libcumulus.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests/unit -o $@ $< $(BUILD)/libcumulus.a $(LDLIBS)

# test_bulkwrite faults the direct writes of bulkwrite.c by a wrapper.
$(BUILD)/tests/test_bulkwrite: LDLIBS += -Wl,--wrap=pwrite64

$(BUILD)/tests/replay_fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/replay.c tests/fuzz/fuzz.h $(BUILD)/libcumulus.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< tests/fuzz/replay.c $(BUILD)/libcumulus.a $(LDLIBS)

# libFuzzer binaries: tests/fuzz/run-fuzzers.sh builds them with BUILD=build-fuzz
# CC=clang and CFLAGS including -fsanitize=fuzzer-no-link.
$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(BUILD)/libcumulus.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -fsanitize=fuzzer -o $@ $< $(BUILD)/libcumulus.a $(LDLIBS)
fuzz-bin: $(FUZZ_BIN)

check: all
	@bash tests/run.sh $(BUILD)

sanitize:
	$(MAKE) BUILD=build-san CC=clang CFLAGS='-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined' build-all
	cp build-san/cumulus cumulus-san

fuzz:
	@bash tests/fuzz/run-fuzzers.sh

# Every fault point of the injection tests, not a sample (slow).
torture: all
	@TORTURE=1 bash tests/run.sh $(BUILD) t7

bench:
	@bash bench/run.sh

demo:
	@bash tests/demo.sh

install: $(PROGS)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/cumulus $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 755 cumulus $(DESTDIR)$(PREFIX)/bin/cumulus
	for p in cumulus-util cumulus-sync cumulus-store; do ln -sf cumulus $(DESTDIR)$(PREFIX)/bin/$$p; done
	install -m 755 contrib/cumulus-filter-gpg $(DESTDIR)$(PREFIX)/bin/cumulus-filter-gpg
	install -m 644 schema.sql $(DESTDIR)$(PREFIX)/share/cumulus/schema.sql
	install -m 644 man/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/

clean:
	rm -rf build build-san build-fuzz $(PROGS) cumulus-san

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d)
