/* Binds a llama-architecture model from a GGUF file: reads the
 * hyper-parameters and the sliding-window layout, then checks and binds the
 * weight tensors of the requested layer range (and embedding / head).
 *
 * Ministral-8B-Instruct-2410 files on the hub carry no window keys, although
 * the model was trained with interleaved sliding windows; they are recognised
 * by shape or name and given the published layout (layer i full when
 * i % 4 == 0, otherwise a window of 32768), and the log says so. */
#include "model.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "log.h"
#include "x16.h"

struct rl_model {
    gguf_file *file;       /* the mapped GGUF */
    rl_hparams hp;         /* hyper-parameters and window layout */
    uint32_t l0, l1;       /* bound layer range */
    rl_layer *layers;      /* (l1 - l0) bound layers */
    rl_weight embed;       /* (n_vocab, dim) token_embd, when bound */
    rl_weight output;      /* (n_vocab, dim) head (token_embd when tied), when bound */
    const float *out_norm; /* (dim) output_norm, when bound */
    bool has_embed, has_head;
};

rl_model_opts rl_model_opts_default(void) {
    rl_model_opts o = {0};
    o.embed = true;
    o.head = true;
    o.swa_window = -1;
    return o;
}

static bool arch_key_u32(const gguf_file *f, const char *arch, const char *suffix, uint32_t *out) {
    char key[160];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    return gguf_get_u32(f, key, out);
}

static bool arch_key_f32(const gguf_file *f, const char *arch, const char *suffix, float *out) {
    char key[160];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    return gguf_get_f32(f, key, out);
}

/* Integer period p: layer i is full when i % p == 0, as Ministral's
 * published layout (one full layer, then p-1 sliding ones). */
static void pattern_period(rl_hparams *hp, uint32_t period) {
    for (uint32_t i = 0; i < hp->n_layer; i++)
        hp->sliding[i] = period > 1 && (i % period) != 0;
}

static int read_file_pattern(const gguf_file *f, rl_hparams *hp, char *err, size_t errlen) {
    char key[160];
    snprintf(key, sizeof key, "%s.attention.sliding_window_pattern", hp->arch);
    gguf_type elem;
    uint64_t n;
    const void *data;
    uint32_t period;
    if (gguf_get_arr(f, key, &elem, &n, &data)) {
        if (n != hp->n_layer) {
            snprintf(err, errlen, "%s has %llu entries for %u layers", key, (unsigned long long)n, hp->n_layer);
            return -1;
        }
        for (uint64_t i = 0; i < n; i++) {
            int64_t v;
            if (!gguf_arr_i64(f, key, i, &v)) {
                snprintf(err, errlen, "%s: entry %llu is not a bool or integer", key, (unsigned long long)i);
                return -1;
            }
            hp->sliding[i] = v != 0;
        }
    } else if (gguf_get_u32(f, key, &period)) {
        pattern_period(hp, period);
    } else {
        for (uint32_t i = 0; i < hp->n_layer; i++) /* a window without a pattern slides everywhere */
            hp->sliding[i] = true;
    }
    return 0;
}

static bool looks_like_ministral_8b(const gguf_file *f, const rl_hparams *hp) {
    if (hp->n_layer == 36 && hp->dim == 4096 && hp->n_vocab == 131072)
        return true;
    char low[256] = {0};
    const char *path = gguf_path(f);
    for (size_t i = 0; path[i] && i + 1 < sizeof low; i++)
        low[i] = (char)tolower((unsigned char)path[i]);
    return strstr(low, "ministral-8b") != NULL || strstr(low, "ministral_8b") != NULL;
}

/* The largest context: the file's, except that Ministral-8B-2410 files from
 * the hub declare 32768 (the HF config's max_position_embeddings, its window)
 * while the model was published for 131072; and a larger context the user
 * accepted. */
static void read_max_context(const gguf_file *f, const rl_model_opts *o, rl_hparams *hp) {
    hp->n_ctx_file = hp->n_ctx_train;
    if (looks_like_ministral_8b(f, hp) && hp->n_ctx_train < RL_MINISTRAL_8B_CTX) {
        hp->n_ctx_train = RL_MINISTRAL_8B_CTX;
        rl_log(RL_LOG_INFO, "Ministral-8B-2410: maximum context %u, as published (the file declares %u)",
               RL_MINISTRAL_8B_CTX, hp->n_ctx_file);
    }
    if (o && o->n_ctx_beyond > hp->n_ctx_train)
        hp->n_ctx_train = o->n_ctx_beyond;
}

static int apply_pattern_override(rl_hparams *hp, const char *pat, char *err, size_t errlen) {
    char *end;
    unsigned long period = strtoul(pat, &end, 10);
    if (*pat && *end == '\0') {
        pattern_period(hp, (uint32_t)period);
        return 0;
    }
    if (strlen(pat) != hp->n_layer) {
        snprintf(err, errlen,
                 "window pattern '%s' has %zu entries for %u layers (give a period or one "
                 "S/F per layer)",
                 pat, strlen(pat), hp->n_layer);
        return -1;
    }
    for (uint32_t i = 0; i < hp->n_layer; i++) {
        char c = (char)toupper((unsigned char)pat[i]);
        if (c != 'S' && c != 'F' && c != '1' && c != '0') {
            snprintf(err, errlen, "window pattern '%s': '%c' at layer %u is not S/F/1/0", pat, pat[i], i);
            return -1;
        }
        hp->sliding[i] = c == 'S' || c == '1';
    }
    return 0;
}

static int read_window_layout(const gguf_file *f, const rl_model_opts *o, rl_hparams *hp, char *err, size_t errlen) {
    uint32_t w = 0;
    if (arch_key_u32(f, hp->arch, "attention.sliding_window", &w) && w > 0) {
        hp->swa_window = w;
        if (read_file_pattern(f, hp, err, errlen))
            return -1;
    } else if (looks_like_ministral_8b(f, hp)) {
        hp->swa_window = 32768;
        pattern_period(hp, 4);
        hp->swa_inferred = true;
        rl_log(RL_LOG_INFO,
               "no sliding-window keys: applying Ministral-8B's published layout "
               "(layer i full when i %% 4 == 0, otherwise window 32768)");
    }
    if (o && o->swa_window >= 0) {
        bool had_layout = hp->swa_window > 0;
        hp->swa_window = (uint32_t)o->swa_window;
        if (!had_layout) /* a window given for a model without one slides on every layer */
            memset(hp->sliding, 1, hp->n_layer);
    }
    if (o && o->swa_pattern && apply_pattern_override(hp, o->swa_pattern, err, errlen))
        return -1;
    if (hp->swa_window == 0)
        memset(hp->sliding, 0, sizeof hp->sliding);
    return 0;
}

static int read_shape(const gguf_file *f, rl_hparams *hp, char *err, size_t errlen) {
    const char *a = hp->arch;
    if (!arch_key_u32(f, a, "block_count", &hp->n_layer) || !arch_key_u32(f, a, "embedding_length", &hp->dim) ||
        !arch_key_u32(f, a, "attention.head_count", &hp->n_head) ||
        !arch_key_u32(f, a, "feed_forward_length", &hp->ffn_dim)) {
        snprintf(err, errlen,
                 "missing %s.block_count, embedding_length, attention.head_count or "
                 "feed_forward_length",
                 a);
        return -1;
    }
    if (!arch_key_u32(f, a, "attention.head_count_kv", &hp->n_head_kv))
        hp->n_head_kv = hp->n_head;
    if (hp->n_layer == 0 || hp->n_layer > RL_MAX_LAYERS || hp->dim == 0 || hp->n_head == 0 || hp->n_head_kv == 0 ||
        hp->n_head % hp->n_head_kv != 0 || hp->ffn_dim == 0) {
        snprintf(err, errlen, "implausible shape: %u layers, dim %u, %u heads, %u kv heads, ffn %u", hp->n_layer,
                 hp->dim, hp->n_head, hp->n_head_kv, hp->ffn_dim);
        return -1;
    }
    if (!arch_key_u32(f, a, "attention.key_length", &hp->head_dim))
        hp->head_dim = hp->dim / hp->n_head;
    if (hp->head_dim == 0 || hp->head_dim % 2 != 0) {
        snprintf(err, errlen, "head dimension %u is not a positive even number", hp->head_dim);
        return -1;
    }
    if (!arch_key_u32(f, a, "context_length", &hp->n_ctx_train) || hp->n_ctx_train == 0)
        hp->n_ctx_train = RL_DEFAULT_CTX;
    if (!arch_key_f32(f, a, "attention.layer_norm_rms_epsilon", &hp->norm_eps))
        hp->norm_eps = 1e-5f;
    if (!arch_key_f32(f, a, "rope.freq_base", &hp->rope_base))
        hp->rope_base = 10000.0f;
    const gguf_tensor *emb = gguf_find_tensor(f, "token_embd.weight");
    if (!arch_key_u32(f, a, "vocab_size", &hp->n_vocab)) {
        uint64_t n = 0;
        gguf_type t;
        const void *d;
        if (emb)
            hp->n_vocab = (uint32_t)emb->ne[1];
        else if (gguf_get_arr(f, "tokenizer.ggml.tokens", &t, &n, &d))
            hp->n_vocab = (uint32_t)n;
    }
    hp->tied_output = gguf_find_tensor(f, "output.weight") == NULL;
    return 0;
}

/* Keys llama.cpp requires of a mistral3 file beyond the shape read_shape
 * already insists on; relais has defaults for them on llama files, as it
 * always had, but a mistral3 file without one is malformed. */
static int require_mistral3_keys(const gguf_file *f, const char *a, char *err, size_t errlen) {
    static const char *const required[] = {"context_length", "attention.layer_norm_rms_epsilon"};
    char key[160];
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
        snprintf(key, sizeof key, "%s.%s", a, required[i]);
        if (gguf_find_key(f, key) < 0) {
            snprintf(err, errlen, "%s: required key %s is missing", gguf_path(f), key);
            return -1;
        }
    }
    return 0;
}

/* Checks the head sizes a mistral3 file may state: keys and values of one
 * width (the cache assumes it) and RoPE over the whole head. */
static int check_head_keys(const gguf_file *f, const rl_hparams *hp, char *err, size_t errlen) {
    uint32_t v;
    if (arch_key_u32(f, hp->arch, "attention.value_length", &v) && v != hp->head_dim) {
        snprintf(err, errlen, "%s.attention.value_length %u differs from key_length %u: not supported", hp->arch, v,
                 hp->head_dim);
        return -1;
    }
    if (arch_key_u32(f, hp->arch, "rope.dimension_count", &v) && v != hp->head_dim) {
        snprintf(err, errlen, "%s.rope.dimension_count %u rotates part of the head of %u: not supported", hp->arch, v,
                 hp->head_dim);
        return -1;
    }
    return 0;
}

/* rope.scaling.* and the attention temperature. The defaults are llama.cpp's
 * (beta_fast 32, beta_slow 1, original context = the context length). */
static int read_rope_scaling(const gguf_file *f, const rl_model_opts *o, rl_hparams *hp, char *err, size_t errlen) {
    const char *a = hp->arch;
    if (!strcmp(a, "mistral3") && (require_mistral3_keys(f, a, err, errlen) || check_head_keys(f, hp, err, errlen)))
        return -1;
    hp->rope_factor = 1.0f;
    hp->rope_attn_factor = 1.0f;
    hp->yarn_beta_fast = 32.0f;
    hp->yarn_beta_slow = 1.0f;
    hp->rope_orig_ctx = hp->n_ctx_train;
    char key[160];
    gguf_str type = {0};
    snprintf(key, sizeof key, "%s.rope.scaling.type", a);
    if (gguf_get_str(f, key, &type) && !(type.len == 4 && !memcmp(type.ptr, "none", 4))) {
        if (!(type.len == 4 && !memcmp(type.ptr, "yarn", 4))) {
            snprintf(err, errlen, "%s '%.*s' is not supported (relais applies none or yarn)", key, (int)type.len,
                     type.ptr);
            return -1;
        }
        hp->rope_yarn = !(o && o->no_yarn);
    }
    float factor;
    if (hp->rope_yarn && arch_key_f32(f, a, "rope.scaling.factor", &factor) && factor > 0.0f)
        hp->rope_factor = factor;
    arch_key_u32(f, a, "rope.scaling.original_context_length", &hp->rope_orig_ctx);
    arch_key_f32(f, a, "rope.scaling.yarn_beta_fast", &hp->yarn_beta_fast);
    arch_key_f32(f, a, "rope.scaling.yarn_beta_slow", &hp->yarn_beta_slow);
    arch_key_f32(f, a, "rope.scaling.yarn_log_multiplier", &hp->yarn_log_mul);
    arch_key_f32(f, a, "rope.scaling.attn_factor", &hp->rope_attn_factor);
    if (!(o && o->no_attn_temp))
        arch_key_f32(f, a, "attention.temperature_scale", &hp->attn_temp_scale);
    if (hp->rope_orig_ctx == 0) {
        snprintf(err, errlen, "%s.rope.scaling.original_context_length is 0", a);
        return -1;
    }
    return 0;
}

int rl_hparams_read(const gguf_file *f, const rl_model_opts *opts, rl_hparams *hp, char *err, size_t errlen) {
    memset(hp, 0, sizeof *hp);
    gguf_str s;
    if (!gguf_get_str(f, "general.architecture", &s)) {
        snprintf(err, errlen, "%s: no general.architecture key", gguf_path(f));
        return -1;
    }
    snprintf(hp->arch, sizeof hp->arch, "%.*s", (int)(s.len < 31 ? s.len : 31), s.ptr);
    if (strcmp(hp->arch, "clip") == 0 || gguf_find_key(f, "clip.has_vision_encoder") >= 0) {
        snprintf(err, errlen,
                 "%s is a vision encoder (mmproj): a vision encoder (mmproj) is not supported; give "
                 "the text model's GGUF",
                 gguf_path(f));
        return -1;
    }
    if (strcmp(hp->arch, "llama") != 0 && strcmp(hp->arch, "mistral3") != 0) {
        snprintf(err, errlen,
                 "architecture '%s' is not supported (relais runs llama-architecture "
                 "models: Mistral, Ministral, Llama, and mistral3: Ministral 3)",
                 hp->arch);
        return -1;
    }
    if (gguf_get_str(f, "general.name", &s))
        snprintf(hp->name, sizeof hp->name, "%.*s", (int)(s.len < 127 ? s.len : 127), s.ptr);
    if (read_shape(f, hp, err, errlen) || read_rope_scaling(f, opts, hp, err, errlen))
        return -1;
    if (read_window_layout(f, opts, hp, err, errlen))
        return -1;
    read_max_context(f, opts, hp);
    return 0;
}

/* ---- tensor binding ---- */

static int bind_weight(const gguf_file *f, const char *name, uint32_t rows, uint32_t cols, rl_weight *w, char *err,
                       size_t errlen) {
    const gguf_tensor *t = gguf_find_tensor(f, name);
    if (!t) {
        snprintf(err, errlen, "tensor '%s' is missing", name);
        return -1;
    }
    if (t->n_dims != 2 || t->ne[0] != cols || t->ne[1] != rows) {
        snprintf(err, errlen, "tensor '%s' has shape {%llu, %llu}, expected {%u, %u}", name,
                 (unsigned long long)t->ne[0], (unsigned long long)(t->n_dims > 1 ? t->ne[1] : 1), cols, rows);
        return -1;
    }
    if (!rl_dtype_supported(t->type)) {
        snprintf(err, errlen,
                 "tensor '%s' has type %s, which relais does not support (supported: f32, f16, "
                 "bf16, q8_0, q4_0, q4_K, q5_K, q6_K)",
                 name, rl_dtype_name(t->type));
        return -1;
    }
    w->data = t->data;
    w->type = t->type;
    w->rows = rows;
    w->cols = cols;
    w->row_bytes = rl_dtype_row_bytes(t->type, cols);
    w->name = t->name;
    return 0;
}

static int bind_norm(const gguf_file *f, const char *name, uint32_t n, const float **out, char *err, size_t errlen) {
    const gguf_tensor *t = gguf_find_tensor(f, name);
    if (!t) {
        snprintf(err, errlen, "tensor '%s' is missing", name);
        return -1;
    }
    if (t->type != RL_F32 || t->ne[0] != n || t->n_dims != 1) {
        snprintf(err, errlen, "tensor '%s' is %s with %llu elements, expected f32 with %u", name,
                 rl_dtype_name(t->type), (unsigned long long)t->ne[0], n);
        return -1;
    }
    *out = t->data;
    return 0;
}

static int bind_layer(const gguf_file *f, const rl_hparams *hp, uint32_t il, rl_layer *L, char *err, size_t errlen) {
    char name[96];
    const uint32_t q_dim = hp->n_head * hp->head_dim, kv_dim = hp->n_head_kv * hp->head_dim;
    struct {
        const char *suffix;
        rl_weight *w;
        uint32_t rows, cols;
    } mats[] = {
        {"attn_q", &L->wq, q_dim, hp->dim},
        {"attn_k", &L->wk, kv_dim, hp->dim},
        {"attn_v", &L->wv, kv_dim, hp->dim},
        {"attn_output", &L->wo, hp->dim, q_dim},
        {"ffn_gate", &L->w_gate, hp->ffn_dim, hp->dim},
        {"ffn_up", &L->w_up, hp->ffn_dim, hp->dim},
        {"ffn_down", &L->w_down, hp->dim, hp->ffn_dim},
    };
    for (size_t i = 0; i < sizeof mats / sizeof mats[0]; i++) {
        snprintf(name, sizeof name, "blk.%u.%s.weight", il, mats[i].suffix);
        if (bind_weight(f, name, mats[i].rows, mats[i].cols, mats[i].w, err, errlen))
            return -1;
    }
    snprintf(name, sizeof name, "blk.%u.attn_norm.weight", il);
    if (bind_norm(f, name, hp->dim, &L->attn_norm, err, errlen))
        return -1;
    snprintf(name, sizeof name, "blk.%u.ffn_norm.weight", il);
    return bind_norm(f, name, hp->dim, &L->ffn_norm, err, errlen);
}

/* Touches every page of [p, p+len) so that a slow disk shows up as load
 * progress rather than as a slow first token. */
static uint64_t prefault(const void *p, uint64_t len) {
    volatile const unsigned char *b = p;
    uint64_t sum = 0;
    for (uint64_t off = 0; off < len; off += 4096)
        sum += b[off];
    return sum;
}

static void report(const rl_model_opts *o, uint64_t done, uint64_t total) {
    if (o->progress)
        o->progress(o->progress_ud, done, total);
}

static uint64_t weight_bytes(const rl_weight *w) { return (uint64_t)w->row_bytes * w->rows; }

/* Whether w is rearranged into x16: never the embedding (read by rows, and
 * a tied head is the embedding), nor anything with file_layout. */
static bool rearranged(const rl_model *m, const rl_model_opts *o, const rl_weight *w) {
    return !o->file_layout && w != &m->embed && rl_x16_supported(w->type) && w->rows >= 16;
}

/* Whether w is read into memory before it is placed (load_weights). */
static bool read_first(const rl_model *m, const rl_model_opts *o, const rl_weight *w) {
    return o->no_mmap || rearranged(m, o, w);
}

/* Rearranges a matrix the batched kernels read into the x16 layout in place
 * (x16.h; load_weights has read it into writable memory), which reads and
 * writes every page; other matrices are just paged in. */
static void place_weight(rl_model *m, const rl_model_opts *o, rl_weight *w) {
    gguf_advise(m->file, w->data, weight_bytes(w), true);
    if (rearranged(m, o, w) && rl_x16_repack(w->type, (void *)w->data, w->row_bytes, 0, w->rows / 16) == 0)
        w->x16 = true;
    else
        prefault(w->data, weight_bytes(w));
}

/* Every bound matrix the forward pass reads whole (the layers and the head),
 * and the embedding when it is the head or with no_mmap; k of them. NULL
 * when out of memory. */
static rl_weight **matrices(rl_model *m, bool with_embed, size_t *k) {
    const uint32_t n = m->l1 - m->l0;
    rl_weight **ws = malloc((7 * (size_t)n + 2) * sizeof *ws);
    *k = 0;
    if (!ws)
        return NULL;
    for (uint32_t i = 0; i < n; i++) {
        rl_layer *L = &m->layers[i];
        rl_weight *lw[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t j = 0; j < 7; j++)
            ws[(*k)++] = lw[j];
    }
    if (m->has_head && !m->hp.tied_output)
        ws[(*k)++] = &m->output;
    if (m->embed.data && (with_embed || (m->has_head && m->hp.tied_output)))
        ws[(*k)++] = &m->embed;
    return ws;
}

/* Loads the weights, reporting progress. With no_mmap every one is read
 * into memory first; without, those that will be rearranged are too. A
 * rearranged weight cannot stay a view of the file anyway: writing it in
 * place would copy each 4 KiB page on first write, and read into anonymous
 * memory it gets huge pages, which decode's streaming reads need (x16
 * products 10-15% faster in bench/matvec_bench.c on a 2-core Zen 5: fewer
 * TLB misses). Every range is read before any is rearranged, as
 * gguf_load_range asks. */
static int load_weights(rl_model *m, const rl_model_opts *o, char *err, size_t errlen) {
    size_t k;
    rl_weight **ws = matrices(m, o->no_mmap, &k);
    uint64_t total = 0, done = 0;
    if (!ws) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < k; i++)
        total += weight_bytes(ws[i]) * (read_first(m, o, ws[i]) ? 2 : 1);
    for (size_t i = 0; i < k; i++) {
        if (!read_first(m, o, ws[i]))
            continue;
        if (gguf_load_range(m->file, ws[i]->data, weight_bytes(ws[i]))) {
            snprintf(err, errlen, "%s: cannot read tensor '%s' into memory", gguf_path(m->file), ws[i]->name);
            free(ws);
            return -1;
        }
        report(o, done += weight_bytes(ws[i]), total);
    }
    for (size_t i = 0; i < k; i++) {
        place_weight(m, o, ws[i]);
        report(o, done += weight_bytes(ws[i]), total);
    }
    free(ws);
    return 0;
}

static int bind_all(rl_model *m, const rl_model_opts *o, char *err, size_t errlen) {
    const rl_hparams *hp = &m->hp;
    for (uint32_t il = m->l0; il < m->l1; il++)
        if (bind_layer(m->file, hp, il, &m->layers[il - m->l0], err, errlen))
            return -1;
    if (o->embed || (o->head && hp->tied_output)) {
        if (bind_weight(m->file, "token_embd.weight", hp->n_vocab, hp->dim, &m->embed, err, errlen))
            return -1;
        m->has_embed = o->embed;
    }
    if (o->head) {
        if (bind_norm(m->file, "output_norm.weight", hp->dim, &m->out_norm, err, errlen))
            return -1;
        if (hp->tied_output)
            m->output = m->embed;
        else if (bind_weight(m->file, "output.weight", hp->n_vocab, hp->dim, &m->output, err, errlen))
            return -1;
        m->has_head = true;
    }
    return 0;
}

rl_model *rl_model_load(const char *path, const rl_model_opts *opts, char *err, size_t errlen) {
    rl_model_opts o = opts ? *opts : rl_model_opts_default();
    rl_model *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    m->file = gguf_open(path, err, errlen);
    if (!m->file || rl_hparams_read(m->file, &o, &m->hp, err, errlen)) {
        rl_model_destroy(&m);
        return NULL;
    }
    m->l0 = o.l0;
    m->l1 = o.l1 ? o.l1 : m->hp.n_layer;
    if (m->l0 > m->l1 || m->l1 > m->hp.n_layer) {
        snprintf(err, errlen, "layer range [%u, %u) outside the model's %u layers", m->l0, m->l1, m->hp.n_layer);
        rl_model_destroy(&m);
        return NULL;
    }
    m->layers = calloc(m->l1 - m->l0 + 1, sizeof *m->layers);
    if (!m->layers || bind_all(m, &o, err, errlen)) {
        if (!m->layers)
            snprintf(err, errlen, "out of memory");
        rl_model_destroy(&m);
        return NULL;
    }
    if (load_weights(m, &o, err, errlen)) {
        rl_model_destroy(&m);
        return NULL;
    }
    return m;
}

void rl_model_destroy(rl_model **pm) {
    rl_model *m = pm ? *pm : NULL;
    if (!m)
        return;
    gguf_close(&m->file);
    free(m->layers);
    free(m);
    *pm = NULL;
}

const rl_hparams *rl_model_hparams(const rl_model *m) { return &m->hp; }
const gguf_file *rl_model_gguf(const rl_model *m) { return m->file; }

void rl_model_range(const rl_model *m, uint32_t *l0, uint32_t *l1) {
    *l0 = m->l0;
    *l1 = m->l1;
}

const rl_layer *rl_model_layer(const rl_model *m, uint32_t il) {
    return il >= m->l0 && il < m->l1 ? &m->layers[il - m->l0] : NULL;
}

const rl_weight *rl_model_embed(const rl_model *m) { return m->has_embed ? &m->embed : NULL; }
const rl_weight *rl_model_output(const rl_model *m) { return m->has_head ? &m->output : NULL; }
const float *rl_model_output_norm(const rl_model *m) { return m->has_head ? m->out_norm : NULL; }

uint64_t rl_head_file_bytes(const gguf_file *f, bool tied_output) {
    const gguf_tensor *out = gguf_find_tensor(f, tied_output ? "token_embd.weight" : "output.weight");
    const gguf_tensor *norm = gguf_find_tensor(f, "output_norm.weight");
    return (out ? out->nbytes : 0) + (norm ? norm->nbytes : 0);
}

uint64_t rl_layer_file_bytes(const gguf_file *f, uint32_t il) {
    char prefix[32];
    int n = snprintf(prefix, sizeof prefix, "blk.%u.", il);
    uint64_t total = 0;
    for (int64_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        if (!strncmp(t->name, prefix, (size_t)n))
            total += t->nbytes;
    }
    return total;
}

int rl_hparams_ctx(const rl_hparams *hp, uint32_t asked, uint32_t *n_ctx, char *err, size_t errlen) {
    if (asked == 0) {
        *n_ctx = hp->n_ctx_train < RL_DEFAULT_CTX ? hp->n_ctx_train : RL_DEFAULT_CTX;
        return 0;
    }
    if (asked > hp->n_ctx_train) {
        snprintf(err, errlen,
                 "--ctx %u exceeds this model's context of %u (the file's context_length); the "
                 "model was not made for more, so it is refused unless you accept it with --ctx-beyond-file",
                 asked, hp->n_ctx_train);
        return -1;
    }
    *n_ctx = asked;
    return 0;
}
