/* Tests of the layer planner on synthetic models: splits proportional to
 * speed, memory limits, KV of sliding layers counted at the window, the head
 * on the last node, reports of models that do not fit, fixed splits and
 * their parse errors, 1 to 4 nodes, a Ministral-8B-shaped model, and the
 * costs read from a model file, and the link into a node counted in its
 * time (a slow hop between two fast nodes). The plans are checked against an exhaustive
 * search over all contiguous splits: the slowest node is as fast as it can
 * be, every node fits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "planner.h"
#include "synth.h"

#define MiB (1ull << 20)
#define GiB (1ull << 30)

static char err[1024];

/* 1 KiB of KV per position per layer (one KV head of 128 f32 values, K and V). */
static rl_hparams make_hp(uint32_t n_layer, uint32_t window, uint32_t period) {
    rl_hparams hp;
    memset(&hp, 0, sizeof hp);
    hp.n_layer = n_layer;
    hp.dim = 128;
    hp.n_head = 1;
    hp.n_head_kv = 1;
    hp.head_dim = 128;
    hp.n_ctx_train = 1 << 20;
    hp.swa_window = window;
    for (uint32_t i = 0; window && i < n_layer; i++)
        hp.sliding[i] = i % period != 0;
    return hp;
}

/* A test model: its shape and costs, and the nodes to plan for. */
typedef struct {
    rl_hparams hp;
    uint64_t layer_bytes[RL_MAX_LAYERS];
    plan_node nodes[PLAN_MAX_NODES];
    char names[PLAN_MAX_NODES][16];
    plan_input in;
} fixture;

static void setup(fixture *f, uint32_t n_layer, uint64_t bytes_per_layer, uint32_t n_nodes, uint64_t ram,
                  double speed) {
    memset(f, 0, sizeof *f);
    f->hp = make_hp(n_layer, 0, 0);
    for (uint32_t i = 0; i < n_layer; i++)
        f->layer_bytes[i] = bytes_per_layer;
    for (uint32_t k = 0; k < n_nodes; k++) {
        snprintf(f->names[k], sizeof f->names[k], "n%u", k + 1);
        f->nodes[k] = (plan_node){f->names[k], ram, speed, 0};
    }
    f->in = plan_input_default();
    f->in.kv_type = RL_KV_TYPE_F32; /* the figures below count 4 bytes per element */
    f->in.hp = &f->hp;
    f->in.layer_bytes = f->layer_bytes;
    f->in.nodes = f->nodes;
    f->in.n_nodes = n_nodes;
    f->in.n_ctx = 1024;
}

static plan *make_plan(const plan_input *in) {
    plan *p = plan_new(in, err, sizeof err);
    if (!p)
        fail_msg("plan_new: %s", err);
    return p;
}

/* The layers each node got, as a comma-separated count list "4,4,3". */
static void counts(const plan *p, char *buf, size_t len) {
    size_t n = 0;
    for (uint32_t k = 0; k < plan_n_stages(p); k++) {
        const plan_stage *s = plan_stage_at(p, k);
        n += (size_t)snprintf(buf + n, len - n, "%s%u", k ? "," : "", s->l1 - s->l0);
    }
}

static void assert_counts(const plan *p, const char *want) {
    char got[256];
    counts(p, got, sizeof got);
    if (strcmp(got, want))
        fail_msg("split %s, expected %s", got, want);
}

/* The node's need and time for [i, j) computed from scratch, the way the
 * planner documents it. */
static void range_cost(const plan_input *in, uint32_t k, uint32_t i, uint32_t j, uint64_t *need, double *time) {
    uint64_t w = 0;
    for (uint32_t l = i; l < j; l++)
        w += in->layer_bytes[l];
    bool head = !in->head_on_coordinator && j == in->hp->n_layer && i < j;
    uint64_t stream = w + (head ? in->head_bytes : 0);
    *need = i == j ? 0 : stream + rl_kv_bytes_for(in->hp, i, j, in->n_ctx, in->kv_type) * in->n_sessions + in->reserve;
    *time = (double)stream / in->nodes[k].speed + (i < j ? in->nodes[k].link_s : 0);
}

/* Smallest worst time over every contiguous split that fits (INFINITY if
 * none): nodes k.. get layers from `from` on. */
static double search(const plan_input *in, uint32_t k, uint32_t from) {
    uint32_t L = in->hp->n_layer;
    if (k == in->n_nodes)
        return from == L ? 0 : INFINITY;
    double best = INFINITY;
    uint32_t to_min = in->allow_idle ? from : from + 1;
    for (uint32_t to = to_min; to <= L; to++) {
        uint64_t need;
        double t;
        range_cost(in, k, from, to, &need, &t);
        if (need > in->nodes[k].free_ram)
            continue;
        double rest = search(in, k + 1, to);
        double w = t > rest ? t : rest;
        if (w < best)
            best = w;
    }
    return best;
}

/* Every stage matches the cost model, fits, and the worst time is the
 * exhaustive search's. */
static void check_optimal(const plan_input *in, const plan *p) {
    double worst = 0;
    uint32_t next = 0;
    assert_true(plan_fits(p));
    assert_null(plan_problem(p));
    for (uint32_t k = 0; k < in->n_nodes; k++) {
        const plan_stage *s = plan_stage_at(p, k);
        uint64_t need;
        double t;
        assert_int_equal(s->l0, next);
        next = s->l1;
        range_cost(in, k, s->l0, s->l1, &need, &t);
        assert_int_equal(s->need_bytes, need);
        assert_int_equal(s->need_bytes, s->weight_bytes + s->kv_bytes + s->head_bytes + s->reserve_bytes);
        assert_true(s->need_bytes <= s->free_bytes);
        assert_true(fabs(s->time_s - t) <= 1e-12 * t);
        worst = t > worst ? t : worst;
    }
    assert_int_equal(next, in->hp->n_layer);
    double best = search(in, 0, 0);
    if (fabs(worst - best) > 1e-9 * best)
        fail_msg("worst node time %g, the best split has %g", worst, best);
}

static void test_proportional_to_speed(void **state) {
    fixture f;
    setup(&f, 12, 100 * MiB, 3, 8 * GiB, 1e9);
    f.in.head_on_coordinator = true;
    f.nodes[1].speed = 2e9;
    f.nodes[2].speed = 3e9;
    plan *p = make_plan(&f.in);
    assert_counts(p, "2,4,6");
    check_optimal(&f.in, p);
    for (uint32_t k = 0; k < 3; k++)
        assert_true(fabs(plan_stage_at(p, k)->share - 1.0 / 3) < 1e-9);
    plan_destroy(&p);
    assert_null(p);

    /* not a multiple: 7.5 : 2.5 : 5 rounds to the split whose slowest node
     * (8 layers at speed 3) is fastest */
    setup(&f, 15, 100 * MiB, 3, 8 * GiB, 1e9);
    f.in.head_on_coordinator = true;
    f.nodes[0].speed = 3e9;
    f.nodes[2].speed = 2e9;
    p = make_plan(&f.in);
    assert_counts(p, "8,2,5");
    check_optimal(&f.in, p);
    plan_destroy(&p);
}

static void test_one_to_four_nodes(void **state) {
    static const char *const want[] = {"36", "18,18", "12,12,12", "9,9,9,9"};
    for (uint32_t k = 1; k <= 4; k++) {
        fixture f;
        setup(&f, 36, 100 * MiB, k, 16 * GiB, 1e9);
        f.in.head_on_coordinator = true;
        plan *p = make_plan(&f.in);
        assert_counts(p, want[k - 1]);
        check_optimal(&f.in, p);
        for (uint32_t i = 0; i < k; i++)
            assert_false(plan_stage_at(p, i)->head);
        plan_destroy(&p);

        /* a head of one and a half layers shifts layers off the last node */
        f.in.head_on_coordinator = false;
        f.in.head_bytes = 150 * MiB;
        p = make_plan(&f.in);
        if (k == 4)
            check_optimal(&f.in, p);
        else
            assert_true(plan_fits(p));
        const plan_stage *last = plan_stage_at(p, k - 1);
        assert_true(last->head);
        assert_int_equal(last->head_bytes, 150 * MiB);
        for (uint32_t i = 0; i + 1 < k; i++)
            assert_false(plan_stage_at(p, i)->head);
        if (k == 4) /* 8 layers and the head: 9.5 layers of time, under the others' 9-10 */
            assert_int_equal(last->l1 - last->l0, 8);
        plan_destroy(&p);
    }
}

static void test_memory_limits_the_split(void **state) {
    fixture f;
    setup(&f, 12, 100 * MiB, 3, 8 * GiB, 1e9);
    f.in.head_on_coordinator = true;
    f.nodes[1].free_ram = 300 * MiB; /* two layers, their KV and the reserve */
    plan *p = make_plan(&f.in);
    assert_counts(p, "5,2,5");
    check_optimal(&f.in, p);
    const plan_stage *s = plan_stage_at(p, 1);
    assert_int_equal(s->weight_bytes, 200 * MiB);
    assert_int_equal(s->kv_bytes, 2 * MiB);
    assert_int_equal(s->reserve_bytes, PLAN_DEFAULT_RESERVE);
    assert_int_equal(plan_total_free(p), 16 * GiB + 300 * MiB);
    plan_destroy(&p);

    /* a fast node with little memory gets what fits, not what its speed earns */
    setup(&f, 12, 100 * MiB, 2, 8 * GiB, 1e9);
    f.in.head_on_coordinator = true;
    f.nodes[0].speed = 10e9;
    f.nodes[0].free_ram = 500 * MiB;
    p = make_plan(&f.in);
    assert_counts(p, "4,8");
    check_optimal(&f.in, p);
    plan_destroy(&p);
}

static void test_sliding_layers_count_at_the_window(void **state) {
    fixture f;
    setup(&f, 8, 10 * MiB, 2, 8 * GiB, 1e9);
    f.hp = make_hp(8, 256, 4); /* layers 0 and 4 full, the others slide over 256 */
    f.in.n_ctx = 4096;
    f.in.head_on_coordinator = true;
    plan *p = make_plan(&f.in);
    assert_counts(p, "4,4");
    for (uint32_t k = 0; k < 2; k++)
        assert_int_equal(plan_stage_at(p, k)->kv_bytes, 4 * MiB + 3 * (256 + RL_KV_SLACK) * 1024); /* W + slack */
    plan_destroy(&p);

    /* sessions multiply the KV */
    f.in.n_sessions = 3;
    p = make_plan(&f.in);
    assert_int_equal(plan_stage_at(p, 0)->kv_bytes, 3 * (4 * MiB + 3 * (256 + RL_KV_SLACK) * 1024));
    plan_destroy(&p);
    f.in.n_sessions = 1;

    /* a context shorter than the window: every layer holds the context */
    f.in.n_ctx = 128;
    p = make_plan(&f.in);
    assert_int_equal(plan_stage_at(p, 0)->kv_bytes, 4 * 128 * 1024);
    plan_destroy(&p);

    /* the memory check uses the window: a node with exactly the need fits,
     * one byte less does not */
    f.in.n_ctx = 4096;
    uint64_t need = 40 * MiB + 4 * MiB + 3 * (256 + RL_KV_SLACK) * 1024 + PLAN_DEFAULT_RESERVE;
    f.nodes[0].free_ram = f.nodes[1].free_ram = need;
    p = make_plan(&f.in);
    assert_true(plan_fits(p));
    check_optimal(&f.in, p);
    plan_destroy(&p);
    f.nodes[1].free_ram = need - 1;
    p = make_plan(&f.in);
    assert_false(plan_fits(p));
    assert_non_null(strstr(plan_problem(p), "n2 (layers 4-7): needs 108.8 MiB"));
    assert_non_null(strstr(plan_problem(p), "0.0 MiB short"));
    plan_destroy(&p);
}

static void test_does_not_fit(void **state) {
    fixture f;
    setup(&f, 24, 100 * MiB, 2, 1 * GiB, 1e9);
    f.in.head_bytes = 50 * MiB;
    plan *p = make_plan(&f.in);
    assert_false(plan_fits(p));
    const char *msg = plan_problem(p);
    assert_non_null(msg);
    /* 2400 weights + 24 KV + 50 head + 2 x 64 reserve */
    assert_non_null(strstr(msg,
                           "the model does not fit: it needs 2602.0 MiB and the 2 nodes have 2048.0 MiB free "
                           "(554.0 MiB short in all)"));
    assert_non_null(strstr(msg,
                           "  n1 (layers 0-11): needs 1276.0 MiB (weights 1200.0, KV 12.0, head 0.0, reserve "
                           "64.0), has 1024.0 MiB free: 252.0 MiB short\n"));
    assert_non_null(strstr(msg, "  n2 (layers 12-23 + head): needs 1326.0 MiB"));
    assert_non_null(strstr(msg, "302.0 MiB short\n"));
    assert_int_equal(plan_total_need(p), 2602 * MiB);
    assert_int_equal(plan_total_free(p), 2 * GiB);
    plan_destroy(&p);

    /* enough memory in all, but one layer fits no node */
    setup(&f, 3, 100 * MiB, 2, 700 * MiB, 1e9);
    f.in.head_on_coordinator = true;
    f.layer_bytes[1] = 900 * MiB;
    p = make_plan(&f.in);
    assert_false(plan_fits(p));
    msg = plan_problem(p);
    assert_non_null(strstr(msg,
                           "it needs 1231.0 MiB of the nodes' 1400.0 MiB free, but no split into contiguous "
                           "ranges fits every node"));
    /* the split shown is the one of the smallest worst shortfall: one node short */
    assert_non_null(strstr(msg, "n1 (layers 0-1)") || strstr(msg, "n2 (layers 1-2)"));
    assert_true(!strstr(msg, "n1") != !strstr(msg, "n2"));
    plan_destroy(&p);
}

static void test_input_errors(void **state) {
    fixture f;
    setup(&f, 4, MiB, 5, GiB, 1e9);
    assert_null(plan_new(&f.in, err, sizeof err));
    assert_string_equal(err,
                        "5 nodes for a model of 4 layers: each node needs at least one layer (allow idle "
                        "nodes, or list fewer nodes)");
    f.in.allow_idle = true;
    plan *p = make_plan(&f.in);
    assert_true(plan_fits(p));
    plan_destroy(&p);

    setup(&f, 4, MiB, 2, GiB, 1e9);
    f.nodes[1].speed = 0;
    assert_null(plan_new(&f.in, err, sizeof err));
    assert_string_equal(err, "plan: node n2 has no measured speed");
    f.nodes[1].speed = NAN;
    assert_null(plan_new(&f.in, err, sizeof err));
    f.nodes[1].speed = 1e9;
    f.in.n_ctx = 0;
    assert_null(plan_new(&f.in, err, sizeof err));
    f.in.n_ctx = 16;
    f.in.n_nodes = PLAN_MAX_NODES + 1;
    assert_null(plan_new(&f.in, err, sizeof err));
    f.in.n_nodes = 2;
    plan_range bad[2] = {{0, 2}, {3, 4}};
    f.in.ranges = bad;
    assert_null(plan_new(&f.in, err, sizeof err));
    assert_string_equal(err, "plan: the fixed split does not cover layers 0-3 in order");
}

/* A slow hop between two fast nodes: the hop into n2 counts in n2's time
 * when it has layers, so it gets fewer of them; allowed to idle, it gets
 * none when its hop alone costs more than all the layers on n1. The table
 * shows the link. 8 layers of 1 MB at 1 GB/s: 1 ms each. */
static void test_links(void **state) {
    (void)state;
    fixture f;
    setup(&f, 8, 1000000, 2, 8 * GiB, 1e9);
    plan *p = make_plan(&f.in);
    assert_counts(p, "4,4"); /* no link: even */
    plan_destroy(&p);

    f.nodes[1].link_s = 0.002; /* 2 ms into n2: 5 ms on n1 against 3 + 2 on n2 */
    p = make_plan(&f.in);
    assert_counts(p, "5,3");
    check_optimal(&f.in, p);
    assert_true(fabs(plan_stage_at(p, 1)->time_s - 0.005) < 1e-9);
    assert_true(plan_stage_at(p, 1)->link_s == 0.002 && plan_stage_at(p, 0)->link_s == 0);
    plan_destroy(&p);

    f.nodes[1].link_s = 0.020; /* 20 ms: any layer on n2 costs more than all 8 on n1 */
    p = make_plan(&f.in);
    assert_counts(p, "7,1"); /* each node must have a layer: n2 gets the fewest */
    check_optimal(&f.in, p);
    plan_destroy(&p);
    f.in.allow_idle = true;
    p = make_plan(&f.in);
    assert_counts(p, "8,0");
    check_optimal(&f.in, p);
    assert_true(plan_stage_at(p, 1)->time_s == 0 && plan_stage_at(p, 1)->link_s == 0); /* idle: no hop */
    plan_destroy(&p);

    f.nodes[1].link_s = -1;
    assert_null(plan_new(&f.in, err, sizeof err));
    assert_non_null(strstr(err, "link time"));
}

static void test_idle_nodes(void **state) {
    fixture f;
    setup(&f, 6, 100 * MiB, 2, 8 * GiB, 1e9);
    f.in.allow_idle = true;
    f.in.head_bytes = 10 * MiB;
    f.nodes[1].speed = 1e6; /* so slow that any layer there costs more than all on n1 */
    plan *p = make_plan(&f.in);
    assert_counts(p, "6,0");
    check_optimal(&f.in, p);
    const plan_stage *s0 = plan_stage_at(p, 0), *s1 = plan_stage_at(p, 1);
    assert_true(s0->head); /* the last node that has layers runs the head */
    assert_false(s1->head);
    assert_int_equal(s1->need_bytes, 0);
    assert_true(s0->share == 1.0 && s1->share == 0.0);
    char buf[64];
    plan_format_ranges(p, buf, sizeof buf);
    assert_string_equal(buf, "0-5,-");
    plan_destroy(&p);

    /* without permission the slow node still gets its layer */
    f.in.allow_idle = false;
    p = make_plan(&f.in);
    assert_counts(p, "5,1");
    check_optimal(&f.in, p);
    plan_destroy(&p);
}

static void expect_parse_error(const char *spec, uint32_t n_layer, uint32_t n_nodes, const char *want) {
    plan_range r[PLAN_MAX_NODES];
    err[0] = 0;
    if (plan_parse_ranges(spec, n_layer, n_nodes, r, err, sizeof err) == 0)
        fail_msg("'%s' was accepted", spec);
    if (strcmp(err, want))
        fail_msg("'%s': error '%s', expected '%s'", spec, err, want);
}

static void test_fixed_split(void **state) {
    expect_parse_error("0-11,11-23,24-35", 36, 3, "ranges 0-11 and 11-23 overlap: layer 11 is in both");
    expect_parse_error("0-11,5-23,24-35", 36, 3, "ranges 0-11 and 5-23 overlap: layers 5-11 are in both");
    expect_parse_error("0-11,13-23,24-35", 36, 3, "layer 12 is in no range");
    expect_parse_error("0-11,15-23,24-35", 36, 3, "layers 12-14 are in no range");
    expect_parse_error("1-11,12-23,24-35", 36, 3, "layer 0 is in no range");
    expect_parse_error("0-11,12-23,24-34", 36, 3, "layer 35 is in no range (the model has 36 layers)");
    expect_parse_error("0-11,12-23,24-33", 36, 3, "layers 34-35 are in no range (the model has 36 layers)");
    expect_parse_error("0-11,12-23,24-40", 36, 3, "range 24-40 is outside the model's layers 0-35");
    expect_parse_error("0-11,12-23", 36, 3, "2 ranges for 3 nodes: give one range per node");
    expect_parse_error("0-11,12-23,24-35,", 36, 3, "4 ranges for 3 nodes: give one range per node");
    expect_parse_error("0-35", 36, 2, "1 range for 2 nodes: give one range per node");
    expect_parse_error("0-11,23-12,24-35", 36, 3, "range 23-12 runs backwards");
    expect_parse_error("0-11,x,12-35", 36, 3, "'x' is not a layer range (A-B, A, or - for none)");
    expect_parse_error("0-11, 12-23,24-35", 36, 3, "' 12-23' is not a layer range (A-B, A, or - for none)");
    expect_parse_error("0-11,,12-35", 36, 3, "'' is not a layer range (A-B, A, or - for none)");
    expect_parse_error("0-11,12-,13-35", 36, 3, "'12-' is not a layer range (A-B, A, or - for none)");
    expect_parse_error("0-1234567", 36, 1, "'0-1234567' is not a layer range (A-B, A, or - for none)");
    expect_parse_error("0--3", 4, 1, "'0--3' is not a layer range (A-B, A, or - for none)");
    expect_parse_error("-,-", 4, 2, "layers 0-3 are in no range (the model has 4 layers)");

    plan_range r[4];
    assert_int_equal(plan_parse_ranges("0,1-34,35", 36, 3, r, err, sizeof err), 0);
    assert_true(r[0].l0 == 0 && r[0].l1 == 1 && r[1].l0 == 1 && r[1].l1 == 35 && r[2].l0 == 35 && r[2].l1 == 36);
    assert_int_equal(plan_parse_ranges("-,0-3,-", 4, 3, r, err, sizeof err), 0);
    assert_true(r[0].l0 == 0 && r[0].l1 == 0 && r[1].l1 == 4 && r[2].l0 == 4 && r[2].l1 == 4);

    /* a fixed split is checked, not replanned */
    fixture f;
    setup(&f, 36, 100 * MiB, 3, 8 * GiB, 1e9);
    f.in.head_bytes = 100 * MiB;
    assert_int_equal(plan_parse_ranges("0-19,20-29,30-35", 36, 3, r, err, sizeof err), 0);
    f.in.ranges = r;
    plan *p = make_plan(&f.in);
    assert_counts(p, "20,10,6");
    assert_true(plan_fits(p));
    assert_true(plan_stage_at(p, 2)->head);
    char buf[64];
    plan_format_ranges(p, buf, sizeof buf);
    assert_string_equal(buf, "0-19,20-29,30-35");
    plan_destroy(&p);

    f.nodes[0].free_ram = 1 * GiB;
    p = make_plan(&f.in);
    assert_false(plan_fits(p));
    assert_non_null(strstr(plan_problem(p), "but the given split overloads a node"));
    assert_non_null(strstr(plan_problem(p), "  n1 (layers 0-19): needs 2084.0 MiB"));
    plan_destroy(&p);

    /* an idle node in a fixed split needs allow_idle */
    assert_int_equal(plan_parse_ranges("0-35,-,-", 36, 3, r, err, sizeof err), 0);
    assert_null(plan_new(&f.in, err, sizeof err));
    assert_string_equal(err, "node n2 gets no layers (allow idle nodes to plan that)");
    f.in.allow_idle = true;
    f.nodes[0].free_ram = 8 * GiB;
    p = make_plan(&f.in);
    assert_counts(p, "36,0,0");
    assert_true(plan_stage_at(p, 0)->head);
    plan_destroy(&p);
}

/* Weight bytes of one layer and of the head of a synth spec, as the file
 * would hold them. */
static uint64_t synth_layer_bytes(const rl_synth_spec *s, uint32_t il) {
    uint32_t q = s->n_head * s->head_dim, kv = s->n_head_kv * s->head_dim;
    struct {
        const char *name;
        uint64_t rows, cols;
    } t[] = {
        {"attn_q.weight", q, s->dim},
        {"attn_k.weight", kv, s->dim},
        {"attn_v.weight", kv, s->dim},
        {"attn_output.weight", s->dim, q},
        {"ffn_gate.weight", s->ffn_dim, s->dim},
        {"ffn_up.weight", s->ffn_dim, s->dim},
        {"ffn_down.weight", s->dim, s->ffn_dim},
    };
    uint64_t total = 2ull * s->dim * sizeof(float); /* the two norms */
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        total += t[i].rows * rl_dtype_row_bytes(rl_synth_tensor_type(s, t[i].name, il, t[i].cols), t[i].cols);
    return total;
}

static void test_ministral_8b_shape(void **state) {
    rl_synth_spec s;
    assert_int_equal(rl_synth_preset("ministral-8b", &s), 0);
    fixture f;
    setup(&f, s.n_layer, 0, 4, 6 * GiB, 2e9);
    f.hp.dim = s.dim;
    f.hp.n_head = s.n_head;
    f.hp.n_head_kv = s.n_head_kv;
    f.hp.head_dim = s.head_dim;
    f.hp.n_vocab = s.n_vocab;
    f.hp.swa_window = s.swa_window;
    for (uint32_t i = 0; i < s.n_layer; i++) {
        f.hp.sliding[i] = i % s.swa_period != 0;
        f.layer_bytes[i] = synth_layer_bytes(&s, i);
    }
    f.in.head_bytes =
        (uint64_t)s.n_vocab * rl_dtype_row_bytes(rl_synth_tensor_type(&s, "output.weight", 0, s.dim), s.dim) +
        s.dim * sizeof(float);
    f.in.n_ctx = s.n_ctx; /* 32768, the window: every layer holds 256 MiB of KV */

    plan *p = make_plan(&f.in);
    check_optimal(&f.in, p);
    uint64_t kv = 0;
    for (uint32_t k = 0; k < 4; k++)
        kv += plan_stage_at(p, k)->kv_bytes;
    assert_int_equal(kv, 36 * 256 * MiB);
    assert_true(plan_stage_at(p, 3)->head);
    /* the head (about four layers of weights) moves layers off the last node */
    assert_true(plan_stage_at(p, 3)->l1 - plan_stage_at(p, 3)->l0 < 9);
    plan_destroy(&p);

    /* at twice the window, sliding layers stay at 256 MiB (and RL_KV_SLACK
     * positions of 8 KiB) and full ones double */
    f.in.n_ctx = 2 * s.swa_window;
    f.hp.n_ctx_train = f.in.n_ctx;
    f.nodes[0].free_ram = f.nodes[1].free_ram = f.nodes[2].free_ram = f.nodes[3].free_ram = 8 * GiB;
    p = make_plan(&f.in);
    check_optimal(&f.in, p);
    kv = 0;
    for (uint32_t k = 0; k < 4; k++)
        kv += plan_stage_at(p, k)->kv_bytes;
    assert_int_equal(kv, 27 * (256 * MiB + RL_KV_SLACK * 8 * 1024) + 9 * 512 * MiB);
    plan_destroy(&p);

    /* two nodes of 6 GiB cannot hold it */
    f.in.n_ctx = s.n_ctx;
    f.in.n_nodes = 2;
    f.nodes[0].free_ram = f.nodes[1].free_ram = 6 * GiB;
    p = make_plan(&f.in);
    assert_false(plan_fits(p));
    assert_non_null(strstr(plan_problem(p), "and the 2 nodes have 12288.0 MiB free"));
    plan_destroy(&p);

    /* At its published 131072: KV per token and per session in each type,
     * beside llama.cpp's (which keeps all 36 layers at the full context, as
     * it applies no window to llama-architecture files); then three 4 GiB
     * nodes: f16 KV does not fit, q8_0 does. */
    f.in.n_ctx = f.hp.n_ctx_train = RL_MINISTRAL_8B_CTX;
    static const rl_dtype types[] = {RL_F32, RL_F16, RL_Q8_0};
    for (size_t t = 0; t < 3; t++) {
        const rl_kv_type kt = {types[t], types[t]};
        const uint64_t row = 2 * rl_dtype_row_bytes(types[t], (uint64_t)s.n_head_kv * s.head_dim);
        const uint64_t ours = rl_kv_bytes_for(&f.hp, 0, s.n_layer, RL_MINISTRAL_8B_CTX, kt);
        const uint64_t llama = (uint64_t)s.n_layer * RL_MINISTRAL_8B_CTX * row;
        assert_int_equal(ours, 9 * RL_MINISTRAL_8B_CTX * row + 27ull * (s.swa_window + RL_KV_SLACK) * row);
        assert_int_equal(rl_kv_bytes_per_token(&f.hp, kt), s.n_layer * row);
        print_message("Ministral 8B shape, KV %-4s: %3llu KiB per token; at 131072: relais %.2f GiB (27 of 36 layers "
                      "at 32768), llama.cpp %.2f GiB\n",
                      rl_dtype_name(types[t]), (unsigned long long)(s.n_layer * row >> 10), (double)ours / GiB,
                      (double)llama / GiB);
    }
    f.in.n_nodes = 3;
    f.nodes[0].free_ram = f.nodes[1].free_ram = f.nodes[2].free_ram = 4 * GiB;
    f.in.kv_type = (rl_kv_type){RL_F16, RL_F16};
    p = make_plan(&f.in);
    assert_false(plan_fits(p));
    assert_non_null(strstr(plan_problem(p),
                           "with --kv-type q8_0 the KV would take 4284.9 MiB in all instead of "
                           "8065.7 MiB")); /* 27 rings of W + RL_KV_SLACK */
    plan_destroy(&p);
    f.in.kv_type = (rl_kv_type){RL_Q8_0, RL_Q8_0};
    p = make_plan(&f.in);
    assert_true(plan_fits(p));
    check_optimal(&f.in, p);
    plan_destroy(&p);
}

/* The costs of a model file, and the errors of a file that is none. */
static void test_model_read(void **state) {
    plan_model m;
    assert_int_equal(plan_model_read(RELAIS_SHARED_DIR "/models/tiny-swa.gguf", NULL, &m, err, sizeof err), 0);
    assert_int_equal(m.hp.n_layer, 4);
    assert_int_equal(m.hp.swa_window, 8);
    assert_true(!m.hp.sliding[0] && m.hp.sliding[1] && m.hp.sliding[3]);
    for (uint32_t i = 0; i < 4; i++)
        assert_int_equal(m.layer_bytes[i], m.layer_bytes[0]);
    /* f32 norms (2 x 64) and seven matrices of a 64-wide, 2-KV-head, 192-FFN layer */
    assert_int_equal(m.layer_bytes[0], 4 * (2 * 64 + 64 * 64 * 2 + 64 * 32 * 2 + 3 * 64 * 192));
    assert_int_equal(m.head_bytes, 4 * (64 + 512 * 64));
    plan_model_free(&m);
    assert_null(m.layer_bytes);
    rl_model_opts mo = rl_model_opts_default();
    mo.swa_window = 0;
    assert_int_equal(plan_model_read(RELAIS_SHARED_DIR "/models/tiny-swa.gguf", &mo, &m, err, sizeof err), 0);
    assert_int_equal(m.hp.swa_window, 0); /* the override */
    plan_model_free(&m);

    assert_int_equal(plan_model_read("/nonexistent.gguf", NULL, &m, err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent.gguf"));
    plan_model_free(&m);
    assert_int_equal(plan_model_read(RELAIS_SHARED_DIR "/models/vocab-gpt2.gguf", NULL, &m, err, sizeof err), -1);
    assert_non_null(strstr(err, "vocab-gpt2.gguf: "));
    plan_model_free(&m);
}

/* Random small cases against the exhaustive search. */
static void test_random_against_search(void **state) {
    srand(11);
    for (int round = 0; round < 300; round++) {
        fixture f;
        uint32_t L = 1 + (uint32_t)(rand() % 14), K = 1 + (uint32_t)(rand() % 4);
        setup(&f, L, 0, K, 0, 1);
        f.in.allow_idle = rand() % 3 == 0;
        if (K > L && !f.in.allow_idle)
            K = f.in.n_nodes = L;
        f.hp = make_hp(L, rand() % 2 ? 64 : 0, 1 + (uint32_t)(rand() % 4));
        f.in.head_on_coordinator = rand() % 2;
        f.in.head_bytes = (uint64_t)(rand() % 300) * MiB;
        f.in.reserve = (uint64_t)(rand() % 3) * 16 * MiB;
        for (uint32_t i = 0; i < L; i++)
            f.layer_bytes[i] = (uint64_t)(1 + rand() % 200) * MiB;
        for (uint32_t k = 0; k < K; k++)
            f.nodes[k] = (plan_node){f.names[k], (uint64_t)(rand() % 2000) * MiB, 1e8 * (1 + rand() % 50),
                                     rand() % 3 ? 0 : (rand() % 100) * 1e-3};
        plan *p = make_plan(&f.in);
        double best = search(&f.in, 0, 0);
        if (best < INFINITY) {
            check_optimal(&f.in, p);
        } else {
            assert_false(plan_fits(p));
            assert_non_null(strstr(plan_problem(p), "does not fit"));
        }
        plan_destroy(&p);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proportional_to_speed),
        cmocka_unit_test(test_one_to_four_nodes),
        cmocka_unit_test(test_memory_limits_the_split),
        cmocka_unit_test(test_sliding_layers_count_at_the_window),
        cmocka_unit_test(test_does_not_fit),
        cmocka_unit_test(test_input_errors),
        cmocka_unit_test(test_idle_nodes),
        cmocka_unit_test(test_links),
        cmocka_unit_test(test_fixed_split),
        cmocka_unit_test(test_ministral_8b_shape),
        cmocka_unit_test(test_model_read),
        cmocka_unit_test(test_random_against_search),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
