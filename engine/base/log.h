/* Engine log: one line per event on stderr, prefixed "relais: ". The engine
 * reports what it decided on the user's behalf (an inferred window layout, a
 * capped context) here; programs may raise the threshold to keep their
 * machine-readable stdout/stderr quiet. */
#ifndef RELAIS_LOG_H
#define RELAIS_LOG_H

#include <stdbool.h>
#include <stdint.h>
#include "util.h" /* rl_now_us: the trace lines' clock */

typedef enum { RL_LOG_DEBUG = 0, RL_LOG_INFO = 1, RL_LOG_WARN = 2, RL_LOG_ERROR = 3, RL_LOG_OFF = 4 } rl_log_level;

void rl_log_set_level(rl_log_level lvl);
rl_log_level rl_log_get_level(void);
void rl_log(rl_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* RELAIS_TRACE=1: the cluster's data path logs a "trace" line per Forward
 * (coordinator and nodes) with CLOCK_MONOTONIC timestamps in microseconds.
 * That clock is one for all processes of a host, so on one machine the lines
 * of the coordinator and its nodes join by step into hop latencies
 * (bench/trace_hops.awk). */
bool rl_trace_on(void);
/* CPU time of the calling thread in microseconds: against wall time, it
 * tells computing from waiting for a core. */
int64_t rl_thread_cpu_us(void);
/* One "relais: trace ..." line on stderr, whatever the log level. */
void rl_trace(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
