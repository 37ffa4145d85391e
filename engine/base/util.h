/* Small helpers every layer writes otherwise by hand: the one monotonic
 * clock, a formatted error message into a caller's buffer, and growing an
 * array by doubling. Public: node and coordinator use them too. */
#ifndef RELAIS_UTIL_H
#define RELAIS_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* CLOCK_MONOTONIC in seconds and in microseconds: the one clock every
 * duration in relais is measured with (one for all processes of a host). */
double rl_now_s(void);
int64_t rl_now_us(void);

/* Formats a message into err (when err and errlen are set) and returns -1,
 * so an error path reads `return rl_errf(err, errlen, "...", ...);`. */
int rl_errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Makes room for `need` (>= 1) elements of `elem` bytes in the array p of
 * capacity *cap, doubling from `first`: returns the array to use from now on
 * (p itself when it already fits) with *cap updated, or NULL with p still
 * valid and *cap unchanged when memory or size_t runs out. Usage:
 *     int32_t *ids = rl_grow(v->ids, &v->cap, v->n + 1, sizeof *ids, 32);
 *     if (!ids) return -1;
 *     v->ids = ids;  */
void *rl_grow(void *p, size_t *cap, size_t need, size_t elem, size_t first);

#endif
