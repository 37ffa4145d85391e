/* `relais run`: generate from a prompt, streaming the text, on this machine
 * or a cluster's nodes (one session through the executor, executor.h);
 * or, with --json, the machine-readable mode used to check relais against
 * other implementations (keep its output stable):
 *   {"prompt_ids": [...], "greedy_ids": [...], "top": [[[id, logit] x K] per step]}
 * --force-ids feeds the given ids instead of the sampled ones (teacher
 * forcing) while still reporting each step's sample and top logits. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "commands.h"
#include "draft.h"
#include "executor.h"
#include "log.h"
#include "util.h"

enum {
    OPT_PROMPT_IDS = CLI_OPT_FIRST_OWN,
    OPT_FORCE_IDS,
    OPT_TOP_LOGITS,
    OPT_JSON,
    OPT_NO_BOS,
    OPT_NO_SPECIAL,
    OPT_IGNORE_EOS
};

typedef struct {
    cli_common common;
    cli_draft draft;
    rl_cluster_opts cluster;
    const char *prompt;
    int32_t *prompt_ids, *force_ids;
    size_t n_prompt, n_force;
    int64_t n_predict;
    int64_t top_logits;
    bool json, no_bos, no_special, ignore_eos;
} run_args;

typedef struct {
    json_t *generated; /* ids produced at each step */
    json_t *top;       /* per step: [[id, logit] x K] */
    double t_prompt, t_gen;
    size_t n_gen;
} run_result;

static void usage(FILE *out) {
    fprintf(out,
            "usage: relais run -m MODEL.gguf (-p PROMPT | --prompt-ids 1,5,17) [options]\n\n"
            "  -p, --prompt TEXT       prompt (control-token text such as [INST] is parsed)\n"
            "  -n, --n-predict N       tokens to generate (default 128)\n"
            "      --prompt-ids LIST   prompt as comma-separated token ids\n"
            "      --force-ids LIST    teacher forcing: feed these ids instead of the sampled ones\n"
            "      --top-logits K      report the K largest logits of every step (with --json)\n"
            "      --json              machine-readable output on stdout; generates exactly N ids\n"
            "      --ignore-eos        do not stop at an end-of-generation token\n"
            "      --no-bos            do not add BOS to a text prompt\n"
            "      --no-special        treat control-token text in the prompt as plain text\n" CLI_DRAFT_HELP
                CLI_COMMON_HELP RL_CLUSTER_HELP);
}

static int parse_args(int argc, char **argv, run_args *a) {
    static const struct option longopts[] = {{"prompt", required_argument, 0, 'p'},
                                             {"n-predict", required_argument, 0, 'n'},
                                             {"prompt-ids", required_argument, 0, OPT_PROMPT_IDS},
                                             {"force-ids", required_argument, 0, OPT_FORCE_IDS},
                                             {"top-logits", required_argument, 0, OPT_TOP_LOGITS},
                                             {"json", no_argument, 0, OPT_JSON},
                                             {"no-bos", no_argument, 0, OPT_NO_BOS},
                                             {"ignore-eos", no_argument, 0, OPT_IGNORE_EOS},
                                             {"no-special", no_argument, 0, OPT_NO_SPECIAL},
                                             {"help", no_argument, 0, 'h'},
                                             CLI_COMMON_LONGOPTS,
                                             CLI_DRAFT_LONGOPTS,
                                             RL_CLUSTER_LONGOPTS,
                                             {0, 0, 0, 0}};
    int opt;
    cli_common_init(&a->common, 0.7f);
    a->n_predict = 128;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "m:p:n:t:h", longopts, NULL)) != -1) {
        int rc = cli_common_opt(&a->common, opt, optarg);
        if (rc == 0)
            rc = cli_draft_opt(&a->draft, opt, optarg);
        if (rc == 0)
            rc = rl_cluster_opt(&a->cluster, opt, optarg);
        if (rc < 0)
            return -1;
        if (rc > 0)
            continue;
        switch (opt) {
        case 'p':
            a->prompt = optarg;
            break;
        case 'n':
            if (cli_parse_i64("-n", optarg, 0, 1 << 24, &a->n_predict))
                return -1;
            break;
        case OPT_PROMPT_IDS:
            if (cli_parse_ids("--prompt-ids", optarg, &a->prompt_ids, &a->n_prompt))
                return -1;
            break;
        case OPT_FORCE_IDS:
            if (cli_parse_ids("--force-ids", optarg, &a->force_ids, &a->n_force))
                return -1;
            break;
        case OPT_TOP_LOGITS:
            if (cli_parse_i64("--top-logits", optarg, 1, 1000, &a->top_logits))
                return -1;
            break;
        case OPT_JSON:
            a->json = true;
            break;
        case OPT_NO_BOS:
            a->no_bos = true;
            break;
        case OPT_NO_SPECIAL:
            a->no_special = true;
            break;
        case OPT_IGNORE_EOS:
            a->ignore_eos = true;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "relais run: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    if (!a->prompt == !a->prompt_ids) {
        fprintf(stderr, "relais run: give exactly one of -p PROMPT or --prompt-ids LIST\n");
        return -1;
    }
    if (a->force_ids)
        a->n_predict = (int64_t)a->n_force;
    if (a->draft.spec && (a->force_ids || a->top_logits)) {
        fprintf(stderr, "relais run: --draft does not go with --force-ids or --top-logits\n");
        return -1;
    }
    /* Comparisons with other implementations need the same number of ids. */
    if (a->json || a->force_ids)
        a->ignore_eos = true;
    return cli_require_model(&a->common);
}

static json_t *top_json(const rl_top *top) {
    json_t *step = json_array();
    for (uint32_t i = 0; i < top->n; i++)
        json_array_append_new(step, json_pack("[i, f]", top->ids[i], (double)top->vals[i]));
    return step;
}

static int prompt_ids_of(const run_args *a, const rl_tokenizer *tok, int32_t **ids, size_t *n) {
    if (a->prompt_ids) {
        *ids = malloc(a->n_prompt * sizeof **ids);
        if (!*ids)
            return -1;
        memcpy(*ids, a->prompt_ids, a->n_prompt * sizeof **ids);
        *n = a->n_prompt;
        return 0;
    }
    bool bos = !a->no_bos && rl_tok_add_bos(tok);
    if (rl_tok_encode(tok, a->prompt, strlen(a->prompt), bos, !a->no_special, ids, n)) {
        fprintf(stderr, "relais run: cannot tokenize the prompt\n");
        return -1;
    }
    return 0;
}

/* The generation loop; fills res. Returns 0 or -1 (message printed). */
static int generate(const run_args *a, const rl_xengine *e, rl_xsession *xs, const int32_t *prompt, size_t n_prompt,
                    run_result *res) {
    char err[512], text[512];
    int32_t id;
    rl_top top;
    rl_tok_stream *stream = rl_tok_stream_new(e->tok, false);
    if (!stream)
        goto fail;
    rl_xsession_begin(xs, &a->common.sampling, (uint32_t)a->top_logits);
    double t0 = rl_now_s();
    if (rl_xsession_step(xs, prompt, (uint32_t)n_prompt, &id, &top, err, sizeof err))
        goto fail;
    res->t_prompt = rl_now_s() - t0;
    t0 = rl_now_s();
    /* pend: the ids the last pass produced (one, or a draft's accepted ids
     * and the target's after them), shown before the next pass feeds the last */
    int32_t pend[RL_DRAFT_MAX + 1] = {id}, next = id;
    uint32_t n_pend = 1;
    bool done = a->n_predict == 0;
    for (int64_t step = 0; !done;) {
        for (uint32_t j = 0; j < n_pend && !done; j++, step++) {
            id = pend[j];
            if (a->top_logits)
                json_array_append_new(res->top, top_json(&top));
            json_array_append_new(res->generated, json_integer(id));
            res->n_gen++;
            next = a->force_ids ? a->force_ids[step] : id;
            if (!a->json) {
                rl_tok_stream_feed(stream, next, text, sizeof text);
                fputs(text, stdout);
                fflush(stdout);
            }
            done = (!a->ignore_eos && rl_tok_is_eog(e->tok, id)) || step + 1 == a->n_predict;
        }
        const int64_t left = a->n_predict - step;
        if (!done &&
            rl_xsession_next(xs, next, pend, left < RL_DRAFT_MAX + 1 ? (uint32_t)left : RL_DRAFT_MAX + 1, &n_pend, &top,
                             err, sizeof err))
            goto fail;
    }
    res->t_gen = rl_now_s() - t0;
    if (!a->json) {
        rl_tok_stream_flush(stream, text, sizeof text);
        printf("%s\n", text);
        fflush(stdout); /* before the statistics line on stderr */
    }
    rl_tok_stream_destroy(&stream);
    return 0;
fail:
    fprintf(stderr, "relais run: %s\n", stream ? err : "out of memory");
    rl_tok_stream_destroy(&stream);
    return -1;
}

static void print_json(const int32_t *prompt, size_t n_prompt, const run_result *res) {
    json_t *root = json_object(), *p = json_array();
    for (size_t i = 0; i < n_prompt; i++)
        json_array_append_new(p, json_integer(prompt[i]));
    json_object_set_new(root, "prompt_ids", p);
    json_object_set(root, "greedy_ids", res->generated);
    json_object_set(root, "top", res->top);
    char *s = json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(9));
    puts(s);
    free(s);
    json_decref(root);
}

/* Speculation's line: how many drafted ids the target accepted. */
static void print_spec_stats(const rl_draft *d, const rl_xsession *xs) {
    rl_xspec_stats st = rl_xsession_spec_stats(xs);
    fprintf(stderr, "relais: draft %s: accepted %.0f%% of %llu drafted ids, %.2f tokens per pass\n", rl_draft_name(d),
            st.drafted ? 100.0 * st.accepted / st.drafted : 0.0, (unsigned long long)st.drafted,
            st.passes ? (double)st.produced / st.passes : 0.0);
}

static void print_stats(rl_executor *x, size_t n_prompt, const run_result *res) {
    char where[256];
    x->ops->describe(x, where, sizeof where);
    fprintf(stderr,
            "relais: prompt %zu tokens in %.2f s (%.1f t/s) | generation %zu tokens in %.2f s (%.1f t/s) | "
            "peak RSS %.0f MiB | %s\n",
            n_prompt, res->t_prompt, res->t_prompt > 0 ? n_prompt / res->t_prompt : 0.0, res->n_gen, res->t_gen,
            res->t_gen > 0 && res->n_gen > 1 ? (res->n_gen - 1) / res->t_gen : 0.0, rl_peak_rss_mib(), where);
}

int cmd_run(int argc, char **argv) {
    run_args a = {0};
    run_result res = {.generated = json_array(), .top = json_array()};
    rl_xengine e = {0};
    rl_xsession *xs = NULL;
    rl_draft *draft = NULL;
    int32_t *prompt = NULL;
    size_t n_prompt = 0;
    char err[512];
    int rc = 1;
    if (parse_args(argc, argv, &a))
        goto out;
    if (a.json && !getenv("RELAIS_LOG")) /* quiet unless asked: the JSON is the output */
        rl_log_set_level(RL_LOG_WARN);
    a.common.runner.progress = !a.json;
    if (rl_xengine_open(&e, &a.cluster, &a.common.runner, 1, err, sizeof err)) {
        fprintf(stderr, "relais run: %s\n", err);
        goto out;
    }
    char where[256];
    e.x->ops->describe(e.x, where, sizeof where);
    rl_log(RL_LOG_INFO, "context %u positions: %s", e.n_ctx, where);
    if (prompt_ids_of(&a, e.tok, &prompt, &n_prompt))
        goto out;
    if (n_prompt == 0) {
        fprintf(stderr, "relais run: the prompt has no tokens\n");
        goto out;
    }
    if (!(xs = rl_xsession_new(e.x, e.n_ctx, a.common.runner.progress))) {
        fprintf(stderr, "relais run: out of memory\n");
        goto out;
    }
    if (a.draft.spec) {
        if (!(draft = rl_draft_new(a.draft.spec, e.tok, a.common.runner.n_threads, e.n_ctx, err, sizeof err))) {
            fprintf(stderr, "relais run: %s\n", err);
            goto out;
        }
        rl_xsession_set_draft(xs, draft, a.draft.k_max);
    }
    if (generate(&a, &e, xs, prompt, n_prompt, &res))
        goto out;
    if (a.json)
        print_json(prompt, n_prompt, &res);
    else
        print_stats(e.x, n_prompt, &res);
    if (draft)
        print_spec_stats(draft, xs);
    rc = 0;
out:
    rl_xsession_destroy(&xs);
    rl_draft_destroy(&draft);
    rl_xengine_close(&e);
    json_decref(res.generated);
    json_decref(res.top);
    free(prompt);
    free(a.prompt_ids);
    free(a.force_ids);
    return rc;
}
