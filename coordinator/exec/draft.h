/* Draft sources for speculative decoding: cheap guesses of the ids a
 * session's target model will produce next, checked by the target in one
 * pass (a verifying segment, executor.h rl_xseg.verify; driven by
 * rl_xsession_set_draft). Every source here is deterministic: its guess is a
 * function of the ids so far, so accepting a drafted id exactly when the
 * target's own sample equals it keeps the target's output distribution
 * (greedy: the same ids) while one pass may yield several ids.
 *
 *   ngram  prompt lookup: the ids that followed the latest earlier
 *          occurrence of the session's last few ids (no model at all);
 *   model  a small model with the target's vocabulary, run greedily in this
 *          process with its own threads and cache;
 *   ids    benchmarks only: replays a known id sequence (prompt and the
 *          target's output), the mechanism at 100% acceptance. */
#ifndef RELAIS_DRAFT_H
#define RELAIS_DRAFT_H

#include <stddef.h>
#include <stdint.h>
#include "tokenizer.h"

#define RL_DRAFT_MAX 16 /* most ids one pass verifies beyond the target's own */

typedef struct rl_draft rl_draft;

/* From a --draft argument: "ngram", "ids:LIST" (comma-separated ids) or
 * the path of a GGUF model whose vocabulary must equal target's (checked
 * token by token; refused naming the first difference), run with
 * n_threads threads (<= 0: one per core) and n_ctx positions. NULL with err. */
rl_draft *rl_draft_new(const char *spec, const rl_tokenizer *target, int n_threads, uint32_t n_ctx, char *err,
                       size_t errlen);
void rl_draft_destroy(rl_draft **d); /* NULLs *d */

/* Up to k (<= RL_DRAFT_MAX) ids guessed to follow ids[0..n) into out;
 * returns how many (0: no guess). */
uint32_t rl_draft_propose(rl_draft *d, const int32_t *ids, uint32_t n, int32_t *out, uint32_t k);

/* "ngram", "ids" or the model file's name, for the statistics line. */
const char *rl_draft_name(const rl_draft *d);

#endif
