/* `relais chat`: an interactive chat, on this machine or a cluster's nodes
 * (one session through the executor, executor.h), using the model's chat
 * template. Each turn rebuilds the whole conversation's prompt and feeds only
 * what differs from what the cache already holds, so a long conversation
 * costs one turn's tokens per turn. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "chat.h"
#include "cli.h"
#include "commands.h"
#include "draft.h"
#include "executor.h"

enum { OPT_SYSTEM = CLI_OPT_FIRST_OWN };

typedef struct {
    rl_xengine e;
    rl_xsession *xs;
    rl_sampler_params sampling;
    rl_chat_template tpl;
    int32_t *fed; /* ids the cache holds, in order */
    size_t n_fed, cap;
    int64_t n_predict;
} chat_state;

static int remember(chat_state *s, const int32_t *ids, size_t n) {
    if (s->n_fed + n > s->cap) {
        size_t cap = (s->n_fed + n) * 2;
        int32_t *p = realloc(s->fed, cap * sizeof *p);
        if (!p)
            return -1;
        s->fed = p;
        s->cap = cap;
    }
    memcpy(s->fed + s->n_fed, ids, n * sizeof *ids);
    s->n_fed += n;
    return 0;
}

/* Brings the cache to `prompt`, feeding only the part after the common
 * prefix, and samples the first reply id. */
static int sync_prompt(chat_state *s, const int32_t *prompt, size_t n, int32_t *id, char *err, size_t errlen) {
    size_t common = 0;
    while (common < n && common < s->n_fed && s->fed[common] == prompt[common])
        common++;
    if (common == n) /* the last prompt id must be fed again to sample after it */
        common--;
    const uint32_t kept = rl_xsession_rewind(s->xs, (uint32_t)common);
    if (rl_xsession_step(s->xs, prompt + kept, (uint32_t)(n - kept), id, NULL, err, errlen))
        return -1;
    s->n_fed = 0;
    return remember(s, prompt, n);
}

/* Generates the reply to the conversation; its text is appended to reply. */
static int reply_turn(chat_state *s, const int32_t *prompt, size_t n, char *reply, size_t cap) {
    const rl_tokenizer *tok = s->e.tok;
    rl_tok_stream *stream = rl_tok_stream_new(tok, false);
    int32_t id;
    char err[512] = "out of memory", text[512];
    size_t used = 0;
    int rc = -1;
    if (!stream)
        goto out;
    rl_xsession_begin(s->xs, &s->sampling, 0);
    if (sync_prompt(s, prompt, n, &id, err, sizeof err))
        goto out;
    /* pend: what the last pass produced (with a draft, maybe several ids) */
    int32_t pend[RL_DRAFT_MAX + 1] = {id};
    uint32_t n_pend = 1, j = 0;
    for (int64_t i = 0; i < s->n_predict && !rl_tok_is_eog(tok, id = pend[j++]); i++) {
        size_t k = rl_tok_stream_feed(stream, id, text, sizeof text);
        fputs(text, stdout);
        fflush(stdout);
        if (used + k < cap)
            memcpy(reply + used, text, k), used += k;
        if (remember(s, &id, 1))
            goto out;
        if (j < n_pend)
            continue;
        const int64_t left = s->n_predict - i - 1; /* the last id is fed too: the cache holds what fed says */
        const uint32_t want = left > RL_DRAFT_MAX ? RL_DRAFT_MAX + 1 : left > 1 ? (uint32_t)left : 1;
        if (rl_xsession_next(s->xs, id, pend, want, &n_pend, NULL, err, sizeof err))
            goto out;
        j = 0;
    }
    size_t k = rl_tok_stream_flush(stream, text, sizeof text);
    fputs(text, stdout);
    if (used + k < cap)
        memcpy(reply + used, text, k), used += k;
    reply[used] = '\0';
    putchar('\n');
    rc = 0;
out:
    if (rc)
        fprintf(stderr, "\nrelais chat: %s\n", err);
    rl_tok_stream_destroy(&stream);
    return rc;
}

static int turn(chat_state *s, json_t *messages, const char *line) {
    char err[512];
    int32_t *ids = NULL;
    size_t n = 0;
    json_array_append_new(messages, json_pack("{s:s, s:s}", "role", "user", "content", line));
    char *text = json_dumps(messages, JSON_COMPACT);
    int built = text ? rl_chat_build(s->e.tok, s->tpl, text, NULL, &ids, &n, err, sizeof err)
                     : (snprintf(err, sizeof err, "out of memory"), -1);
    free(text);
    if (built) {
        fprintf(stderr, "relais chat: %s\n", err);
        return -1;
    }
    char *reply = malloc(1 << 16);
    int rc = reply ? reply_turn(s, ids, n, reply, 1 << 16) : -1;
    if (rc == 0)
        json_array_append_new(messages, json_pack("{s:s, s:s}", "role", "assistant", "content", reply));
    free(reply);
    free(ids);
    return rc;
}

int cmd_chat(int argc, char **argv) {
    static const struct option longopts[] = {{"system", required_argument, 0, OPT_SYSTEM},
                                             {"n-predict", required_argument, 0, 'n'},
                                             {"help", no_argument, 0, 'h'},
                                             CLI_COMMON_LONGOPTS,
                                             CLI_DRAFT_LONGOPTS,
                                             RL_CLUSTER_LONGOPTS,
                                             {0, 0, 0, 0}};
    cli_common c;
    cli_draft draft = {0};
    rl_draft *d = NULL;
    rl_cluster_opts copts = {0};
    chat_state s = {.n_predict = 1024};
    const char *system = NULL;
    char err[512];
    cli_common_init(&c, 0.7f);
    optind = 1;
    int opt;
    while ((opt = getopt_long(argc, argv, "m:t:n:h", longopts, NULL)) != -1) {
        int rc = cli_common_opt(&c, opt, optarg);
        if (rc == 0)
            rc = cli_draft_opt(&draft, opt, optarg);
        if (rc == 0)
            rc = rl_cluster_opt(&copts, opt, optarg);
        if (rc < 0)
            return 2;
        if (rc > 0)
            continue;
        if (opt == OPT_SYSTEM)
            system = optarg;
        else if (opt == 'n') {
            if (cli_parse_i64("-n", optarg, 1, 1 << 20, &s.n_predict))
                return 2;
        } else {
            fprintf(
                opt == 'h' ? stdout : stderr,
                "usage: relais chat -m MODEL.gguf [--system TEXT] [-n MAX]\n"
                "Type a message and press enter; an empty line or end of input quits.\n" CLI_DRAFT_HELP CLI_COMMON_HELP
                    RL_CLUSTER_HELP);
            return opt == 'h' ? 0 : 2;
        }
    }
    s.sampling = c.sampling;
    if (cli_require_model(&c))
        return 1;
    if (rl_xengine_open(&s.e, &copts, &c.runner, 1, err, sizeof err) ||
        !(s.xs = rl_xsession_new(s.e.x, s.e.n_ctx, c.runner.progress))) {
        fprintf(stderr, "relais chat: %s\n", s.e.x ? "out of memory" : err);
        rl_xengine_close(&s.e);
        return 1;
    }
    if (draft.spec) {
        if (!(d = rl_draft_new(draft.spec, s.e.tok, c.runner.n_threads, s.e.n_ctx, err, sizeof err))) {
            fprintf(stderr, "relais chat: %s\n", err);
            rl_xsession_destroy(&s.xs);
            rl_xengine_close(&s.e);
            return 1;
        }
        rl_xsession_set_draft(s.xs, d, draft.k_max);
    }
    s.tpl = rl_chat_template_detect(s.e.tok, rl_model_gguf(s.e.view));
    json_t *messages = json_array();
    if (system)
        json_array_append_new(messages, json_pack("{s:s, s:s}", "role", "system", "content", system));
    fprintf(stderr, "relais chat: template %s, context %u. Empty line quits.\n", rl_chat_template_name(s.tpl),
            s.e.n_ctx);
    char line[8192];
    int rc = 0;
    while (printf("> "), fflush(stdout), fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (!line[0])
            break;
        if (turn(&s, messages, line)) {
            rc = 1;
            break;
        }
    }
    json_decref(messages);
    free(s.fed);
    rl_xsession_destroy(&s.xs);
    rl_draft_destroy(&d);
    rl_xengine_close(&s.e);
    return rc;
}
