/* Helpers shared by the cmocka tests: a private scratch folder under /tmp,
 * removed with everything in it when the test ends, and a shell command run
 * with its output captured. (Not named test_*.c: the build makes every
 * tests/test_*.c a test program of its own.) */
#ifndef RELAIS_TESTUTIL_H
#define RELAIS_TESTUTIL_H

#include <stddef.h>

#define TU_DIR_MAX 64

/* Makes /tmp/relais-NAME-XXXXXX into dir. Returns 0, or -1 (errno set). */
int tu_dir_new(char dir[TU_DIR_MAX], const char *name);

/* Removes dir and all below it without following links. Returns 0 or -1. */
int tu_dir_remove(const char *dir);

/* The whole of a file, NUL-terminated (so text can be read as a string),
 * its length in *len. Caller frees; NULL when it cannot be read. */
unsigned char *tu_slurp(const char *path, size_t *len);

/* Runs cmd with /bin/sh. Its standard output goes into out (NUL-terminated,
 * at most cap - 1 bytes kept, the rest read and dropped) when out is given.
 * Returns the exit code, -1000 - N when signal N killed it, or -1 when it
 * could not be started. */
int tu_run(const char *cmd, char *out, size_t cap);

/* Writes to path a vocab-only GGUF: ../shared/models/vocab-tekken-shaped.gguf's
 * tokenizer with ids 32-35 renamed [ARGS], [CALL_ID], [THINK], [/THINK] (the
 * control tokens of Tekken files of V11 and later, Ministral 3's), and
 * tokenizer.chat_template when not NULL. Returns 0 or -1. */
int tu_write_v13_vocab(const char *path, const char *chat_template);

#endif
