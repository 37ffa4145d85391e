/* Layer planner (see planner.h). Two dynamic programs share one shape: the
 * rows are nodes in pipeline order, the columns the number of layers given
 * out so far, and a step gives node k the layers [i, j). The first finds the
 * smallest achievable worst per-node cost; the second, among the splits that
 * keep every node within that worst cost, minimizes a sum, and remembers its
 * choices so the split can be read back. */
#include "planner.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct plan {
    plan_stage *stages; /* n_stages, in pipeline order */
    uint32_t n_stages;
    bool fits;           /* every stage's need is within its node's free RAM */
    char *problem;       /* why it does not fit; NULL when it fits */
    uint64_t total_need; /* sum of the stages' need */
    uint64_t total_free; /* sum of the nodes' free RAM */
};

plan_input plan_input_default(void) {
    return (plan_input){.n_sessions = 1, .reserve = PLAN_DEFAULT_RESERVE, .kv_type = RL_KV_TYPE_DEFAULT};
}

/* Prefix sums, so the cost of any range is O(1). */
typedef struct {
    const plan_input *in;
    uint32_t n_layer;
    uint64_t *wsum;  /* (n_layer + 1) weight bytes of layers [0, j) */
    uint64_t *kvsum; /* (n_layer + 1) KV bytes of layers [0, j), all sessions */
} costs;

static bool range_has_head(const costs *c, uint32_t i, uint32_t j) {
    return !c->in->head_on_coordinator && j == c->n_layer && i < j;
}

/* Bytes streamed per token by node work [i, j): its layers, and the output
 * matrix when it runs the head. */
static uint64_t range_stream(const costs *c, uint32_t i, uint32_t j) {
    return c->wsum[j] - c->wsum[i] + (range_has_head(c, i, j) ? c->in->head_bytes : 0);
}

static uint64_t range_need(const costs *c, uint32_t i, uint32_t j) {
    if (i == j)
        return 0;
    return range_stream(c, i, j) + c->kvsum[j] - c->kvsum[i] + c->in->reserve;
}

/* The objectives. Each is a per-node cost of giving node k layers [i, j);
 * INFINITY forbids the choice. */
typedef double (*range_cost)(const costs *c, uint32_t k, uint32_t i, uint32_t j);

/* Node k's time per token with layers [i, j): streaming its bytes, and
 * the hop into it when it has layers (an idle node is skipped by the
 * pipeline, its link with it). */
static double range_time(const costs *c, uint32_t k, uint32_t i, uint32_t j) {
    const plan_node *n = &c->in->nodes[k];
    return (double)range_stream(c, i, j) / n->speed + (i < j ? n->link_s : 0);
}

static double cost_time_if_fits(const costs *c, uint32_t k, uint32_t i, uint32_t j) {
    if (range_need(c, i, j) > c->in->nodes[k].free_ram)
        return INFINITY;
    return range_time(c, k, i, j);
}

/* sum(time^2 * speed), which is sum(bytes^2 / speed) without links: smallest
 * when the times are equal, so bytes go in proportion to speed, less what
 * a node's link takes. */
static double cost_balance(const costs *c, uint32_t k, uint32_t i, uint32_t j) {
    double b = (double)range_stream(c, i, j);
    if (c->in->nodes[k].link_s == 0 || i == j)
        return b * b / c->in->nodes[k].speed;
    double t = range_time(c, k, i, j);
    return t * t * c->in->nodes[k].speed;
}

static double cost_shortfall(const costs *c, uint32_t k, uint32_t i, uint32_t j) {
    return (double)range_need(c, i, j) - (double)c->in->nodes[k].free_ram;
}

static double cost_excess(const costs *c, uint32_t k, uint32_t i, uint32_t j) {
    double s = cost_shortfall(c, k, i, j);
    return s > 0 ? s : 0;
}

/* min over splits of max over nodes of worst(); INFINITY when no split has a
 * finite worst cost. rows: 2 * (n_layer + 1) doubles of scratch. */
static double dp_bottleneck(const costs *c, range_cost worst, double *rows) {
    uint32_t L = c->n_layer;
    double *prev = rows, *cur = rows + L + 1;
    for (uint32_t j = 0; j <= L; j++)
        prev[j] = j ? INFINITY : -INFINITY;
    for (uint32_t k = 0; k < c->in->n_nodes; k++) {
        for (uint32_t j = 0; j <= L; j++) {
            double best = INFINITY;
            uint32_t i_end = c->in->allow_idle ? j + 1 : j;
            for (uint32_t i = 0; i < i_end; i++) {
                if (prev[i] == INFINITY)
                    continue;
                double v = worst(c, k, i, j);
                v = v > prev[i] ? v : prev[i];
                if (v < best)
                    best = v;
            }
            cur[j] = best;
        }
        double *t = prev;
        prev = cur;
        cur = t;
    }
    return prev[L];
}

/* Among the splits whose every node has worst() <= limit, the one of the
 * smallest sum of add(); its first layers go to cuts (n_nodes + 1 entries,
 * cuts[n_nodes] = n_layer). choice: n_nodes * (n_layer + 1) scratch. */
static void dp_min_sum(const costs *c, range_cost worst, double limit, range_cost add, double *rows, uint32_t *choice,
                       uint32_t *cuts) {
    uint32_t L = c->n_layer, K = c->in->n_nodes;
    double *prev = rows, *cur = rows + L + 1;
    double slack = limit + fabs(limit) * 1e-9; /* the same sums, possibly rounded differently */
    for (uint32_t j = 0; j <= L; j++)
        prev[j] = j ? INFINITY : 0;
    for (uint32_t k = 0; k < K; k++) {
        for (uint32_t j = 0; j <= L; j++) {
            double best = INFINITY;
            uint32_t arg = j, i_end = c->in->allow_idle ? j + 1 : j;
            for (uint32_t i = 0; i < i_end; i++) {
                if (prev[i] == INFINITY || worst(c, k, i, j) > slack)
                    continue;
                double v = prev[i] + add(c, k, i, j);
                if (v < best) {
                    best = v;
                    arg = i;
                }
            }
            cur[j] = best;
            choice[(size_t)k * (L + 1) + j] = arg;
        }
        double *t = prev;
        prev = cur;
        cur = t;
    }
    cuts[K] = L;
    for (uint32_t k = K; k-- > 0;)
        cuts[k] = choice[(size_t)k * (L + 1) + cuts[k + 1]];
}

static void costs_free(costs *c) {
    free(c->wsum);
    free(c->kvsum);
}

static int costs_init(costs *c, const plan_input *in) {
    c->in = in;
    c->n_layer = in->hp->n_layer;
    c->wsum = calloc(c->n_layer + 1, sizeof *c->wsum);
    c->kvsum = calloc(c->n_layer + 1, sizeof *c->kvsum);
    if (!c->wsum || !c->kvsum) {
        costs_free(c);
        return -1;
    }
    for (uint32_t j = 1; j <= c->n_layer; j++) {
        c->wsum[j] = c->wsum[j - 1] + in->layer_bytes[j - 1];
        c->kvsum[j] = rl_kv_bytes_for(in->hp, 0, j, in->n_ctx, in->kv_type) * in->n_sessions;
    }
    return 0;
}

static void range_text(uint32_t l0, uint32_t l1, char *buf, size_t len) {
    if (l0 == l1)
        snprintf(buf, len, "-");
    else if (l1 == l0 + 1)
        snprintf(buf, len, "%u", l0);
    else
        snprintf(buf, len, "%u-%u", l0, l1 - 1);
}

/* Checks what a caller could get wrong; 0, or -1 with a message. */
static int check_input(const plan_input *in, char *err, size_t errlen) {
    if (!in->hp || !in->layer_bytes || !in->nodes || in->hp->n_layer == 0 || in->hp->n_layer > RL_MAX_LAYERS) {
        snprintf(err, errlen, "plan: no model or no nodes");
        return -1;
    }
    if (in->n_nodes == 0 || in->n_nodes > PLAN_MAX_NODES || in->n_ctx == 0 || in->n_sessions == 0) {
        snprintf(err, errlen, "plan: %u nodes (1..%d), context %u and %u sessions (both >= 1)", in->n_nodes,
                 PLAN_MAX_NODES, in->n_ctx, in->n_sessions);
        return -1;
    }
    for (uint32_t k = 0; k < in->n_nodes; k++)
        if (!(in->nodes[k].speed > 0) || !isfinite(in->nodes[k].speed)) {
            snprintf(err, errlen, "plan: node %s has no measured speed", in->nodes[k].name);
            return -1;
        } else if (!(in->nodes[k].link_s >= 0) || !isfinite(in->nodes[k].link_s)) {
            snprintf(err, errlen, "plan: node %s has a link time that is not a number of seconds", in->nodes[k].name);
            return -1;
        }
    if (!in->allow_idle && in->n_nodes > in->hp->n_layer) {
        snprintf(err, errlen,
                 "%u nodes for a model of %u layers: each node needs at least one layer (allow idle "
                 "nodes, or list fewer nodes)",
                 in->n_nodes, in->hp->n_layer);
        return -1;
    }
    for (uint32_t k = 0; in->ranges && k < in->n_nodes; k++) {
        const plan_range *r = &in->ranges[k];
        uint32_t want = k ? in->ranges[k - 1].l1 : 0;
        if (r->l0 != want || r->l1 < r->l0 || r->l1 > in->hp->n_layer ||
            (k == in->n_nodes - 1 && r->l1 != in->hp->n_layer)) {
            snprintf(err, errlen, "plan: the fixed split does not cover layers 0-%u in order", in->hp->n_layer - 1);
            return -1;
        }
        if (r->l0 == r->l1 && !in->allow_idle) {
            snprintf(err, errlen, "node %s gets no layers (allow idle nodes to plan that)", in->nodes[k].name);
            return -1;
        }
    }
    return 0;
}

/* The split: fixed by the caller, else the best that fits, else the one of
 * the smallest worst shortfall. cuts: n_nodes + 1 first layers. */
static int choose_split(const costs *c, uint32_t *cuts) {
    const plan_input *in = c->in;
    uint32_t K = in->n_nodes, L = c->n_layer;
    if (in->ranges) {
        for (uint32_t k = 0; k < K; k++)
            cuts[k] = in->ranges[k].l0;
        cuts[K] = L;
        return 0;
    }
    double *rows = malloc(2 * (L + 1) * sizeof *rows);
    uint32_t *choice = malloc((size_t)K * (L + 1) * sizeof *choice);
    if (!rows || !choice) {
        free(rows);
        free(choice);
        return -1;
    }
    double t = dp_bottleneck(c, cost_time_if_fits, rows);
    if (t < INFINITY)
        dp_min_sum(c, cost_time_if_fits, t, cost_balance, rows, choice, cuts);
    else
        dp_min_sum(c, cost_shortfall, dp_bottleneck(c, cost_shortfall, rows), cost_excess, rows, choice, cuts);
    free(rows);
    free(choice);
    return 0;
}

static void fill_stages(plan *p, const costs *c, const uint32_t *cuts) {
    const plan_input *in = c->in;
    double total_time = 0;
    p->fits = true;
    for (uint32_t k = 0; k < in->n_nodes; k++) {
        plan_stage *s = &p->stages[k];
        uint32_t i = cuts[k], j = cuts[k + 1];
        s->l0 = i;
        s->l1 = j;
        s->head = range_has_head(c, i, j);
        s->weight_bytes = c->wsum[j] - c->wsum[i];
        s->kv_bytes = rl_kv_bytes_for(in->hp, i, j, in->n_ctx, in->kv_type) * in->n_sessions;
        s->head_bytes = s->head ? in->head_bytes : 0;
        s->reserve_bytes = i < j ? in->reserve : 0;
        s->need_bytes = s->weight_bytes + s->kv_bytes + s->head_bytes + s->reserve_bytes;
        s->free_bytes = in->nodes[k].free_ram;
        s->time_s = range_time(c, k, i, j);
        s->link_s = i < j ? in->nodes[k].link_s : 0;
        total_time += s->time_s;
        p->total_need += s->need_bytes;
        p->total_free += s->free_bytes;
        p->fits &= s->need_bytes <= s->free_bytes;
    }
    for (uint32_t k = 0; k < in->n_nodes; k++)
        p->stages[k].share = total_time > 0 ? p->stages[k].time_s / total_time : 0;
}

#define MIB(x) ((double)(x) / 1048576.0)

/* The problem text: the totals, then each node that is short. */
static int describe_problem(plan *p, const plan_input *in) {
    size_t len;
    FILE *f = open_memstream(&p->problem, &len);
    if (!f)
        return -1;
    if (p->total_need > p->total_free)
        fprintf(f,
                "the model does not fit: it needs %.1f MiB and the %u nodes have %.1f MiB free "
                "(%.1f MiB short in all)\n",
                MIB(p->total_need), in->n_nodes, MIB(p->total_free), MIB(p->total_need - p->total_free));
    else
        fprintf(f, "the model does not fit: it needs %.1f MiB of the nodes' %.1f MiB free, but %s\n",
                MIB(p->total_need), MIB(p->total_free),
                in->ranges ? "the given split overloads a node" : "no split into contiguous ranges fits every node");
    for (uint32_t k = 0; k < in->n_nodes; k++) {
        const plan_stage *s = &p->stages[k];
        if (s->need_bytes <= s->free_bytes)
            continue;
        char layers[32];
        range_text(s->l0, s->l1, layers, sizeof layers);
        fprintf(f,
                "  %s (layers %s%s): needs %.1f MiB (weights %.1f, KV %.1f, head %.1f, reserve %.1f), "
                "has %.1f MiB free: %.1f MiB short\n",
                in->nodes[k].name, layers, s->head ? " + head" : "", MIB(s->need_bytes), MIB(s->weight_bytes),
                MIB(s->kv_bytes), MIB(s->head_bytes), MIB(s->reserve_bytes), MIB(s->free_bytes),
                MIB(s->need_bytes - s->free_bytes));
    }
    /* the smallest KV type, when the heads allow it and it is not the one planned */
    const rl_kv_type q8 = {RL_Q8_0, RL_Q8_0};
    char why[160];
    if ((in->kv_type.k != RL_Q8_0 || in->kv_type.v != RL_Q8_0) && rl_kv_type_check(q8, in->hp, why, sizeof why) == 0)
        fprintf(f, "  with --kv-type q8_0 the KV would take %.1f MiB in all instead of %.1f MiB\n",
                MIB(rl_kv_bytes_for(in->hp, 0, in->hp->n_layer, in->n_ctx, q8) * in->n_sessions),
                MIB(rl_kv_bytes_for(in->hp, 0, in->hp->n_layer, in->n_ctx, in->kv_type) * in->n_sessions));
    return fclose(f) ? -1 : 0;
}

plan *plan_new(const plan_input *in, char *err, size_t errlen) {
    if (check_input(in, err, errlen))
        return NULL;
    costs c;
    plan *p = calloc(1, sizeof *p);
    uint32_t *cuts = calloc(in->n_nodes + 1, sizeof *cuts);
    if (p)
        p->stages = calloc(in->n_nodes, sizeof *p->stages);
    int rc = p && p->stages && cuts ? costs_init(&c, in) : -1;
    if (rc == 0) {
        p->n_stages = in->n_nodes;
        rc = choose_split(&c, cuts);
        if (rc == 0)
            fill_stages(p, &c, cuts);
        if (rc == 0 && !p->fits)
            rc = describe_problem(p, in);
        costs_free(&c);
    }
    free(cuts);
    if (rc) {
        snprintf(err, errlen, "plan: out of memory");
        plan_destroy(&p);
    }
    return p;
}

void plan_destroy(plan **p) {
    if (!p || !*p)
        return;
    free((*p)->stages);
    free((*p)->problem);
    free(*p);
    *p = NULL;
}

bool plan_fits(const plan *p) { return p->fits; }
const char *plan_problem(const plan *p) { return p->problem; }
uint32_t plan_n_stages(const plan *p) { return p->n_stages; }
uint64_t plan_total_need(const plan *p) { return p->total_need; }
uint64_t plan_total_free(const plan *p) { return p->total_free; }

const plan_stage *plan_stage_at(const plan *p, uint32_t i) { return i < p->n_stages ? &p->stages[i] : NULL; }

void plan_format_ranges(const plan *p, char *buf, size_t len) {
    size_t n = 0;
    buf[0] = 0;
    for (uint32_t k = 0; k < p->n_stages && n < len; k++) {
        char r[32];
        range_text(p->stages[k].l0, p->stages[k].l1, r, sizeof r);
        int w = snprintf(buf + n, len - n, "%s%s", k ? "," : "", r);
        n += w > 0 ? (size_t)w : 0;
    }
}

void plan_stage_layers(const plan_stage *s, char *buf, size_t len) { range_text(s->l0, s->l1, buf, len); }

/* A layer number of at most 6 digits at *s; advances *s. -1 if none. */
static int64_t parse_layer(const char **s) {
    int64_t v = 0;
    int digits = 0;
    while (**s >= '0' && **s <= '9' && digits < 7) {
        v = v * 10 + (**s - '0');
        (*s)++;
        digits++;
    }
    return digits == 0 || digits > 6 ? -1 : v;
}

/* "layer 12 is" or "layers 12-14 are", for the layers [a, b). */
static void span_text(uint32_t a, uint32_t b, char *buf, size_t len) {
    if (b == a + 1)
        snprintf(buf, len, "layer %u is", a);
    else
        snprintf(buf, len, "layers %u-%u are", a, b - 1);
}

/* One entry "A-B", "A" or "-" of length n; *next is the first layer it must
 * start at. */
static int parse_entry(const char *e, size_t n, uint32_t n_layer, uint32_t *next, const char *prev, size_t prev_n,
                       plan_range *out, char *err, size_t errlen) {
    if (n == 1 && e[0] == '-') {
        *out = (plan_range){*next, *next};
        return 0;
    }
    const char *s = e;
    int64_t a = parse_layer(&s), b = a;
    if (a >= 0 && s < e + n && *s == '-') {
        s++;
        b = parse_layer(&s);
    }
    if (a < 0 || b < 0 || s != e + n) {
        snprintf(err, errlen, "'%.*s' is not a layer range (A-B, A, or - for none)", (int)n, e);
        return -1;
    }
    if (b < a) {
        snprintf(err, errlen, "range %.*s runs backwards", (int)n, e);
        return -1;
    }
    if (b >= n_layer) {
        snprintf(err, errlen, "range %.*s is outside the model's layers 0-%u", (int)n, e, n_layer - 1);
        return -1;
    }
    char span[48];
    if (a < *next) {
        span_text((uint32_t)a, b + 1 < *next ? (uint32_t)b + 1 : *next, span, sizeof span);
        snprintf(err, errlen, "ranges %.*s and %.*s overlap: %s in both", (int)prev_n, prev, (int)n, e, span);
        return -1;
    }
    if (a > *next) {
        span_text(*next, (uint32_t)a, span, sizeof span);
        snprintf(err, errlen, "%s in no range", span);
        return -1;
    }
    *out = (plan_range){(uint32_t)a, (uint32_t)b + 1};
    *next = (uint32_t)b + 1;
    return 0;
}

int plan_parse_ranges(const char *spec, uint32_t n_layer, uint32_t n_nodes, plan_range *out, char *err, size_t errlen) {
    uint32_t count = 1;
    for (const char *s = spec; *s; s++)
        count += *s == ',';
    if (count != n_nodes) {
        snprintf(err, errlen, "%u range%s for %u node%s: give one range per node", count, count > 1 ? "s" : "", n_nodes,
                 n_nodes > 1 ? "s" : "");
        return -1;
    }
    uint32_t next = 0;
    const char *e = spec, *prev = "", *comma;
    size_t prev_n = 0;
    for (uint32_t k = 0; k < count; k++, e = comma + 1) {
        comma = strchr(e, ',');
        if (!comma)
            comma = e + strlen(e);
        size_t n = (size_t)(comma - e);
        if (parse_entry(e, n, n_layer, &next, prev, prev_n, &out[k], err, errlen))
            return -1;
        if (out[k].l0 < out[k].l1) {
            prev = e;
            prev_n = n;
        }
    }
    if (next < n_layer) {
        char span[48];
        span_text(next, n_layer, span, sizeof span);
        snprintf(err, errlen, "%s in no range (the model has %u layers)", span, n_layer);
        return -1;
    }
    return 0;
}

void plan_costs_from_gguf(const gguf_file *f, const rl_hparams *hp, uint64_t *layer_bytes, uint64_t *head_bytes) {
    for (uint32_t il = 0; il < hp->n_layer; il++)
        layer_bytes[il] = rl_layer_file_bytes(f, il);
    const gguf_tensor *norm = gguf_find_tensor(f, "output_norm.weight");
    const gguf_tensor *out = gguf_find_tensor(f, hp->tied_output ? "token_embd.weight" : "output.weight");
    *head_bytes = (norm ? norm->nbytes : 0) + (out ? out->nbytes : 0);
}

int plan_model_read(const char *path, const rl_model_opts *mo, plan_model *m, char *err, size_t errlen) {
    m->layer_bytes = NULL;
    gguf_file *f = gguf_open(path, err, errlen);
    if (!f)
        return -1;
    const rl_model_opts dflt = rl_model_opts_default();
    char why[400];
    int rc = -1;
    if (rl_hparams_read(f, mo ? mo : &dflt, &m->hp, why, sizeof why))
        snprintf(err, errlen, "%s: %s", path, why);
    else if (!(m->layer_bytes = malloc(m->hp.n_layer * sizeof *m->layer_bytes)))
        snprintf(err, errlen, "out of memory");
    else
        rc = 0;
    if (rc == 0)
        plan_costs_from_gguf(f, &m->hp, m->layer_bytes, &m->head_bytes);
    gguf_close(&f);
    return rc;
}

void plan_model_free(plan_model *m) {
    free(m->layer_bytes);
    m->layer_bytes = NULL;
}
