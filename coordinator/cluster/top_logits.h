/* The largest logits of one sampled position, as `relais run --top-logits`
 * reports them: what the executors hand back with a sampled id and what the
 * cluster client reads from a node's SegmentResult. A header of its own so
 * that the cluster client (below the executors) and the executors share it. */
#ifndef RELAIS_TOP_LOGITS_H
#define RELAIS_TOP_LOGITS_H

#include <stdint.h>

#define RL_MAX_TOP 64 /* most top logits one sampled position reports */

typedef struct {
    uint32_t n;              /* reported (as asked, at most the vocabulary) */
    int32_t ids[RL_MAX_TOP]; /* largest first */
    float vals[RL_MAX_TOP];
    float lse;    /* log of the sum of exp over every logit: logit - lse is a log-probability (when n > 0) */
    float chosen; /* the sampled id's logit, as the model gave it (when n > 0) */
} rl_top;

#endif
