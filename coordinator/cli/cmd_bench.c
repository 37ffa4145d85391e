/* `relais bench`: prefill and decode speed and peak memory of a model at a
 * thread count, in the manner of llama-bench: pp = one prompt of P tokens fed
 * as a batch, tg = N tokens fed one at a time, both from an empty cache or,
 * with --depth D, from position D (llama-bench -d). Each is
 * repeated and the median reported, with decode's effective bandwidth (the
 * bytes a decode step reads — every layer and the head — times tg) and, with
 * --probe, what a plain streaming read achieves on this machine. --json prints
 *   {"pp_tps": ..., "tg_tps": ..., "tg_gbps": ..., "probe_gbps": ...,
 *    "peak_rss_mb": ..., "file_bytes": ..., "kv_bytes": ..., "depth": ...,
 *    "pp_depth": ..., ...}
 * (pp_depth: the position the prefill started at; older builds timed the
 * prefill from 0 whatever --depth said, and wrote no pp_depth).
 * and is a stable interface for scripts (bench/run_bench.sh). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench_probe.h"
#include "cli.h"
#include "commands.h"
#include "log.h"
#include "machine.h"
#include "util.h"

enum { OPT_JSON = CLI_OPT_FIRST_OWN, OPT_REPS, OPT_PROBE, OPT_DEPTH };

#define PROBE_BYTES ((size_t)512 << 20) /* far beyond any cache relais runs on */

typedef struct {
    cli_common common;
    int64_t n_prompt, n_gen, reps;
    int64_t depth; /* prefill and decode from this position: the cache filled with random K/V first */
    bool json, probe;
} bench_args;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static int parse_args(int argc, char **argv, bench_args *a) {
    static const struct option longopts[] = {{"n-prompt", required_argument, 0, 'p'},
                                             {"n-gen", required_argument, 0, 'n'},
                                             {"reps", required_argument, 0, OPT_REPS},
                                             {"json", no_argument, 0, OPT_JSON},
                                             {"probe", no_argument, 0, OPT_PROBE},
                                             {"depth", required_argument, 0, OPT_DEPTH},
                                             {"help", no_argument, 0, 'h'},
                                             CLI_COMMON_LONGOPTS,
                                             {0, 0, 0, 0}};
    cli_common_init(&a->common, 0.0f);
    a->n_prompt = 64;
    a->n_gen = 32;
    a->reps = 3;
    optind = 1;
    int opt;
    while ((opt = getopt_long(argc, argv, "m:t:p:n:r:h", longopts, NULL)) != -1) {
        int rc = cli_common_opt(&a->common, opt, optarg);
        if (rc < 0)
            return -1;
        if (rc > 0)
            continue;
        switch (opt) {
        case 'p':
            if (cli_parse_i64("-p", optarg, 0, 1 << 20, &a->n_prompt))
                return -1;
            break;
        case 'n':
            if (cli_parse_i64("-n", optarg, 0, 1 << 20, &a->n_gen))
                return -1;
            break;
        case 'r':
        case OPT_REPS:
            if (cli_parse_i64("--reps", optarg, 1, 1000, &a->reps))
                return -1;
            break;
        case OPT_JSON:
            a->json = true;
            break;
        case OPT_PROBE:
            a->probe = true;
            break;
        case OPT_DEPTH:
            if (cli_parse_i64("--depth", optarg, 0, 1 << 24, &a->depth))
                return -1;
            break;
        case 'h':
            printf("usage: relais bench -m MODEL.gguf [-t THREADS] [-p 64] [-n 32] [-r 3] [--probe] [--json]\n"
                   "  -p N      prompt tokens for the prefill test (0 = skip)\n"
                   "  -n N      tokens for the decode test (0 = skip)\n"
                   "  -r N      repetitions; the median is reported\n"
                   "  --probe   also measure a streaming read of memory with the same threads\n"
                   "  --depth D prefill and decode from position D (llama-bench -d): the cache is filled with\n"
                   "            random keys and values up to D instead of a prefill, which is not "
                   "timed\n" CLI_COMMON_HELP);
            exit(0);
        default:
            return -1;
        }
    }
    if (a->common.runner.n_ctx == 0)
        a->common.runner.n_ctx = (uint32_t)((a->n_prompt > a->n_gen ? a->n_prompt : a->n_gen) + a->depth) + 1;
    return cli_require_model(&a->common);
}

/* Seconds to feed ids[0..n) as one prompt, or one by one, after depth
 * positions (an empty cache, or one filled with random K/V). */
static int timed_feed(rl_runner *r, const int32_t *ids, uint32_t n, bool one_by_one, uint32_t depth, float *logits,
                      double *secs) {
    char err[512];
    rl_runner_truncate(r, 0);
    if (depth && rl_runner_fill_random(r, depth, err, sizeof err)) {
        fprintf(stderr, "relais bench: %s\n", err);
        return -1;
    }
    double t0 = rl_now_s();
    for (uint32_t i = 0; i < n; i += one_by_one ? 1 : n)
        if (rl_runner_feed(r, ids + i, one_by_one ? 1 : n, logits, err, sizeof err)) {
            fprintf(stderr, "relais bench: %s\n", err);
            return -1;
        }
    *secs = rl_now_s() - t0;
    return 0;
}

static int measure(const bench_args *a, rl_runner *r, double *pp_tps, double *tg_tps) {
    const rl_hparams *hp = rl_runner_hparams(r);
    uint32_t n_max = (uint32_t)(a->n_prompt > a->n_gen ? a->n_prompt : a->n_gen);
    int32_t *ids = malloc((n_max + 1) * sizeof *ids);
    float *logits = malloc((size_t)hp->n_vocab * sizeof *logits);
    double *t = malloc((size_t)a->reps * sizeof *t);
    int rc = -1;
    if (!ids || !logits || !t)
        goto out;
    for (uint32_t i = 0; i < n_max; i++) /* arbitrary but valid ids */
        ids[i] = (int32_t)((i * 2654435761u) % hp->n_vocab);
    *pp_tps = *tg_tps = 0;
    if (a->n_prompt > 0) {
        if (timed_feed(r, ids, (uint32_t)a->n_prompt, false, (uint32_t)a->depth, logits, &t[0])) /* warm-up */
            goto out;
        for (int i = 0; i < a->reps; i++)
            if (timed_feed(r, ids, (uint32_t)a->n_prompt, false, (uint32_t)a->depth, logits, &t[i]))
                goto out;
        *pp_tps = a->n_prompt / median(t, (int)a->reps);
    }
    if (a->n_gen > 0) {
        for (int i = 0; i < a->reps; i++)
            if (timed_feed(r, ids, (uint32_t)a->n_gen, true, (uint32_t)a->depth, logits, &t[i]))
                goto out;
        *tg_tps = a->n_gen / median(t, (int)a->reps);
    }
    rc = 0;
out:
    free(ids);
    free(logits);
    free(t);
    return rc;
}

/* Bytes a decode step reads whole: every layer's tensors and the head. */
static uint64_t bytes_per_token(const rl_runner *r) {
    const gguf_file *f = rl_runner_gguf(r);
    const rl_hparams *hp = rl_runner_hparams(r);
    uint64_t b = rl_head_file_bytes(f, hp->tied_output);
    for (uint32_t il = 0; il < hp->n_layer; il++)
        b += rl_layer_file_bytes(f, il);
    return b;
}

typedef struct {
    double pp, tg, probe, tg_gbps;
    uint64_t per_token;
} bench_result;

static void print_json(const bench_args *a, rl_runner *r, const bench_result *b) {
    const rl_runner_opts *o = &a->common.runner;
    json_t *j = json_pack("{s:s, s:i, s:s, s:I, s:I, s:f, s:f, s:f}", "model", o->model_path, "threads",
                          rl_runner_threads(r), "isa", rl_kernel_name(), "n_prompt", (json_int_t)a->n_prompt, "n_gen",
                          (json_int_t)a->n_gen, "pp_tps", b->pp, "tg_tps", b->tg, "peak_rss_mb", rl_peak_rss_mib());
    json_object_set_new(j, "tg_gbps", json_real(b->tg_gbps));
    json_object_set_new(j, "probe_gbps", json_real(b->probe));
    json_object_set_new(j, "bytes_per_token", json_integer((json_int_t)b->per_token));
    json_object_set_new(j, "file_bytes", json_integer((json_int_t)gguf_file_size(rl_runner_gguf(r))));
    json_object_set_new(j, "kv_bytes", json_integer((json_int_t)rl_runner_kv_bytes(r)));
    char kvs[32];
    json_object_set_new(j, "kv_type", json_string(rl_kv_type_str(o->kv_type, kvs, sizeof kvs)));
    json_object_set_new(j, "depth", json_integer((json_int_t)a->depth));
    json_object_set_new(j, "pp_depth", json_integer((json_int_t)(a->n_prompt > 0 ? a->depth : 0)));
    json_object_set_new(j, "load", json_string(o->no_mmap ? "no-mmap" : "mmap"));
    json_object_set_new(j, "layout", json_string(o->file_layout ? "file" : "x16"));
    char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(6));
    puts(s);
    free(s);
    json_decref(j);
}

static void print_table(const bench_args *a, rl_runner *r, const bench_result *b) {
    printf("%-40s %7s %6s %9s %9s %9s %9s %12s\n", "model", "threads", "isa", "pp t/s", "tg t/s", "tg GB/s", "probe",
           "peak RSS MiB");
    printf("%-40s %7d %6s %9.2f %9.2f %9.1f %9.1f %12.0f\n", a->common.runner.model_path, rl_runner_threads(r),
           rl_kernel_name(), b->pp, b->tg, b->tg_gbps, b->probe, rl_peak_rss_mib());
    printf("(pp: %lld-token prompt as one batch; tg: %lld tokens one at a time; both from position %lld; median of "
           "%lld; tg GB/s: %.0f MiB read per token%s)\n",
           (long long)a->n_prompt, (long long)a->n_gen, (long long)a->depth, (long long)a->reps,
           b->per_token / 1048576.0, a->probe ? "; probe: streaming read, same threads" : "");
}

int cmd_bench(int argc, char **argv) {
    bench_args a = {0};
    char err[512];
    if (parse_args(argc, argv, &a))
        return 2;
    if (a.json)
        rl_log_set_level(RL_LOG_WARN);
    a.common.runner.progress = !a.json;
    bench_result b = {0};
    if (a.probe) /* before the model is in memory, so the two never compete for it */
        b.probe = bench_probe_gbps(a.common.runner.n_threads, PROBE_BYTES);
    rl_runner *r = rl_runner_new(&a.common.runner, err, sizeof err);
    if (!r) {
        fprintf(stderr, "relais bench: %s\n", err);
        return 1;
    }
    int rc = measure(&a, r, &b.pp, &b.tg);
    b.per_token = bytes_per_token(r);
    b.tg_gbps = (double)b.per_token * b.tg / 1e9;
    if (rc == 0 && a.json)
        print_json(&a, r, &b);
    else if (rc == 0)
        print_table(&a, r, &b);
    rl_runner_destroy(&r);
    return rc ? 1 : 0;
}
