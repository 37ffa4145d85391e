/* Engine log implementation: a level threshold and a formatted stderr line.
 * RELAIS_LOG=debug|info|warn|error|off sets the initial threshold. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int g_level = -1;   /* -1 until first use reads RELAIS_LOG */

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
