/* Option parsing shared by the subcommands: strict number parsing (a typo is
 * an error, never a silent 0), id lists, and the model/sampling options that
 * run, chat and bench all take. */
#ifndef RELAIS_CLI_H
#define RELAIS_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "cluster_config.h"
#include "runner.h"
#include "sampler.h"

/* Each returns 0, or prints "relais: <what>: ..." to stderr and returns -1. */
int cli_parse_i64(const char *what, const char *s, int64_t lo, int64_t hi, int64_t *out);
int cli_parse_f32(const char *what, const char *s, float lo, float hi, float *out);
/* "1,5,17" -> malloc'd ids (caller frees). Empty list is an error. */
int cli_parse_ids(const char *what, const char *s, int32_t **ids, size_t *n);

/* Long options common to run/chat/bench, to append to a command's table,
 * and their handler: returns 1 when `opt` was one of them (handled), 0 when
 * not, -1 on a bad value. */
enum {
    CLI_OPT_CTX = 1000,
    CLI_OPT_TEMP,
    CLI_OPT_TOPK,
    CLI_OPT_TOPP,
    CLI_OPT_MINP,
    CLI_OPT_SEED,
    CLI_OPT_REPEAT,
    CLI_OPT_REPEAT_N,
    CLI_OPT_FREQ,
    CLI_OPT_PRES,
    CLI_OPT_SWA_W,
    CLI_OPT_SWA_P,
    CLI_OPT_BATCH,
    CLI_OPT_NO_GEMM,
    CLI_OPT_GEMM_MIN,
    CLI_OPT_NO_MMAP,
    CLI_OPT_FILE_LAYOUT,
    CLI_OPT_KV_TYPE,
    CLI_OPT_CTX_BEYOND,
    CLI_OPT_DRAFT,
    CLI_OPT_DRAFT_MAX,
    CLI_OPT_BEACON_CLUSTER,
    CLI_OPT_BEACON_TRUST,
    CLI_OPT_BEACON_PORT,
    CLI_OPT_BEACON_SECONDS,
    CLI_OPT_FIRST_OWN = 1100
};
#define CLI_COMMON_LONGOPTS                                                                                            \
    {"model", required_argument, 0, 'm'}, {"threads", required_argument, 0, 't'},                                      \
        {"ctx", required_argument, 0, CLI_OPT_CTX}, {"temp", required_argument, 0, CLI_OPT_TEMP},                      \
        {"top-k", required_argument, 0, CLI_OPT_TOPK}, {"top-p", required_argument, 0, CLI_OPT_TOPP},                  \
        {"min-p", required_argument, 0, CLI_OPT_MINP}, {"seed", required_argument, 0, CLI_OPT_SEED},                   \
        {"repeat-penalty", required_argument, 0, CLI_OPT_REPEAT},                                                      \
        {"repeat-last-n", required_argument, 0, CLI_OPT_REPEAT_N},                                                     \
        {"frequency-penalty", required_argument, 0, CLI_OPT_FREQ},                                                     \
        {"presence-penalty", required_argument, 0, CLI_OPT_PRES}, {"swa-window", required_argument, 0, CLI_OPT_SWA_W}, \
        {"swa-pattern", required_argument, 0, CLI_OPT_SWA_P}, {"batch", required_argument, 0, CLI_OPT_BATCH},          \
        {"no-gemm", no_argument, 0, CLI_OPT_NO_GEMM}, {"gemm-min", required_argument, 0, CLI_OPT_GEMM_MIN},            \
        {"no-mmap", no_argument, 0, CLI_OPT_NO_MMAP}, {"file-layout", no_argument, 0, CLI_OPT_FILE_LAYOUT},            \
        {"kv-type", required_argument, 0, CLI_OPT_KV_TYPE}, {                                                          \
        "ctx-beyond-file", no_argument, 0, CLI_OPT_CTX_BEYOND                                                          \
    }
#define CLI_COMMON_HELP                                                                                   \
    "  -m, --model FILE        GGUF model (default: $RELAIS_MODEL)\n"                                     \
    "  -t, --threads N         worker threads (default: one per core)\n"                                  \
    "      --ctx N             context to allocate KV for (default 4096 or the model's, if less;\n"       \
    "                          Ministral-8B-2410 files allow 131072, the published context)\n"            \
    "      --ctx-beyond-file   accept a --ctx above the file's context (the model was not made for it)\n" \
    "      --temp T            temperature, 0 = greedy\n"                                                 \
    "      --top-k K --top-p P --min-p P   truncation (0 / 1 / 0 = off)\n"                                \
    "      --repeat-penalty R --repeat-last-n N --frequency-penalty F --presence-penalty P\n"             \
    "      --seed N            random seed (same seed, same output)\n"                                    \
    "      --swa-window W      override the sliding window (0 = none)\n"                                  \
    "      --swa-pattern P     override which layers slide: a period (\"4\": layer i full when\n"         \
    "                          i %% 4 == 0) or one S/F per layer\n"                                       \
    "      --batch N           prefill chunk (default 256); --gemm-min N, --no-gemm tune prefill\n"       \
    "      --no-mmap           read every weight into memory (huge pages), the embedding too; by\n"       \
    "                          default the embedding stays mapped from the file\n"                        \
    "      --file-layout       keep the file's weight layout (no load-time rearrangement; slower)\n"      \
    "      --kv-type T         KV cache element type: f32, f16 (default) or q8_0; K,V for keys and\n"     \
    "                          values apart (f16,q8_0); f32 gives the numerics of the goldens\n"

typedef struct {
    rl_runner_opts runner;
    rl_sampler_params sampling;
} cli_common;

void cli_common_init(cli_common *c, float default_temp);
int cli_common_opt(cli_common *c, int opt, const char *arg);
/* Speculative decoding (run, chat, serve): a draft source (draft.h) and the
 * most ids it drafts per pass. */
typedef struct {
    const char *spec; /* NULL: off */
    uint32_t k_max;
} cli_draft;
#define CLI_DRAFT_LONGOPTS \
    {"draft", required_argument, 0, CLI_OPT_DRAFT}, { "draft-max", required_argument, 0, CLI_OPT_DRAFT_MAX }
#define CLI_DRAFT_HELP                                                                              \
    "      --draft SRC         speculative decoding: draft ids checked in one pass; SRC is ngram\n" \
    "                          (prompt lookup) or a GGUF model with the same vocabulary (which\n"   \
    "                          samples its ids when the target does; to measure what that gains,\n" \
    "                          greedy:MODEL drafts greedily, eq:MODEL checks by equality)\n"        \
    "      --draft-max K       most ids drafted per pass (default 4, at most 16; fewer after misses)\n"
/* Returns 1 when opt was a draft option (handled), 0 when not, -1 on a bad value. */
int cli_draft_opt(cli_draft *d, int opt, const char *arg);

/* Listening for node beacons (discover, trust): whose keys are trusted (a
 * cluster file or a trust folder), the UDP port and how long to listen. */
typedef struct {
    const char *cluster, *trust;
    int64_t port; /* 0: the cluster file's discover.port, else BEACON_DEFAULT_PORT */
    int64_t ms;   /* set the command's default before parsing */
} cli_beacon;
#define CLI_BEACON_LONGOPTS                                                                                           \
    {"cluster", required_argument, 0, CLI_OPT_BEACON_CLUSTER}, {"trust", required_argument, 0, CLI_OPT_BEACON_TRUST}, \
        {"port", required_argument, 0, CLI_OPT_BEACON_PORT}, {                                                        \
        "seconds", required_argument, 0, CLI_OPT_BEACON_SECONDS                                                       \
    }
/* Returns 1 when opt was a beacon option (handled), 0 when not, -1 on a bad value. */
int cli_beacon_opt(cli_beacon *b, int opt, const char *arg);
/* Loads --cluster into *cfg (NULL without one) and sets *port to the one to
 * listen on. 0, or -1 after printing "relais CMD: ..." to stderr. */
int cli_beacon_setup(const cli_beacon *b, const char *cmd, cluster_config **cfg, int *port);

/* Fills runner.model_path from $RELAIS_MODEL when -m was not given; -1 with a message if neither. */
int cli_require_model(cli_common *c);

#endif
