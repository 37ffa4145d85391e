/* The synthetic-model writer: presets, the llama.cpp tensor layout and type
 * mix, and the generate-quantize-stream loop (see synth.h).
 *
 * Generation speed matters as much as memory: an 8B file has billions of
 * weights. Each weight costs one xoshiro256** draw, split into four 16-bit
 * uniforms whose sum (Irwin-Hall, n = 4) is a close enough normal for
 * benchmarks and tests: mean 0, the requested standard deviation, tails cut
 * at 3.46 sigma. Rows are generated and quantized by a few threads at a time
 * into one chunk buffer, then written in order, so the bytes never depend on
 * the thread count. */
#include "synth.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include "model.h"
#include "quant.h"
#include "rng.h"

enum {
    CHUNK_BYTES = 4 << 20, /* quantized bytes produced between two writes */
    MAX_THREADS = 8,
    QK_ROW = 256, /* K-quant block: rows must be a multiple of it */
};

typedef struct {
    const char *name;
    rl_synth_spec spec;
} preset;

/* Ministral 3 (2512) text decoders: shapes from the published configs (HF
 * transformers' ministral3 docs, NVIDIA Megatron Bridge's model list; FFN and
 * the 14B's theta as apxml.com lists them), YaRN and temperature as their
 * hub GGUFs carry them (factor 16 over 16384, beta 32/1, log multiplier 1,
 * temperature 0.1), 256k context, Tekken, no sliding window. */
#define MINISTRAL3(nm, layers, d, ffn, base, tied)                                                                    \
    {                                                                                                                 \
        .name = nm, .n_layer = layers, .dim = d, .n_head = 32, .n_head_kv = 8, .head_dim = 128, .ffn_dim = ffn,       \
        .n_vocab = 131072, .n_ctx = 262144, .rope_base = base, .norm_eps = 1e-5f, .vocab = RL_SYNTH_VOCAB_TEKKEN_V13, \
        .ftype = RL_SYNTH_Q4_K_M, .arch = "mistral3", .tied_output = tied, .rope_factor = 16.0f,                      \
        .rope_orig_ctx = 16384, .yarn_beta_fast = 32.0f, .yarn_beta_slow = 1.0f, .yarn_log_mul = 1.0f,                \
        .attn_temp_scale = 0.1f                                                                                       \
    }
#define LLAMA(nm, layers, d, nh, nkv, hd, ffn, voc, ctx, base, w, per, vk, ft)                                   \
    {                                                                                                            \
        .name = nm, .n_layer = layers, .dim = d, .n_head = nh, .n_head_kv = nkv, .head_dim = hd, .ffn_dim = ffn, \
        .n_vocab = voc, .n_ctx = ctx, .rope_base = base, .norm_eps = 1e-5f, .swa_window = w, .swa_period = per,  \
        .vocab = vk, .ftype = ft, .arch = "llama", .yarn_beta_fast = 32.0f, .yarn_beta_slow = 1.0f               \
    }

static const preset PRESETS[] = {
    {"ministral-8b",
     LLAMA("Ministral-8B synthetic", 36, 4096, 32, 8, 128, 12288, 131072, 32768, 100000000.0f, 32768, 4,
           RL_SYNTH_VOCAB_TEKKEN, RL_SYNTH_Q4_K_M)},
    {"mistral-7b",
     LLAMA("Mistral-7B synthetic", 32, 4096, 32, 8, 128, 14336, 32768, 32768, 1000000.0f, 0, 0, RL_SYNTH_VOCAB_SPM,
           RL_SYNTH_Q4_K_M)},
    {"small",
     LLAMA("small synthetic", 4, 256, 8, 2, 32, 512, 1024, 2048, 10000.0f, 0, 0, RL_SYNTH_VOCAB_SPM, RL_SYNTH_Q4_K_M)},
    {"tiny", LLAMA("tiny synthetic", 4, 64, 4, 2, 16, 192, 512, 512, 10000.0f, 0, 0, RL_SYNTH_VOCAB_SPM, RL_SYNTH_F32)},
    {"ministral3-3b", MINISTRAL3("Ministral-3-3B synthetic", 26, 3072, 9216, 1000000.0f, true)},
    {"ministral3-8b", MINISTRAL3("Ministral-3-8B synthetic", 34, 4096, 14336, 1000000.0f, false)},
    {"ministral3-14b", MINISTRAL3("Ministral-3-14B synthetic", 40, 5120, 16384, 1000000000.0f, false)},
};
#define N_PRESETS (sizeof PRESETS / sizeof PRESETS[0])

int rl_synth_preset(const char *name, rl_synth_spec *spec) {
    for (size_t i = 0; i < N_PRESETS; i++)
        if (!strcmp(name, PRESETS[i].name)) {
            *spec = PRESETS[i].spec;
            return 0;
        }
    return -1;
}

const char *rl_synth_preset_names(void) {
    return "ministral-8b, mistral-7b, small, tiny, ministral3-3b, ministral3-8b, ministral3-14b";
}

/* Name, the plain type of its matrices, and llama.cpp's general.file_type. */
static const struct {
    const char *name;
    rl_dtype base;
    uint32_t file_type;
} FTYPES[RL_SYNTH_FTYPE_COUNT] = {
    [RL_SYNTH_F32] = {"f32", RL_F32, 0},         [RL_SYNTH_F16] = {"f16", RL_F16, 1},
    [RL_SYNTH_BF16] = {"bf16", RL_BF16, 32},     [RL_SYNTH_Q8_0] = {"q8_0", RL_Q8_0, 7},
    [RL_SYNTH_Q4_0] = {"q4_0", RL_Q4_0, 2},      [RL_SYNTH_Q4_K] = {"q4_K", RL_Q4_K, 14},
    [RL_SYNTH_Q5_K] = {"q5_K", RL_Q5_K, 16},     [RL_SYNTH_Q6_K] = {"q6_K", RL_Q6_K, 18},
    [RL_SYNTH_Q4_K_M] = {"q4_K_M", RL_Q4_K, 15},
};

int rl_synth_ftype_from_name(const char *name) {
    for (int i = 0; i < RL_SYNTH_FTYPE_COUNT; i++)
        if (!strcasecmp(name, FTYPES[i].name))
            return i;
    return -1;
}

const char *rl_synth_ftype_name(rl_synth_ftype t) {
    return (unsigned)t < RL_SYNTH_FTYPE_COUNT ? FTYPES[t].name : "unknown";
}

static bool is_quantized(rl_synth_ftype t) { return t != RL_SYNTH_F32 && t != RL_SYNTH_F16 && t != RL_SYNTH_BF16; }

/* llama.cpp's use_more_bits: the first and last eighth of the layers, and
 * every third one between, get more bits in its _M mixes. */
static bool use_more_bits(uint32_t i, uint32_t n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

static bool ends_with(const char *s, const char *suffix) {
    size_t ls = strlen(s), lx = strlen(suffix);
    return ls >= lx && !strcmp(s + ls - lx, suffix);
}

rl_dtype rl_synth_tensor_type(const rl_synth_spec *spec, const char *tensor, uint32_t il, uint64_t ne0) {
    if (ends_with(tensor, "_norm.weight"))
        return RL_F32;
    rl_dtype t = FTYPES[spec->ftype].base;
    if (!strcmp(tensor, "output.weight") && is_quantized(spec->ftype) && spec->ftype != RL_SYNTH_Q8_0)
        t = RL_Q6_K;
    if (spec->ftype == RL_SYNTH_Q4_K_M && (!strcmp(tensor, "attn_v.weight") || !strcmp(tensor, "ffn_down.weight")) &&
        use_more_bits(il, spec->n_layer))
        t = RL_Q6_K;
    if (rl_dtype_block(t) == QK_ROW && ne0 % QK_ROW != 0)
        t = RL_Q8_0;
    return t;
}

/* ---- the tensor plan ---- */

typedef struct {
    char name[48]; /* GGUF tensor name */
    uint32_t n_dims;
    uint64_t ne[4]; /* ne[0] = row length (fan-in) */
    rl_dtype type;
    bool ones; /* a norm: every element 1 */
} plan_tensor;

enum { D_DIM, D_Q, D_KV, D_FFN };

/* The per-layer tensors in llama.cpp's order: name, row length, rows (0 = 1-D). */
static const struct {
    const char *name;
    int cols, rows;
} LAYER_TENSORS[] = {
    {"attn_norm.weight", D_DIM, -1},   {"attn_q.weight", D_DIM, D_Q},      {"attn_k.weight", D_DIM, D_KV},
    {"attn_v.weight", D_DIM, D_KV},    {"attn_output.weight", D_Q, D_DIM}, {"ffn_norm.weight", D_DIM, -1},
    {"ffn_gate.weight", D_DIM, D_FFN}, {"ffn_up.weight", D_DIM, D_FFN},    {"ffn_down.weight", D_FFN, D_DIM},
};
#define N_LAYER_TENSORS (sizeof LAYER_TENSORS / sizeof LAYER_TENSORS[0])

static uint64_t dim_of(const rl_synth_spec *s, int d) {
    switch (d) {
    case D_DIM:
        return s->dim;
    case D_Q:
        return (uint64_t)s->n_head * s->head_dim;
    case D_KV:
        return (uint64_t)s->n_head_kv * s->head_dim;
    default:
        return s->ffn_dim;
    }
}

static void plan_one(const rl_synth_spec *s, plan_tensor *t, const char *prefix, const char *name, uint32_t il,
                     uint64_t cols, uint64_t rows) {
    snprintf(t->name, sizeof t->name, "%s%s", prefix, name);
    t->n_dims = rows ? 2 : 1;
    t->ne[0] = cols;
    t->ne[1] = rows ? rows : 1;
    t->ne[2] = t->ne[3] = 1;
    t->type = rl_synth_tensor_type(s, name, il, cols);
    t->ones = rows == 0;
}

static size_t plan_count(const rl_synth_spec *s) {
    return (s->tied_output ? 2 : 3) + N_LAYER_TENSORS * (size_t)s->n_layer;
}

/* Fills out[plan_count(s)] in file order. */
static void plan_tensors(const rl_synth_spec *s, plan_tensor *out) {
    size_t k = 0;
    plan_one(s, &out[k++], "", "token_embd.weight", 0, s->dim, s->n_vocab);
    for (uint32_t il = 0; il < s->n_layer; il++) {
        char prefix[24];
        snprintf(prefix, sizeof prefix, "blk.%u.", il);
        for (size_t j = 0; j < N_LAYER_TENSORS; j++) {
            int r = LAYER_TENSORS[j].rows;
            plan_one(s, &out[k++], prefix, LAYER_TENSORS[j].name, il, dim_of(s, LAYER_TENSORS[j].cols),
                     r < 0 ? 0 : dim_of(s, r));
        }
    }
    plan_one(s, &out[k++], "", "output_norm.weight", 0, s->dim, 0);
    if (!s->tied_output)
        plan_one(s, &out[k++], "", "output.weight", 0, s->dim, s->n_vocab);
}

static uint64_t tensor_bytes(const plan_tensor *t) { return rl_dtype_row_bytes(t->type, t->ne[0]) * t->ne[1]; }

/* ---- validation ---- */

int rl_synth_check(const rl_synth_spec *s, char *err, size_t errlen) {
    if ((unsigned)s->ftype >= RL_SYNTH_FTYPE_COUNT || (unsigned)s->vocab > RL_SYNTH_VOCAB_TEKKEN_V13) {
        snprintf(err, errlen, "unknown weight type or vocabulary kind");
        return -1;
    }
    if (s->n_layer == 0 || s->n_layer > RL_MAX_LAYERS) {
        snprintf(err, errlen, "layers must be 1..%d (got %u)", RL_MAX_LAYERS, s->n_layer);
        return -1;
    }
    if (s->dim == 0 || s->n_head == 0 || s->n_head_kv == 0 || s->ffn_dim == 0 || s->n_ctx == 0) {
        snprintf(err, errlen, "dim, heads, kv heads, ffn and context must all be positive");
        return -1;
    }
    if (s->n_head % s->n_head_kv != 0) {
        snprintf(err, errlen, "%u heads are not a multiple of %u kv heads", s->n_head, s->n_head_kv);
        return -1;
    }
    if (s->head_dim == 0 || s->head_dim % 2 != 0) {
        snprintf(err, errlen, "head dimension %u is not a positive even number", s->head_dim);
        return -1;
    }
    if (s->n_vocab < rl_synth_vocab_min(s->vocab) || s->n_vocab > (1u << 22)) {
        snprintf(err, errlen, "vocabulary must be %u..%u for this tokenizer (got %u)", rl_synth_vocab_min(s->vocab),
                 1u << 22, s->n_vocab);
        return -1;
    }
    if (strcmp(s->arch, "llama") != 0 && strcmp(s->arch, "mistral3") != 0) {
        snprintf(err, errlen, "architecture '%.16s' is not one relais writes (llama, mistral3)", s->arch);
        return -1;
    }
    if (s->rope_factor > 1.0f && s->rope_orig_ctx == 0) {
        snprintf(err, errlen, "YaRN needs an original context length > 0");
        return -1;
    }
    if (s->rope_base <= 1.0f) {
        snprintf(err, errlen, "rope base must exceed 1 (got %g)", s->rope_base);
        return -1;
    }
    if (s->swa_window > 0 && s->swa_period == 0) {
        snprintf(err, errlen, "a sliding window needs a layer period >= 1");
        return -1;
    }
    /* every row length must hold whole blocks of its type (32 for q4_0/q8_0,
     * the K-quants fall back to q8_0) */
    const uint64_t cols[] = {s->dim, dim_of(s, D_Q), s->ffn_dim};
    for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++) {
        rl_dtype t = rl_synth_tensor_type(s, "attn_q.weight", 0, cols[i]);
        if (rl_dtype_row_bytes(t, cols[i]) == 0) {
            snprintf(err, errlen, "rows of %llu elements cannot be stored as %s (need a multiple of %u)",
                     (unsigned long long)cols[i], rl_dtype_name(t), rl_dtype_block(t));
            return -1;
        }
    }
    return 0;
}

uint64_t rl_synth_data_bytes(const rl_synth_spec *s) {
    size_t n = plan_count(s);
    plan_tensor *p = malloc(n * sizeof *p);
    if (!p)
        return 0;
    plan_tensors(s, p);
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += tensor_bytes(&p[i]);
    free(p);
    return total;
}

/* ---- metadata ---- */

static void set_arch_u32(gguf_writer *w, const rl_synth_spec *s, const char *key, uint32_t v) {
    char k[96];
    snprintf(k, sizeof k, "%s.%s", s->arch, key);
    gguf_writer_set_u32(w, k, v);
}

static void set_arch_f32(gguf_writer *w, const rl_synth_spec *s, const char *key, float v) {
    char k[96];
    snprintf(k, sizeof k, "%s.%s", s->arch, key);
    gguf_writer_set_f32(w, k, v);
}

/* rope.scaling.* (YaRN) and the attention temperature, as llama.cpp's
 * converter writes them for Ministral 3. */
static void write_rope_scaling(gguf_writer *w, const rl_synth_spec *s) {
    if (s->rope_factor > 1.0f) {
        char k[96];
        snprintf(k, sizeof k, "%s.rope.scaling.type", s->arch);
        gguf_writer_set_str(w, k, "yarn");
        set_arch_f32(w, s, "rope.scaling.factor", s->rope_factor);
        set_arch_u32(w, s, "rope.scaling.original_context_length", s->rope_orig_ctx);
        set_arch_f32(w, s, "rope.scaling.yarn_beta_fast", s->yarn_beta_fast);
        set_arch_f32(w, s, "rope.scaling.yarn_beta_slow", s->yarn_beta_slow);
        set_arch_f32(w, s, "rope.scaling.yarn_log_multiplier", s->yarn_log_mul);
    }
    if (s->attn_temp_scale != 0.0f)
        set_arch_f32(w, s, "attention.temperature_scale", s->attn_temp_scale);
}

static int write_metadata(gguf_writer *w, const rl_synth_spec *s, char *err, size_t errlen) {
    gguf_writer_set_str(w, "general.architecture", s->arch);
    gguf_writer_set_str(w, "general.name", s->name);
    gguf_writer_set_u32(w, "general.file_type", FTYPES[s->ftype].file_type);
    if (is_quantized(s->ftype))
        gguf_writer_set_u32(w, "general.quantization_version", 2);
    set_arch_u32(w, s, "block_count", s->n_layer);
    set_arch_u32(w, s, "context_length", s->n_ctx);
    set_arch_u32(w, s, "embedding_length", s->dim);
    set_arch_u32(w, s, "feed_forward_length", s->ffn_dim);
    set_arch_u32(w, s, "attention.head_count", s->n_head);
    set_arch_u32(w, s, "attention.head_count_kv", s->n_head_kv);
    set_arch_u32(w, s, "attention.key_length", s->head_dim);
    set_arch_u32(w, s, "attention.value_length", s->head_dim);
    set_arch_u32(w, s, "rope.dimension_count", s->head_dim);
    set_arch_f32(w, s, "rope.freq_base", s->rope_base);
    set_arch_f32(w, s, "attention.layer_norm_rms_epsilon", s->norm_eps);
    set_arch_u32(w, s, "vocab_size", s->n_vocab);
    write_rope_scaling(w, s);
    if (s->swa_window > 0) {
        bool sliding[RL_MAX_LAYERS];
        char k[96];
        for (uint32_t i = 0; i < s->n_layer; i++)
            sliding[i] = i % s->swa_period != 0;
        set_arch_u32(w, s, "attention.sliding_window", s->swa_window);
        snprintf(k, sizeof k, "%s.attention.sliding_window_pattern", s->arch);
        gguf_writer_set_arr(w, k, GGUF_BOOL, sliding, s->n_layer);
    }
    return rl_synth_vocab_add(w, s->vocab, s->n_vocab, err, errlen);
}

/* ---- weights ---- */

/* One row of approximately normal values of standard deviation `scale`. */
static void gen_row(float *x, uint64_t n, float scale, uint64_t key) {
    rl_rng r;
    rl_rng_seed(&r, key);
    /* four uniforms on 0..65535 sum to mean 131070, std 65536 / sqrt(3) */
    const float k = scale * 1.7320508f / 65536.0f;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t v = rl_rng_next(&r);
        int32_t sum = (int32_t)(v & 0xffff) + (int32_t)((v >> 16) & 0xffff) + (int32_t)((v >> 32) & 0xffff) +
            (int32_t)(v >> 48) - 131070;
        x[i] = (float)sum * k;
    }
}

/* A slice of a chunk: rows [r0, r1) of one tensor, quantized into out. */
typedef struct {
    const plan_tensor *t;
    uint64_t key; /* the tensor's seed; row r uses key ^ r */
    uint64_t r0, r1;
    uint8_t *out;
    float *row; /* (ne[0]) scratch */
    int ok;     /* every row quantized */
} slice_job;

static void *run_slice(void *arg) {
    slice_job *j = arg;
    const plan_tensor *t = j->t;
    size_t rb = rl_dtype_row_bytes(t->type, t->ne[0]);
    float scale = 1.0f / sqrtf((float)t->ne[0]);
    j->ok = 1;
    for (uint64_t r = j->r0; r < j->r1; r++) {
        if (t->ones)
            for (uint64_t i = 0; i < t->ne[0]; i++)
                j->row[i] = 1.0f;
        else
            gen_row(j->row, t->ne[0], scale, j->key ^ r);
        if (rl_quantize_row(t->type, j->row, j->out + (r - j->r0) * rb, (int64_t)t->ne[0]) != rb)
            j->ok = 0;
    }
    return NULL;
}

/* Shared state of one rl_synth_write. */
typedef struct {
    gguf_writer *w;
    uint8_t *chunk;           /* CHUNK_BYTES, or one row if larger */
    float *rows[MAX_THREADS]; /* per-thread row scratch, the widest row */
    int n_threads;
    bool begun;           /* the file has been created: remove it on failure */
    uint64_t done, total; /* tensor bytes written / to write */
    rl_synth_progress progress;
    void *ud;
} writer_state;

/* Fills rows [r0, r1) of t into the chunk, split across the threads. */
static int fill_chunk(writer_state *st, const plan_tensor *t, uint64_t key, uint64_t r0, uint64_t r1) {
    size_t rb = rl_dtype_row_bytes(t->type, t->ne[0]);
    uint64_t n = r1 - r0;
    int nt = n < (uint64_t)st->n_threads ? (int)n : st->n_threads;
    slice_job jobs[MAX_THREADS];
    pthread_t tid[MAX_THREADS];
    bool started[MAX_THREADS] = {false};
    for (int i = 0; i < nt; i++) {
        uint64_t a = r0 + n * (uint64_t)i / (uint64_t)nt, b = r0 + n * (uint64_t)(i + 1) / (uint64_t)nt;
        jobs[i] = (slice_job){t, key, a, b, st->chunk + (a - r0) * rb, st->rows[i], 0};
        started[i] = i > 0 && pthread_create(&tid[i], NULL, run_slice, &jobs[i]) == 0;
    }
    for (int i = 0; i < nt; i++)
        if (!started[i]) /* slice 0, and any slice whose thread did not start, run here */
            run_slice(&jobs[i]);
    int ok = 1;
    for (int i = 0; i < nt; i++) {
        if (started[i])
            pthread_join(tid[i], NULL);
        ok &= jobs[i].ok;
    }
    return ok ? 0 : -1;
}

static int write_tensor(writer_state *st, const plan_tensor *t, uint64_t key, char *err, size_t errlen) {
    size_t rb = rl_dtype_row_bytes(t->type, t->ne[0]);
    uint64_t per_chunk = rb >= CHUNK_BYTES ? 1 : CHUNK_BYTES / rb;
    for (uint64_t r0 = 0; r0 < t->ne[1]; r0 += per_chunk) {
        uint64_t r1 = r0 + per_chunk < t->ne[1] ? r0 + per_chunk : t->ne[1];
        if (fill_chunk(st, t, key, r0, r1) < 0) {
            snprintf(err, errlen, "%s: rows of %llu cannot be quantized to %s", t->name, (unsigned long long)t->ne[0],
                     rl_dtype_name(t->type));
            return -1;
        }
        size_t len = (size_t)(r1 - r0) * rb;
        if (gguf_writer_write_data(st->w, st->chunk, len, err, errlen) < 0)
            return -1;
        st->done += len;
        if (st->progress)
            st->progress(st->ud, st->done, st->total);
    }
    return 0;
}

static int thread_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : (int)n;
}

static int write_all(writer_state *st, const rl_synth_spec *s, const plan_tensor *p, size_t n, const char *path,
                     char *err, size_t errlen) {
    if (write_metadata(st->w, s, err, errlen) < 0)
        return -1;
    uint64_t widest = 0, widest_bytes = 0;
    for (size_t i = 0; i < n; i++) {
        gguf_writer_add_tensor(st->w, p[i].name, p[i].type, p[i].n_dims, p[i].ne);
        st->total += tensor_bytes(&p[i]);
        if (p[i].ne[0] > widest)
            widest = p[i].ne[0];
        if (rl_dtype_row_bytes(p[i].type, p[i].ne[0]) > widest_bytes)
            widest_bytes = rl_dtype_row_bytes(p[i].type, p[i].ne[0]);
    }
    bool oom = !(st->chunk = malloc(widest_bytes > CHUNK_BYTES ? widest_bytes : CHUNK_BYTES));
    for (int i = 0; i < st->n_threads; i++)
        oom |= !(st->rows[i] = malloc(widest * sizeof(float)));
    if (oom) {
        snprintf(err, errlen, "out of memory for the row buffers");
        return -1;
    }
    if (gguf_writer_begin(st->w, path, err, errlen) < 0)
        return -1;
    st->begun = true;
    uint64_t base = s->seed;
    base = rl_splitmix64(&base);
    for (size_t i = 0; i < n; i++)
        if (write_tensor(st, &p[i], base ^ ((uint64_t)i << 40), err, errlen) < 0)
            return -1;
    return gguf_writer_close(st->w, err, errlen);
}

int rl_synth_write(const rl_synth_spec *spec, const char *path, rl_synth_progress progress, void *ud, char *err,
                   size_t errlen) {
    if (rl_synth_check(spec, err, errlen) < 0)
        return -1;
    size_t n = plan_count(spec);
    plan_tensor *p = malloc(n * sizeof *p);
    writer_state st = {.w = gguf_writer_new(), .n_threads = thread_count(), .progress = progress, .ud = ud};
    int rc = -1;
    if (!p || !st.w)
        snprintf(err, errlen, "out of memory");
    else {
        plan_tensors(spec, p);
        rc = write_all(&st, spec, p, n, path, err, errlen);
    }
    gguf_writer_destroy(&st.w);
    if (rc < 0 && st.begun && unlink(path) < 0 && errno != ENOENT && strlen(err) + 1 < errlen)
        snprintf(err + strlen(err), errlen - strlen(err), " (and %s could not be removed)", path);
    free(st.chunk);
    for (int i = 0; i < st.n_threads; i++)
        free(st.rows[i]);
    free(p);
    return rc;
}
