/* Shared option parsing for the subcommands. */
#include "cli.h"
#include "beacon.h"
#include "util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_parse_i64(const char *what, const char *s, int64_t lo, int64_t hi, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "relais: %s: '%s' is not an integer in [%lld, %lld]\n", what, s, (long long)lo, (long long)hi);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_f32(const char *what, const char *s, float lo, float hi, float *out) {
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi) {
        fprintf(stderr, "relais: %s: '%s' is not a number in [%g, %g]\n", what, s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_ids(const char *what, const char *s, int32_t **ids, size_t *n) {
    size_t cap = 1;
    for (const char *p = s; *p; p++)
        cap += *p == ',';
    int32_t *v = malloc(cap * sizeof *v);
    if (!v)
        return -1;
    size_t k = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long x = strtol(p, &end, 10);
        if (errno || end == p || x < 0 || x > INT32_MAX || (*end && *end != ',')) {
            fprintf(stderr, "relais: %s: '%s' is not a comma-separated list of token ids\n", what, s);
            free(v);
            return -1;
        }
        v[k++] = (int32_t)x;
        p = *end ? end + 1 : end;
    }
    if (k == 0) {
        fprintf(stderr, "relais: %s: empty id list\n", what);
        free(v);
        return -1;
    }
    *ids = v;
    *n = k;
    return 0;
}

void cli_common_init(cli_common *c, float default_temp) {
    c->runner = rl_runner_opts_default();
    c->sampling = rl_sampler_defaults();
    c->sampling.temperature = default_temp;
    if (default_temp > 0) {
        c->sampling.top_k = 40;
        c->sampling.top_p = 0.95f;
        c->sampling.min_p = 0.05f;
    }
}

int cli_draft_opt(cli_draft *d, int opt, const char *arg) {
    int64_t k;
    if (!d->k_max)
        d->k_max = 4;
    if (opt == CLI_OPT_DRAFT)
        d->spec = arg;
    else if (opt == CLI_OPT_DRAFT_MAX) {
        if (cli_parse_i64("--draft-max", arg, 1, 16, &k))
            return -1;
        d->k_max = (uint32_t)k;
    } else
        return 0;
    return 1;
}

int cli_beacon_opt(cli_beacon *b, int opt, const char *arg) {
    float s;
    if (opt == CLI_OPT_BEACON_CLUSTER)
        b->cluster = arg;
    else if (opt == CLI_OPT_BEACON_TRUST)
        b->trust = arg;
    else if (opt == CLI_OPT_BEACON_PORT) {
        if (cli_parse_i64("--port", arg, 1, 65535, &b->port))
            return -1;
    } else if (opt == CLI_OPT_BEACON_SECONDS) {
        if (cli_parse_f32("--seconds", arg, 0.1f, 3600, &s))
            return -1;
        b->ms = (int64_t)(s * 1e3f);
    } else
        return 0;
    return 1;
}

int cli_beacon_setup(const cli_beacon *b, const char *cmd, cluster_config **cfg, int *port) {
    char err[1024];
    *cfg = NULL;
    if (b->cluster && !(*cfg = cluster_config_load(b->cluster, err, sizeof err))) {
        fprintf(stderr, "relais %s: %s\n", cmd, err);
        return -1;
    }
    const cluster_discover *cd = *cfg ? cluster_config_discover(*cfg) : NULL;
    *port = b->port ? (int)b->port : cd ? cd->port : BEACON_DEFAULT_PORT;
    return 0;
}

int cli_common_opt(cli_common *c, int opt, const char *arg) {
    int64_t i;
    rl_sampler_params *s = &c->sampling;
    int rc = 0;
    switch (opt) {
    case 'm':
        c->runner.model_path = arg;
        break;
    case 't':
        rc = cli_parse_i64("--threads", arg, 1, 1024, &i);
        c->runner.n_threads = (int)i;
        break;
    case CLI_OPT_CTX:
        rc = cli_parse_i64("--ctx", arg, 1, 1 << 24, &i);
        c->runner.n_ctx = (uint32_t)i;
        break;
    case CLI_OPT_TEMP:
        rc = cli_parse_f32("--temp", arg, 0, 100, &s->temperature);
        break;
    case CLI_OPT_TOPK:
        rc = cli_parse_i64("--top-k", arg, 0, 1 << 24, &i);
        s->top_k = (int32_t)i;
        break;
    case CLI_OPT_TOPP:
        rc = cli_parse_f32("--top-p", arg, 0, 1, &s->top_p);
        break;
    case CLI_OPT_MINP:
        rc = cli_parse_f32("--min-p", arg, 0, 1, &s->min_p);
        break;
    case CLI_OPT_SEED:
        rc = cli_parse_i64("--seed", arg, 0, INT64_MAX, &i);
        s->seed = (uint64_t)i;
        break;
    case CLI_OPT_REPEAT:
        rc = cli_parse_f32("--repeat-penalty", arg, 0, 100, &s->repeat_penalty);
        break;
    case CLI_OPT_REPEAT_N:
        rc = cli_parse_i64("--repeat-last-n", arg, -1, 1 << 24, &i);
        s->repeat_last_n = (int32_t)i;
        break;
    case CLI_OPT_FREQ:
        rc = cli_parse_f32("--frequency-penalty", arg, -2, 2, &s->frequency_penalty);
        break;
    case CLI_OPT_PRES:
        rc = cli_parse_f32("--presence-penalty", arg, -2, 2, &s->presence_penalty);
        break;
    case CLI_OPT_SWA_W:
        rc = cli_parse_i64("--swa-window", arg, 0, 1 << 24, &c->runner.swa_window);
        break;
    case CLI_OPT_SWA_P:
        c->runner.swa_pattern = arg;
        break;
    case CLI_OPT_BATCH:
        rc = cli_parse_i64("--batch", arg, 1, 65536, &i);
        c->runner.batch = (uint32_t)i;
        break;
    case CLI_OPT_NO_GEMM:
        c->runner.no_gemm = true;
        break;
    case CLI_OPT_NO_MMAP:
        c->runner.no_mmap = true;
        break;
    case CLI_OPT_FILE_LAYOUT:
        c->runner.file_layout = true;
        break;
    case CLI_OPT_CTX_BEYOND:
        c->runner.ctx_beyond_file = true;
        break;
    case CLI_OPT_KV_TYPE: {
        char err[160];
        if ((rc = rl_kv_type_parse(arg, &c->runner.kv_type, err, sizeof err)))
            fprintf(stderr, "relais: --kv-type: %s\n", err);
        c->runner.kv_type_set = true;
        break;
    }
    case CLI_OPT_GEMM_MIN:
        rc = cli_parse_i64("--gemm-min", arg, 1, 65536, &i);
        c->runner.gemm_min = (uint32_t)i;
        break;
    default:
        return 0;
    }
    return rc ? -1 : 1;
}

int cli_require_model(cli_common *c) {
    if (!c->runner.model_path)
        c->runner.model_path = getenv("RELAIS_MODEL");
    if (!c->runner.model_path || !*c->runner.model_path) {
        fprintf(stderr, "relais: no model: give -m FILE.gguf or set RELAIS_MODEL\n");
        return -1;
    }
    return 0;
}
