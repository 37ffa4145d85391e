/* Tests of the synthetic-model writer: presets and the llama.cpp type mix
 * (checked against a Q4_K_M file quantized by an independent tool), files
 * written and read back through the GGUF reader (metadata, tensor table,
 * sliding-window keys, the vocabulary), the statistics of the weights in
 * every type, byte-for-byte determinism, and a tokenizer round trip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "chat.h"
#include "gguf.h"
#include "runner.h"
#include "quant.h"
#include "synth.h"
#include "tokenizer.h"
#include "testutil.h"

static char tmpdir[TU_DIR_MAX];

static int setup_dir(void **state) {
    (void)state;
    return tu_dir_new(tmpdir, "synth");
}

static int remove_dir(void **state) {
    (void)state;
    return tu_dir_remove(tmpdir);
}

static void tmp_path(char *buf, size_t len, const char *name) { snprintf(buf, len, "%s/%s", tmpdir, name); }

static void write_or_fail(const rl_synth_spec *s, const char *path) {
    char err[512] = "";
    int rc = rl_synth_write(s, path, NULL, NULL, err, sizeof err);
    if (rc != 0)
        fail_msg("rl_synth_write(%s): %s", path, err);
}

static gguf_file *open_or_fail(const char *path) {
    char err[512] = "";
    gguf_file *f = gguf_open(path, err, sizeof err);
    if (!f)
        fail_msg("gguf_open(%s): %s", path, err);
    return f;
}

static rl_synth_spec preset(const char *name) {
    rl_synth_spec s;
    assert_int_equal(rl_synth_preset(name, &s), 0);
    return s;
}

static uint32_t get_u32(const gguf_file *f, const char *key) {
    uint32_t v = 0;
    if (!gguf_get_u32(f, key, &v))
        fail_msg("missing %s", key);
    return v;
}

static void test_presets_and_names(void **state) {
    rl_synth_spec s = preset("ministral-8b");
    assert_int_equal(s.n_layer, 36);
    assert_int_equal(s.dim, 4096);
    assert_int_equal(s.n_head, 32);
    assert_int_equal(s.n_head_kv, 8);
    assert_int_equal(s.head_dim, 128);
    assert_int_equal(s.ffn_dim, 12288);
    assert_int_equal(s.n_vocab, 131072);
    assert_int_equal(s.swa_window, 32768);
    assert_int_equal(s.swa_period, 4);
    assert_int_equal(s.vocab, RL_SYNTH_VOCAB_TEKKEN);
    s = preset("mistral-7b");
    assert_int_equal(s.ffn_dim, 14336);
    assert_int_equal(s.swa_window, 0);
    assert_int_equal(preset("tiny").dim, 64);
    assert_int_equal(preset("small").dim, 256);
    assert_int_equal(rl_synth_preset("ministral-9b", &s), -1);

    assert_int_equal(rl_synth_ftype_from_name("Q4_K_M"), RL_SYNTH_Q4_K_M);
    assert_int_equal(rl_synth_ftype_from_name("q4_k"), RL_SYNTH_Q4_K);
    assert_int_equal(rl_synth_ftype_from_name("bf16"), RL_SYNTH_BF16);
    assert_int_equal(rl_synth_ftype_from_name("q3_K"), -1);
    assert_string_equal(rl_synth_ftype_name(RL_SYNTH_Q8_0), "q8_0");
}

/* The Ministral 3 presets: the published shapes, mistral3 keys, the 3B's
 * head tied to its embedding (no output.weight, so fewer bytes). */
static void test_ministral3_presets(void **state) {
    static const struct {
        const char *name;
        uint32_t layers, dim, ffn;
        float base;
        bool tied;
    } want[] = {{"ministral3-3b", 26, 3072, 9216, 1e6f, true},
                {"ministral3-8b", 34, 4096, 14336, 1e6f, false},
                {"ministral3-14b", 40, 5120, 16384, 1e9f, false}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        rl_synth_spec s = preset(want[i].name);
        assert_string_equal(s.arch, "mistral3");
        assert_int_equal(s.n_layer, want[i].layers);
        assert_int_equal(s.dim, want[i].dim);
        assert_int_equal(s.ffn_dim, want[i].ffn);
        assert_int_equal(s.n_head, 32);
        assert_int_equal(s.n_head_kv, 8);
        assert_int_equal(s.head_dim, 128);
        assert_int_equal(s.n_vocab, 131072);
        assert_int_equal(s.n_ctx, 262144);
        assert_int_equal(s.swa_window, 0);
        assert_true(s.tied_output == want[i].tied);
        assert_float_equal(s.rope_base, want[i].base, 0);
        assert_float_equal(s.rope_factor, 16, 0);
        assert_int_equal(s.rope_orig_ctx, 16384);
        assert_float_equal(s.yarn_log_mul, 1, 0);
        assert_float_equal(s.attn_temp_scale, 0.1, 1e-7);
    }
    rl_synth_spec s3 = preset("ministral3-3b"), untied = s3;
    untied.tied_output = false;
    /* tied: the output matrix (131072 x 3072 in q6_K) is not written */
    assert_int_equal(rl_synth_data_bytes(&untied) - rl_synth_data_bytes(&s3),
                     rl_dtype_row_bytes(RL_Q6_K, 3072) * 131072ull);
}

/* A shrunk Ministral 3 3B: written with the mistral3 keys, no output.weight,
 * and heads x head_dim != dim; it loads with its YaRN and temperature, and
 * generates. */
static void test_ministral3_file_loads_and_runs(void **state) {
    char path[256], err[512];
    tmp_path(path, sizeof path, "m3.gguf");
    rl_synth_spec s = preset("ministral3-3b");
    s.n_layer = 2, s.dim = 96, s.n_head = 4, s.n_head_kv = 2, s.head_dim = 32, s.ffn_dim = 256;
    s.n_vocab = 2048, s.n_ctx = 128, s.rope_orig_ctx = 32, s.rope_factor = 4, s.ftype = RL_SYNTH_Q8_0;
    write_or_fail(&s, path);
    gguf_file *f = open_or_fail(path);
    gguf_str arch, type;
    assert_true(gguf_get_str(f, "general.architecture", &arch) && arch.len == 8 && !memcmp(arch.ptr, "mistral3", 8));
    assert_true(gguf_get_str(f, "mistral3.rope.scaling.type", &type) && type.len == 4 && !memcmp(type.ptr, "yarn", 4));
    assert_int_equal(get_u32(f, "mistral3.rope.scaling.original_context_length"), 32);
    assert_int_equal(get_u32(f, "mistral3.attention.key_length"), 32);
    assert_null(gguf_find_tensor(f, "output.weight"));
    assert_int_equal(gguf_find_key(f, "llama.block_count"), -1);
    gguf_close(&f);

    rl_runner_opts o = rl_runner_opts_default();
    o.model_path = path;
    o.n_threads = 1;
    o.progress = false;
    rl_runner *r = rl_runner_new(&o, err, sizeof err);
    if (!r)
        fail_msg("%s", err);
    const rl_hparams *hp = rl_runner_hparams(r);
    assert_string_equal(hp->arch, "mistral3");
    assert_true(hp->rope_yarn && hp->tied_output);
    assert_float_equal(hp->rope_factor, 4, 0);
    assert_int_equal(hp->rope_orig_ctx, 32);
    assert_float_equal(hp->attn_temp_scale, 0.1, 1e-7);
    assert_int_not_equal(hp->n_head * hp->head_dim, hp->dim);
    /* its Tekken vocabulary names the V13 controls, so chat picks Ministral 3's format */
    const rl_tokenizer *tok = rl_runner_tokenizer(r);
    assert_int_equal(rl_tok_find(tok, "[ARGS]"), 32);
    assert_int_equal(rl_tok_find(tok, "[/THINK]"), 35);
    assert_true(rl_tok_is_control(tok, 34));
    assert_int_equal(rl_chat_template_detect(tok, rl_runner_gguf(r)), RL_CHAT_MISTRAL_V13);
    float *logits = malloc(hp->n_vocab * sizeof *logits);
    int32_t ids[40];
    for (int i = 0; i < 40; i++) /* past the original context of 32 */
        ids[i] = 1000 + i * 7;
    assert_int_equal(rl_runner_feed(r, ids, 40, logits, err, sizeof err), 0);
    for (uint32_t i = 0; i < hp->n_vocab; i++)
        assert_true(isfinite(logits[i]));
    free(logits);
    rl_runner_destroy(&r);
}

static void test_q4_k_m_mix(void **state) {
    rl_synth_spec s = preset("ministral-8b");
    s.ftype = RL_SYNTH_Q4_K_M;
    /* use_more_bits over 36 layers: 0-3, 31-35, and every third from 6 */
    for (uint32_t il = 0; il < 36; il++) {
        bool more = il < 4 || il >= 31 || (il >= 4 && (il - 4) % 3 == 2);
        rl_dtype want = more ? RL_Q6_K : RL_Q4_K;
        assert_int_equal(rl_synth_tensor_type(&s, "attn_v.weight", il, 4096), want);
        assert_int_equal(rl_synth_tensor_type(&s, "ffn_down.weight", il, 12288), want);
        assert_int_equal(rl_synth_tensor_type(&s, "attn_q.weight", il, 4096), RL_Q4_K);
        assert_int_equal(rl_synth_tensor_type(&s, "ffn_norm.weight", il, 4096), RL_F32);
    }
    assert_int_equal(rl_synth_tensor_type(&s, "output.weight", 0, 4096), RL_Q6_K);
    assert_int_equal(rl_synth_tensor_type(&s, "token_embd.weight", 0, 4096), RL_Q4_K);
    /* K-quant rows that do not hold whole 256-blocks fall back to q8_0 */
    assert_int_equal(rl_synth_tensor_type(&s, "attn_q.weight", 0, 64), RL_Q8_0);
    s.ftype = RL_SYNTH_Q8_0;
    assert_int_equal(rl_synth_tensor_type(&s, "output.weight", 0, 4096), RL_Q8_0);
    s.ftype = RL_SYNTH_Q4_0;
    assert_int_equal(rl_synth_tensor_type(&s, "output.weight", 0, 4096), RL_Q6_K);
    assert_int_equal(rl_synth_tensor_type(&s, "ffn_down.weight", 0, 12288), RL_Q4_0);
}

static void test_check_rejects(void **state) {
    char err[256];
    rl_synth_spec s = preset("tiny");
    assert_int_equal(rl_synth_check(&s, err, sizeof err), 0);
    s.n_head_kv = 3;
    assert_int_equal(rl_synth_check(&s, err, sizeof err), -1);
    assert_non_null(strstr(err, "kv heads"));
    s = preset("tiny");
    s.dim = 48;
    s.ftype = RL_SYNTH_Q4_0;
    assert_int_equal(rl_synth_check(&s, err, sizeof err), -1);
    assert_non_null(strstr(err, "q4_0"));
    s = preset("tiny");
    s.n_vocab = 300;
    assert_int_equal(rl_synth_check(&s, err, sizeof err), -1);
    s = preset("ministral-8b");
    s.n_vocab = 1000; /* below the 1000 controls + 256 bytes */
    assert_int_equal(rl_synth_check(&s, err, sizeof err), -1);
    assert_non_null(strstr(err, "1256"));
    s = preset("tiny");
    s.n_layer = 0;
    assert_int_equal(rl_synth_check(&s, err, sizeof err), -1);
    char path[128];
    tmp_path(path, sizeof path, "refused.gguf");
    assert_int_equal(rl_synth_write(&s, path, NULL, NULL, err, sizeof err), -1);
    assert_int_equal(access(path, F_OK), -1);
}

/* Same tensor names, order-independent shapes and types as a file made by
 * another implementation of llama.cpp's layout and Q4_K_M rules. */
static void test_matches_reference_layout(void **state) {
    char path[128], ref_path[256];
    tmp_path(path, sizeof path, "small-q4_k_m.gguf");
    rl_synth_spec s = preset("small");
    s.ftype = RL_SYNTH_Q4_K_M;
    write_or_fail(&s, path);
    snprintf(ref_path, sizeof ref_path, "%s/models/small-q4_k_m.gguf", RELAIS_SHARED_DIR);
    gguf_file *f = open_or_fail(path), *ref = open_or_fail(ref_path);
    assert_int_equal(gguf_n_tensors(f), gguf_n_tensors(ref));
    for (int64_t i = 0; i < gguf_n_tensors(ref); i++) {
        const gguf_tensor *r = gguf_tensor_at(ref, i), *t = gguf_find_tensor(f, r->name);
        if (!t)
            fail_msg("no tensor %s", r->name);
        assert_int_equal(t->n_dims, r->n_dims);
        assert_memory_equal(t->ne, r->ne, sizeof t->ne);
        if (t->type != r->type)
            fail_msg("%s: %s, reference has %s", r->name, rl_dtype_name(t->type), rl_dtype_name(r->type));
    }
    assert_int_equal(get_u32(f, "general.file_type"), get_u32(ref, "general.file_type"));
    gguf_close(&ref);
    gguf_close(&f);
    assert_null(f);
}

static void test_tiny_metadata_and_tensors(void **state) {
    char path[128];
    tmp_path(path, sizeof path, "tiny-f32.gguf");
    rl_synth_spec s = preset("tiny");
    write_or_fail(&s, path);
    gguf_file *f = open_or_fail(path);
    gguf_str arch;
    assert_true(gguf_get_str(f, "general.architecture", &arch));
    assert_int_equal(arch.len, 5);
    assert_memory_equal(arch.ptr, "llama", 5);
    assert_int_equal(get_u32(f, "llama.block_count"), 4);
    assert_int_equal(get_u32(f, "llama.embedding_length"), 64);
    assert_int_equal(get_u32(f, "llama.feed_forward_length"), 192);
    assert_int_equal(get_u32(f, "llama.attention.head_count"), 4);
    assert_int_equal(get_u32(f, "llama.attention.head_count_kv"), 2);
    assert_int_equal(get_u32(f, "llama.attention.key_length"), 16);
    assert_int_equal(get_u32(f, "llama.attention.value_length"), 16);
    assert_int_equal(get_u32(f, "llama.context_length"), 512);
    assert_int_equal(get_u32(f, "llama.vocab_size"), 512);
    assert_int_equal(get_u32(f, "general.file_type"), 0);
    assert_int_equal(get_u32(f, "tokenizer.ggml.bos_token_id"), 1);
    float eps = 0, base = 0;
    assert_true(gguf_get_f32(f, "llama.attention.layer_norm_rms_epsilon", &eps));
    assert_true(gguf_get_f32(f, "llama.rope.freq_base", &base));
    assert_float_equal(eps, 1e-5f, 1e-12);
    assert_float_equal(base, 10000.0f, 0.0);
    assert_int_equal(gguf_find_key(f, "llama.attention.sliding_window"), -1);

    /* the shapes of the shared tiny model, in llama.cpp's order */
    char ref_path[256];
    snprintf(ref_path, sizeof ref_path, "%s/models/tiny-f32.gguf", RELAIS_SHARED_DIR);
    gguf_file *ref = open_or_fail(ref_path);
    assert_int_equal(gguf_n_tensors(f), 3 + 9 * 4);
    assert_int_equal(gguf_n_tensors(f), gguf_n_tensors(ref));
    for (int64_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i), *r = gguf_tensor_at(ref, i);
        assert_string_equal(t->name, r->name);
        assert_memory_equal(t->ne, r->ne, sizeof t->ne);
        assert_int_equal(t->type, RL_F32);
        if (strstr(t->name, "_norm."))
            for (uint64_t k = 0; k < t->ne[0]; k++)
                assert_float_equal(((const float *)t->data)[k], 1.0f, 0.0);
    }
    gguf_close(&ref);
    gguf_close(&f);
}

static void test_sliding_keys_and_tekken_vocab(void **state) {
    char path[128];
    tmp_path(path, sizeof path, "ministral-shaped.gguf");
    rl_synth_spec s = preset("ministral-8b");
    s.n_layer = 8;
    s.dim = 256;
    s.n_head = 4;
    s.n_head_kv = 2;
    s.head_dim = 64;
    s.ffn_dim = 256;
    s.n_vocab = 4000;
    s.ftype = RL_SYNTH_Q8_0;
    write_or_fail(&s, path);
    gguf_file *f = open_or_fail(path);
    assert_int_equal(get_u32(f, "llama.attention.sliding_window"), 32768);
    gguf_type elem;
    uint64_t n;
    const void *data;
    assert_true(gguf_get_arr(f, "llama.attention.sliding_window_pattern", &elem, &n, &data));
    assert_int_equal(elem, GGUF_BOOL);
    assert_int_equal(n, 8);
    for (uint64_t i = 0; i < n; i++) {
        int64_t v;
        assert_true(gguf_arr_i64(f, "llama.attention.sliding_window_pattern", i, &v));
        assert_int_equal(v, i % 4 != 0);
    }
    assert_int_equal(get_u32(f, "llama.attention.key_length"), 64);
    assert_int_equal(get_u32(f, "general.file_type"), 7);

    gguf_str str;
    assert_true(gguf_get_str(f, "tokenizer.ggml.pre", &str));
    assert_int_equal(str.len, 6);
    assert_memory_equal(str.ptr, "tekken", 6);
    const char *names[] = {"<unk>", "<s>", "</s>", "[INST]", "[/INST]", "[AVAILABLE_TOOLS]"};
    for (uint64_t i = 0; i < 6; i++) {
        str = gguf_arr_str(f, "tokenizer.ggml.tokens", i);
        assert_int_equal(str.len, strlen(names[i]));
        assert_memory_equal(str.ptr, names[i], str.len);
    }
    str = gguf_arr_str(f, "tokenizer.ggml.tokens", 999);
    assert_memory_equal(str.ptr, "<SPECIAL_999>", str.len);
    str = gguf_arr_str(f, "tokenizer.ggml.tokens", 1000);
    assert_memory_equal(str.ptr, "!", str.len);
    int64_t type;
    assert_true(gguf_arr_i64(f, "tokenizer.ggml.token_type", 999, &type));
    assert_int_equal(type, 3);
    assert_true(gguf_arr_i64(f, "tokenizer.ggml.token_type", 1000, &type));
    assert_int_equal(type, 1);

    /* merge i joins two earlier tokens into token 1256 + i */
    assert_true(gguf_get_arr(f, "tokenizer.ggml.merges", &elem, &n, NULL));
    assert_int_equal(n, 4000 - 1256);
    for (uint64_t i = 0; i < n; i += 97) {
        gguf_str m = gguf_arr_str(f, "tokenizer.ggml.merges", i);
        gguf_str t = gguf_arr_str(f, "tokenizer.ggml.tokens", 1256 + i);
        const char *sp = memchr(m.ptr, ' ', m.len);
        assert_non_null(sp);
        size_t la = (size_t)(sp - m.ptr);
        assert_int_equal(t.len, m.len - 1);
        assert_memory_equal(t.ptr, m.ptr, la);
        assert_memory_equal(t.ptr + la, sp + 1, m.len - la - 1);
    }
    gguf_close(&f);
}

/* Mean, standard deviation and RMS difference against a reference file's
 * tensor of the same name, all in units of the intended deviation
 * 1/sqrt(ne[0]). */
typedef struct {
    double mean, std, rms_diff;
} tensor_stats;

static tensor_stats compare_tensor(const gguf_tensor *t, const gguf_tensor *ref) {
    size_t rb = rl_dtype_row_bytes(t->type, t->ne[0]);
    float *row = malloc(t->ne[0] * sizeof *row);
    assert_non_null(row);
    const float *exact = ref->data;
    double sum = 0, sq = 0, diff = 0;
    uint64_t n = t->ne[0] * t->ne[1];
    for (uint64_t r = 0; r < t->ne[1]; r++) {
        rl_dequantize_row(t->type, (const uint8_t *)t->data + r * rb, row, (int64_t)t->ne[0]);
        for (uint64_t i = 0; i < t->ne[0]; i++) {
            double e = exact[r * t->ne[0] + i];
            sum += row[i];
            sq += (double)row[i] * row[i];
            diff += (row[i] - e) * (row[i] - e);
        }
    }
    free(row);
    double scale = 1.0 / sqrt((double)t->ne[0]), mean = sum / (double)n;
    return (tensor_stats){mean / scale, sqrt(sq / (double)n - mean * mean) / scale, sqrt(diff / (double)n) / scale};
}

/* Writes `base` in each type and checks every weight matrix against the
 * f32 file of the same seed: same distribution, and quantization noise of
 * the size the type implies (so the same values went into every type). */
static void check_types(const char *preset_name, const rl_synth_ftype *types, size_t n_types, const double *max_noise) {
    char ref_path[128], path[128];
    rl_synth_spec s = preset(preset_name);
    s.seed = 77;
    s.ftype = RL_SYNTH_F32;
    tmp_path(ref_path, sizeof ref_path, "stats-f32.gguf");
    write_or_fail(&s, ref_path);
    gguf_file *ref = open_or_fail(ref_path);
    for (size_t k = 0; k < n_types; k++) {
        s.ftype = types[k];
        tmp_path(path, sizeof path, "stats-q.gguf");
        write_or_fail(&s, path);
        gguf_file *f = open_or_fail(path);
        for (int64_t i = 0; i < gguf_n_tensors(f); i++) {
            const gguf_tensor *t = gguf_tensor_at(f, i);
            if (t->n_dims != 2)
                continue;
            tensor_stats st = compare_tensor(t, gguf_find_tensor(ref, t->name));
            /* five standard errors of the sample mean and deviation, plus
             * room for the spread quantization itself adds */
            double n = (double)(t->ne[0] * t->ne[1]);
            if (fabs(st.mean) > 5.0 / sqrt(n) || fabs(st.std - 1.0) > 0.02 + 5.0 / sqrt(2.0 * n) ||
                st.rms_diff > max_noise[k])
                fail_msg("%s %s (%s): mean %.3f std %.3f noise %.4f (max %.4f)", rl_synth_ftype_name(types[k]), t->name,
                         rl_dtype_name(t->type), st.mean, st.std, st.rms_diff, max_noise[k]);
        }
        gguf_close(&f);
    }
    gguf_close(&ref);
}

static void test_weight_statistics_by_type(void **state) {
    /* noise bounds, in units of the weights' standard deviation: 4-bit
     * quantization costs about 0.1, 8-bit under 0.01 */
    const rl_synth_ftype tiny_types[] = {RL_SYNTH_F32, RL_SYNTH_F16, RL_SYNTH_BF16, RL_SYNTH_Q8_0, RL_SYNTH_Q4_0};
    const double tiny_noise[] = {0.0, 1e-3, 4e-3, 0.01, 0.15};
    check_types("tiny", tiny_types, 5, tiny_noise);
    const rl_synth_ftype small_types[] = {RL_SYNTH_Q4_K, RL_SYNTH_Q5_K, RL_SYNTH_Q6_K, RL_SYNTH_Q4_K_M};
    const double small_noise[] = {0.15, 0.07, 0.04, 0.15};
    check_types("small", small_types, 4, small_noise);
}

static unsigned char *slurp(const char *path, size_t *len) {
    unsigned char *buf = tu_slurp(path, len);
    assert_non_null(buf);
    return buf;
}

static void progress_cb(void *ud, uint64_t done, uint64_t total) {
    uint64_t *last = ud;
    assert_true(done > last[0] && done <= total);
    last[0] = done;
    last[1] = total;
}

static void test_determinism_and_seeds(void **state) {
    char a[128], b[128], c[128];
    tmp_path(a, sizeof a, "seed-a.gguf");
    tmp_path(b, sizeof b, "seed-b.gguf");
    tmp_path(c, sizeof c, "seed-c.gguf");
    rl_synth_spec s = preset("tiny");
    s.ftype = RL_SYNTH_Q8_0;
    s.seed = 1;
    char err[256];
    uint64_t seen[2] = {0, 0};
    assert_int_equal(rl_synth_write(&s, a, progress_cb, seen, err, sizeof err), 0);
    assert_int_equal(seen[0], seen[1]);
    assert_int_equal(seen[1], rl_synth_data_bytes(&s));
    write_or_fail(&s, b);
    s.seed = 2;
    write_or_fail(&s, c);
    size_t la, lb, lc;
    unsigned char *da = slurp(a, &la), *db = slurp(b, &lb), *dc = slurp(c, &lc);
    assert_int_equal(la, lb);
    assert_memory_equal(da, db, la);
    assert_int_equal(la, lc); /* same layout... */
    gguf_file *f = open_or_fail(a);
    size_t off = (size_t)gguf_data_offset(f);
    gguf_close(&f);
    assert_memory_equal(da, dc, off); /* ...same metadata... */
    size_t same = 0;
    for (size_t i = off; i < la; i++)
        same += da[i] == dc[i];
    assert_true(same < (la - off) / 4); /* ...other weights */
    free(da);
    free(db);
    free(dc);
}

static void roundtrip(const char *path, const char *text) {
    char err[256];
    gguf_file *f = open_or_fail(path);
    rl_tokenizer *t = rl_tok_new(f, err, sizeof err);
    if (!t)
        fail_msg("rl_tok_new: %s", err);
    gguf_close(&f);
    int32_t *ids = NULL;
    size_t n = 0;
    assert_int_equal(rl_tok_encode(t, text, strlen(text), true, false, &ids, &n), 0);
    assert_true(n >= 2);
    assert_int_equal(ids[0], 1);
    char out[1024] = "";
    size_t len = 0;
    for (size_t i = 1; i < n; i++) {
        int k = rl_tok_piece(t, ids[i], false, out + len, sizeof out - len);
        assert_true(k >= 0 && len + (size_t)k < sizeof out);
        len += (size_t)k;
    }
    out[len] = 0;
    /* SentencePiece adds a leading space that decoding a whole text drops */
    const char *got = rl_tok_kind_of(t) == RL_TOK_SPM && out[0] == ' ' ? out + 1 : out;
    assert_string_equal(got, text);
    assert_true(n - 1 < strlen(text)); /* some pieces longer than one byte were used */
    free(ids);
    rl_tok_destroy(&t);
}

static void test_vocab_runs_through_tokenizer(void **state) {
    char path[128];
    tmp_path(path, sizeof path, "vocab-spm.gguf");
    rl_synth_spec s = preset("tiny");
    write_or_fail(&s, path);
    const char *text = "the rain in Spain stays mainly on the plain, 42 times!";
    roundtrip(path, text);
    tmp_path(path, sizeof path, "vocab-tekken.gguf");
    s.vocab = RL_SYNTH_VOCAB_TEKKEN;
    s.n_vocab = 8192;
    write_or_fail(&s, path);
    roundtrip(path, text);
    roundtrip(path, "Ünïcødé bytes \xe2\x82\xac and [INST] as text");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_presets_and_names),
        cmocka_unit_test(test_ministral3_presets),
        cmocka_unit_test(test_ministral3_file_loads_and_runs),
        cmocka_unit_test(test_q4_k_m_mix),
        cmocka_unit_test(test_check_rejects),
        cmocka_unit_test(test_matches_reference_layout),
        cmocka_unit_test(test_tiny_metadata_and_tensors),
        cmocka_unit_test(test_sliding_keys_and_tekken_vocab),
        cmocka_unit_test(test_weight_statistics_by_type),
        cmocka_unit_test(test_determinism_and_seeds),
        cmocka_unit_test(test_vocab_runs_through_tokenizer),
    };
    return cmocka_run_group_tests(tests, setup_dir, remove_dir);
}
