/* Per-session KV cache over a layer range: one f32 K and V buffer per layer,
 * full layers sized to the context, sliding layers to their window, used as a
 * ring (slot = position % capacity). A full layer's ring never wraps because
 * its capacity is the context, so one indexing rule serves both kinds. */
#include "kv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    float *k;        /* (cap, kv_dim) */
    float *v;        /* (cap, kv_dim) */
    uint32_t cap;    /* n_ctx for full layers, min(W, n_ctx) for sliding ones */
} kv_layer;

struct rl_kv {
    uint32_t l0, l1;       /* absolute layer range */
    uint32_t n_ctx;        /* positions this session may reach */
    uint32_t kv_dim;       /* n_head_kv * head_dim */
    uint32_t len;          /* positions written: 0..len-1 */
    uint32_t min_cap;      /* smallest ring: how far back truncation stays exact */
    size_t bytes;          /* allocated K+V bytes */
    kv_layer *layers;      /* (l1 - l0) */
};

static uint32_t layer_cap(const rl_hparams *hp, uint32_t il, uint32_t n_ctx) {
    if (hp->sliding[il] && hp->swa_window > 0 && hp->swa_window < n_ctx)
        return hp->swa_window;
    return n_ctx;
}

uint64_t rl_kv_bytes_for(const rl_hparams *hp, uint32_t l0, uint32_t l1, uint32_t n_ctx) {
    uint64_t kv_dim = (uint64_t)hp->n_head_kv * hp->head_dim, total = 0;
    for (uint32_t il = l0; il < l1 && il < hp->n_layer; il++)
        total += 2ull * layer_cap(hp, il, n_ctx) * kv_dim * sizeof(float);
    return total;
}

rl_kv *rl_kv_new(const rl_hparams *hp, uint32_t l0, uint32_t l1, uint32_t n_ctx, char *err, size_t errlen) {
    if (l0 >= l1 || l1 > hp->n_layer) {
        snprintf(err, errlen, "kv: layer range [%u, %u) outside the model's %u layers", l0, l1, hp->n_layer);
        return NULL;
    }
    if (n_ctx == 0) {
        snprintf(err, errlen, "kv: context of 0 positions");
        return NULL;
    }
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
    kv->min_cap = n_ctx;
    for (uint32_t il = l0; il < l1; il++) {
        kv_layer *L = &kv->layers[il - l0];
        L->cap = layer_cap(hp, il, n_ctx);
        size_t n = (size_t)L->cap * kv->kv_dim;
        L->k = malloc(n * sizeof(float));
        L->v = malloc(n * sizeof(float));
        if (!L->k || !L->v) {
            snprintf(err, errlen, "kv: cannot allocate %zu MiB for layer %u",
                     2 * n * sizeof(float) >> 20, il);
            rl_kv_destroy(&kv);
            return NULL;
        }
        kv->bytes += 2 * n * sizeof(float);
        if (L->cap < kv->min_cap)
            kv->min_cap = L->cap;
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

uint32_t rl_kv_truncate(rl_kv *kv, uint32_t pos) {
    if (pos >= kv->len)
        return kv->len;
    /* A ring of capacity C holds positions [len - C, len). The next query, at
     * `pos`, needs [pos - C + 1, pos): still there only if the ring never
     * wrapped or at most the last position is taken back. */
    if (kv->len <= kv->min_cap || pos + 1 >= kv->len)
        kv->len = pos;
    else
        kv->len = 0;
    return kv->len;
}

static kv_layer *layer_of(rl_kv *kv, uint32_t il) { return &kv->layers[il - kv->l0]; }

float *rl_kv_k(rl_kv *kv, uint32_t il, uint32_t pos) {
    kv_layer *L = layer_of(kv, il);
    return L->k + (size_t)(pos % L->cap) * kv->kv_dim;
}

float *rl_kv_v(rl_kv *kv, uint32_t il, uint32_t pos) {
    kv_layer *L = layer_of(kv, il);
    return L->v + (size_t)(pos % L->cap) * kv->kv_dim;
}

uint32_t rl_kv_span(const rl_kv *kv, uint32_t il) { return kv->layers[il - kv->l0].cap; }

void rl_kv_set_len(rl_kv *kv, uint32_t len) { kv->len = len; }
