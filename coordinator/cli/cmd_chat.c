/* `relais chat`: an interactive chat, on this machine or a cluster's nodes
 * (one session through the executor, executor.h), using the model's chat
 * template. Each turn rebuilds the whole conversation's prompt and feeds only
 * what differs from what the cache already holds, so a long conversation
 * costs one turn's tokens per turn. A reasoning model's thinking
 * ([THINK] ... [/THINK], split as `relais serve` splits it: openai.h's
 * rl_oai_out) is shown apart from the answer, dim on a terminal and between
 * [thinking] and [/thinking] lines otherwise, and goes back into the history
 * as the turn's reasoning_content, which Ministral 3's template writes as
 * [THINK] ... [/THINK] again (as mistral-common and llama.cpp keep a past
 * turn's thinking). --force-ids feeds given replies instead of sampled ones
 * (teacher forcing, as `relais run --force-ids`). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "chat.h"
#include "cli.h"
#include "commands.h"
#include "draft.h"
#include "executor.h"
#include "openai.h"

enum { OPT_SYSTEM = CLI_OPT_FIRST_OWN, OPT_FORCE_IDS };

#define DIM "\033[2m"
#define PLAIN "\033[0m"

typedef struct {
    rl_xengine e;
    rl_xsession *xs;
    rl_sampler_params sampling;
    rl_chat_template tpl;
    int32_t *fed; /* ids the cache holds, in order */
    size_t n_fed, cap;
    int64_t n_predict;
    int32_t *force; /* (n_force) --force-ids: the replies' ids, each ending at an end-of-generation id */
    size_t n_force, forced;
    bool tty; /* stdout is a terminal: thinking in dim */
} chat_state;

/* What of a reply is on the screen: the reasoning and the content shown so
 * far, and whether a thinking block is open. */
typedef struct {
    rl_oai_out *out;
    size_t reasoning, content;
    bool thinking;
} reply_view;

static void close_thinking(const chat_state *s, reply_view *v) {
    if (v->thinking)
        fputs(s->tty ? PLAIN "\n" : "\n[/thinking]\n", stdout);
    v->thinking = false;
}

/* Prints what the reply gained since the last call. */
static void show_new(const chat_state *s, reply_view *v) {
    size_t n;
    const char *r = rl_oai_out_reasoning(v->out, &n);
    if (n > v->reasoning) {
        if (!v->thinking)
            fputs(s->tty ? DIM : "[thinking]\n", stdout);
        v->thinking = true;
        fwrite(r + v->reasoning, 1, n - v->reasoning, stdout);
        v->reasoning = n;
    }
    const char *c = rl_oai_out_content(v->out, &n);
    if (n > v->content) {
        close_thinking(s, v);
        fwrite(c + v->content, 1, n - v->content, stdout);
        v->content = n;
    }
    fflush(stdout);
}

/* The reply's next id: with --force-ids the next forced one (-1 when they
 * are used up), else the next of what the last pass produced. */
static int32_t next_id(chat_state *s, const int32_t *pend, uint32_t *j) {
    if (!s->force)
        return pend[(*j)++];
    return s->forced < s->n_force ? s->force[s->forced++] : -1;
}

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

/* Generates the reply to the conversation into v->out, showing it as it
 * comes. */
static int reply_turn(chat_state *s, const int32_t *prompt, size_t n, reply_view *v) {
    const rl_tokenizer *tok = s->e.tok;
    int32_t id;
    char err[512];
    int rc = -1;
    rl_xsession_begin(s->xs, &s->sampling, 0);
    if (sync_prompt(s, prompt, n, &id, err, sizeof err))
        goto out;
    /* pend: what the last pass produced (with a draft, maybe several ids) */
    int32_t pend[RL_DRAFT_MAX + 1] = {id};
    uint32_t n_pend = 1, j = 0;
    for (int64_t i = 0; i < s->n_predict && (id = next_id(s, pend, &j)) >= 0 && !rl_tok_is_eog(tok, id); i++) {
        rl_oai_out_feed(v->out, id);
        show_new(s, v);
        if (remember(s, &id, 1)) {
            snprintf(err, sizeof err, "out of memory");
            goto out;
        }
        if (j < n_pend && !s->force)
            continue;
        const int64_t left = s->n_predict - i - 1; /* the last id is fed too: the cache holds what fed says */
        const uint32_t want = s->force ? 1 : left > RL_DRAFT_MAX ? RL_DRAFT_MAX + 1 : left > 1 ? (uint32_t)left : 1;
        if (rl_xsession_next(s->xs, id, pend, want, &n_pend, NULL, err, sizeof err))
            goto out;
        j = 0;
    }
    rl_oai_out_finish(v->out);
    show_new(s, v);
    close_thinking(s, v);
    putchar('\n');
    rc = 0;
out:
    if (rc)
        fprintf(stderr, "\nrelais chat: %s\n", err);
    return rc;
}

/* The reply as the history's assistant message: its answer, and its
 * thinking as reasoning_content where the template takes one (Ministral 3's;
 * another writes none back). Each is cut at a NUL byte a model may have
 * written, which the template's JSON cannot carry. */
static json_t *reply_message(const chat_state *s, const rl_oai_out *out) {
    size_t n, nr;
    const char *content = rl_oai_out_content(out, &n), *reasoning = rl_oai_out_reasoning(out, &nr);
    n = strnlen(content, n), nr = strnlen(reasoning, nr);
    json_t *m = json_pack("{s:s, s:s%}", "role", "assistant", "content", content, n);
    if (m && nr && s->tpl == RL_CHAT_MISTRAL_V13)
        json_object_set_new(m, "reasoning_content", json_stringn(reasoning, nr));
    return m;
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
    reply_view v = {.out = rl_oai_out_new(s->e.tok, NULL, 0, false, false)};
    int rc = v.out ? reply_turn(s, ids, n, &v) : (fprintf(stderr, "relais chat: out of memory\n"), -1);
    if (rc == 0)
        json_array_append_new(messages, reply_message(s, v.out));
    rl_oai_out_destroy(&v.out);
    free(ids);
    return rc;
}

/* Opens the engine and the session, then one turn per line of input. */
static int chat_run(chat_state *s, cli_common *c, const cli_draft *draft, const rl_cluster_opts *copts,
                    const char *system) {
    char err[512];
    rl_draft *d = NULL;
    if (cli_require_model(c))
        return 1;
    if (rl_xengine_open(&s->e, copts, &c->runner, 1, err, sizeof err) ||
        !(s->xs = rl_xsession_new(s->e.x, s->e.n_ctx, c->runner.progress))) {
        fprintf(stderr, "relais chat: %s\n", s->e.x ? "out of memory" : err);
        rl_xengine_close(&s->e);
        return 1;
    }
    if (draft->spec) {
        if (!(d = rl_draft_new(draft->spec, s->e.tok, c->runner.n_threads, s->e.n_ctx, err, sizeof err))) {
            fprintf(stderr, "relais chat: %s\n", err);
            rl_xsession_destroy(&s->xs);
            rl_xengine_close(&s->e);
            return 1;
        }
        rl_xsession_set_draft(s->xs, d, draft->k_max);
    }
    s->tpl = rl_chat_template_detect(s->e.tok, rl_model_gguf(s->e.view));
    json_t *messages = json_array();
    if (system)
        json_array_append_new(messages, json_pack("{s:s, s:s}", "role", "system", "content", system));
    fprintf(stderr, "relais chat: template %s, context %u. Empty line quits.\n", rl_chat_template_name(s->tpl),
            s->e.n_ctx);
    char line[8192];
    int rc = 0;
    while (printf("> "), fflush(stdout), fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (!line[0])
            break;
        if (turn(s, messages, line)) {
            rc = 1;
            break;
        }
    }
    json_decref(messages);
    free(s->fed);
    rl_xsession_destroy(&s->xs);
    rl_draft_destroy(&d);
    rl_xengine_close(&s->e);
    return rc;
}

int cmd_chat(int argc, char **argv) {
    static const struct option longopts[] = {{"system", required_argument, 0, OPT_SYSTEM},
                                             {"n-predict", required_argument, 0, 'n'},
                                             {"force-ids", required_argument, 0, OPT_FORCE_IDS},
                                             {"help", no_argument, 0, 'h'},
                                             CLI_COMMON_LONGOPTS,
                                             CLI_DRAFT_LONGOPTS,
                                             RL_CLUSTER_LONGOPTS,
                                             {0, 0, 0, 0}};
    cli_common c;
    cli_draft draft = {0};
    rl_cluster_opts copts = {0};
    chat_state s = {.n_predict = 1024};
    const char *system = NULL;
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
            break;
        if (rc > 0)
            continue;
        if (opt == OPT_SYSTEM)
            system = optarg;
        else if (opt == OPT_FORCE_IDS) {
            free(s.force);
            if (cli_parse_ids("--force-ids", optarg, &s.force, &s.n_force))
                break;
        } else if (opt == 'n') {
            if (cli_parse_i64("-n", optarg, 1, 1 << 20, &s.n_predict))
                break;
        } else {
            fprintf(opt == 'h' ? stdout : stderr,
                    "usage: relais chat -m MODEL.gguf [--system TEXT] [-n MAX] [--force-ids LIST]\n"
                    "Type a message and press enter; an empty line or end of input quits. A reasoning\n"
                    "model's thinking shows dim (between [thinking] lines when not on a terminal).\n"
                    "      --force-ids LIST    teacher forcing: the replies are these ids, each up to an\n"
                    "                          end-of-generation id, instead of the sampled ones\n" CLI_DRAFT_HELP
                        CLI_COMMON_HELP RL_CLUSTER_HELP);
            free(s.force);
            return opt == 'h' ? 0 : 2;
        }
    }
    if (opt != -1 || (draft.spec && s.force)) { /* a bad value, said already, or both */
        if (opt == -1)
            fprintf(stderr, "relais chat: --draft does not go with --force-ids\n");
        free(s.force);
        return 2;
    }
    s.tty = isatty(STDOUT_FILENO);
    s.sampling = c.sampling;
    int rc = chat_run(&s, &c, &draft, &copts, system);
    free(s.force);
    return rc;
}
