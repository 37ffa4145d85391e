/* The key files' safety rules (proto/curve.c), as ssh keeps them: a secret
 * certificate is created private whatever the umask and never through a
 * planted symlink; one that group or others can read is refused at load
 * with the chmod that fixes it; a trust folder that holds a secret key (a
 * .pub with a secret in it, or a .key) is refused rather than trusted; a
 * peer knocking with an unknown key is logged at most once per interval. */
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
    assert_int_equal(st.st_size, 10); /* the link's target was not written */
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

/* One ZAP request for a CURVE peer with `key`, as libzmq sends it, answered
 * by the handler; returns the status code ("200" or "400"). */
static void zap_ask(curve_zap *z, void *req, const uint8_t key[32], char status[4]) {
    const char *frames[] = {"1.0", "1", "", "10.9.8.7", "", "CURVE"};
    for (int i = 0; i < 6; i++)
        zmq_send(req, frames[i], strlen(frames[i]), ZMQ_SNDMORE);
    zmq_send(req, key, 32, 0);
    while (!curve_zap_handle(z))
        usleep(1000);
    char buf[64];
    int more = 1, i = 0;
    size_t sz = sizeof more;
    while (more) {
        int n = zmq_recv(req, buf, sizeof buf, 0);
        if (i++ == 2)
            snprintf(status, 4, "%.*s", n < 3 ? n : 3, buf);
        zmq_getsockopt(req, ZMQ_RCVMORE, &more, &sz);
    }
}

/* Count of lines in path containing needle. */
static int lines_with(const char *path, const char *needle, char *last, size_t len) {
    FILE *f = fopen(path, "r");
    char line[1024];
    int n = 0;
    while (f && fgets(line, sizeof line, f))
        if (strstr(line, needle))
            n++, snprintf(last, len, "%s", line);
    if (f)
        fclose(f);
    return n;
}

/* A peer retrying with an unknown key is logged once per interval, and the
 * next line counts what was left out. */
static void test_refusals_rate_limited(void **state) {
    (void)state;
    char err[256], log[512], last[1024] = "", status[4];
    uint8_t stranger[32];
    memset(stranger, 7, sizeof stranger);
    void *ctx = zmq_ctx_new();
    curve_zap *z = curve_zap_new(ctx, "not trusted here", err, sizeof err);
    assert_non_null(z);
    void *req = zmq_socket(ctx, ZMQ_REQ);
    assert_int_equal(zmq_connect(req, "inproc://zeromq.zap.01"), 0);
    path_in(log, sizeof log, "zap.log");
    fflush(stderr);
    const int saved = dup(2);
    FILE *f = freopen(log, "w", stderr);
    assert_non_null(f);
    for (int i = 0; i < 10; i++) {
        zap_ask(z, req, stranger, status);
        assert_string_equal(status, "400");
    }
    sleep(6); /* past the interval */
    zap_ask(z, req, stranger, status);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    assert_int_equal(lines_with(log, "refused a peer from 10.9.8.7", last, sizeof last), 2);
    assert_non_null(strstr(last, "(9 refusals not logged since the last line)"));
    zmq_close(req);
    curve_zap_destroy(&z);
    zmq_ctx_term(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_created_private_under_any_umask), cmocka_unit_test(test_symlink_not_followed),
        cmocka_unit_test(test_readable_secret_refused),         cmocka_unit_test(test_trust_folder_refuses_secrets),
        cmocka_unit_test(test_refusals_rate_limited),
    };
    return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
