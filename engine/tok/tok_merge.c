/* The merge loop that SentencePiece and byte-level BPE share: symbols sit in
 * a linked list, every neighbouring pair that may merge waits in a priority
 * queue, and the best pair (highest priority, leftmost on ties) is merged
 * until none is left. Pairs whose symbols changed since they were queued are
 * recognised by their length and skipped, so the queue needs no deletions.
 * The encoders differ only in how a pair is judged (rl_tok_pair_fn). */
#include <stdlib.h>
#include "tok_internal.h"
#include "util.h"

typedef struct {
    double prio;   /* higher merges first */
    int32_t left;  /* index of the left symbol */
    int32_t right; /* index of the right symbol */
    uint32_t len;  /* combined length when queued, to spot stale pairs */
    int32_t id;    /* merged token */
} pair;

typedef struct {
    pair *items; /* binary heap, best at 0 */
    size_t n;    /* items in use */
    size_t cap;  /* items allocated */
} pair_heap;

static bool better(const pair *a, const pair *b) {
    return a->prio > b->prio || (a->prio == b->prio && a->left < b->left);
}

static int heap_push(pair_heap *h, pair p) {
    pair *items = rl_grow(h->items, &h->cap, h->n + 1, sizeof *items, 64);
    if (!items)
        return -1;
    h->items = items;
    size_t i = h->n++;
    while (i > 0 && better(&p, &h->items[(i - 1) / 2])) {
        h->items[i] = h->items[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h->items[i] = p;
    return 0;
}

static pair heap_pop(pair_heap *h) {
    pair top = h->items[0];
    pair last = h->items[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && better(&h->items[c + 1], &h->items[c]))
            c++;
        if (!better(&h->items[c], &last))
            break;
        h->items[i] = h->items[c];
        i = c;
    }
    if (h->n > 0)
        h->items[i] = last;
    return top;
}

/* Queues the pair (l, r) when the encoder allows it. */
static int try_pair(const rl_tokenizer *t, const char *text, const rl_tok_sym *syms, int32_t l, int32_t r,
                    rl_tok_pair_fn judge, pair_heap *h) {
    if (l < 0 || r < 0)
        return 0;
    pair p = {.left = l, .right = r, .len = syms[l].len + syms[r].len};
    if (!judge(t, text, &syms[l], &syms[r], &p.prio, &p.id))
        return 0;
    return heap_push(h, p);
}

int rl_tok_merge(const rl_tokenizer *t, const char *text, rl_tok_sym *syms, size_t n, rl_tok_pair_fn judge) {
    pair_heap h = {0};
    int rc = 0;
    for (size_t i = 1; i < n && rc == 0; i++)
        rc = try_pair(t, text, syms, (int32_t)i - 1, (int32_t)i, judge, &h);
    while (rc == 0 && h.n > 0) {
        pair p = heap_pop(&h);
        rl_tok_sym *l = &syms[p.left], *r = &syms[p.right];
        if (l->len == 0 || r->len == 0 || l->len + r->len != p.len)
            continue;
        l->len += r->len;
        l->id = p.id;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0)
            syms[r->next].prev = p.left;
        rc = try_pair(t, text, syms, l->prev, p.left, judge, &h);
        if (rc == 0)
            rc = try_pair(t, text, syms, p.left, l->next, judge, &h);
    }
    free(h.items);
    return rc;
}
