/*
 * fuzz.h: the libFuzzer entry point every tests/fuzz/fuzz_*.c defines.
 * The same target links either with libFuzzer (tests/fuzz/run-fuzzers.sh)
 * or with replay.c, which runs it over the saved corpus in the test suite.
 */
#ifndef CUMULUS_FUZZ_H
#define CUMULUS_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
