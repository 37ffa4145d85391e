/* Engine log: one line per event on stderr, prefixed "relais: ". The engine
 * reports what it decided on the user's behalf (an inferred window layout, a
 * capped context) here; programs may raise the threshold to keep their
 * machine-readable stdout/stderr quiet. */
#ifndef RELAIS_LOG_H
#define RELAIS_LOG_H

typedef enum { RL_LOG_DEBUG = 0, RL_LOG_INFO = 1, RL_LOG_WARN = 2, RL_LOG_ERROR = 3, RL_LOG_OFF = 4 } rl_log_level;

void rl_log_set_level(rl_log_level lvl);
rl_log_level rl_log_get_level(void);
void rl_log(rl_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
