/* `relais inspect FILE`: what a GGUF file holds — architecture and
 * hyper-parameters, tokenizer kind, sliding-window layout, bytes per layer,
 * the tensor table, and (with --kv) every metadata value. Vocab-only files
 * are shown too: their tokenizer and metadata. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "commands.h"
#include "gguf.h"
#include "kv.h"
#include "log.h"
#include "model.h"
#include "tokenizer.h"

static void print_hparams(const rl_hparams *hp) {
    printf("architecture   %s%s%s\n", hp->arch, hp->name[0] ? "  name: " : "", hp->name);
    printf("layers         %u\n", hp->n_layer);
    printf("dim            %u  (heads %u, kv heads %u, head dim %u)\n", hp->dim, hp->n_head, hp->n_head_kv,
           hp->head_dim);
    printf("ffn            %u\n", hp->ffn_dim);
    printf("vocab          %u\n", hp->n_vocab);
    if (hp->n_ctx_train != hp->n_ctx_file)
        printf("context        %u (Ministral-8B-2410's published context; the file declares %u)\n", hp->n_ctx_train,
               hp->n_ctx_file);
    else
        printf("context        %u\n", hp->n_ctx_train);
    printf("rope base      %g\n", hp->rope_base);
    if (hp->rope_yarn)
        printf("rope scaling   yarn: factor %g over original context %u, beta_fast %g, beta_slow %g, "
               "log multiplier %g, attn_factor %g\n",
               hp->rope_factor, hp->rope_orig_ctx, hp->yarn_beta_fast, hp->yarn_beta_slow, hp->yarn_log_mul,
               hp->rope_attn_factor);
    else
        printf("rope scaling   none\n");
    if (hp->attn_temp_scale != 0.0f)
        printf("attention temp q *= 1 + %g ln(1 + floor(pos / %u))\n", hp->attn_temp_scale, hp->rope_orig_ctx);
    printf("rms eps        %g\n", hp->norm_eps);
    printf("output head    %s\n", hp->tied_output ? "tied to token_embd" : "separate (output.weight)");
}

static void print_window_layout(const rl_hparams *hp) {
    if (hp->swa_window == 0) {
        printf("sliding window none (every layer attends over the whole context)\n");
        return;
    }
    uint32_t n_slide = 0;
    for (uint32_t i = 0; i < hp->n_layer; i++)
        n_slide += hp->sliding[i];
    printf("sliding window %u on %u of %u layers%s\n", hp->swa_window, n_slide, hp->n_layer,
           hp->swa_inferred ? " (Ministral-8B published layout, inferred: the file has no window keys)" : "");
    printf("layout         ");
    for (uint32_t i = 0; i < hp->n_layer; i++)
        putchar(hp->sliding[i] ? 'S' : 'F');
    printf("  (F full, S sliding; layer 0 first)\n");
}

/* KV bytes per token and at the context asked (0: the model's maximum), in
 * the type asked, and per token in each type for comparison. */
static void print_kv_bytes(const rl_hparams *hp, rl_kv_type t, uint32_t n_ctx) {
    char line[160], name[32];
    if (rl_kv_type_check(t, hp, line, sizeof line))
        printf("KV cache       %s\n", line);
    else
        printf("KV cache       %s (sliding layers at W)\n",
               rl_kv_describe(hp, t, n_ctx ? n_ctx : hp->n_ctx_train, line, sizeof line));
    static const rl_dtype types[] = {RL_F32, RL_F16, RL_Q8_0};
    printf("KV per token  ");
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        rl_kv_type one = {types[i], types[i]};
        char why[160];
        if (rl_kv_type_check(one, hp, why, sizeof why) == 0)
            printf(" %s %.1f KiB", rl_kv_type_str(one, name, sizeof name), rl_kv_bytes_per_token(hp, one) / 1024.0);
    }
    putchar('\n');
}

static void print_layer_bytes(const gguf_file *f, const rl_hparams *hp) {
    uint64_t total = 0;
    for (uint32_t i = 0; i < hp->n_layer; i++)
        total += rl_layer_file_bytes(f, i);
    printf("bytes/layer    %.2f MiB average, %.1f MiB for all %u layers", total / 1048576.0 / hp->n_layer,
           total / 1048576.0, hp->n_layer);
    printf(" (layer 0: %llu bytes)\n", (unsigned long long)rl_layer_file_bytes(f, 0));
}

static void print_tensors(const gguf_file *f) {
    printf("\n%-36s %-6s %-28s %12s\n", "tensor", "type", "shape", "bytes");
    for (int64_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        char shape[64];
        int n = snprintf(shape, sizeof shape, "{");
        for (uint32_t d = 0; d < t->n_dims; d++)
            n += snprintf(shape + n, sizeof shape - (size_t)n, "%s%llu", d ? ", " : "", (unsigned long long)t->ne[d]);
        snprintf(shape + n, sizeof shape - (size_t)n, "}");
        printf("%-36s %-6s %-28s %12llu\n", t->name, rl_dtype_name(t->type), shape, (unsigned long long)t->nbytes);
    }
}

static void print_kv(const gguf_file *f) {
    char buf[256];
    printf("\n%-44s %s\n", "metadata key", "value");
    for (int64_t i = 0; i < gguf_n_kv(f); i++) {
        gguf_str k = gguf_kv_key(f, i);
        gguf_format_value(f, i, buf, sizeof buf);
        printf("%-44.*s %s\n", (int)k.len, k.ptr, buf);
    }
}

int cmd_inspect(int argc, char **argv) {
    enum { OPT_KV_TYPE = 1000, OPT_CTX };
    static const struct option longopts[] = {{"kv", no_argument, 0, 'k'},
                                             {"kv-type", required_argument, 0, OPT_KV_TYPE},
                                             {"ctx", required_argument, 0, OPT_CTX},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    static const char usage[] = "usage: relais inspect [--kv] [--kv-type T] [--ctx N] FILE.gguf\n"
                                "  --kv          print every metadata value\n"
                                "  --kv-type T   KV cache type for the KV figures: f32, f16 (default), q8_0 or K,V\n"
                                "  --ctx N       context for the KV figures (default: the model's maximum)\n";
    bool show_kv = false;
    rl_kv_type kv_type = RL_KV_TYPE_DEFAULT;
    int64_t n_ctx = 0;
    char err[512];
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "kh", longopts, NULL)) != -1) {
        if (opt == 'k') {
            show_kv = true;
        } else if (opt == OPT_KV_TYPE) {
            if (rl_kv_type_parse(optarg, &kv_type, err, sizeof err)) {
                fprintf(stderr, "relais inspect: --kv-type: %s\n", err);
                return 2;
            }
        } else if (opt == OPT_CTX) {
            if (cli_parse_i64("--ctx", optarg, 1, 1 << 24, &n_ctx))
                return 2;
        } else {
            fputs(usage, opt == 'h' ? stdout : stderr);
            return opt == 'h' ? 0 : 2;
        }
    }
    if (optind != argc - 1) {
        fputs(usage, stderr);
        return 2;
    }
    gguf_file *f = gguf_open(argv[optind], err, sizeof err);
    if (!f) {
        fprintf(stderr, "relais inspect: %s\n", err);
        return 1;
    }
    printf("file           %s (GGUF v%u, %.1f MiB, %lld tensors, %lld metadata keys)\n", argv[optind], gguf_version(f),
           gguf_file_size(f) / 1048576.0, (long long)gguf_n_tensors(f), (long long)gguf_n_kv(f));
    rl_tokenizer *tok = rl_tok_new(f, err, sizeof err);
    printf("tokenizer      %s", tok ? rl_tok_kind_name(tok) : "none");
    if (tok)
        printf(", %u tokens, bos %d, eos %d", rl_tok_n_vocab(tok), rl_tok_bos(tok), rl_tok_eos(tok));
    putchar('\n');
    rl_tok_destroy(&tok);
    rl_hparams hp;
    rl_model_opts mo = rl_model_opts_default();
    if (gguf_n_tensors(f) > 0 && rl_hparams_read(f, &mo, &hp, err, sizeof err) == 0) {
        print_hparams(&hp);
        print_window_layout(&hp);
        print_kv_bytes(&hp, kv_type, (uint32_t)n_ctx);
        print_layer_bytes(f, &hp);
    } else if (gguf_n_tensors(f) > 0) {
        printf("model          not runnable: %s\n", err);
    } else {
        printf("model          none (vocab-only file)\n");
    }
    print_tensors(f);
    if (show_kv)
        print_kv(f);
    gguf_close(&f);
    return 0;
}
