/*
 * What every libFuzzer target defines (tests/fuzz/CMakeLists.txt links
 * libFuzzer's main). Declared here for -Wmissing-prototypes.
 */
#ifndef LP_FUZZ_H
#define LP_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#endif
