/* parrot_model: writes a tiny llama-architecture GGUF whose greedy output is
 * known in advance, for the serving tests (tool calls end to end, the
 * OpenAI client's round trip).
 *
 * It carries the Tekken-shaped vocabulary of tests/data/models (so the chat
 * template is mistral-v3-tekken, with tools) and is a bigram machine: every
 * layer's weights are zero, so the last activation is the embedding of the
 * last token; the embedding of each "source" token is a distinct unit vector
 * and the head maps it to its successor, so greedy decoding walks fixed
 * chains:
 *   [/INST]          -> [TOOL_CALLS] [{"name":"get_weather","arguments":{"city":"Paris"}}] </s>
 *   [/TOOL_RESULTS]  -> It is 18 degrees in Paris. </s>
 * A token may have one successor only, so the chain texts are spelled with
 * tokens none of which repeats (a depth-first search over the vocabulary's
 * pieces, longest first).
 *
 * usage: parrot_model OUT.gguf VOCAB.gguf */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "gguf.h"
#include "gguf_write.h"
#include "tokenizer.h"

#define DIM 64
#define FFN 128
#define N_HEAD 4
#define N_HEAD_KV 2
#define MAX_CHAIN 64
#define N_LAYER 2 /* two (both zero), so a cluster test can give each of two nodes one */

/* compact JSON: fewer repeated pieces to spell with distinct tokens */
static const char TOOL_JSON[] = "[{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris\"}}]";
static const char ANSWER[] = "It is 18 degrees in Paris.";

typedef struct {
    const rl_tokenizer *tok;
    uint32_t n_vocab;
    char **piece; /* decoded text of each id ("" for control tokens) */
    bool *used;   /* ids already in a chain */
    long budget;  /* search steps left: a text that cannot be spelled fails fast */
} speller;

static int by_length_desc(const void *a, const void *b, void *ud) {
    char **piece = ud;
    size_t la = strlen(piece[*(const int32_t *)a]), lb = strlen(piece[*(const int32_t *)b]);
    return la < lb ? 1 : la > lb ? -1 : *(const int32_t *)a - *(const int32_t *)b;
}

/* Spells text with unused tokens into out[n..]; depth-first, longest piece
 * first. Returns the chain length, or -1. */
static int spell(speller *s, const char *text, int32_t *out, int n) {
    if (!*text)
        return n;
    if (n >= MAX_CHAIN || --s->budget < 0)
        return -1;
    int32_t cand[64];
    int nc = 0;
    for (uint32_t id = 0; id < s->n_vocab && nc < 64; id++) {
        size_t len = strlen(s->piece[id]);
        if (len && !s->used[id] && strncmp(s->piece[id], text, len) == 0)
            cand[nc++] = (int32_t)id;
    }
    qsort_r(cand, (size_t)nc, sizeof *cand, by_length_desc, s->piece);
    for (int i = 0; i < nc; i++) {
        s->used[cand[i]] = true;
        out[n] = cand[i];
        int r = spell(s, text + strlen(s->piece[cand[i]]), out, n + 1);
        if (r >= 0)
            return r;
        s->used[cand[i]] = false;
    }
    return -1;
}

static int copy_tokenizer(gguf_writer *w, const gguf_file *v) {
    for (int64_t i = 0; i < gguf_n_kv(v); i++) {
        gguf_str k = gguf_kv_key(v, i);
        char key[128];
        snprintf(key, sizeof key, "%.*s", (int)k.len, k.ptr);
        if (strncmp(key, "tokenizer.", 10) != 0)
            continue;
        gguf_type t = gguf_kv_type(v, i), elem;
        uint64_t n;
        const void *data;
        gguf_str str;
        if (t == GGUF_STRING && gguf_get_str(v, key, &str)) {
            char *c = strndup(str.ptr, str.len);
            gguf_writer_set_str(w, key, c);
            free(c);
        } else if (t == GGUF_ARRAY && gguf_get_arr(v, key, &elem, &n, &data) && elem == GGUF_STRING) {
            char **list = calloc(n, sizeof *list);
            for (uint64_t j = 0; j < n; j++) {
                gguf_str e = gguf_arr_str(v, key, j);
                list[j] = strndup(e.ptr, e.len);
            }
            gguf_writer_set_arr_str(w, key, (const char *const *)list, n);
            for (uint64_t j = 0; j < n; j++)
                free(list[j]);
            free(list);
        } else if (t == GGUF_ARRAY && gguf_get_arr(v, key, &elem, &n, &data)) {
            gguf_writer_set_arr(w, key, elem, data, n);
        } else {
            int64_t x;
            bool b;
            if (t == GGUF_BOOL && gguf_get_bool(v, key, &b))
                gguf_writer_set_bool(w, key, b);
            else if (gguf_get_i64(v, key, &x))
                gguf_writer_set_u32(w, key, (uint32_t)x);
            else
                return fprintf(stderr, "parrot_model: cannot copy %s\n", key), -1;
        }
    }
    return 0;
}

static void set_hparams(gguf_writer *w, uint32_t n_vocab) {
    gguf_writer_set_str(w, "general.architecture", "llama");
    gguf_writer_set_str(w, "general.name", "parrot");
    gguf_writer_set_u32(w, "llama.block_count", N_LAYER);
    gguf_writer_set_u32(w, "llama.context_length", 4096);
    gguf_writer_set_u32(w, "llama.embedding_length", DIM);
    gguf_writer_set_u32(w, "llama.feed_forward_length", FFN);
    gguf_writer_set_u32(w, "llama.attention.head_count", N_HEAD);
    gguf_writer_set_u32(w, "llama.attention.head_count_kv", N_HEAD_KV);
    gguf_writer_set_f32(w, "llama.rope.freq_base", 10000.0f);
    gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    gguf_writer_set_u32(w, "llama.vocab_size", n_vocab);
}

typedef struct {
    char name[48];
    uint64_t ne0, ne1; /* ne1 = 1 for vectors */
    int fill;          /* 0 zeros, 1 ones, 2 embedding, 3 head */
} tensor;

/* The tensors of one layer, after "blk.N.". */
static const tensor LAYER[] = {{"attn_norm.weight", DIM, 1, 1},
                               {"attn_q.weight", DIM, DIM, 0},
                               {"attn_k.weight", DIM, DIM / N_HEAD *N_HEAD_KV, 0},
                               {"attn_v.weight", DIM, DIM / N_HEAD *N_HEAD_KV, 0},
                               {"attn_output.weight", DIM, DIM, 0},
                               {"ffn_norm.weight", DIM, 1, 1},
                               {"ffn_gate.weight", DIM, FFN, 0},
                               {"ffn_up.weight", DIM, FFN, 0},
                               {"ffn_down.weight", FFN, DIM, 0}};
#define N_PER_LAYER (int)(sizeof LAYER / sizeof LAYER[0])

/* Writes every tensor; the embedding and head rows follow the chains. */
static int write_tensors(gguf_writer *w, const char *path, uint32_t n_vocab, const int32_t *src, const int32_t *dst,
                         int n_links, char *err, size_t errlen) {
    tensor T[N_LAYER * N_PER_LAYER + 3] = {{"token_embd.weight", DIM, n_vocab, 2}};
    int nt = 1;
    for (int l = 0; l < N_LAYER; l++)
        for (int k = 0; k < N_PER_LAYER; k++, nt++) {
            T[nt] = LAYER[k];
            snprintf(T[nt].name, sizeof T[nt].name, "blk.%d.%.32s", l, LAYER[k].name);
        }
    T[nt++] = (tensor){"output_norm.weight", DIM, 1, 1};
    T[nt++] = (tensor){"output.weight", DIM, n_vocab, 3};
    for (int i = 0; i < nt; i++) {
        uint64_t ne[4] = {T[i].ne0, T[i].ne1, 1, 1};
        gguf_writer_add_tensor(w, T[i].name, RL_F32, T[i].ne1 > 1 ? 2 : 1, ne);
    }
    if (gguf_writer_begin(w, path, err, errlen) < 0)
        return -1;
    float row[FFN];
    for (int i = 0; i < nt; i++)
        for (uint64_t r = 0; r < T[i].ne1; r++) {
            for (uint64_t c = 0; c < T[i].ne0; c++)
                row[c] = T[i].fill == 1 ? 1.0f : 0.0f;
            for (int k = 0; k < n_links; k++) /* link k uses unit vector k */
                if ((T[i].fill == 2 && (uint64_t)src[k] == r) || (T[i].fill == 3 && (uint64_t)dst[k] == r))
                    row[k] = 1.0f;
            if (gguf_writer_write_data(w, row, T[i].ne0 * sizeof(float), err, errlen) < 0)
                return -1;
        }
    return gguf_writer_close(w, err, errlen);
}

/* Appends the links of a chain: start, then text spelled, then </s>. */
static int add_chain(speller *sp, const int32_t *start, int n_start, const char *text, int32_t *src, int32_t *dst,
                     int *n_links) {
    int32_t chain[MAX_CHAIN];
    memcpy(chain, start, (size_t)n_start * sizeof *chain);
    int n = spell(sp, text, chain, n_start);
    if (n < 0 || n + 1 > MAX_CHAIN) {
        fprintf(stderr, "parrot_model: cannot spell '%s' with distinct tokens\n", text);
        return -1;
    }
    chain[n++] = rl_tok_eos(sp->tok);
    for (int i = 0; i + 1 < n; i++) {
        if (*n_links >= DIM) {
            fprintf(stderr, "parrot_model: more than %d links\n", DIM);
            return -1;
        }
        src[*n_links] = chain[i];
        dst[*n_links] = chain[i + 1];
        (*n_links)++;
    }
    return 0;
}

int main(int argc, char **argv) {
    char err[512];
    if (argc != 3) {
        fprintf(stderr, "usage: parrot_model OUT.gguf VOCAB.gguf\n");
        return 2;
    }
    gguf_file *v = gguf_open(argv[2], err, sizeof err);
    rl_tokenizer *tok = v ? rl_tok_new(v, err, sizeof err) : NULL;
    if (!tok) {
        fprintf(stderr, "parrot_model: %s\n", err);
        gguf_close(&v);
        return 1;
    }
    speller sp = {tok, rl_tok_n_vocab(tok), calloc(rl_tok_n_vocab(tok), sizeof(char *)),
                  calloc(rl_tok_n_vocab(tok), sizeof(bool)), 10000};
    for (uint32_t id = 0; id < sp.n_vocab; id++) {
        char piece[256];
        int len = rl_tok_is_control(tok, (int32_t)id) ? 0 : rl_tok_piece(tok, (int32_t)id, false, piece, sizeof piece);
        sp.piece[id] =
            strndup(piece, len > 0 && (size_t)len < sizeof piece && strlen(piece) == (size_t)len ? (size_t)len : 0);
    }
    const int32_t inst_end = rl_tok_find(tok, "[/INST]"), calls = rl_tok_find(tok, "[TOOL_CALLS]");
    const int32_t results_end = rl_tok_find(tok, "[/TOOL_RESULTS]");
    int32_t src[DIM], dst[DIM], start1[2] = {inst_end, calls}, start2[1] = {results_end};
    int n_links = 0, rc = 1;
    gguf_writer *w = gguf_writer_new();
    if (inst_end >= 0 && calls >= 0 && results_end >= 0 &&
        add_chain(&sp, start1, 2, TOOL_JSON, src, dst, &n_links) == 0 &&
        add_chain(&sp, start2, 1, ANSWER, src, dst, &n_links) == 0 && copy_tokenizer(w, v) == 0) {
        set_hparams(w, sp.n_vocab);
        rc = write_tensors(w, argv[1], sp.n_vocab, src, dst, n_links, err, sizeof err) ? 1 : 0;
        if (rc)
            fprintf(stderr, "parrot_model: %s\n", err);
    }
    for (uint32_t id = 0; id < sp.n_vocab; id++)
        free(sp.piece[id]);
    free(sp.piece), free(sp.used);
    gguf_writer_destroy(&w);
    rl_tok_destroy(&tok);
    gguf_close(&v);
    return rc;
}
