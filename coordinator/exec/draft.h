/* Draft sources for speculative decoding: cheap guesses of the ids a
 * session's target model will produce next, checked by the target in one
 * pass (a verifying segment, executor.h rl_xseg.verify; driven by
 * rl_xsession_set_draft). A deterministic guess (a function of the ids so
 * far) is accepted exactly when the target's own sample equals it, which
 * keeps the target's output distribution (greedy: the same ids) while one
 * pass may yield several ids. A draft model asked to sample draws its ids
 * from its own distribution q instead and says which (rl_qdist): the
 * target then keeps each with probability min(1, p/q) (speculative
 * sampling, rl_sampler_verify), which accepts far more at a temperature
 * above 0.
 *
 *   ngram  prompt lookup: the ids that followed the latest earlier
 *          occurrence of the session's last few ids (no model at all);
 *   model  a small model with the target's vocabulary, run in this process
 *          with its own threads and cache: greedy for a greedy request,
 *          sampled (under the request's parameters, its best RL_Q_MAX ids)
 *          for one that samples. Two variants measure what speculative
 *          sampling gains: "greedy:PATH" always drafts greedily, "eq:PATH"
 *          samples but keeps q to itself; the target then keeps a guess
 *          only when its own sample equals it;
 *   ids    benchmarks only: replays a known id sequence (prompt and the
 *          target's output), the mechanism at 100% acceptance. */
#ifndef RELAIS_DRAFT_H
#define RELAIS_DRAFT_H

#include <stddef.h>
#include <stdint.h>
#include "rng.h"
#include "sampler.h"
#include "tokenizer.h"

#define RL_DRAFT_MAX 16 /* most ids one pass verifies beyond the target's own */

typedef struct rl_draft rl_draft;

/* From a --draft argument: "ngram", "ids:LIST" (comma-separated ids) or
 * the path of a GGUF model (after "greedy:" or "eq:", see above) whose
 * vocabulary must equal target's (checked token by token; refused naming
 * the first difference), run with
 * n_threads threads (<= 0: one per core) and n_ctx positions. NULL with err. */
rl_draft *rl_draft_new(const char *spec, const rl_tokenizer *target, int n_threads, uint32_t n_ctx, char *err,
                       size_t errlen);
void rl_draft_destroy(rl_draft **d); /* NULLs *d */

/* Up to k (<= RL_DRAFT_MAX) ids guessed to follow ids[0..n) into out;
 * returns how many (0: no guess). A draft model under sampling parameters
 * sp that sample (temperature > 0) draws each id from its q with a uniform
 * of rng (the session's own stream, so its draws do not depend on other
 * sessions) and puts q in q[i]; otherwise (sp NULL or greedy, or another
 * source) q[i].n is 0: a deterministic guess. q has room for k. */
uint32_t rl_draft_propose(rl_draft *d, const rl_sampler_params *sp, rl_rng *rng, const int32_t *ids, uint32_t n,
                          int32_t *out, rl_qdist *q, uint32_t k);

/* The seed of a session's draft stream (rng above) for a request seeded
 * with seed: another stream than the target's sampler's. */
void rl_draft_seed(rl_rng *rng, uint64_t seed);

/* "ngram", "ids" or the model file's name, for the statistics line. */
const char *rl_draft_name(const rl_draft *d);

#endif
