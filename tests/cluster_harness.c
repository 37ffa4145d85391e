/* Loopback cluster for the tests (see cluster_harness.h). */
#include "cluster_harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "curve.h"
#include "testutil.h"

extern char **environ;

#define START_TIMEOUT_MS 30000
#define STOP_TIMEOUT_MS 5000

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* The node may still lose a race for the port; harness_start then tries another. */
int harness_free_port(void) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = -1;
    if (s >= 0 && bind(s, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(s, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (s >= 0)
        close(s);
    return port;
}

bool harness_log_contains(const harness *h, int i, const char *needle, int timeout_ms) {
    for (int waited = 0;; waited += 50) {
        FILE *f = fopen(h->log[i], "r");
        char line[2048];
        bool found = false;
        while (f && !found && fgets(line, sizeof line, f))
            found = strstr(line, needle) != NULL;
        if (f)
            fclose(f);
        if (found)
            return true;
        if (waited >= timeout_ms)
            return false;
        sleep_ms(50);
    }
}

static pid_t spawn_node(const harness *h, int i, const char *models_dir, int port) {
    char listen[64], cache[320], trust[320];
    snprintf(listen, sizeof listen, "tcp://127.0.0.1:%d", port);
    snprintf(cache, sizeof cache, "%s/cache%d", h->dir, i);
    snprintf(trust, sizeof trust, "%s/trust", h->dir);
    char *argv[] = {RELAIS_NODE_BIN, "--listen",         listen,    "--key", (char *)h->key[i], "--trust", trust,
                    "--models",      (char *)models_dir, "--cache", cache,   "--threads",       "1",       NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, h->log[i], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
    pid_t pid;
    int rc = posix_spawn(&pid, RELAIS_NODE_BIN, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    return rc ? -1 : pid;
}

/* Waits until node i listens: 1; it exited: 0; timeout: -1. */
static int wait_listening(harness *h, int i) {
    for (int waited = 0; waited < START_TIMEOUT_MS; waited += 50) {
        if (harness_log_contains(h, i, "listening on", 0))
            return 1;
        int st;
        if (waitpid(h->pid[i], &st, WNOHANG) == h->pid[i]) {
            h->pid[i] = 0;
            return 0;
        }
        sleep_ms(50);
    }
    return -1;
}

static int start_node(harness *h, int i, const char *models_dir) {
    for (int attempt = 0; attempt < 5; attempt++) {
        int port = harness_free_port();
        if (port < 0 || (h->pid[i] = spawn_node(h, i, models_dir, port)) <= 0) {
            fprintf(stderr, "harness: cannot start relais-node: %s\n", strerror(errno));
            h->pid[i] = 0;
            return -1;
        }
        snprintf(h->address[i], sizeof h->address[i], "tcp://127.0.0.1:%d", port);
        int rc = wait_listening(h, i);
        if (rc > 0)
            return 0;
        if (rc < 0) {
            fprintf(stderr, "harness: node %d did not start within %d s (log %s)\n", i, START_TIMEOUT_MS / 1000,
                    h->log[i]);
            return -1;
        }
    }
    fprintf(stderr, "harness: node %d could not bind a port (log %s)\n", i, h->log[i]);
    return -1;
}

static int make_keys(harness *h) {
    char trust[320], err[256];
    snprintf(trust, sizeof trust, "%s/trust", h->dir);
    snprintf(h->coord_key, sizeof h->coord_key, "%s/coordinator.key", h->dir);
    snprintf(h->coord_pub, sizeof h->coord_pub, "%s/trust/coordinator.pub", h->dir);
    if (mkdir(trust, 0700) || curve_keys_create(h->coord_key, h->coord_pub, NULL, err, sizeof err)) {
        fprintf(stderr, "harness: %s\n", err);
        return -1;
    }
    for (int i = 0; i < HARNESS_MAX; i++) {
        snprintf(h->key[i], sizeof h->key[i], "%s/node%d.key", h->dir, i);
        snprintf(h->pub[i], sizeof h->pub[i], "%s/node%d.pub", h->dir, i);
        snprintf(h->log[i], sizeof h->log[i], "%s/node%d.log", h->dir, i);
        snprintf(h->name[i], sizeof h->name[i], "node%d", i);
        if (curve_keys_create(h->key[i], h->pub[i], NULL, err, sizeof err)) {
            fprintf(stderr, "harness: %s\n", err);
            return -1;
        }
    }
    return 0;
}

int harness_start(harness *h, int n, const char *models_dir) {
    memset(h, 0, sizeof *h);
    if (n < 1 || n > HARNESS_MAX || tu_dir_new(h->dir, "cluster")) {
        fprintf(stderr, "harness: cannot make a temporary directory\n");
        h->dir[0] = '\0';
        return -1;
    }
    if (make_keys(h))
        goto fail;
    for (int i = 0; i < n; i++) {
        if (start_node(h, i, models_dir))
            goto fail;
        h->n = i + 1;
        h->nodes[i] = (cluster_node){.name = h->name[i], .address = h->address[i], .public_key = h->pub[i]};
    }
    return 0;
fail:
    harness_stop(h);
    return -1;
}

/* 0 when the node stopped on SIGTERM with status 0 (under a sanitizer,
 * also without leaks), else -1 (it is killed if need be). */
static int stop_node(pid_t pid) {
    int st;
    kill(pid, SIGTERM);
    for (int waited = 0; waited < STOP_TIMEOUT_MS; waited += 20) {
        if (waitpid(pid, &st, WNOHANG) == pid) {
            if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
                return 0;
            fprintf(stderr, "harness: node %d ended with status %d\n", (int)pid, st);
            return -1;
        }
        sleep_ms(20);
    }
    fprintf(stderr, "harness: node %d ignored SIGTERM; killed\n", (int)pid);
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return -1;
}

void harness_kill(harness *h, int i) {
    int st;
    if (h->pid[i] <= 0)
        return;
    kill(h->pid[i], SIGKILL);
    waitpid(h->pid[i], &st, 0);
    h->pid[i] = 0;
}

int harness_stop(harness *h) {
    int bad = 0;
    for (int i = 0; i < HARNESS_MAX; i++)
        if (h->pid[i] > 0)
            bad += stop_node(h->pid[i]) != 0;
    memset(h->pid, 0, sizeof h->pid);
    h->n = 0;
    if (h->dir[0] && !getenv("RELAIS_KEEP_TEST_DIR"))
        tu_dir_remove(h->dir);
    h->dir[0] = '\0';
    return bad;
}
