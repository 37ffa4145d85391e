/* Token sampling: greedy, temperature, top-k, top-p, min-p, and repetition /
 * frequency / presence penalties, with a seeded generator so a run with the
 * same seed repeats exactly. Order: penalties, temperature, top-k, top-p,
 * min-p, draw; the truncations act on the temperature-scaled distribution. */
#ifndef RELAIS_SAMPLER_H
#define RELAIS_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    float temperature;       /* 0 = greedy */
    int32_t top_k;           /* 0 = off */
    float top_p;             /* 1 = off */
    float min_p;             /* 0 = off */
    float repeat_penalty;    /* 1 = off; divides positive / multiplies negative logits of seen tokens */
    int32_t repeat_last_n;   /* window of history the penalties look at; 0 = none, -1 = all */
    float frequency_penalty; /* 0 = off; subtracts count * value */
    float presence_penalty;  /* 0 = off; subtracts value once if seen */
    uint64_t seed;
} rl_sampler_params;

/* Defaults: greedy, no truncation, no penalties, seed 0. */
rl_sampler_params rl_sampler_defaults(void);

#define RL_Q_MAX 32 /* most ids in a sampled draft's distribution (rl_qdist) */

/* The distribution a sampled draft drew one drafted id from: sparse (its
 * draft model's best ids only, renormalised), so that it travels cheaply
 * with the verifying segment, and exact (the id was drawn from it), which is
 * all speculative sampling needs of it to keep the target's distribution. */
typedef struct {
    int32_t token;         /* the id drawn */
    uint32_t n;            /* ids in the support, 1..RL_Q_MAX */
    int32_t ids[RL_Q_MAX]; /* distinct */
    float p[RL_Q_MAX];     /* > 0, summing to 1 */
} rl_qdist;

typedef struct rl_sampler rl_sampler;
rl_sampler *rl_sampler_new(const rl_sampler_params *p, uint32_t n_vocab);
void rl_sampler_destroy(rl_sampler **s); /* NULLs *s */

/* Picks the next id. `logits` (n_vocab) may be modified in place. `history`
 * are the ids so far (prompt and generated), used by the penalties. */
int32_t rl_sampler_sample(rl_sampler *s, float *logits, const int32_t *history, size_t n_history);

/* Moves the sampler on as n calls of rl_sampler_sample would (every
 * sample at a temperature above 0 spends exactly one draw), so that a
 * sampler made anew in the middle of a seeded stream goes on with it. */
void rl_sampler_skip(rl_sampler *s, uint64_t n);

/* rl_sampler_sample, reporting the row as it came (before the penalties
 * edit it) when k > 0: its k largest (ids, vals; as rl_top_logits), the
 * log of the sum of exp over the whole row (*lse: a logit minus it is that
 * id's log-probability under the model), and the sampled id's logit
 * (*chosen). With k 0 only the id (*lse, *chosen 0). */
int32_t rl_sampler_sample_top(rl_sampler *s, float *logits, const int32_t *history, size_t n_history, uint32_t k,
                              int32_t *ids, float *vals, float *lse, float *chosen);

/* Speculative sampling at one verified position whose drafted id x was
 * drawn from q (q_ids, q_p: n_q entries): accepts x with probability
 * min(1, p(x)/q(x)), p being the distribution rl_sampler_sample draws from
 * with these logits and history, and returns it; otherwise returns a draw
 * from normalise(max(0, p - q)), never x. Either way the id follows p, and
 * exactly one draw is spent, as by rl_sampler_sample. Greedy parameters, no
 * q, or an x that q does not hold: rl_sampler_sample (a deterministic
 * draft's rule: the draft is kept when the target's own sample equals it). */
int32_t rl_sampler_verify(rl_sampler *s, float *logits, const int32_t *history, size_t n_history, int32_t x,
                          const int32_t *q_ids, const float *q_p, uint32_t n_q);

/* A draft model's sampled proposal: q = the distribution parameters p give
 * over the n candidates ids (their raw logits; typically the draft's best,
 * rl_top_logits): the penalties over history, temperature, top-k, top-p and
 * min-p applied as rl_sampler_sample does, renormalised over what is left,
 * at most RL_Q_MAX ids; q->token drawn from it with *u_draw, a uniform in
 * [0, 1). Returns q->token. p must sample (temperature > 0), n >= 1. */
int32_t rl_sampler_draft_q(const rl_sampler_params *p, const int32_t *ids, const float *logits, uint32_t n,
                           const int32_t *history, size_t n_history, double u_draw, rl_qdist *q);

/* Sets to -inf the logits of ids whose bit in mask (ceil(n_vocab/8) bytes;
 * id i is bit i%8 of byte i/8) is clear: constrained sampling (a JSON
 * grammar) restricts the row before it is sampled. NULL mask: no change. */
void rl_sampler_mask(float *logits, uint32_t n_vocab, const uint8_t *mask);

/* log(sum(exp(x))) of n values, computed without overflow; NaN counts as
 * -inf, and an all -inf row gives -inf. */
float rl_logsumexp(const float *x, uint32_t n);

/* The k largest (id, logit) pairs of raw logits, largest first; ties by lower
 * id. Slots past n_vocab (when k > n_vocab) get id -1 and -inf. */
void rl_top_logits(const float *logits, uint32_t n_vocab, uint32_t k, int32_t *ids, float *vals);

#endif
