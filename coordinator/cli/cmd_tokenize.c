/* `relais tokenize`: prints the token ids of a text under a model's
 * tokenizer (vocab-only files work too), to check prompts and compare with
 * other implementations. The text is the arguments joined by spaces, or
 * standard input when there are none. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "commands.h"
#include "gguf.h"
#include "tokenizer.h"
#include "util.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: relais tokenize -m MODEL.gguf [--special] [--no-bos] [--json] [TEXT...]\n"
            "\n"
            "Prints the token ids of TEXT (the arguments joined by spaces; standard input\n"
            "when none), space-separated.\n"
            "\n"
            "  -m, --model FILE   GGUF model or vocab-only file (default: $RELAIS_MODEL)\n"
            "  --special          text of control tokens such as [INST] becomes those tokens\n"
            "  --no-bos           no BOS even when the vocabulary asks for one\n"
            "  --json             print {\"ids\": [...]}\n");
}

/* The arguments joined by single spaces, or all of stdin; malloc'd. */
static char *read_text(int argc, char **argv, size_t *len) {
    size_t cap = 1, n = 0;
    for (int i = 0; i < argc; i++)
        cap += strlen(argv[i]) + 1;
    char *buf = malloc(cap < 4096 ? 4096 : cap);
    if (!buf)
        return NULL;
    if (argc > 0) {
        for (int i = 0; i < argc; i++) {
            size_t l = strlen(argv[i]);
            if (i)
                buf[n++] = ' ';
            memcpy(buf + n, argv[i], l);
            n += l;
        }
    } else {
        cap = 4096;
        size_t got;
        while ((got = fread(buf + n, 1, cap - n, stdin)) > 0) {
            n += got;
            if (n == cap) {
                char *nb = rl_grow(buf, &cap, cap + 1, 1, 4096);
                if (!nb) {
                    free(buf);
                    return NULL;
                }
                buf = nb;
            }
        }
    }
    *len = n;
    return buf;
}

static rl_tokenizer *load(const char *path) {
    char err[512];
    gguf_file *f = gguf_open(path, err, sizeof err);
    if (!f) {
        fprintf(stderr, "relais tokenize: %s\n", err);
        return NULL;
    }
    rl_tokenizer *t = rl_tok_new(f, err, sizeof err);
    gguf_close(&f);
    if (!t)
        fprintf(stderr, "relais tokenize: %s: %s\n", path, err);
    return t;
}

static void print_ids(const int32_t *ids, size_t n, bool json) {
    fputs(json ? "{\"ids\": [" : "", stdout);
    for (size_t i = 0; i < n; i++)
        printf("%s%d", i ? (json ? ", " : " ") : "", ids[i]);
    fputs(json ? "]}\n" : "\n", stdout);
}

int cmd_tokenize(int argc, char **argv) {
    enum { OPT_SPECIAL = 1, OPT_NO_BOS, OPT_JSON };
    static const struct option longopts[] = {
        {"model", required_argument, 0, 'm'},   {"special", no_argument, 0, OPT_SPECIAL},
        {"no-bos", no_argument, 0, OPT_NO_BOS}, {"json", no_argument, 0, OPT_JSON},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
    const char *model = getenv("RELAIS_MODEL");
    bool special = false, no_bos = false, json = false;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "m:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'm':
            model = optarg;
            break;
        case OPT_SPECIAL:
            special = true;
            break;
        case OPT_NO_BOS:
            no_bos = true;
            break;
        case OPT_JSON:
            json = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!model || !*model) {
        fprintf(stderr, "relais tokenize: no model: give -m FILE or set RELAIS_MODEL\n");
        return 2;
    }
    rl_tokenizer *t = load(model);
    if (!t)
        return 1;
    size_t len = 0, n = 0;
    int32_t *ids = NULL;
    char *text = read_text(argc - optind, argv + optind, &len);
    int rc = 0;
    if (!text || rl_tok_encode(t, text, len, !no_bos && rl_tok_add_bos(t), special, &ids, &n) < 0) {
        fprintf(stderr, "relais tokenize: %s\n", text ? "the text could not be tokenized" : "out of memory");
        rc = 1;
    } else {
        print_ids(ids, n, json);
    }
    free(ids);
    free(text);
    rl_tok_destroy(&t);
    return rc;
}
