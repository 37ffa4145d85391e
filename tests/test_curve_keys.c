/* The key files' safety rules (proto/curve.c), as ssh keeps them: a secret
 * certificate is created private whatever the umask and never through a
 * planted symlink; one that group or others can read is refused at load
 * with the chmod that fixes it; a trust folder that holds a secret key (a
 * .pub with a secret in it, or a .key) is refused rather than trusted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>
#include "curve.h"
#include "testutil.h"

static char dir[TU_DIR_MAX];

static int make_dir(void **state) {
    (void)state;
    return tu_dir_new(dir, "curvekeys");
}

static int remove_dir(void **state) {
    (void)state;
    return tu_dir_remove(dir);
}

static void path_in(char *out, size_t len, const char *name) { snprintf(out, len, "%s/%s", dir, name); }

static void test_created_private_under_any_umask(void **state) {
    (void)state;
    char key[512], pub[512], err[512];
    struct stat st;
    path_in(key, sizeof key, "open.key");
    path_in(pub, sizeof pub, "open.pub");
    const mode_t old = umask(0);
    assert_int_equal(curve_keys_create(key, pub, NULL, err, sizeof err), 0);
    umask(old);
    assert_int_equal(stat(key, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(stat(pub, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
}

static void test_symlink_not_followed(void **state) {
    (void)state;
    char key[512], pub[512], target[512], err[512];
    struct stat st;
    path_in(key, sizeof key, "planted.key");
    path_in(pub, sizeof pub, "planted.pub");
    path_in(target, sizeof target, "victim");
    FILE *f = fopen(target, "w");
    fputs("untouched\n", f);
    fclose(f);
    assert_int_equal(symlink(target, key), 0);
    assert_int_equal(curve_keys_create(key, pub, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "already exists"));
    assert_int_equal(stat(target, &st), 0);
    assert_int_equal(st.st_size, 10);   /* the link's target was not written */
    assert_int_not_equal(access(pub, F_OK), 0);
}

static void test_readable_secret_refused(void **state) {
    (void)state;
    char key[512], pub[512], err[512];
    curve_keys k;
    path_in(key, sizeof key, "shared.key");
    path_in(pub, sizeof pub, "shared.pub");
    assert_int_equal(curve_keys_create(key, pub, NULL, err, sizeof err), 0);
    assert_int_equal(curve_keys_load(key, false, &k, err, sizeof err), 0);
    assert_int_equal(chmod(key, 0640), 0);
    assert_int_equal(curve_keys_load(key, false, &k, err, sizeof err), -1);
    assert_non_null(strstr(err, "chmod 600"));
    assert_non_null(strstr(err, "640"));
    assert_int_equal(chmod(key, 0600), 0);
    assert_int_equal(curve_keys_load(key, false, &k, err, sizeof err), 0);
}

/* A trust folder with one good .pub, then with a secret key beside it. */
static void trust_with(const char *name, bool secret_inside_pub, int expect) {
    char trust[256], key[512], pub[512], other[512], err[512];
    snprintf(trust, sizeof trust, "%s/trust-%s", dir, name);
    assert_int_equal(mkdir(trust, 0700), 0);
    snprintf(key, sizeof key, "%s/%s.key", dir, name);
    snprintf(pub, sizeof pub, "%s/good.pub", trust);
    assert_int_equal(curve_keys_create(key, pub, NULL, err, sizeof err), 0);
    void *ctx = zmq_ctx_new();
    curve_zap *z = curve_zap_new(ctx, "test", err, sizeof err);
    assert_non_null(z);
    assert_int_equal(curve_zap_allow_dir(z, trust, "coordinator", err, sizeof err), 1);
    if (secret_inside_pub || expect < 0) {
        /* the secret certificate copied in, as a .pub or under its own name */
        snprintf(other, sizeof other, "%s/%s", trust, secret_inside_pub ? "oops.pub" : "oops.key");
        char cmd[1200];
        snprintf(cmd, sizeof cmd, "cp '%s' '%s'", key, other);
        assert_int_equal(system(cmd), 0);
    }
    const int got = curve_zap_allow_dir(z, trust, "coordinator", err, sizeof err);
    assert_int_equal(got, expect);
    if (expect < 0)
        assert_non_null(strstr(err, "holds a secret key"));
    curve_zap_destroy(&z);
    zmq_ctx_term(ctx);
}

static void test_trust_folder_refuses_secrets(void **state) {
    (void)state;
    trust_with("pubsecret", true, -1);
    trust_with("keyfile", false, -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_created_private_under_any_umask),
        cmocka_unit_test(test_symlink_not_followed),
        cmocka_unit_test(test_readable_secret_refused),
        cmocka_unit_test(test_trust_folder_refuses_secrets),
    };
    return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
