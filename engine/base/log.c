/* Engine log implementation: a level threshold and a formatted stderr line.
 * RELAIS_LOG=debug|info|warn|error|off sets the initial threshold;
 * RELAIS_TRACE=1 turns on the data path's timestamps. */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int g_level = -1; /* -1 until first use reads RELAIS_LOG */

static rl_log_level level_from_env(void) {
    const char *e = getenv("RELAIS_LOG");
    static const char *names[] = {"debug", "info", "warn", "error", "off"};
    if (e)
        for (int i = 0; i < 5; i++)
            if (!strcmp(e, names[i]))
                return (rl_log_level)i;
    return RL_LOG_INFO;
}

void rl_log_set_level(rl_log_level lvl) { g_level = (int)lvl; }

rl_log_level rl_log_get_level(void) {
    if (g_level < 0)
        g_level = (int)level_from_env();
    return (rl_log_level)g_level;
}

void rl_log(rl_log_level lvl, const char *fmt, ...) {
    if (lvl < rl_log_get_level())
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("relais: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

bool rl_trace_on(void) {
    static _Atomic int on = -1; /* read once: the data path asks per message, from any thread */
    int v = atomic_load_explicit(&on, memory_order_relaxed);
    if (v < 0) {
        const char *e = getenv("RELAIS_TRACE");
        v = e && *e && strcmp(e, "0");
        atomic_store_explicit(&on, v, memory_order_relaxed);
    }
    return v;
}

int64_t rl_thread_cpu_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The line goes out in one write: the data path waits for it, and stderr is
 * unbuffered, so piecewise output would cost a system call per piece. */
void rl_trace(const char *fmt, ...) {
    char line[512] = "relais: trace ";
    const size_t at = strlen(line), room = sizeof line - at - 1; /* a byte kept for the newline */
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line + at, room, fmt, ap);
    va_end(ap);
    size_t len = at + (n < 0 ? 0 : (size_t)n < room ? (size_t)n : room - 1);
    line[len++] = '\n';
    fwrite(line, 1, len, stderr);
}
