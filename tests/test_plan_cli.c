/* Tests of `relais plan` through the binary on the shared test models: the
 * JSON plan is the library's plan for the same file and nodes, the text
 * table pins a split that --layers gives back, sliding layers are charged
 * the window, a cluster too small is reported with exit code 1, bad options
 * or files get clear errors, and without --assume-node-* the free RAM and
 * speed come from real relais-node processes on loopback (a node that does
 * not answer fails the plan within --timeout). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "model.h"
#include "planner.h"
#include "testutil.h"

#define TINY_SWA RELAIS_SHARED_DIR "/models/tiny-swa.gguf"
#define SMALL RELAIS_SHARED_DIR "/models/small-q4_k_m.gguf"

static char dir[TU_DIR_MAX], cluster2[128], cluster4[128];

static void write_cluster(const char *path, int n_nodes) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "coordinator: {key: coordinator.key}\nnodes:\n");
    for (int i = 0; i < n_nodes; i++)
        fprintf(f, "  - {address: 'tcp://127.0.0.1:%d', public_key: n%d.pub, name: n%d}\n", 7700 + i, i + 1, i + 1);
    fclose(f);
}

static int setup(void **state) {
    (void)state;
    if (tu_dir_new(dir, "plan"))
        return -1;
    snprintf(cluster2, sizeof cluster2, "%s/two.yaml", dir);
    snprintf(cluster4, sizeof cluster4, "%s/four.yaml", dir);
    write_cluster(cluster2, 2);
    write_cluster(cluster4, 4);
    return 0;
}

static pid_t node_pids[2]; /* relais-node processes of the live test, 0 when not running */

/* SIGTERM, then SIGKILL if the node has not exited within 5 s. */
static void stop_node(pid_t *pid) {
    if (*pid <= 0)
        return;
    kill(*pid, SIGTERM);
    for (int i = 0; i < 500 && waitpid(*pid, NULL, WNOHANG) == 0; i++)
        usleep(10000);
    if (waitpid(*pid, NULL, WNOHANG) == 0) {
        kill(*pid, SIGKILL);
        waitpid(*pid, NULL, 0);
    }
    *pid = 0;
}

static int teardown(void **state) {
    for (int i = 0; i < 2; i++)
        stop_node(&node_pids[i]);
    (void)state;
    return tu_dir_remove(dir);
}

static char out[1 << 16];

/* Runs `relais plan ARGS`, stdout (and stderr when merge) into out; returns
 * the exit code. */
static int plan_cmd(const char *args, bool merge) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s plan %s%s", RELAIS_BIN, args, merge ? " 2>&1" : " 2>/dev/null");
    return tu_run(cmd, out, sizeof out);
}

static json_t *plan_json(const char *args) {
    char a[1024];
    snprintf(a, sizeof a, "%s --json", args);
    assert_int_equal(plan_cmd(a, false), 0);
    json_error_t je;
    json_t *j = json_loads(out, 0, &je);
    if (!j)
        fail_msg("not JSON (%s): %s", je.text, out);
    return j;
}

static uint64_t jint(const json_t *o, const char *key) {
    const json_t *v = json_object_get(o, key);
    assert_true(json_is_integer(v));
    return (uint64_t)json_integer_value(v);
}

static void read_costs(const char *path, plan_model *m) {
    char err[256];
    if (plan_model_read(path, NULL, m, err, sizeof err))
        fail_msg("%s", err);
}

static void test_json_is_the_library_plan(void **state) {
    char args[512];
    snprintf(args, sizeof args,
             "--cluster %s -m %s --ctx 256 --assume-node-ram 1G,512M,512M,2G "
             "--assume-node-speed 8G,4G,4G,8G",
             cluster4, SMALL);
    json_t *j = plan_json(args);

    plan_model m;
    read_costs(SMALL, &m);
    plan_node nodes[4] = {{"n1", 1ull << 30, 8.0 * (1 << 30), 0},
                          {"n2", 512ull << 20, 4.0 * (1 << 30), 0},
                          {"n3", 512ull << 20, 4.0 * (1 << 30), 0},
                          {"n4", 2ull << 30, 8.0 * (1 << 30), 0}};
    plan_input in = plan_input_default();
    in.hp = &m.hp;
    in.layer_bytes = m.layer_bytes;
    in.head_bytes = m.head_bytes;
    in.nodes = nodes;
    in.n_nodes = 4;
    in.n_ctx = 256;
    char err[256];
    plan *p = plan_new(&in, err, sizeof err);
    assert_non_null(p);

    assert_true(json_is_true(json_object_get(j, "fits")));
    assert_int_equal(jint(j, "n_layer"), m.hp.n_layer);
    assert_int_equal(jint(j, "n_ctx"), 256);
    assert_int_equal(jint(j, "total_need_bytes"), plan_total_need(p));
    assert_true(json_is_null(json_object_get(j, "problem")));
    char split[128];
    plan_format_ranges(p, split, sizeof split);
    assert_string_equal(json_string_value(json_object_get(j, "split")), split);
    const json_t *arr = json_object_get(j, "nodes");
    assert_int_equal(json_array_size(arr), 4);
    for (uint32_t k = 0; k < 4; k++) {
        const json_t *o = json_array_get(arr, k);
        const plan_stage *s = plan_stage_at(p, k);
        assert_string_equal(json_string_value(json_object_get(o, "name")), nodes[k].name);
        assert_int_equal(jint(o, "layer_begin"), s->l0);
        assert_int_equal(jint(o, "layer_end"), s->l1);
        assert_int_equal(jint(o, "weight_bytes"), s->weight_bytes);
        assert_int_equal(jint(o, "kv_bytes"), s->kv_bytes);
        assert_int_equal(jint(o, "need_bytes"), s->need_bytes);
        assert_int_equal(jint(o, "free_bytes"), nodes[k].free_ram);
        assert_true(json_is_true(json_object_get(o, "head")) == (k == 3));
    }
    plan_destroy(&p);
    plan_model_free(&m);
    json_decref(j);
}

static void test_sliding_kv_and_pinned_split(void **state) {
    char args[512];
    snprintf(args, sizeof args, "--cluster %s -m %s --ctx 4096 --assume-node-ram 1G --assume-node-speed 10G", cluster2,
             TINY_SWA);
    assert_int_equal(plan_cmd(args, false), 0);
    assert_non_null(strstr(out, "3 sliding over 8 positions"));
    assert_non_null(strstr(out, "context  4096 positions x 1 session"));
    const char *pin = strstr(out, "fits; to pin this split: --layers ");
    assert_non_null(pin);
    char split[64];
    assert_int_equal(sscanf(pin, "fits; to pin this split: --layers %63s", split), 1);

    /* the pinned split plans the same; layer 0 is full, 1-3 slide over 8 */
    plan_model m;
    read_costs(TINY_SWA, &m);
    char pinned[640];
    snprintf(pinned, sizeof pinned, "%s --layers %s", args, split);
    json_t *j = plan_json(pinned);
    assert_string_equal(json_string_value(json_object_get(j, "split")), split);
    const json_t *arr = json_object_get(j, "nodes");
    uint64_t kv = 0;
    for (size_t k = 0; k < 2; k++) {
        const json_t *o = json_array_get(arr, k);
        uint64_t l0 = jint(o, "layer_begin"), l1 = jint(o, "layer_end");
        assert_int_equal(jint(o, "kv_bytes"),
                         rl_kv_bytes_for(&m.hp, (uint32_t)l0, (uint32_t)l1, 4096, RL_KV_TYPE_DEFAULT));
        kv += jint(o, "kv_bytes");
    }
    uint64_t per_pos = 2ull * m.hp.n_head_kv * m.hp.head_dim * 2;   /* f16, the default */
    assert_int_equal(kv, per_pos * (4096 + 3 * (8 + RL_KV_SLACK))); /* rings of W + slack */
    assert_string_equal(json_string_value(json_object_get(j, "kv_type")), "f16");
    assert_int_equal(jint(j, "kv_bytes_per_token"), per_pos * m.hp.n_layer);
    json_decref(j);

    /* --kv-type: the KV is counted in the type asked (f32 keys, f16 values:
     * 1.5 times f16); a type the heads cannot take is refused */
    snprintf(pinned, sizeof pinned, "%s --layers %s --kv-type f32,f16", args, split);
    j = plan_json(pinned);
    assert_string_equal(json_string_value(json_object_get(j, "kv_type")), "f32,f16");
    arr = json_object_get(j, "nodes");
    assert_int_equal(jint(json_array_get(arr, 0), "kv_bytes") + jint(json_array_get(arr, 1), "kv_bytes"), kv * 3 / 2);
    json_decref(j);
    snprintf(pinned, sizeof pinned, "%s --kv-type q8_0", args);
    assert_int_equal(plan_cmd(pinned, true), 2);
    assert_non_null(strstr(out, "multiple of 32"));
    assert_int_equal(plan_cmd(args, false), 0);
    assert_non_null(strstr(out, "KV f16: 0.5 KiB per token"));

    /* a split of one's own choosing, and the window overridden off */
    snprintf(pinned, sizeof pinned, "%s --layers 0,1-3 --swa-window 0", args);
    j = plan_json(pinned);
    assert_string_equal(json_string_value(json_object_get(j, "split")), "0,1-3");
    assert_int_equal(jint(j, "total_need_bytes") - 2 * PLAN_DEFAULT_RESERVE - m.head_bytes,
                     per_pos * 4096 * 4 + m.layer_bytes[0] + m.layer_bytes[1] + m.layer_bytes[2] + m.layer_bytes[3]);
    json_decref(j);
    plan_model_free(&m);
}

static void test_does_not_fit(void **state) {
    char args[512];
    snprintf(args, sizeof args, "--cluster %s -m %s --ctx 4096 --assume-node-ram 64M,100M --assume-node-speed 1G",
             cluster2, TINY_SWA);
    assert_int_equal(plan_cmd(args, true), 1);
    assert_non_null(strstr(out, "the model does not fit"));
    assert_non_null(strstr(out, "  n1 (layers "));
    assert_non_null(strstr(out, "MiB short"));
    assert_non_null(strstr(out, "SHORT"));
    assert_null(strstr(out, "n2 (layers")); /* n2 has room for its share */

    /* four nodes for four layers, one too small: the JSON says which */
    snprintf(args, sizeof args, "--cluster %s -m %s --assume-node-ram 1G,1G,1G,10M --assume-node-speed 1G --json",
             cluster4, TINY_SWA);
    assert_int_equal(plan_cmd(args, false), 1);
    json_t *j = json_loads(out, 0, NULL);
    assert_non_null(j);
    assert_true(json_is_false(json_object_get(j, "fits")));
    assert_non_null(strstr(json_string_value(json_object_get(j, "problem")), "n4 (layers 3 + head)"));
    json_decref(j);
}

static void test_errors(void **state) {
    char args[1024], bad[160];
    struct {
        const char *opts;
        int rc;
        const char *want;
    } cases[] = {
        {"--assume-node-ram 1G --assume-node-speed 1G --layers 0-1,1-3", 2,
         "--layers 0-1,1-3: ranges 0-1 and 1-3 overlap: layer 1 is in both"},
        {"--assume-node-ram 1G --assume-node-speed 1G --layers 0-3", 2, "1 range for 2 nodes"},
        {"--assume-node-ram 1G --assume-node-speed 1G --layers 0-1,2-9", 2, "outside the model's layers 0-3"},
        {"--assume-node-ram 1G,2G,3G --assume-node-speed 1G", 2, "--assume-node-ram: 3 values for 2 nodes"},
        {"--assume-node-ram 1X --assume-node-speed 1G", 2, "'1X' is not a size"},
        {"--assume-node-ram -1G --assume-node-speed 1G", 2, "'-1G' is not a size"},
        {"--assume-node-ram 1G --assume-node-speed 0", 2, "a node's speed must be more than 0"},
        {"--assume-node-ram 1G --assume-node-speed 1G --ctx 0", 2, "--ctx"},
        {"--assume-node-ram 1G --assume-node-speed 1G extra", 2, "unexpected argument 'extra'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(args, sizeof args, "--cluster %s -m %s %s", cluster2, TINY_SWA, cases[i].opts);
        int rc = plan_cmd(args, true);
        if (rc != cases[i].rc || !strstr(out, cases[i].want))
            fail_msg("'%s': exit %d, output:\n%s", cases[i].opts, rc, out);
    }
    /* missing pieces, bad files */
    snprintf(args, sizeof args, "-m %s --assume-node-ram 1G --assume-node-speed 1G", TINY_SWA);
    assert_int_equal(plan_cmd(args, true), 2);
    assert_non_null(strstr(out, "--cluster FILE is required"));
    snprintf(bad, sizeof bad, "%s/bad.yaml", dir);
    FILE *f = fopen(bad, "w");
    assert_non_null(f);
    fputs("coordinator: {key: k}\nnodes:\n  - {address: 'tcp://h', public_key: p}\n", f);
    fclose(f);
    snprintf(args, sizeof args, "--cluster %s -m %s --assume-node-ram 1G --assume-node-speed 1G", bad, TINY_SWA);
    assert_int_equal(plan_cmd(args, true), 1);
    assert_non_null(strstr(out, "bad.yaml:3:15: nodes[0].address: 'tcp://h' is not tcp://HOST:PORT (no port)"));
    snprintf(args, sizeof args,
             "--cluster %s -m %s/models/vocab-gpt2.gguf --assume-node-ram 1G "
             "--assume-node-speed 1G",
             cluster2, RELAIS_SHARED_DIR);
    assert_int_equal(plan_cmd(args, true), 1);
    assert_non_null(strstr(out, "relais plan: "));
    snprintf(args, sizeof args, "--cluster %s -m /nonexistent.gguf --assume-node-ram 1G --assume-node-speed 1G",
             cluster2);
    assert_int_equal(plan_cmd(args, true), 1);
    assert_int_equal(plan_cmd("--help", false), 0);
    assert_non_null(strstr(out, "usage: relais plan --cluster FILE -m MODEL"));
}

/* A loopback TCP port that nothing listens on right now. */
static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static pid_t start_node(const char *name, int port) {
    char ep[64], key[160], trust[160], models[160], cache[160], log[160];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", port);
    snprintf(key, sizeof key, "%s/%s.key", dir, name);
    snprintf(trust, sizeof trust, "%s/trust", dir);
    snprintf(models, sizeof models, "%s/models", dir);
    snprintf(cache, sizeof cache, "%s/cache-%s", dir, name);
    snprintf(log, sizeof log, "%s/%s.log", dir, name);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(log, O_CREAT | O_WRONLY | O_TRUNC, 0600);
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        execl(RELAIS_NODE_BIN, "relais-node", "--listen", ep, "--key", key, "--trust", trust, "--models", models,
              "--cache", cache, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static void test_asks_the_nodes(void **state) {
    char cmd[1024], yaml[160], args[512];
    snprintf(cmd, sizeof cmd,
             "cd %s && mkdir trust models && for k in coordinator n1 n2; do %s keygen -o $k "
             ">/dev/null || exit 1; done && cp coordinator.pub trust/",
             dir, RELAIS_BIN);
    assert_int_equal(system(cmd), 0);
    int ports[3] = {0, free_port(), free_port()}; /* the coordinator binds port * */
    snprintf(yaml, sizeof yaml, "%s/live.yaml", dir);
    FILE *f = fopen(yaml, "w");
    assert_non_null(f);
    fprintf(f,
            "coordinator: {key: coordinator.key, listen: 'tcp://127.0.0.1:*'}\nnodes:\n"
            "  - {address: 'tcp://127.0.0.1:%d', public_key: n1.pub, name: n1}\n"
            "  - {address: 'tcp://127.0.0.1:%d', public_key: n2.pub, name: n2}\n",
            ports[1], ports[2]);
    fclose(f);
    node_pids[0] = start_node("n1", ports[1]);
    node_pids[1] = start_node("n2", ports[2]);

    /* the nodes start listening after their self-benchmark; the links wait for them */
    snprintf(args, sizeof args, "--cluster %s -m %s --timeout 60", yaml, TINY_SWA);
    json_t *j = plan_json(args);
    assert_string_equal(json_string_value(json_object_get(j, "free_ram_from")), "nodes");
    assert_string_equal(json_string_value(json_object_get(j, "speed_from")), "nodes");
    for (size_t k = 0; k < 2; k++) {
        const json_t *o = json_array_get(json_object_get(j, "nodes"), k);
        assert_true(jint(o, "free_bytes") > 0);
        assert_true(json_real_value(json_object_get(o, "speed_bytes_per_s")) > 0);
    }
    json_decref(j);

    /* an assumed RAM with the measured speed */
    snprintf(args, sizeof args, "--cluster %s -m %s --timeout 60 --assume-node-ram 100M", yaml, TINY_SWA);
    j = plan_json(args);
    assert_string_equal(json_string_value(json_object_get(j, "free_ram_from")), "assumed");
    assert_string_equal(json_string_value(json_object_get(j, "speed_from")), "nodes");
    assert_int_equal(jint(json_array_get(json_object_get(j, "nodes"), 1), "free_bytes"), 100 << 20);
    json_decref(j);
    snprintf(args, sizeof args, "--cluster %s -m %s --timeout 60", yaml, TINY_SWA);
    assert_int_equal(plan_cmd(args, false), 0);
    assert_non_null(strstr(out, "free RAM as the nodes report it, speed as the nodes measured it"));

    /* a node that does not answer fails the plan in time, naming it */
    stop_node(&node_pids[1]);
    snprintf(args, sizeof args, "--cluster %s -m %s --timeout 2", yaml, TINY_SWA);
    time_t t0 = time(NULL);
    assert_int_equal(plan_cmd(args, true), 1);
    assert_true(time(NULL) - t0 < 30);
    assert_non_null(strstr(out, "node n2"));
    assert_non_null(strstr(out, "--assume-node-ram and --assume-node-speed plan without the nodes"));
    stop_node(&node_pids[0]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_is_the_library_plan),
        cmocka_unit_test(test_sliding_kv_and_pinned_split),
        cmocka_unit_test(test_does_not_fit),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_asks_the_nodes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
