/* Per-session KV cache over a layer range: one K and one V buffer per layer
 * (rows of the cache's K and V types), full layers sized to the context,
 * sliding layers to their window, used as a ring (slot = position %
 * capacity). A full layer's ring never wraps because its capacity is the
 * context, so one indexing rule serves both kinds.
 *
 * Each buffer is head-major: KV head h's ring, cap rows of head_dim
 * elements, then head h+1's. The attention walks one head over thousands of
 * positions; with the heads of a position side by side that walk read a few
 * hundred bytes out of every 2 KiB, a page every other position, which the
 * prefetchers cannot follow (decode at depth 4096 spent most of its
 * attention waiting on those loads). */
#include "kv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "quant.h"
#include "rng.h"

typedef struct {
    char *k;       /* (cap, k_row) bytes */
    char *v;       /* (cap, v_row) bytes */
    uint32_t cap;  /* slots: n_ctx for full layers, min(W + RL_KV_SLACK, n_ctx) for sliding ones */
    uint32_t span; /* positions a query sees back: n_ctx, or min(W, n_ctx) */
} kv_layer;

struct rl_kv {
    uint32_t l0, l1; /* absolute layer range */
    uint32_t n_ctx;  /* positions this session may reach */
    uint32_t kv_dim; /* n_head_kv * head_dim */
    uint32_t n_head_kv;
    rl_kv_type type;
    size_t k_row, v_row;   /* bytes of one position's K and V row (all heads) */
    size_t k_head, v_head; /* bytes of one head's row */
    uint32_t len;          /* positions written: 0..len-1 */
    size_t bytes;          /* allocated K+V bytes */
    kv_layer *layers;      /* (l1 - l0) */
};

static uint32_t layer_span(const rl_hparams *hp, uint32_t il, uint32_t n_ctx) {
    if (hp->sliding[il] && hp->swa_window > 0 && hp->swa_window < n_ctx)
        return hp->swa_window;
    return n_ctx;
}

/* A sliding ring keeps RL_KV_SLACK slots beyond its window, so that taking
 * back that many positions (a rejected draft) never needs an overwritten one. */
static uint32_t layer_cap(const rl_hparams *hp, uint32_t il, uint32_t n_ctx) {
    const uint32_t span = layer_span(hp, il, n_ctx);
    return span < n_ctx && n_ctx - span > RL_KV_SLACK ? span + RL_KV_SLACK : n_ctx;
}

static bool kv_dtype_ok(rl_dtype t) { return t == RL_F32 || t == RL_F16 || t == RL_Q8_0; }

static int parse_one(const char *s, size_t n, rl_dtype *t) {
    static const rl_dtype ok[] = {RL_F32, RL_F16, RL_Q8_0};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        const char *name = rl_dtype_name(ok[i]);
        if (strlen(name) == n && strncasecmp(s, name, n) == 0) {
            *t = ok[i];
            return 0;
        }
    }
    return -1;
}

int rl_kv_type_parse(const char *s, rl_kv_type *t, char *err, size_t errlen) {
    const char *comma = s ? strchr(s, ',') : NULL;
    rl_kv_type r;
    int bad = !s ||
        (comma ? parse_one(s, (size_t)(comma - s), &r.k) || parse_one(comma + 1, strlen(comma + 1), &r.v)
               : parse_one(s, strlen(s), &r.k));
    if (bad) {
        snprintf(err, errlen, "KV type '%s': expected f32, f16 or q8_0, or K,V such as f16,q8_0", s ? s : "");
        return -1;
    }
    if (!comma)
        r.v = r.k;
    *t = r;
    return 0;
}

const char *rl_kv_type_str(rl_kv_type t, char *buf, size_t n) {
    if (t.k == t.v)
        snprintf(buf, n, "%s", rl_dtype_name(t.k));
    else
        snprintf(buf, n, "%s,%s", rl_dtype_name(t.k), rl_dtype_name(t.v));
    return buf;
}

int rl_kv_type_check(rl_kv_type t, const rl_hparams *hp, char *err, size_t errlen) {
    const rl_dtype both[2] = {t.k, t.v};
    for (int i = 0; i < 2; i++) {
        if (!kv_dtype_ok(both[i])) {
            snprintf(err, errlen, "KV type %s: the cache holds f32, f16 or q8_0", rl_dtype_name(both[i]));
            return -1;
        }
        /* q8_0 blocks must not straddle heads: a head's dot reads whole blocks. */
        if (both[i] == RL_Q8_0 && hp->head_dim % QK8_0) {
            snprintf(err, errlen,
                     "KV type q8_0 needs a head size that is a multiple of %d; this model's is %u "
                     "(use f16 or f32)",
                     QK8_0, hp->head_dim);
            return -1;
        }
    }
    return 0;
}

uint64_t rl_kv_bytes_per_token(const rl_hparams *hp, rl_kv_type t) {
    const uint64_t kv_dim = (uint64_t)hp->n_head_kv * hp->head_dim;
    return (uint64_t)hp->n_layer * (rl_dtype_row_bytes(t.k, kv_dim) + rl_dtype_row_bytes(t.v, kv_dim));
}

uint64_t rl_kv_bytes_for(const rl_hparams *hp, uint32_t l0, uint32_t l1, uint32_t n_ctx, rl_kv_type t) {
    const uint64_t kv_dim = (uint64_t)hp->n_head_kv * hp->head_dim;
    const uint64_t row = rl_dtype_row_bytes(t.k, kv_dim) + rl_dtype_row_bytes(t.v, kv_dim);
    uint64_t total = 0;
    for (uint32_t il = l0; il < l1 && il < hp->n_layer; il++)
        total += (uint64_t)layer_cap(hp, il, n_ctx) * row;
    return total;
}

const char *rl_kv_describe(const rl_hparams *hp, rl_kv_type t, uint32_t n_ctx, char *buf, size_t n) {
    char name[32];
    snprintf(buf, n, "KV %s: %.1f KiB per token, %.1f MiB at context %u", rl_kv_type_str(t, name, sizeof name),
             rl_kv_bytes_per_token(hp, t) / 1024.0, rl_kv_bytes_for(hp, 0, hp->n_layer, n_ctx, t) / 1048576.0, n_ctx);
    return buf;
}

rl_kv *rl_kv_new(const rl_hparams *hp, uint32_t l0, uint32_t l1, uint32_t n_ctx, rl_kv_type t, char *err,
                 size_t errlen) {
    if (l0 >= l1 || l1 > hp->n_layer) {
        snprintf(err, errlen, "kv: layer range [%u, %u) outside the model's %u layers", l0, l1, hp->n_layer);
        return NULL;
    }
    if (n_ctx == 0) {
        snprintf(err, errlen, "kv: context of 0 positions");
        return NULL;
    }
    if (rl_kv_type_check(t, hp, err, errlen))
        return NULL;
    rl_kv *kv = calloc(1, sizeof *kv);
    if (!kv || !(kv->layers = calloc(l1 - l0, sizeof *kv->layers))) {
        free(kv);
        snprintf(err, errlen, "kv: out of memory");
        return NULL;
    }
    kv->l0 = l0;
    kv->l1 = l1;
    kv->n_ctx = n_ctx;
    kv->kv_dim = hp->n_head_kv * hp->head_dim;
    kv->type = t;
    kv->n_head_kv = hp->n_head_kv;
    kv->k_row = rl_dtype_row_bytes(t.k, kv->kv_dim);
    kv->v_row = rl_dtype_row_bytes(t.v, kv->kv_dim);
    kv->k_head = rl_dtype_row_bytes(t.k, hp->head_dim);
    kv->v_head = rl_dtype_row_bytes(t.v, hp->head_dim);
    for (uint32_t il = l0; il < l1; il++) {
        kv_layer *L = &kv->layers[il - l0];
        L->cap = layer_cap(hp, il, n_ctx);
        L->span = layer_span(hp, il, n_ctx);
        L->k = malloc((size_t)L->cap * kv->k_row);
        L->v = malloc((size_t)L->cap * kv->v_row);
        if (!L->k || !L->v) {
            snprintf(err, errlen, "kv: cannot allocate %zu MiB for layer %u",
                     (size_t)L->cap * (kv->k_row + kv->v_row) >> 20, il);
            rl_kv_destroy(&kv);
            return NULL;
        }
        kv->bytes += (size_t)L->cap * (kv->k_row + kv->v_row);
    }
    return kv;
}

void rl_kv_destroy(rl_kv **pkv) {
    rl_kv *kv = pkv ? *pkv : NULL;
    if (!kv)
        return;
    for (uint32_t i = 0; kv->layers && i < kv->l1 - kv->l0; i++) {
        free(kv->layers[i].k);
        free(kv->layers[i].v);
    }
    free(kv->layers);
    free(kv);
    *pkv = NULL;
}

uint32_t rl_kv_len(const rl_kv *kv) { return kv->len; }
uint32_t rl_kv_ctx(const rl_kv *kv) { return kv->n_ctx; }

void rl_kv_range(const rl_kv *kv, uint32_t *l0, uint32_t *l1) {
    *l0 = kv->l0;
    *l1 = kv->l1;
}
size_t rl_kv_bytes(const rl_kv *kv) { return kv->bytes; }
rl_kv_type rl_kv_types(const rl_kv *kv) { return kv->type; }

/* Whether a ring of cap slots, of which a query sees span back, still holds
 * what the next query at pos needs after a cache of len positions forgets
 * those >= pos. It holds positions [len - cap, len); the query at pos needs
 * [pos - span + 1, pos): there when nothing is needed (pos 0), when the ring
 * never wrapped, or when len - cap <= pos - span + 1. */
static bool ring_keeps(uint32_t cap, uint32_t span, uint32_t len, uint32_t pos) {
    return pos == 0 || pos >= len || len <= cap || (uint64_t)len + span <= (uint64_t)pos + cap + 1;
}

bool rl_kv_truncate_exact(const rl_kv *kv, uint32_t pos) {
    for (uint32_t il = kv->l0; il < kv->l1; il++)
        if (!ring_keeps(kv->layers[il - kv->l0].cap, kv->layers[il - kv->l0].span, kv->len, pos))
            return false;
    return true;
}

uint32_t rl_kv_truncate(rl_kv *kv, uint32_t pos) {
    if (pos >= kv->len)
        return kv->len;
    kv->len = rl_kv_truncate_exact(kv, pos) ? pos : 0;
    return kv->len;
}

uint32_t rl_kv_truncate_for(const rl_hparams *hp, uint32_t n_ctx, uint32_t len, uint32_t pos) {
    if (pos >= len)
        return len;
    for (uint32_t il = 0; il < hp->n_layer; il++)
        if (!ring_keeps(layer_cap(hp, il, n_ctx), layer_span(hp, il, n_ctx), len, pos))
            return 0;
    return pos;
}

static kv_layer *layer_of(rl_kv *kv, uint32_t il) { return &kv->layers[il - kv->l0]; }

const char *rl_kv_head(const rl_kv *kv, uint32_t il, uint32_t kvh, bool value, size_t *stride) {
    const kv_layer *L = &kv->layers[il - kv->l0];
    *stride = value ? kv->v_head : kv->k_head;
    return (value ? L->v : L->k) + (size_t)kvh * L->cap * *stride;
}

void rl_kv_put(rl_kv *kv, uint32_t il, uint32_t pos, const void *k, const void *v) {
    kv_layer *L = layer_of(kv, il);
    const size_t slot = pos % L->cap;
    for (uint32_t h = 0; h < kv->n_head_kv; h++) {
        memcpy(L->k + ((size_t)h * L->cap + slot) * kv->k_head, (const char *)k + h * kv->k_head, kv->k_head);
        memcpy(L->v + ((size_t)h * L->cap + slot) * kv->v_head, (const char *)v + h * kv->v_head, kv->v_head);
    }
}

uint32_t rl_kv_span(const rl_kv *kv, uint32_t il) { return kv->layers[il - kv->l0].span; }
uint32_t rl_kv_slots(const rl_kv *kv, uint32_t il) { return kv->layers[il - kv->l0].cap; }

void rl_kv_set_len(rl_kv *kv, uint32_t len) { kv->len = len; }

void rl_kv_fill_random(rl_kv *kv, uint32_t len, uint64_t seed) {
    float *row = malloc((size_t)kv->kv_dim * sizeof *row);
    char *k = malloc(kv->k_row), *v = malloc(kv->v_row);
    rl_rng rng;
    rl_rng_seed(&rng, seed);
    if (len > kv->n_ctx)
        len = kv->n_ctx;
    for (uint32_t il = kv->l0; row && k && v && il < kv->l1; il++) {
        const uint32_t cap = kv->layers[il - kv->l0].cap, first = len > cap ? len - cap : 0;
        for (uint32_t p = first; p < len; p++) {
            for (int kind = 0; kind < 2; kind++) {
                for (uint32_t i = 0; i < kv->kv_dim; i++)
                    row[i] = (float)(2.0 * rl_rng_uniform(&rng) - 1.0);
                rl_quantize_row(kind ? kv->type.v : kv->type.k, row, kind ? v : k, kv->kv_dim);
            }
            rl_kv_put(kv, il, p, k, v);
        }
    }
    free(row);
    free(k);
    free(v);
    kv->len = len;
}
