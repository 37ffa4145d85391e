/* The shared test helpers of testutil.h. Removal walks the tree with nftw
 * rather than running `rm -rf` through a shell, so a folder name is never
 * parsed by a shell and a failure is reported, not printed. */
#define _XOPEN_SOURCE 700
#include "testutil.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include "gguf.h"
#include "gguf_write.h"

int tu_dir_new(char dir[TU_DIR_MAX], const char *name) {
    if (snprintf(dir, TU_DIR_MAX, "/tmp/relais-%s-XXXXXX", name) >= TU_DIR_MAX)
        return -1;
    return mkdtemp(dir) ? 0 : -1;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

int tu_dir_remove(const char *dir) { return nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS); }

unsigned char *tu_slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    unsigned char *buf = NULL;
    long n = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (n >= 0 && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1)) &&
        fread(buf, 1, (size_t)n, f) == (size_t)n) {
        buf[n] = '\0';
        *len = (size_t)n;
    } else {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    return buf;
}

int tu_run(const char *cmd, char *out, size_t cap) {
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    size_t n = 0;
    char sink[4096];
    for (;;) {
        const int keep = out && n + 1 < cap;
        const size_t got = keep ? fread(out + n, 1, cap - 1 - n, p) : fread(sink, 1, sizeof sink, p);
        if (got == 0)
            break;
        if (keep)
            n += got;
    }
    if (out && cap)
        out[n] = '\0';
    const int st = pclose(p);
    if (st == -1)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1000 - WTERMSIG(st);
}

/* The tokens of f with 32-35 renamed, and their types; NULL on failure. */
static char **v13_tokens(const gguf_file *f, uint64_t n, int32_t *type) {
    static const char *const renamed[] = {"[ARGS]", "[CALL_ID]", "[THINK]", "[/THINK]"};
    char **tok = calloc(n, sizeof *tok);
    for (uint64_t i = 0; tok && i < n; i++) {
        gguf_str sv = gguf_arr_str(f, "tokenizer.ggml.tokens", i);
        int64_t v = 0;
        tok[i] = i >= 32 && i < 36 ? strdup(renamed[i - 32]) : strndup(sv.ptr, sv.len);
        if (!gguf_arr_i64(f, "tokenizer.ggml.token_type", i, &v))
            v = -1;
        type[i] = (int32_t)v;
    }
    return tok;
}

static void free_strs(char **s, uint64_t n) {
    for (uint64_t i = 0; s && i < n; i++)
        free(s[i]);
    free(s);
}

int tu_write_v13_vocab(const char *path, const char *chat_template) {
    char err[256];
    gguf_file *f = gguf_open(RELAIS_SHARED_DIR "/models/vocab-tekken-shaped.gguf", err, sizeof err);
    uint64_t n_tok = 0, n_merge = 0;
    if (!f || !gguf_get_arr(f, "tokenizer.ggml.tokens", NULL, &n_tok, NULL) ||
        !gguf_get_arr(f, "tokenizer.ggml.merges", NULL, &n_merge, NULL) || n_tok < 36) {
        gguf_close(&f);
        return -1;
    }
    int32_t *type = calloc(n_tok, sizeof *type);
    char **tok = type ? v13_tokens(f, n_tok, type) : NULL, **merge = calloc(n_merge, sizeof *merge);
    for (uint64_t i = 0; merge && i < n_merge; i++) {
        gguf_str sv = gguf_arr_str(f, "tokenizer.ggml.merges", i);
        merge[i] = strndup(sv.ptr, sv.len);
    }
    int rc = -1;
    if (tok && merge && type[32] == 3) { /* <SPECIAL_32> was a control token, and so is [ARGS] */
        gguf_writer *w = gguf_writer_new();
        gguf_writer_set_str(w, "general.architecture", "mistral3");
        gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
        gguf_writer_set_str(w, "tokenizer.ggml.pre", "tekken");
        gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)tok, n_tok);
        gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_INT32, type, n_tok);
        gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", (const char *const *)merge, n_merge);
        gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
        gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
        gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0);
        gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true);
        if (chat_template)
            gguf_writer_set_str(w, "tokenizer.chat_template", chat_template);
        rc = gguf_writer_begin(w, path, err, sizeof err) == 0 && gguf_writer_close(w, err, sizeof err) == 0 ? 0 : -1;
        gguf_writer_destroy(&w);
    }
    free_strs(tok, n_tok);
    free_strs(merge, n_merge);
    free(type);
    gguf_close(&f);
    return rc;
}
