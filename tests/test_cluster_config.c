/* Tests of the cluster file loader: a complete file and its defaults, path
 * resolution against the file's directory, every kind of mistake reported
 * with its line and column, and hostile input (deep nesting, aliases, huge
 * or special files, random mutations) refused without a crash; and the
 * documented example loads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cluster_config.h"
#include "io_pin.h"
#include "testutil.h"

static char err[1024];

static cluster_config *parse(const char *text) {
    err[0] = 0;
    return cluster_config_parse(text, strlen(text), "c.yaml", "/etc/relais", err, sizeof err);
}

/* The text must be refused with a message containing `want`. */
static void expect_error(const char *text, const char *want) {
    cluster_config *c = parse(text);
    if (c) {
        cluster_config_destroy(&c);
        fail_msg("accepted:\n%s", text);
    }
    if (!strstr(err, want))
        fail_msg("error '%s' lacks '%s' for:\n%s", err, want, text);
}

static const char *VALID = "# a three-node cluster\n"
                           "coordinator:\n"
                           "  key: keys/coordinator.key\n"
                           "  listen: tcp://*:7799\n"
                           "nodes:\n"
                           "  - address: tcp://192.168.1.11:7700\n"
                           "    public_key: /abs/node1.pub\n"
                           "    name: pi1\n"
                           "  - {address: 'tcp://Node-2.lan:7700', public_key: node2.pub}\n"
                           "  - address: tcp://[fe80::1]:7701\n"
                           "    public_key: ../node3.pub\n";

static void test_valid_file(void **state) {
    cluster_config *c = parse(VALID);
    assert_non_null(c);
    assert_string_equal(cluster_config_key(c), "/etc/relais/keys/coordinator.key");
    assert_string_equal(cluster_config_listen(c), "tcp://*:7799");
    assert_string_equal(cluster_config_advertise(c), "tcp://127.0.0.1:7799");
    assert_int_equal(cluster_config_n_nodes(c), 3);
    const cluster_node *n = cluster_config_node(c, 0);
    assert_string_equal(n->name, "pi1");
    assert_string_equal(n->address, "tcp://192.168.1.11:7700");
    assert_string_equal(n->host, "192.168.1.11");
    assert_int_equal(n->port, 7700);
    assert_string_equal(n->public_key, "/abs/node1.pub");
    assert_int_equal(n->line, 6);
    n = cluster_config_node(c, 1);
    assert_string_equal(n->name, "Node-2.lan:7700");
    assert_string_equal(n->public_key, "/etc/relais/node2.pub");
    n = cluster_config_node(c, 2);
    assert_string_equal(n->name, "[fe80::1]:7701");
    assert_string_equal(n->host, "fe80::1");
    assert_int_equal(n->port, 7701);
    assert_string_equal(n->public_key, "/etc/relais/../node3.pub");
    assert_null(cluster_config_node(c, 3));
    cluster_config_destroy(&c);
    assert_null(c);
    cluster_config_destroy(&c); /* a second destroy is harmless */
}

static void test_defaults_and_advertise(void **state) {
    const char *nodes = "nodes: [{address: tcp://h:1, public_key: p}]\n";
    char text[512];
    struct {
        const char *coord, *listen, *advertise;
    } cases[] = {
        {"{key: k}", "tcp://0.0.0.0:*", "tcp://127.0.0.1:*"}, /* any port: bound, then named in Assign */
        {"{key: k, listen: 'tcp://127.0.0.1:*'}", "tcp://127.0.0.1:*", "tcp://127.0.0.1:*"},
        {"{key: k, listen: 'tcp://*:*', advertise: 'tcp://10.0.0.5:*'}", "tcp://*:*", "tcp://10.0.0.5:*"},
        {"{key: k, listen: 'tcp://0.0.0.0:9000'}", "tcp://0.0.0.0:9000", "tcp://127.0.0.1:9000"},
        {"{key: k, listen: 'tcp://[::]:9000'}", "tcp://[::]:9000", "tcp://[::1]:9000"},
        {"{key: k, listen: 'tcp://10.0.0.5:9000'}", "tcp://10.0.0.5:9000", "tcp://10.0.0.5:9000"},
        {"{key: k, listen: 'tcp://*:9000', advertise: 'tcp://10.0.0.5:9000'}", "tcp://*:9000", "tcp://10.0.0.5:9000"},
        {"{key: k, listen: ~, name: }", NULL, NULL}, /* unknown key 'name' */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(text, sizeof text, "coordinator: %s\n%s", cases[i].coord, nodes);
        cluster_config *c = parse(text);
        if (!cases[i].listen) {
            assert_null(c);
            assert_non_null(strstr(err, "c.yaml:1:"));
            continue;
        }
        if (!c)
            fail_msg("%s: %s", text, err);
        assert_string_equal(cluster_config_listen(c), cases[i].listen);
        assert_string_equal(cluster_config_advertise(c), cases[i].advertise);
        assert_string_equal(cluster_config_key(c), "/etc/relais/k");
        cluster_config_destroy(&c);
    }
}

/* coordinator.io_cpu: absent (none), a number, none, or an error at its place. */
static void test_io_cpu(void **state) {
    const char *nodes = "nodes: [{address: tcp://h:1, public_key: p}]\n";
    struct {
        const char *coord;
        int cpu;
    } ok[] = {{"{key: k}", IO_PIN_NONE}, {"{key: k, io_cpu: 3}", 3}, {"{key: k, io_cpu: none}", IO_PIN_NONE}};
    char text[512];
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        snprintf(text, sizeof text, "coordinator: %s\n%s", ok[i].coord, nodes);
        cluster_config *c = parse(text);
        if (!c)
            fail_msg("%s: %s", text, err);
        assert_int_equal(cluster_config_io_cpu(c), ok[i].cpu);
        cluster_config_destroy(&c);
    }
    snprintf(text, sizeof text, "coordinator: {key: k, io_cpu: -1}\n%s", nodes);
    expect_error(text, "c.yaml:1:31: coordinator.io_cpu: '-1' is neither a CPU number");
    snprintf(text, sizeof text, "coordinator: {key: k, io_cpu: [0]}\n%s", nodes);
    expect_error(text, "c.yaml:1:31: coordinator.io_cpu: expected a single value");
}

static void test_structure_errors(void **state) {
    const char *N = "nodes: [{address: tcp://h:1, public_key: p}]\n";
    char t[512];
    expect_error("", "c.yaml:1:1: empty file");
    expect_error("# only a comment\n", "c.yaml:1:1: empty file");
    expect_error("- a\n- b\n", "c.yaml:1:1: cluster file: expected a mapping, found a list");
    expect_error("coordinatr: {key: k}\n",
                 "c.yaml:1:1: cluster file: unknown key 'coordinatr' (expected coordinator, nodes, kv_type, discover)");
    expect_error(N, "c.yaml:1:1: cluster file: missing 'coordinator'");
    expect_error("coordinator: {key: k}\n", "c.yaml:1:1: cluster file: missing 'nodes'");
    expect_error("coordinator: {key: k}\nnodes:\n", "missing 'nodes'");
    expect_error("coordinator: {key: k}\nnodes: []\n", "c.yaml:2:8: nodes: the list is empty");
    expect_error("coordinator: {key: k}\nnodes: {a: b}\n", "c.yaml:2:8: nodes: expected a list, found a mapping");
    expect_error("coordinator: {listen: 'tcp://*:1'}\n", "c.yaml:1:14: coordinator: missing 'key'");
    expect_error("coordinator: {key: [a, b]}\n", "c.yaml:1:20: coordinator.key: expected a single value, found a list");
    expect_error("coordinator: {key: ''}\n", "c.yaml:1:20: coordinator.key: empty value");
    expect_error("coordinator: k\n", "c.yaml:1:14: coordinator: expected a mapping, found a scalar");
    snprintf(t, sizeof t, "coordinator: {key: k}\n%snodes: []\n", N);
    expect_error(t, "c.yaml:3:1: cluster file: key 'nodes' appears twice");
    expect_error("coordinator: {key: k}\nnodes:\n  - address: tcp://h:1\n    public_key: p\n    adress: x\n",
                 "c.yaml:5:5: nodes[0]: unknown key 'adress' (expected address, public_key, name)");
    expect_error("coordinator: {key: k}\nnodes:\n  - address: tcp://h:1\n",
                 "c.yaml:3:5: nodes[0]: missing 'public_key'");
    expect_error("coordinator: {key: k}\nnodes:\n  - public_key: p\n", "c.yaml:3:5: nodes[0]: missing 'address'");
    expect_error("coordinator: {key: k}\nnodes: [tcp://h:1]\n",
                 "c.yaml:2:9: nodes[0]: expected a mapping, found a scalar");
    expect_error("coordinator: {key: k}\nnodes: [{? [a]: b}]\n", "nodes[0]: a key must be a plain name");
    expect_error("coordinator: {key: k}\nnodes: [{address: tcp://h:1, public_key: p, name: \"a\\tb\"}]\n",
                 "nodes[0].name: at most 64 printable characters");
}

static void test_endpoint_errors(void **state) {
    struct {
        const char *addr, *want;
    } cases[] = {
        {"http://h:1", "is not a tcp://HOST:PORT endpoint (only tcp is supported)"},
        {"h:1", "only tcp is supported"},
        {"tcp://h", "is not tcp://HOST:PORT (no port)"},
        {"tcp://:7700", "(bad host)"},
        {"tcp://h:0", "the port must be a number in 1..65535"},
        {"tcp://h:65536", "the port must be a number in 1..65535"},
        {"tcp://h:-5", "the port must be a number"},
        {"tcp://h:77x", "the port must be a number"},
        {"tcp://h:*", "the port must be a number"},
        {"tcp://::1:7700", "an IPv6 address goes in brackets"},
        {"tcp://[zz::1]:7700", "'zz::1' is not a valid IPv6 address"},
        {"tcp://[::1]7700", "(no port)"},
        {"tcp://300.1.1.1:7700", "'300.1.1.1' is not a valid IPv4 address"},
        {"tcp://1.2.3:7700", "is not a valid IPv4 address"},
        {"tcp://bad_host:7700", "'bad_host' is not a valid host name"},
        {"tcp://-lead.lan:7700", "is not a valid host name"},
        {"tcp://a..b:7700", "is not a valid host name"},
        {"tcp://0.0.0.0:7700", "is a wildcard address"},
        {"tcp://*:7700", "is a wildcard address"},
        {"tcp://[::]:7700", "is a wildcard address"},
    };
    char t[512], want[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(t, sizeof t, "coordinator: {key: k}\nnodes:\n  - public_key: p\n    address: '%s'\n", cases[i].addr);
        snprintf(want, sizeof want, "c.yaml:4:14: nodes[0].address: ");
        expect_error(t, want);
        expect_error(t, cases[i].want);
    }
    expect_error("coordinator: {key: k}\nnodes: [{address: 'tcp://h:*', public_key: p}]\n",
                 "c.yaml:2:19: nodes[0].address: 'tcp://h:*': the port must be a number in 1..65535");
    expect_error("coordinator: {key: k, listen: 'udp://*:1'}\nnodes: [{address: tcp://h:1, public_key: p}]\n",
                 "c.yaml:1:31: coordinator.listen: 'udp://*:1' is not a tcp://HOST:PORT endpoint");
    expect_error("coordinator: {key: k, advertise: 'tcp://*:1'}\nnodes: [{address: tcp://h:1, public_key: p}]\n",
                 "c.yaml:1:34: coordinator.advertise: 'tcp://*:1' is a wildcard address");
}

static void test_duplicates_and_limits(void **state) {
    expect_error("coordinator: {key: k}\nnodes:\n"
                 "  - {address: tcp://Host.lan:7700, public_key: a}\n"
                 "  - {address: tcp://h2:7700, public_key: b}\n"
                 "  - {address: tcp://host.LAN:7700, public_key: c}\n",
                 "c.yaml:5:15: nodes[2].address: tcp://host.LAN:7700 is also the address of nodes[0] (line 3)");
    expect_error("coordinator: {key: k}\nnodes:\n"
                 "  - {address: tcp://h:7700, public_key: a, name: x}\n"
                 "  - {address: tcp://h:7701, public_key: b, name: x}\n",
                 "c.yaml:4:50: nodes[1]: the name 'x' is also the name of nodes[0] (line 3)");
    /* the same host on two ports is two nodes */
    cluster_config *c = parse("coordinator: {key: k}\nnodes:\n"
                              "  - {address: tcp://h:7700, public_key: a}\n"
                              "  - {address: tcp://h:7701, public_key: b}\n");
    assert_non_null(c);
    cluster_config_destroy(&c);

    size_t cap = 64 * 80 + 100;
    char *t = malloc(cap);
    assert_non_null(t);
    int n = snprintf(t, cap, "coordinator: {key: k}\nnodes:\n");
    for (int i = 0; i < CLUSTER_MAX_NODES; i++)
        n += snprintf(t + n, cap - (size_t)n, "  - {address: tcp://h:%d, public_key: p}\n", 1000 + i);
    c = parse(t);
    assert_non_null(c);
    assert_int_equal(cluster_config_n_nodes(c), CLUSTER_MAX_NODES);
    cluster_config_destroy(&c);
    t = realloc(t, cap + 80);
    assert_non_null(t);
    snprintf(t + n, cap + 80 - (size_t)n, "  - {address: tcp://h:9999, public_key: p}\n");
    expect_error(t, "c.yaml:3:3: nodes: 65 nodes, at most 64 are supported");
    free(t);
}

static void test_hostile_yaml(void **state) {
    expect_error("coordinator: {key: k\nnodes: [\n", "c.yaml:");
    expect_error("coordinator: {key: k\nnodes: [\n", "YAML syntax error");
    expect_error("coordinator: &c {key: k}\nnodes: [{address: tcp://h:1, public_key: p}]\nother: *c\n",
                 "c.yaml:3:8: YAML aliases (*c) are not supported");
    expect_error("coordinator: {key: k}\nnodes: [{address: tcp://h:1, public_key: p}]\n---\nmore: 1\n",
                 "c.yaml:3:1: a second YAML document");
    const char nul[] = "coordinator: {key: k\0}\nnodes: []\n";
    assert_null(cluster_config_parse(nul, sizeof nul - 1, "c.yaml", ".", err, sizeof err));
    assert_non_null(strstr(err, "c.yaml:1:21: YAML syntax error"));
    /* a million opening brackets: refused at the depth limit */
    size_t n = 1000000;
    char *deep = malloc(n + 16);
    assert_non_null(deep);
    memcpy(deep, "nodes: ", 7);
    memset(deep + 7, '[', n);
    deep[7 + n] = 0;
    expect_error(deep, "values nested more than 16 levels deep");
    /* a wide flat file is refused at the value count */
    size_t k = (size_t)sprintf(deep, "nodes: [");
    for (; k + 4 < n; k += 3)
        memcpy(deep + k, "[],", 3);
    memcpy(deep + k, "[]]", 4);
    expect_error(deep, "more than 100000 YAML values");
    free(deep);
}

/* Random byte edits of a valid file: each result is a config or an error
 * with a location, never a crash (the sanitizer build checks the rest). */
static void test_mutations(void **state) {
    size_t len = strlen(VALID);
    char *t = malloc(len + 1);
    assert_non_null(t);
    srand(7);
    const char alphabet[] = "{}[]:,-&*!|>'\"#? \n\tab0\x01\xff";
    for (int round = 0; round < 3000; round++) {
        memcpy(t, VALID, len + 1);
        int edits = 1 + rand() % 4;
        for (int e = 0; e < edits; e++)
            t[rand() % len] = alphabet[rand() % (sizeof alphabet - 1)];
        cluster_config *c = cluster_config_parse(t, len, "m.yaml", ".", err, sizeof err);
        if (c)
            assert_true(cluster_config_n_nodes(c) >= 1);
        else if (strncmp(err, "m.yaml:", 7))
            fail_msg("error without location: %s", err);
        cluster_config_destroy(&c);
    }
    free(t);
}

static char dir[TU_DIR_MAX];

static int make_dir(void **state) {
    (void)state;
    return tu_dir_new(dir, "cfg");
}

static int remove_dir(void **state) {
    (void)state;
    return tu_dir_remove(dir);
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_load_files(void **state) {
    char path[256], want[512];
    snprintf(path, sizeof path, "%s/cluster.yaml", dir);
    write_file(path, VALID);
    cluster_config *c = cluster_config_load(path, err, sizeof err);
    if (!c)
        fail_msg("%s", err);
    snprintf(want, sizeof want, "%s/keys/coordinator.key", dir);
    assert_string_equal(cluster_config_key(c), want);
    cluster_config_destroy(&c);

    write_file(path, "coordinator: {key: k}\nnodes: 3\n");
    assert_null(cluster_config_load(path, err, sizeof err));
    snprintf(want, sizeof want, "%s:2:8: nodes: expected a list, found a scalar", path);
    assert_string_equal(err, want);

    /* a bare file name resolves against the current directory */
    char cwd[512];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(dir), 0);
    write_file("bare.yaml", VALID);
    c = cluster_config_load("bare.yaml", err, sizeof err);
    assert_int_equal(chdir(cwd), 0);
    assert_non_null(c);
    assert_string_equal(cluster_config_key(c), "./keys/coordinator.key");
    cluster_config_destroy(&c);

    snprintf(path, sizeof path, "%s/missing.yaml", dir);
    assert_null(cluster_config_load(path, err, sizeof err));
    assert_non_null(strstr(err, "No such file or directory"));
    assert_null(cluster_config_load(dir, err, sizeof err));
    assert_non_null(strstr(err, "not a regular file"));
    snprintf(path, sizeof path, "%s/fifo", dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    assert_null(cluster_config_load(path, err, sizeof err)); /* refused, not waited on */
    assert_non_null(strstr(err, "not a regular file"));
    snprintf(path, sizeof path, "%s/big.yaml", dir);
    int fd = open(path, O_CREAT | O_WRONLY, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, CLUSTER_CONFIG_MAX_BYTES + 1), 0);
    close(fd);
    assert_null(cluster_config_load(path, err, sizeof err));
    assert_non_null(strstr(err, "a cluster file is at most 1048576 bytes"));
}

/* The documented example is a valid file. */
static void test_example_file(void **state) {
    cluster_config *c = cluster_config_load(RELAIS_SOURCE_DIR "/deploy/cluster.example.yaml", err, sizeof err);
    if (!c)
        fail_msg("%s", err);
    assert_string_equal(cluster_config_key(c), RELAIS_SOURCE_DIR "/deploy/keys/coordinator.key");
    assert_string_equal(cluster_config_listen(c), "tcp://0.0.0.0:7799");
    assert_string_equal(cluster_config_advertise(c), "tcp://192.168.1.10:7799");
    assert_int_equal(cluster_config_n_nodes(c), 3);
    static const char *const names[] = {"pi1", "pi2", "pi3"};
    for (uint32_t i = 0; i < 3; i++) {
        const cluster_node *n = cluster_config_node(c, i);
        char addr[64], key[512];
        snprintf(addr, sizeof addr, "tcp://192.168.1.%u:7700", 11 + i);
        snprintf(key, sizeof key, "%s/deploy/keys/node%u.pub", RELAIS_SOURCE_DIR, i + 1);
        assert_string_equal(n->name, names[i]);
        assert_string_equal(n->address, addr);
        assert_string_equal(n->public_key, key);
    }
    rl_kv_type kt = {RL_F32, RL_F32};
    assert_true(cluster_config_kv_type(c, &kt));
    assert_true(kt.k == RL_F16 && kt.v == RL_F16);
    cluster_config_destroy(&c);
}

/* kv_type: optional, as --kv-type; a bad one is placed in the file. */
/* `discover` instead of `nodes`: the defaults, the mapping form, its
 * errors, name patterns, and nodes added as they are heard. */
static void test_discover(void **state) {
    (void)state;
    cluster_config *c = parse("coordinator: {key: k}\ndiscover: true\n");
    assert_non_null(c);
    const cluster_discover *d = cluster_config_discover(c);
    assert_non_null(d);
    assert_int_equal(d->port, 7700);
    assert_string_equal(d->trust, "/etc/relais/trusted-nodes");
    assert_int_equal(d->n_names, 0);
    assert_true(cluster_discover_name_ok(d, "anything"));
    assert_int_equal(cluster_config_n_nodes(c), 0);
    assert_int_equal(cluster_config_add_node(c, "pi1", "tcp://10.0.0.5:7700", "/k/pi1.pub", err, sizeof err), 0);
    assert_int_equal(cluster_config_n_nodes(c), 1);
    assert_string_equal(cluster_config_node(c, 0)->host, "10.0.0.5");
    assert_int_equal(cluster_config_node(c, 0)->port, 7700);
    assert_int_equal(cluster_config_add_node(c, "pi1", "tcp://10.0.0.6:7700", "/k/x.pub", err, sizeof err), -1);
    assert_non_null(strstr(err, "taken by node pi1"));
    assert_int_equal(cluster_config_add_node(c, "pi2", "tcp://10.0.0.5:7700", "/k/x.pub", err, sizeof err), -1);
    assert_int_equal(cluster_config_add_node(c, "pi2", "tcp://0.0.0.0:7700", "/k/x.pub", err, sizeof err), -1);
    assert_int_equal(cluster_config_n_nodes(c), 1);
    cluster_config_destroy(&c);

    c = parse("coordinator: {key: k}\ndiscover: {port: 9999, trust: /srv/keys, names: [pi*, gpu-?], wait: 1.5}\n");
    assert_non_null(c);
    d = cluster_config_discover(c);
    assert_int_equal(d->port, 9999);
    assert_string_equal(d->trust, "/srv/keys");
    assert_int_equal(d->n_names, 2);
    assert_true(d->wait_s == 1.5);
    assert_true(cluster_discover_name_ok(d, "pi5"));
    assert_true(cluster_discover_name_ok(d, "gpu-1"));
    assert_false(cluster_discover_name_ok(d, "gpu-12"));
    assert_false(cluster_discover_name_ok(d, "laptop"));
    cluster_config_destroy(&c);

    c = parse("coordinator: {key: k}\ndiscover: {names: pi3}\n");
    assert_non_null(c);
    assert_int_equal(cluster_config_discover(c)->n_names, 1);
    cluster_config_destroy(&c);
    c = parse(VALID);
    assert_null(cluster_config_discover(c));
    cluster_config_destroy(&c);

    expect_error("coordinator: {key: k}\ndiscover: yes please\n", "c.yaml:2:11: discover: true, false, or a mapping");
    expect_error("coordinator: {key: k}\ndiscover: false\n", "missing 'nodes'");
    expect_error("coordinator: {key: k}\ndiscover: {port: 0}\n", "discover.port");
    expect_error("coordinator: {key: k}\ndiscover: {wait: soon}\n", "discover.wait");
    expect_error("coordinator: {key: k}\ndiscover: {names: {a: b}}\n", "discover.names");
    expect_error("coordinator: {key: k}\ndiscover: {color: red}\n", "unknown key 'color'");
    expect_error("coordinator: {key: k}\ndiscover: true\nnodes: [{address: 'tcp://a:1', public_key: p}]\n",
                 "lists its nodes or discovers them, not both");
}

static void test_kv_type_key(void **state) {
    static const char base[] =
        "coordinator: {key: k}\nnodes: [{address: \"tcp://10.0.0.1:7700\", public_key: n.pub}]\n";
    char text[512];
    rl_kv_type kt = {RL_F32, RL_F32};
    cluster_config *c = cluster_config_parse(base, strlen(base), "c.yaml", "/d", err, sizeof err);
    assert_non_null(c);
    assert_false(cluster_config_kv_type(c, &kt));
    assert_true(kt.k == RL_F32 && kt.v == RL_F32); /* untouched */
    cluster_config_destroy(&c);
    snprintf(text, sizeof text, "%skv_type: f16,q8_0\n", base);
    c = cluster_config_parse(text, strlen(text), "c.yaml", "/d", err, sizeof err);
    assert_non_null(c);
    assert_true(cluster_config_kv_type(c, &kt));
    assert_true(kt.k == RL_F16 && kt.v == RL_Q8_0);
    cluster_config_destroy(&c);
    expect_error(
        "coordinator: {key: k}\nnodes: [{address: \"tcp://10.0.0.1:7700\", public_key: n.pub}]\nkv_type: q4_0\n",
        "c.yaml:3:10: kv_type: KV type 'q4_0': expected f32, f16 or q8_0");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kv_type_key),     cmocka_unit_test(test_discover),
        cmocka_unit_test(test_valid_file),      cmocka_unit_test(test_defaults_and_advertise),
        cmocka_unit_test(test_io_cpu),          cmocka_unit_test(test_structure_errors),
        cmocka_unit_test(test_endpoint_errors), cmocka_unit_test(test_duplicates_and_limits),
        cmocka_unit_test(test_hostile_yaml),    cmocka_unit_test(test_mutations),
        cmocka_unit_test(test_load_files),      cmocka_unit_test(test_example_file),
    };
    return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
