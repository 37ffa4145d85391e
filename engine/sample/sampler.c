/* Token sampler: turns one step's logits into the next token id.
 *
 * Order of operations (the penalties as llama.cpp applies them, then the
 * truncations on the temperature-scaled distribution as Hugging Face and
 * vLLM do): penalties over the history window, temperature (0 stops here
 * with the argmax), top-k, top-p, min-p, then a draw from what is left.
 *
 * Vocabularies run to 131072 ids, so nothing is ever sorted: a draw does
 * not need its candidates in order, only the right set of them. Top-k is a
 * quickselect; top-p is a quickselect on probability mass (partition, sum
 * the better side, descend into the side holding the cut); min-p is a
 * linear filter. Each is linear in the vocabulary on average. */
#include "sampler.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include "rng.h"

typedef struct {
    int32_t id;
    float l; /* (logit - max logit) / temperature: 0 for the best, -inf for impossible */
    float w; /* exp(l): the unnormalized probability, 1 for the best */
} rl_cand;

struct rl_sampler {
    rl_sampler_params p; /* copy of the caller's parameters */
    uint32_t n_vocab;    /* length of every logits vector */
    rl_rng rng;          /* seeded from p.seed; advances one draw per sampled token */
    rl_cand *cand;       /* (n_vocab) scratch candidate list, rebuilt each call */
    uint32_t *count;     /* (n_vocab) occurrences in the penalty window; all zero between calls */
    int32_t *seen;       /* (n_vocab) distinct ids counted this call, to reset `count` cheaply */
    float *seen_raw;     /* (n_vocab) their logits before the penalties, for rl_sampler_sample_top */
    uint32_t n_seen;     /* ids in seen at the last call */
    float *qmap;         /* (n_vocab) a draft's q by id during rl_sampler_verify; all zero between calls */
};

#define RL_MAX_CANDS 64 /* most candidates rl_sampler_draft_q looks at (a draft's top logits) */

rl_sampler_params rl_sampler_defaults(void) {
    return (rl_sampler_params){
        .temperature = 0.0f,
        .top_k = 0,
        .top_p = 1.0f,
        .min_p = 0.0f,
        .repeat_penalty = 1.0f,
        .repeat_last_n = 64,
        .frequency_penalty = 0.0f,
        .presence_penalty = 0.0f,
        .seed = 0,
    };
}

rl_sampler *rl_sampler_new(const rl_sampler_params *p, uint32_t n_vocab) {
    if (!p || n_vocab == 0)
        return NULL;
    rl_sampler *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->p = *p;
    s->n_vocab = n_vocab;
    rl_rng_seed(&s->rng, p->seed);
    s->cand = malloc(n_vocab * sizeof *s->cand);
    s->count = calloc(n_vocab, sizeof *s->count);
    s->seen = malloc(n_vocab * sizeof *s->seen);
    s->seen_raw = malloc(n_vocab * sizeof *s->seen_raw);
    s->qmap = calloc(n_vocab, sizeof *s->qmap);
    if (!s->cand || !s->count || !s->seen || !s->seen_raw || !s->qmap)
        rl_sampler_destroy(&s);
    return s;
}

void rl_sampler_destroy(rl_sampler **s) {
    if (!s || !*s)
        return;
    free((*s)->cand);
    free((*s)->count);
    free((*s)->seen);
    free((*s)->seen_raw);
    free((*s)->qmap);
    free(*s);
    *s = NULL;
}

/* NaN would poison every comparison and sum; it is treated as impossible. */
static inline float clean(float l) { return isnan(l) ? -INFINITY : l; }

/* The strict total order used everywhere: higher logit first, lower id on ties. */
static inline bool better(float la, int32_t ia, float lb, int32_t ib) { return la > lb || (la == lb && ia < ib); }

static inline void swap_cand(rl_cand *a, rl_cand *b) {
    rl_cand t = *a;
    *a = *b;
    *b = t;
}

/* Partitions a[lo..hi) (at least two elements) around a median-of-three
 * pivot; returns the pivot's final index, better elements before it. */
static size_t partition(rl_cand *a, size_t lo, size_t hi) {
    size_t mid = lo + (hi - lo) / 2, last = hi - 1;
    if (better(a[mid].l, a[mid].id, a[lo].l, a[lo].id))
        swap_cand(&a[mid], &a[lo]);
    if (better(a[last].l, a[last].id, a[lo].l, a[lo].id))
        swap_cand(&a[last], &a[lo]);
    if (better(a[mid].l, a[mid].id, a[last].l, a[last].id))
        swap_cand(&a[mid], &a[last]);
    /* a[last] now holds the median of the three: the pivot */
    rl_cand pv = a[last];
    size_t store = lo;
    for (size_t i = lo; i < last; i++)
        if (better(a[i].l, a[i].id, pv.l, pv.id))
            swap_cand(&a[i], &a[store++]);
    swap_cand(&a[store], &a[last]);
    return store;
}

/* Reorders a[0..n) so that a[0..m) are its m best elements, in no
 * particular order. */
static void select_top(rl_cand *a, size_t n, size_t m) {
    size_t lo = 0, hi = n;
    if (m == 0 || m >= n)
        return;
    while (hi - lo > 1) {
        size_t p = partition(a, lo, hi);
        if (m == p || m == p + 1)
            return;
        if (m < p)
            hi = p;
        else
            lo = p + 1;
    }
}

/* Reorders a[0..n) so that its r best elements come first, r being the
 * fewest whose weights sum to at least `target`; returns r. Invariant: the
 * elements before lo are the lo best, weigh acc < target, and r is in
 * (lo, hi]. */
static size_t select_mass(rl_cand *a, size_t n, double target) {
    size_t lo = 0, hi = n;
    double acc = 0.0;
    while (hi - lo > 1) {
        size_t p = partition(a, lo, hi);
        double left = 0.0;
        for (size_t i = lo; i < p; i++)
            left += a[i].w;
        if (acc + left >= target) {
            hi = p;
            continue;
        }
        acc += left + a[p].w;
        if (acc >= target)
            return p + 1;
        lo = p + 1;
    }
    return hi;
}

static bool penalties_on(const rl_sampler_params *p) {
    return p->repeat_penalty != 1.0f || p->frequency_penalty != 0.0f || p->presence_penalty != 0.0f;
}

/* The ids of history the penalties look at (the window ending there). */
static const int32_t *penalty_window(const rl_sampler_params *p, const int32_t *history, size_t n_history, size_t *n) {
    *n = n_history;
    if (!history || p->repeat_last_n == 0)
        *n = 0;
    else if (p->repeat_last_n > 0 && (size_t)p->repeat_last_n < n_history)
        *n = (size_t)p->repeat_last_n;
    return history ? history + (n_history - *n) : NULL;
}

/* A logit seen count (> 0) times in the window, penalised. */
static float penalised(const rl_sampler_params *p, float l, uint32_t count) {
    if (p->repeat_penalty != 1.0f)
        l = l > 0.0f ? l / p->repeat_penalty : l * p->repeat_penalty;
    return l - ((float)count * p->frequency_penalty + p->presence_penalty);
}

/* Counts the ids of the penalty window and adjusts their logits once each. */
static void apply_penalties(rl_sampler *s, float *logits, const int32_t *history, size_t n_history) {
    const rl_sampler_params *p = &s->p;
    s->n_seen = 0;
    if (!penalties_on(p))
        return;
    size_t n;
    const int32_t *h = penalty_window(p, history, n_history, &n);
    uint32_t n_seen = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = h[i];
        if (id < 0 || (uint32_t)id >= s->n_vocab)
            continue;
        if (s->count[id]++ == 0)
            s->seen[n_seen++] = id;
    }
    for (uint32_t j = 0; j < n_seen; j++) {
        int32_t id = s->seen[j];
        s->seen_raw[j] = logits[id];
        logits[id] = penalised(p, logits[id], s->count[id]);
        s->count[id] = 0;
    }
    s->n_seen = n_seen;
}

static int32_t argmax(const float *logits, uint32_t n) {
    int32_t best = 0;
    float bl = -INFINITY;
    for (uint32_t i = 0; i < n; i++)
        if (logits[i] > bl) {
            bl = logits[i];
            best = (int32_t)i;
        }
    return best;
}

static double total_weight(const rl_cand *cand, size_t n) {
    double total = 0.0;
    for (size_t i = 0; i < n; i++)
        total += cand[i].w;
    return total;
}

/* The candidate a uniform u in [0, 1) lands on, by weight. */
static int32_t draw(double u, const rl_cand *cand, size_t n) {
    double cum = 0.0;
    u *= total_weight(cand, n);
    for (size_t i = 0; i < n; i++) {
        cum += cand[i].w;
        if (u < cum)
            return cand[i].id;
    }
    return cand[n - 1].id; /* u landed in the rounding slack of the last sum */
}

void rl_sampler_skip(rl_sampler *s, uint64_t n) {
    if (s->p.temperature > 0.0f)
        for (uint64_t i = 0; i < n; i++)
            rl_rng_next(&s->rng);
}

/* Top-k, top-p and min-p over cand[0..n) (temperature-scaled, w = p_i /
 * p_max): reorders it so the kept ones come first; returns how many. */
static size_t truncate_cands(const rl_sampler_params *p, rl_cand *cand, size_t n) {
    if (p->top_k > 0 && (size_t)p->top_k < n) {
        select_top(cand, n, (size_t)p->top_k);
        n = (size_t)p->top_k;
    }
    if (p->top_p < 1.0f)
        n = select_mass(cand, n, (double)p->top_p * total_weight(cand, n));
    if (p->min_p > 0.0f) {
        /* w is p_i / p_max; the best (w = 1) always stays */
        float thr = p->min_p < 1.0f ? p->min_p : 1.0f;
        size_t kept = 0;
        for (size_t i = 0; i < n; i++)
            if (cand[i].w >= thr)
                cand[kept++] = cand[i];
        n = kept;
    }
    return n;
}

/* The penalties, then the distribution a sampling draw takes from: its
 * candidates in s->cand[0..*n) (weights unnormalised). Returns -1 when
 * there is one to draw from; else the id to return without a draw (greedy:
 * the argmax, no draw spent; an all -inf row: the argmax, a draw spent). */
static int32_t distribution(rl_sampler *s, float *logits, const int32_t *history, size_t n_history, size_t *n) {
    const rl_sampler_params *p = &s->p;
    apply_penalties(s, logits, history, n_history);
    int32_t best = argmax(logits, s->n_vocab);
    float max = logits[best];
    if (!(p->temperature > 0.0f))
        return best;
    if (!isfinite(max)) { /* nothing to draw from; the draw is spent all the same (rl_sampler_skip) */
        rl_rng_next(&s->rng);
        return best;
    }
    for (size_t i = 0; i < s->n_vocab; i++) {
        float l = (clean(logits[i]) - max) / p->temperature;
        s->cand[i] = (rl_cand){(int32_t)i, l, expf(l)};
    }
    *n = truncate_cands(p, s->cand, s->n_vocab);
    return -1;
}

int32_t rl_sampler_sample(rl_sampler *s, float *logits, const int32_t *history, size_t n_history) {
    size_t n;
    const int32_t id = distribution(s, logits, history, n_history, &n);
    return id >= 0 ? id : draw(rl_rng_uniform(&s->rng), s->cand, n);
}

/* The residual draw of a rejection: normalise(max(0, p - q)) over the
 * candidates (q in s->qmap), with u; p itself if rounding left nothing. */
static int32_t draw_residual(rl_sampler *s, size_t n, double total, double u) {
    double left = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double r = s->cand[i].w / total - s->qmap[s->cand[i].id];
        left += r > 0.0 ? r : 0.0;
    }
    if (!(left > 0.0))
        return draw(u, s->cand, n);
    for (size_t i = 0; i < n; i++) {
        const double r = s->cand[i].w / total - s->qmap[s->cand[i].id];
        s->cand[i].w = r > 0.0 ? (float)r : 0.0f;
    }
    return draw(u, s->cand, n);
}

int32_t rl_sampler_verify(rl_sampler *s, float *logits, const int32_t *history, size_t n_history, int32_t x,
                          const int32_t *q_ids, const float *q_p, uint32_t n_q) {
    double qx = 0.0;
    for (uint32_t j = 0; j < n_q; j++)
        qx += q_ids[j] == x ? q_p[j] : 0.0f;
    if (!(s->p.temperature > 0.0f) || !(qx > 0.0) || x < 0 || (uint32_t)x >= s->n_vocab)
        return rl_sampler_sample(s, logits, history, n_history);
    size_t n;
    const int32_t id = distribution(s, logits, history, n_history, &n);
    if (id >= 0)
        return id;
    const double total = total_weight(s->cand, n);
    double px = 0.0;
    for (size_t i = 0; i < n; i++)
        px += s->cand[i].id == x ? s->cand[i].w / total : 0.0;
    const double u = rl_rng_uniform(&s->rng), a = px / qx;
    if (u < a)
        return x;
    /* rejected: u given u >= a is uniform on [a, 1), so it rescales to a
     * fresh uniform for the residual draw (one draw per position, as ever) */
    for (uint32_t j = 0; j < n_q; j++)
        if (q_ids[j] >= 0 && (uint32_t)q_ids[j] < s->n_vocab)
            s->qmap[q_ids[j]] += q_p[j];
    const int32_t r = draw_residual(s, n, total, (u - a) / (1.0 - a));
    for (uint32_t j = 0; j < n_q; j++)
        if (q_ids[j] >= 0 && (uint32_t)q_ids[j] < s->n_vocab)
            s->qmap[q_ids[j]] = 0.0f;
    return r;
}

int32_t rl_sampler_draft_q(const rl_sampler_params *p, const int32_t *ids, const float *logits, uint32_t n,
                           const int32_t *history, size_t n_history, double u_draw, rl_qdist *q) {
    rl_cand cand[RL_MAX_CANDS];
    n = n < RL_MAX_CANDS ? n : RL_MAX_CANDS;
    size_t n_win = 0;
    const int32_t *win = penalties_on(p) ? penalty_window(p, history, n_history, &n_win) : NULL;
    float max = -INFINITY;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t count = 0;
        for (size_t j = 0; j < n_win; j++)
            count += win[j] == ids[i];
        const float l = clean(logits[i]);
        cand[i] = (rl_cand){ids[i], count ? penalised(p, l, count) : l, 0.0f};
        max = cand[i].l > max ? cand[i].l : max;
    }
    for (uint32_t i = 0; i < n; i++) {
        cand[i].l = isfinite(max) ? (cand[i].l - max) / p->temperature : (i ? -INFINITY : 0.0f);
        cand[i].w = expf(cand[i].l);
    }
    size_t kept = truncate_cands(p, cand, n);
    if (kept > RL_Q_MAX) { /* the best RL_Q_MAX of what is left */
        select_top(cand, kept, RL_Q_MAX);
        kept = RL_Q_MAX;
    }
    size_t pos = 0; /* impossible ids leave q, so the draw lands on one it holds */
    for (size_t i = 0; i < kept; i++)
        if (cand[i].w > 0.0f)
            cand[pos++] = cand[i];
    const double total = total_weight(cand, pos);
    for (size_t i = 0; i < pos; i++)
        q->ids[i] = cand[i].id, q->p[i] = (float)(cand[i].w / total);
    q->n = (uint32_t)pos;
    q->token = draw(u_draw, cand, pos);
    return q->token;
}

int32_t rl_sampler_sample_top(rl_sampler *s, float *logits, const int32_t *history, size_t n_history, uint32_t k,
                              int32_t *ids, float *vals, float *lse, float *chosen) {
    *lse = *chosen = 0.0f;
    if (k == 0)
        return rl_sampler_sample(s, logits, history, n_history);
    rl_top_logits(logits, s->n_vocab, k, ids, vals);
    *lse = rl_logsumexp(logits, s->n_vocab);
    const int32_t id = rl_sampler_sample(s, logits, history, n_history);
    *chosen = logits[id];
    for (uint32_t j = 0; j < s->n_seen; j++) /* the penalties edited it: its logit as it came */
        if (s->seen[j] == id)
            *chosen = s->seen_raw[j];
    return id;
}

void rl_sampler_mask(float *logits, uint32_t n_vocab, const uint8_t *mask) {
    if (mask)
        for (uint32_t i = 0; i < n_vocab; i++)
            if (!((mask[i >> 3] >> (i & 7)) & 1u))
                logits[i] = -INFINITY;
}

float rl_logsumexp(const float *x, uint32_t n) {
    float max = -INFINITY;
    for (uint32_t i = 0; i < n; i++)
        max = clean(x[i]) > max ? clean(x[i]) : max;
    if (!isfinite(max))
        return max;
    double sum = 0;
    for (uint32_t i = 0; i < n; i++)
        sum += exp((double)clean(x[i]) - max);
    return max + (float)log(sum);
}

/* rl_top_logits keeps its k best in a heap laid out in the output arrays,
 * the worst kept element at the root, so the scan never allocates. */
static void heap_sift(int32_t *ids, float *vals, uint32_t n, uint32_t i) {
    for (;;) {
        uint32_t worst = i, l = 2 * i + 1, r = l + 1;
        if (l < n && better(clean(vals[worst]), ids[worst], clean(vals[l]), ids[l]))
            worst = l;
        if (r < n && better(clean(vals[worst]), ids[worst], clean(vals[r]), ids[r]))
            worst = r;
        if (worst == i)
            return;
        int32_t ti = ids[i];
        float tv = vals[i];
        ids[i] = ids[worst];
        vals[i] = vals[worst];
        ids[worst] = ti;
        vals[worst] = tv;
        i = worst;
    }
}

void rl_top_logits(const float *logits, uint32_t n_vocab, uint32_t k, int32_t *ids, float *vals) {
    uint32_t kk = k < n_vocab ? k : n_vocab;
    for (uint32_t i = kk; i < k; i++) {
        ids[i] = -1;
        vals[i] = -INFINITY;
    }
    if (kk == 0)
        return;
    for (uint32_t i = 0; i < kk; i++) {
        ids[i] = (int32_t)i;
        vals[i] = logits[i];
    }
    for (uint32_t i = kk / 2; i-- > 0;)
        heap_sift(ids, vals, kk, i);
    for (uint32_t i = kk; i < n_vocab; i++)
        if (better(clean(logits[i]), (int32_t)i, clean(vals[0]), ids[0])) {
            ids[0] = (int32_t)i;
            vals[0] = logits[i];
            heap_sift(ids, vals, kk, 0);
        }
    /* heapsort: moving the root (worst) to the end each time leaves best first */
    for (uint32_t end = kk; end-- > 1;) {
        int32_t ti = ids[0];
        float tv = vals[0];
        ids[0] = ids[end];
        vals[0] = vals[end];
        ids[end] = ti;
        vals[end] = tv;
        heap_sift(ids, vals, end, 0);
    }
}
