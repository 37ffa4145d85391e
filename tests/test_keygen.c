/* Tests of `relais keygen` through the binary: the secret certificate is
 * created mode 0600 whatever the umask, both files load with CZMQ's
 * zcert_load and hold the printed key, the fingerprint is the first 8 bytes
 * of the key's sha256, existing files (or symlinks) are never overwritten
 * without --force, and --force replaces them with fresh files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <czmq.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "testutil.h"

static char dir[TU_DIR_MAX];

static int make_dir(void **state) {
    (void)state;
    return tu_dir_new(dir, "keygen");
}

static int remove_dir(void **state) {
    (void)state;
    return tu_dir_remove(dir);
}

/* Runs `umask U; relais keygen ARGS` with stdout and stderr into out;
 * returns the exit code. */
static int keygen(const char *umask_, const char *args, char *out, size_t cap) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "umask %s; %s keygen %s 2>&1", umask_, RELAIS_BIN, args);
    return tu_run(cmd, out, cap);
}

static unsigned mode_of(const char *path) {
    struct stat st;
    assert_int_equal(lstat(path, &st), 0);
    return st.st_mode & 07777;
}

/* The key the output printed, checked against both files and the fingerprint. */
static void check_pair(const char *name, const char *out, char z85[41]) {
    char key[256], pub[256], fp[17];
    assert_int_equal(sscanf(out, "public key  %40s\nfingerprint %16s\n", z85, fp), 2);
    snprintf(key, sizeof key, "%s.key", name);
    snprintf(pub, sizeof pub, "%s.pub", name);
    assert_int_equal(mode_of(key), 0600);

    zcert_t *secret = zcert_load(key), *public = zcert_load(pub);
    assert_non_null(secret);
    assert_non_null(public);
    assert_string_equal(zcert_public_txt(secret), z85);
    assert_string_equal(zcert_public_txt(public), z85);
    uint8_t zero[32] = {0};
    assert_memory_not_equal(zcert_secret_key(secret), zero, 32);
    assert_memory_equal(zcert_secret_key(public), zero, 32); /* the .pub holds no secret */

    uint8_t h[crypto_hash_sha256_BYTES];
    char want[17];
    crypto_hash_sha256(h, zcert_public_key(secret), 32);
    for (int i = 0; i < 8; i++)
        snprintf(want + 2 * i, 3, "%02x", h[i]);
    assert_string_equal(fp, want);
    zcert_destroy(&secret);
    zcert_destroy(&public);
}

static void test_writes_a_private_pair(void **state) {
    char name[128], out[2048], z85[41];
    snprintf(name, sizeof name, "%s/node1", dir);
    char args[256];
    snprintf(args, sizeof args, "-o %s", name);
    assert_int_equal(keygen("000", args, out, sizeof out), 0); /* a umask letting everyone read */
    check_pair(name, out, z85);
    assert_non_null(strstr(out, "(secret, mode 0600)"));

    /* --output is the long form; another pair has another key */
    char z85b[41];
    snprintf(name, sizeof name, "%s/node2", dir);
    snprintf(args, sizeof args, "--output %s", name);
    assert_int_equal(keygen("022", args, out, sizeof out), 0);
    check_pair(name, out, z85b);
    assert_string_not_equal(z85, z85b);
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char buf[2][4096];
    static int which;
    char *b = buf[which ^= 1];
    size_t n = fread(b, 1, sizeof buf[0] - 1, f);
    b[n] = 0;
    fclose(f);
    return b;
}

static void test_refuses_to_overwrite(void **state) {
    char name[128], args[256], key[160], pub[160], out[2048], z85[41];
    snprintf(name, sizeof name, "%s/keep", dir);
    snprintf(key, sizeof key, "%s.key", name);
    snprintf(pub, sizeof pub, "%s.pub", name);
    snprintf(args, sizeof args, "-o %s", name);
    assert_int_equal(keygen("022", args, out, sizeof out), 0);
    char before[4096];
    strcpy(before, slurp(key));
    assert_int_equal(keygen("022", args, out, sizeof out), 1);
    assert_non_null(strstr(out, "already exists; give --force to replace the pair"));
    assert_string_equal(slurp(key), before);

    /* only the .pub there: still refused, and no .key appears */
    assert_int_equal(unlink(key), 0);
    assert_int_equal(keygen("022", args, out, sizeof out), 1);
    assert_int_equal(access(key, F_OK), -1);

    /* a symlink in the way is not followed */
    char target[160];
    snprintf(target, sizeof target, "%s/target", dir);
    FILE *f = fopen(target, "w");
    assert_non_null(f);
    fputs("untouched\n", f);
    fclose(f);
    assert_int_equal(symlink(target, key), 0);
    assert_int_equal(unlink(pub), 0);
    assert_int_equal(keygen("022", args, out, sizeof out), 1);
    /* nor is a dangling one: nothing is created where it points */
    char dangling[160], nowhere[160];
    snprintf(dangling, sizeof dangling, "%s/dangling", dir);
    snprintf(nowhere, sizeof nowhere, "%s/nowhere", dir);
    snprintf(args, sizeof args, "-o %s", dangling);
    char dkey[200];
    snprintf(dkey, sizeof dkey, "%s.key", dangling);
    assert_int_equal(symlink(nowhere, dkey), 0);
    assert_int_equal(keygen("022", args, out, sizeof out), 1);
    assert_non_null(strstr(out, "already exists"));
    assert_int_equal(access(nowhere, F_OK), -1);
    /* --force replaces the link itself, not what it points to */
    snprintf(args, sizeof args, "--force -o %s", name);
    assert_int_equal(keygen("000", args, out, sizeof out), 0);
    check_pair(name, out, z85);
    assert_string_equal(slurp(target), "untouched\n");
    struct stat st;
    assert_int_equal(lstat(key, &st), 0);
    assert_true(S_ISREG(st.st_mode));

    /* --force over a world-readable old key: the new file is 0600 */
    assert_int_equal(chmod(key, 0644), 0);
    strcpy(before, slurp(key));
    assert_int_equal(keygen("000", args, out, sizeof out), 0);
    check_pair(name, out, z85);
    assert_string_not_equal(slurp(key), before);

    /* a directory in the way is reported, not removed */
    snprintf(name, sizeof name, "%s/dir", dir);
    snprintf(key, sizeof key, "%s.key", name);
    assert_int_equal(mkdir(key, 0700), 0);
    snprintf(args, sizeof args, "--force -o %s", name);
    assert_int_equal(keygen("022", args, out, sizeof out), 1);
    assert_non_null(strstr(out, "cannot replace"));
    assert_non_null(strstr(out, "a directory"));
}

static void test_bad_arguments(void **state) {
    char out[4096], args[256];
    assert_int_equal(keygen("022", "", out, sizeof out), 2);
    assert_non_null(strstr(out, "-o NAME is required"));
    assert_int_equal(keygen("022", "-o ''", out, sizeof out), 2);
    assert_int_equal(keygen("022", "-o a b", out, sizeof out), 2);
    assert_non_null(strstr(out, "unexpected argument 'b'"));
    assert_int_equal(keygen("022", "--what", out, sizeof out), 2);
    assert_int_equal(keygen("022", "--help", out, sizeof out), 0);
    assert_non_null(strstr(out, "usage: relais keygen -o NAME [--force]"));
    snprintf(args, sizeof args, "-o %s/no/such/dir/x", dir);
    assert_int_equal(keygen("022", args, out, sizeof out), 1);
    assert_non_null(strstr(out, "No such file or directory"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_writes_a_private_pair),
        cmocka_unit_test(test_refuses_to_overwrite),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
