/* `relais synth`: writes a GGUF model of random weights in the exact layout
 * of a real one (a preset, with overrides), for sizing a cluster and
 * benchmarking without downloading a model, and for tests. Progress goes to
 * stderr, updated in place when stderr is a terminal; the summary line goes
 * to stdout. */
#include <getopt.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "cli.h"
#include "commands.h"
#include "synth.h"
#include "util.h"
#include "weights_slice.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: relais synth --preset NAME [options] -o FILE.gguf\n"
            "       relais synth --cut-from MODEL.gguf --layers N -o DRAFT.gguf   (a draft model: the first N\n"
            "       layers of MODEL with its embedding, head and tokenizer, for --draft)\n"
            "\n"
            "Writes a model of random weights with the shape, tensor layout, metadata and\n"
            "tokenizer of a real one: its speed and memory are those of the real model,\n"
            "its text is gibberish.\n"
            "\n"
            "  --preset NAME       %s\n"
            "\n"
            "Each option below overrides the preset's value:\n"
            "  --layers N          number of layers\n"
            "  --dim N             embedding width\n"
            "  --heads N           query heads\n"
            "  --kv-heads N        key/value heads (divides --heads)\n"
            "  --head-dim N        width of one head (heads x head-dim need not equal dim)\n"
            "  --ffn N             feed-forward width\n"
            "  --type T            weight type: f32 f16 bf16 q8_0 q4_0 q4_K q5_K q6_K q4_K_M\n"
            "                      (default q4_K_M, f32 for tiny). Norms are always f32; as in\n"
            "                      llama.cpp, quantized types but q8_0 keep output.weight in q6_K;\n"
            "                      K-quant matrices whose rows are not a multiple of 256 are q8_0\n"
            "  --vocab N           vocabulary size (the preset's tokenizer, grown or cut)\n"
            "  --ctx N             context length written to the file\n"
            "  --rope-base B       RoPE frequency base\n"
            "  --rope-factor F     YaRN context extension factor (<= 1: no rope scaling keys)\n"
            "  --rope-orig-ctx N   YaRN original context length\n"
            "  --yarn-beta-fast B  YaRN ramp ends (defaults 32 and 1) ...\n"
            "  --yarn-beta-slow B\n"
            "  --yarn-log-mul M    yarn_log_multiplier: 1 keeps cos/sin at magnitude 1, 0 gives 1 + 0.1 ln F\n"
            "  --attn-temp BETA    attention temperature: q *= 1 + BETA ln(1 + floor(pos / orig ctx));\n"
            "                      0 = none\n"
            "  --swa-window W      sliding window (0 = none) ...\n"
            "  --swa-period P      ... on every layer but those with i %% P == 0\n"
            "  --seed N            weights seed (default 0; same seed, same bytes)\n"
            "  -o, --output FILE   the GGUF file to write\n"
            "  -q, --quiet         no progress display\n",
            rl_synth_preset_names());
}

/* Progress state: redraws only when the shown percentage changes. */
typedef struct {
    bool tty;     /* stderr is a terminal: redraw in place */
    int last_pct; /* percentage last drawn, -1 before the first */
} progress_state;

static void show_progress(void *ud, uint64_t done, uint64_t total) {
    progress_state *p = ud;
    int pct = total ? (int)(done * 100 / total) : 100;
    if (!p->tty || pct == p->last_pct)
        return;
    p->last_pct = pct;
    fprintf(stderr, "\r%3d%%  %.1f / %.1f MiB", pct, done / 1048576.0, total / 1048576.0);
    if (done == total)
        fputc('\n', stderr);
    fflush(stderr);
}

enum {
    OPT_PRESET = 1,
    OPT_LAYERS,
    OPT_TYPE,
    OPT_VOCAB,
    OPT_CTX,
    OPT_SWA_W,
    OPT_SWA_P,
    OPT_SEED,
    OPT_DIM,
    OPT_HEADS,
    OPT_KV_HEADS,
    OPT_HEAD_DIM,
    OPT_FFN,
    OPT_ROPE_BASE,
    OPT_ROPE_FACTOR,
    OPT_ROPE_ORIG,
    OPT_BETA_FAST,
    OPT_BETA_SLOW,
    OPT_LOG_MUL,
    OPT_ATTN_TEMP,
};

/* The overrides, applied after the preset whatever their order. */
typedef struct {
    int64_t layers, vocab, ctx, swa_w, swa_p, seed; /* -1 = keep the preset's */
    int64_t dim, heads, kv_heads, head_dim, ffn, orig_ctx;
    int ftype;                                                         /* -1 = keep the preset's */
    float rope_base, factor, beta_fast, beta_slow, log_mul, attn_temp; /* NAN = keep the preset's */
} overrides;

static int parse_float_opt(int opt, const char *arg, overrides *o) {
    switch (opt) {
    case OPT_ROPE_BASE:
        return cli_parse_f32("--rope-base", arg, 1.0f, 1e12f, &o->rope_base);
    case OPT_ROPE_FACTOR:
        return cli_parse_f32("--rope-factor", arg, 0.0f, 1e6f, &o->factor);
    case OPT_BETA_FAST:
        return cli_parse_f32("--yarn-beta-fast", arg, 0.0f, 1e6f, &o->beta_fast);
    case OPT_BETA_SLOW:
        return cli_parse_f32("--yarn-beta-slow", arg, 0.0f, 1e6f, &o->beta_slow);
    case OPT_LOG_MUL:
        return cli_parse_f32("--yarn-log-mul", arg, 0.0f, 100.0f, &o->log_mul);
    case OPT_ATTN_TEMP:
        return cli_parse_f32("--attn-temp", arg, 0.0f, 100.0f, &o->attn_temp);
    default:
        return -1; /* getopt already said what was wrong */
    }
}

static int parse_opt(int opt, const char *arg, overrides *o) {
    switch (opt) {
    case OPT_LAYERS:
        return cli_parse_i64("--layers", arg, 1, 512, &o->layers);
    case OPT_VOCAB:
        return cli_parse_i64("--vocab", arg, 1, 1 << 22, &o->vocab);
    case OPT_CTX:
        return cli_parse_i64("--ctx", arg, 1, UINT32_MAX, &o->ctx);
    case OPT_SWA_W:
        return cli_parse_i64("--swa-window", arg, 0, UINT32_MAX, &o->swa_w);
    case OPT_SWA_P:
        return cli_parse_i64("--swa-period", arg, 1, 512, &o->swa_p);
    case OPT_SEED:
        return cli_parse_i64("--seed", arg, 0, INT64_MAX, &o->seed);
    case OPT_DIM:
        return cli_parse_i64("--dim", arg, 1, 1 << 20, &o->dim);
    case OPT_HEADS:
        return cli_parse_i64("--heads", arg, 1, 4096, &o->heads);
    case OPT_KV_HEADS:
        return cli_parse_i64("--kv-heads", arg, 1, 4096, &o->kv_heads);
    case OPT_HEAD_DIM:
        return cli_parse_i64("--head-dim", arg, 2, 1024, &o->head_dim);
    case OPT_FFN:
        return cli_parse_i64("--ffn", arg, 1, 1 << 22, &o->ffn);
    case OPT_ROPE_ORIG:
        return cli_parse_i64("--rope-orig-ctx", arg, 1, UINT32_MAX, &o->orig_ctx);
    case OPT_TYPE:
        if ((o->ftype = rl_synth_ftype_from_name(arg)) < 0) {
            fprintf(stderr,
                    "relais synth: --type: unknown type '%s' (f32 f16 bf16 q8_0 q4_0 q4_K q5_K q6_K "
                    "q4_K_M)\n",
                    arg);
            return -1;
        }
        return 0;
    default:
        return parse_float_opt(opt, arg, o);
    }
}

static void set_u32(int64_t v, uint32_t *field) {
    if (v >= 0)
        *field = (uint32_t)v;
}

static void set_f32(float v, float *field) {
    if (!isnan(v))
        *field = v;
}

static void apply(const overrides *o, rl_synth_spec *s) {
    set_u32(o->layers, &s->n_layer);
    set_u32(o->vocab, &s->n_vocab);
    set_u32(o->ctx, &s->n_ctx);
    set_u32(o->dim, &s->dim);
    set_u32(o->heads, &s->n_head);
    set_u32(o->kv_heads, &s->n_head_kv);
    set_u32(o->head_dim, &s->head_dim);
    set_u32(o->ffn, &s->ffn_dim);
    set_u32(o->orig_ctx, &s->rope_orig_ctx);
    set_f32(o->rope_base, &s->rope_base);
    set_f32(o->factor, &s->rope_factor);
    set_f32(o->beta_fast, &s->yarn_beta_fast);
    set_f32(o->beta_slow, &s->yarn_beta_slow);
    set_f32(o->log_mul, &s->yarn_log_mul);
    set_f32(o->attn_temp, &s->attn_temp_scale);
    if ((s->rope_factor > 1.0f || s->attn_temp_scale != 0.0f) && s->rope_orig_ctx == 0)
        s->rope_orig_ctx = s->n_ctx; /* llama.cpp's default for a missing original context */
    set_u32(o->swa_w, &s->swa_window);
    if (o->swa_p >= 0)
        s->swa_period = (uint32_t)o->swa_p;
    else if (o->swa_w > 0 && s->swa_period == 0)
        s->swa_period = 4; /* a window alone gets Ministral's layout */
    if (o->seed >= 0)
        s->seed = (uint64_t)o->seed;
    if (o->ftype >= 0)
        s->ftype = (rl_synth_ftype)o->ftype;
}

/* Parses argv into *spec and *out; returns 0, 1 after --help, or -1. */
static int parse_args(int argc, char **argv, rl_synth_spec *spec, const char **out, bool *quiet) {
    static const struct option longopts[] = {{"preset", required_argument, 0, OPT_PRESET},
                                             {"layers", required_argument, 0, OPT_LAYERS},
                                             {"type", required_argument, 0, OPT_TYPE},
                                             {"vocab", required_argument, 0, OPT_VOCAB},
                                             {"ctx", required_argument, 0, OPT_CTX},
                                             {"swa-window", required_argument, 0, OPT_SWA_W},
                                             {"swa-period", required_argument, 0, OPT_SWA_P},
                                             {"seed", required_argument, 0, OPT_SEED},
                                             {"dim", required_argument, 0, OPT_DIM},
                                             {"heads", required_argument, 0, OPT_HEADS},
                                             {"kv-heads", required_argument, 0, OPT_KV_HEADS},
                                             {"head-dim", required_argument, 0, OPT_HEAD_DIM},
                                             {"ffn", required_argument, 0, OPT_FFN},
                                             {"rope-base", required_argument, 0, OPT_ROPE_BASE},
                                             {"rope-factor", required_argument, 0, OPT_ROPE_FACTOR},
                                             {"rope-orig-ctx", required_argument, 0, OPT_ROPE_ORIG},
                                             {"yarn-beta-fast", required_argument, 0, OPT_BETA_FAST},
                                             {"yarn-beta-slow", required_argument, 0, OPT_BETA_SLOW},
                                             {"yarn-log-mul", required_argument, 0, OPT_LOG_MUL},
                                             {"attn-temp", required_argument, 0, OPT_ATTN_TEMP},
                                             {"output", required_argument, 0, 'o'},
                                             {"quiet", no_argument, 0, 'q'},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    overrides o = {.layers = -1,
                   .vocab = -1,
                   .ctx = -1,
                   .swa_w = -1,
                   .swa_p = -1,
                   .seed = -1,
                   .dim = -1,
                   .heads = -1,
                   .kv_heads = -1,
                   .head_dim = -1,
                   .ffn = -1,
                   .orig_ctx = -1,
                   .ftype = -1,
                   .rope_base = NAN,
                   .factor = NAN,
                   .beta_fast = NAN,
                   .beta_slow = NAN,
                   .log_mul = NAN,
                   .attn_temp = NAN};
    const char *preset = NULL;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "o:qh", longopts, NULL)) != -1) {
        if (opt == 'h') {
            usage(stdout);
            return 1;
        } else if (opt == 'o') {
            *out = optarg;
        } else if (opt == 'q') {
            *quiet = true;
        } else if (opt == OPT_PRESET) {
            preset = optarg;
        } else if (parse_opt(opt, optarg, &o) < 0) {
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "relais synth: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    if (!preset || !*out) {
        fprintf(stderr, "relais synth: %s is required\n\n", !preset ? "--preset" : "-o FILE");
        usage(stderr);
        return -1;
    }
    if (rl_synth_preset(preset, spec) < 0) {
        fprintf(stderr, "relais synth: unknown preset '%s' (%s)\n", preset, rl_synth_preset_names());
        return -1;
    }
    apply(&o, spec);
    char err[256];
    if (rl_synth_check(spec, err, sizeof err) < 0) {
        fprintf(stderr, "relais synth: %s\n", err);
        return -1;
    }
    return 0;
}

/* `relais synth --cut-from MODEL --layers N -o FILE`: a draft model for
 * speculative decoding cut from a real one, its first N layers with the
 * embedding, head and tokenizer (weights_slice_draft): a cheap draft whose
 * acceptance against its own model can be measured. Returns the exit code. */
static int cut_draft(int argc, char **argv) {
    static const struct option longopts[] = {{"cut-from", required_argument, 0, 'c'},
                                             {"layers", required_argument, 0, 'l'},
                                             {"output", required_argument, 0, 'o'},
                                             {0, 0, 0, 0}};
    const char *from = NULL, *out = NULL;
    int64_t n = 0;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "o:", longopts, NULL)) != -1)
        if (opt == 'c')
            from = optarg;
        else if (opt == 'o')
            out = optarg;
        else if (opt != 'l' || cli_parse_i64("--layers", optarg, 1, 4096, &n))
            return 2;
    if (!from || !out || !n) {
        fprintf(stderr, "usage: relais synth --cut-from MODEL.gguf --layers N -o DRAFT.gguf\n");
        return 2;
    }
    char err[512];
    weights_slice *w = weights_slice_draft(from, (uint32_t)n, err, sizeof err);
    FILE *f = w ? fopen(out, "wb") : NULL;
    uint8_t *buf = malloc(1 << 20);
    const uint64_t size = w ? weights_slice_size(w) : 0;
    int rc = w && f && buf ? 0 : 1;
    for (uint64_t off = 0; rc == 0 && off < size; off += 1 << 20) {
        const size_t len = size - off < (1 << 20) ? (size_t)(size - off) : 1 << 20;
        weights_slice_read(w, off, buf, len);
        rc = fwrite(buf, 1, len, f) == len ? 0 : 1;
    }
    if (f && fclose(f))
        rc = 1;
    if (rc)
        fprintf(stderr, "relais synth: %s\n", !w ? err : !f ? "cannot write the output" : "write failed");
    else
        printf("wrote %s: the first %lld layers of %s, %llu bytes\n", out, (long long)n, from,
               (unsigned long long)size);
    free(buf);
    weights_slice_destroy(&w);
    return rc;
}

int cmd_synth(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--cut-from"))
            return cut_draft(argc, argv);
    rl_synth_spec spec;
    const char *out = NULL;
    bool quiet = false;
    int rc = parse_args(argc, argv, &spec, &out, &quiet);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    fprintf(stderr, "synth: %s, %u layers, dim %u, %u/%u heads of %u, ffn %u, vocab %u, ctx %u, %s, seed %llu%s\n",
            spec.arch, spec.n_layer, spec.dim, spec.n_head, spec.n_head_kv, spec.head_dim, spec.ffn_dim, spec.n_vocab,
            spec.n_ctx, rl_synth_ftype_name(spec.ftype), (unsigned long long)spec.seed,
            spec.tied_output ? ", output tied to token_embd" : "");
    if (spec.rope_factor > 1.0f)
        fprintf(stderr, "synth: YaRN factor %g over %u, beta %g/%g, log multiplier %g; attention temperature %g\n",
                spec.rope_factor, spec.rope_orig_ctx, spec.yarn_beta_fast, spec.yarn_beta_slow, spec.yarn_log_mul,
                spec.attn_temp_scale);
    progress_state ps = {.tty = !quiet && isatty(STDERR_FILENO), .last_pct = -1};
    const double t0 = rl_now_s();
    char err[512];
    if (rl_synth_write(&spec, out, show_progress, &ps, err, sizeof err) < 0) {
        if (ps.last_pct >= 0 && ps.last_pct < 100)
            fputc('\n', stderr);
        fprintf(stderr, "relais synth: %s\n", err);
        return 1;
    }
    struct stat st;
    long long size = stat(out, &st) == 0 ? (long long)st.st_size : -1;
    printf("wrote %s: %lld bytes (%.1f MiB) in %.1f s\n", out, size, size / 1048576.0, rl_now_s() - t0);
    return 0;
}
