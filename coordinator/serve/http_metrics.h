/* Counters of the server for GET /metrics, in Prometheus' text format:
 * requests by endpoint and status, prompt and generated tokens, time to
 * first token as a histogram, the scheduler's queue and batches, the prompt
 * cache's hits, reused tokens and evictions, and each
 * node's busy time, traffic and sessions. Any thread may record. */
#ifndef RELAIS_HTTP_METRICS_H
#define RELAIS_HTTP_METRICS_H

#include <stdbool.h>
#include <stdint.h>
#include "executor.h"
#include "scheduler.h"

typedef enum { EP_CHAT, EP_COMPLETIONS, EP_MODELS, EP_HEALTH, EP_METRICS, EP_WEB, EP_OTHER, EP_COUNT } rl_endpoint;

typedef struct rl_metrics rl_metrics;

rl_metrics *rl_metrics_new(void);
void rl_metrics_destroy(rl_metrics **m); /* NULLs *m */

void rl_metrics_request(rl_metrics *m, rl_endpoint ep, int status);
void rl_metrics_ttft(rl_metrics *m, double seconds);
void rl_metrics_tokens(rl_metrics *m, uint64_t prompt, uint64_t generated);

/* The whole page (malloc'd), with the scheduler's numbers and the nodes'. */
char *rl_metrics_render(rl_metrics *m, const rl_sched_stats *st, const rl_xnode *nodes, uint32_t n_nodes, bool ready);

#endif
