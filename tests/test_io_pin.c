/* io_pin on its own: the CPU spec a user writes, CPUs this process may not
 * use, and what the kernel reports of the threads (/proc/self/task): a
 * pinned context's I/O threads on the CPU, the polling thread on it only
 * while it waits, and nothing pinned with "none". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <dirent.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <zmq.h>
#include "io_pin.h"

/* Cpus_allowed_list of thread tid of this process ("0-1", "0"). */
static void allowed_list(pid_t tid, char *out, size_t len) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/self/task/%d/status", (int)tid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    out[0] = '\0';
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "Cpus_allowed_list:", 18)) {
            snprintf(out, len, "%s", line + 18 + strspn(line + 18, " \t"));
            out[strcspn(out, "\n")] = '\0';
        }
    fclose(f);
    assert_true(out[0]);
}

/* The lists of this process's ZeroMQ I/O threads ("ZMQbg/IO/N"); how many. */
static int io_thread_lists_now(char lists[][64], int max) {
    DIR *d = opendir("/proc/self/task");
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) && n < max;) {
        if (e->d_name[0] == '.')
            continue;
        char path[300], comm[64] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        if (fgets(comm, sizeof comm, f) && !strncmp(comm, "ZMQbg/IO/", 9))
            allowed_list((pid_t)atoi(e->d_name), lists[n++], 64);
        fclose(f);
    }
    closedir(d);
    return n;
}

/* An I/O thread names and pins itself once it runs, which may be after
 * zmq_bind returned: the lists once every I/O thread found shows `want`, or
 * as they are after two seconds. */
static int io_thread_lists(char lists[][64], int max, const char *want) {
    for (int tries = 0;; tries++) {
        int n = io_thread_lists_now(lists, max), same = 0;
        for (int i = 0; i < n; i++)
            same += !strcmp(lists[i], want);
        if ((n >= 1 && same == n) || tries == 200)
            return n;
        usleep(10 * 1000);
    }
}

static pid_t my_tid(void) { return (pid_t)syscall(SYS_gettid); }

static int lowest_cpu(const cpu_set_t *s) {
    for (int i = 0; i < CPU_SETSIZE; i++)
        if (CPU_ISSET(i, s))
            return i;
    return -1;
}

static void test_parse(void **state) {
    (void)state;
    char err[128];
    int cpu = 7;
    assert_int_equal(io_pin_parse("none", &cpu, err, sizeof err), 0);
    assert_int_equal(cpu, IO_PIN_NONE);
    assert_int_equal(io_pin_parse("0", &cpu, err, sizeof err), 0);
    assert_int_equal(cpu, 0);
    assert_int_equal(io_pin_parse("12", &cpu, err, sizeof err), 0);
    assert_int_equal(cpu, 12);
    const char *bad[] = {"", "-1", "x", "1x", " 1", "99999", "None"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cpu = 5;
        err[0] = '\0';
        assert_int_equal(io_pin_parse(bad[i], &cpu, err, sizeof err), -1);
        assert_int_equal(cpu, 5);
        assert_non_null(strstr(err, "CPU number"));
    }
}

static void test_cpu_not_allowed(void **state) {
    (void)state;
    cpu_set_t mine;
    assert_int_equal(sched_getaffinity(0, sizeof mine, &mine), 0);
    int outside = CPU_SETSIZE - 1;
    while (outside > 0 && CPU_ISSET(outside, &mine))
        outside--;
    void *ctx = zmq_ctx_new();
    char err[256] = "";
    io_pin *p = io_pin_new(ctx, outside, err, sizeof err);
    assert_null(p);
    assert_non_null(strstr(err, "not one this process may run on"));
    zmq_ctx_term(ctx);
}

typedef struct {
    pid_t tid;       /* the polling thread */
    char during[64]; /* its list while it waits */
} watch;

static void *look_while_polling(void *v) {
    watch *w = v;
    usleep(150 * 1000); /* the poll below waits 600 ms */
    allowed_list(w->tid, w->during, sizeof w->during);
    return NULL;
}

/* Polls a socket that gets nothing for 600 ms; what the thread's list was
 * during the wait and after it. */
static void poll_and_watch(io_pin *p, void *sock, char *during, char *after) {
    watch w = {.tid = my_tid()};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, look_while_polling, &w), 0);
    zmq_pollitem_t it = {sock, 0, ZMQ_POLLIN, 0};
    assert_int_equal(io_pin_poll(p, &it, 1, 600), 0);
    pthread_join(t, NULL);
    strcpy(during, w.during);
    allowed_list(my_tid(), after, 64);
}

/* An io_pin on cpu (or IO_PIN_NONE) with a socket that starts the I/O
 * thread: the lists of the I/O threads and of this thread while it polls
 * must be `want` (NULL: this thread's list before, as nothing is pinned),
 * and this thread's list after the poll what it was before. */
static void check_pin(int cpu, const char *want) {
    char before[64], during[64], after[64], io[8][64];
    allowed_list(my_tid(), before, sizeof before);
    if (!want)
        want = before;
    void *ctx = zmq_ctx_new();
    char err[256];
    io_pin *p = io_pin_new(ctx, cpu, err, sizeof err);
    assert_non_null(p);
    assert_int_equal(io_pin_cpu(p), cpu);
    void *sock = zmq_socket(ctx, ZMQ_PULL);
    assert_int_equal(zmq_bind(sock, "tcp://127.0.0.1:*"), 0);
    int n = io_thread_lists(io, 8, want);
    assert_true(n >= 1);
    for (int i = 0; i < n; i++)
        assert_string_equal(io[i], want);
    poll_and_watch(p, sock, during, after);
    assert_string_equal(during, want);
    assert_string_equal(after, before);
    zmq_close(sock);
    zmq_ctx_term(ctx);
    io_pin_destroy(&p);
    assert_null(p);
}

static void test_pinned(void **state) {
    (void)state;
    cpu_set_t mine;
    assert_int_equal(sched_getaffinity(0, sizeof mine, &mine), 0);
    char want[16];
    snprintf(want, sizeof want, "%d", lowest_cpu(&mine));
    check_pin(lowest_cpu(&mine), want);
}

static void test_none(void **state) {
    (void)state;
    check_pin(IO_PIN_NONE, NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_cpu_not_allowed),
        cmocka_unit_test(test_pinned),
        cmocka_unit_test(test_none),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
