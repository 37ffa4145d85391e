/* Tests for the GGUF reader and writer: the reader against the shared test
 * models, a writer round trip covering every metadata type, and the reader's
 * defences: truncation at every offset of a file, targeted corruption of each
 * header field (each must be refused with a message that names the culprit)
 * and random byte flips (which must never crash). Scratch files live in a
 * mkdtemp directory under /tmp, removed at the end. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dtype.h"
#include "gguf.h"
#include "gguf_write.h"
#include "testutil.h"

#define MODELS RELAIS_SHARED_DIR "/models/"

static char tmpdir[TU_DIR_MAX];

/* ---- helpers ------------------------------------------------------------- */

/* Returned by value, so two scratch paths can be alive at once. */
typedef struct {
    char s[400];
} scratch_path;

static scratch_path tmp_path(const char *name) {
    scratch_path p;
    snprintf(p.s, sizeof p.s, "%s/%s", tmpdir, name);
    return p;
}

static uint8_t *slurp(const char *path, size_t *n) {
    uint8_t *p = tu_slurp(path, n);
    assert_non_null(p);
    return p;
}

static void spit(const char *path, const void *p, size_t n) {
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(p, 1, n, fp), n);
    assert_int_equal(fclose(fp), 0);
}

static gguf_file *open_ok(const char *path) {
    char err[512] = "";
    gguf_file *f = gguf_open(path, err, sizeof err);
    if (!f)
        fail_msg("gguf_open(%s) failed: %s", path, err);
    return f;
}

/* Opening must fail with a message containing each non-NULL needle. */
static void expect_refused(const char *path, const char *needle1, const char *needle2) {
    char err[512] = "";
    gguf_file *f = gguf_open(path, err, sizeof err);
    if (f) {
        gguf_close(&f);
        fail_msg("%s opened, but should be refused (expected '%s')", path, needle1 ? needle1 : "");
    }
    if (!err[0])
        fail_msg("%s refused without a message", path);
    if (needle1 && !strstr(err, needle1))
        fail_msg("message \"%s\" lacks \"%s\"", err, needle1);
    if (needle2 && !strstr(err, needle2))
        fail_msg("message \"%s\" lacks \"%s\"", err, needle2);
}

static bool str_is(gguf_str s, const char *c) { return s.ptr && s.len == strlen(c) && memcmp(s.ptr, c, s.len) == 0; }

/* Offset just past the first occurrence of `needle` (a key or tensor name
 * preceded by its u64 length) in buf. */
static size_t after_name(const uint8_t *buf, size_t n, const char *needle) {
    size_t len = strlen(needle);
    uint64_t len64 = len;
    for (size_t i = 8; i + len <= n; i++) {
        if (memcmp(buf + i, needle, len) == 0 && memcmp(buf + i - 8, &len64, 8) == 0)
            return i + len;
    }
    fail_msg("'%s' not found in the file", needle);
    return 0;
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint8_t pattern_byte(size_t tensor, size_t k) { return (uint8_t)(tensor * 31 + k * 7 + (k >> 8)); }

/* ---- fixture --------------------------------------------------------------- */

static int make_tmpdir(void **state) {
    (void)state;
    return tu_dir_new(tmpdir, "gguf");
}

static int remove_tmpdir(void **state) {
    (void)state;
    return tu_dir_remove(tmpdir);
}

/* ---- the shared models ------------------------------------------------------------ */

/* What must hold for any well-formed file, checked on every shared model. */
static void check_consistent(gguf_file *f) {
    assert_true(gguf_version(f) == 2 || gguf_version(f) == 3);
    assert_int_equal(gguf_data_offset(f) % gguf_alignment(f), 0);
    char buf[256];
    for (int64_t i = 0; i < gguf_n_kv(f); i++) {
        gguf_str k = gguf_kv_key(f, i);
        char key[256];
        assert_true(k.len > 0 && k.len < sizeof key);
        memcpy(key, k.ptr, k.len);
        key[k.len] = '\0';
        assert_int_equal(gguf_find_key(f, key), i);
        assert_true(gguf_kv_type(f, i) < GGUF_TYPE_COUNT);
        gguf_format_value(f, i, buf, sizeof buf);
        assert_true(buf[0] != '\0');
    }
    for (int64_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        assert_ptr_equal(gguf_find_tensor(f, t->name), t);
        assert_true(t->n_dims >= 1 && t->n_dims <= 4);
        assert_int_not_equal(rl_dtype_block(t->type), 0);
        uint64_t rows = t->ne[1] * t->ne[2] * t->ne[3];
        assert_int_equal(t->nbytes, rl_dtype_row_bytes(t->type, t->ne[0]) * rows);
        assert_int_equal(t->offset % gguf_alignment(f), 0);
        assert_true(gguf_data_offset(f) + t->offset + t->nbytes <= gguf_file_size(f));
    }
    assert_null(gguf_tensor_at(f, gguf_n_tensors(f)));
    assert_null(gguf_tensor_at(f, -1));
    assert_null(gguf_kv_key(f, -1).ptr);
    assert_int_equal(gguf_kv_type(f, gguf_n_kv(f)), GGUF_TYPE_COUNT);
}

static void test_all_shared_models_open(void **state) {
    glob_t g;
    assert_int_equal(glob(MODELS "*.gguf", 0, NULL, &g), 0);
    assert_true(g.gl_pathc >= 11);
    for (size_t i = 0; i < g.gl_pathc; i++) {
        gguf_file *f = open_ok(g.gl_pathv[i]);
        gguf_str arch;
        assert_true(gguf_get_str(f, "general.architecture", &arch));
        /* Vocab-only files say gpt2 or llama; model files llama or
         * mistral3 (Ministral 3): every architecture the shared folder holds
         * must at least open and read consistently. */
        assert_true(str_is(arch, "llama") || str_is(arch, "gpt2") || str_is(arch, "mistral3"));
        gguf_type elem;
        uint64_t n;
        assert_true(gguf_get_arr(f, "tokenizer.ggml.tokens", &elem, &n, NULL));
        assert_int_equal(elem, GGUF_STRING);
        assert_true(n >= 512);
        assert_string_equal(gguf_path(f), g.gl_pathv[i]);
        check_consistent(f);
        gguf_close(&f);
        assert_null(f);
    }
    globfree(&g);
}

static void test_tiny_f32(void **state) {
    gguf_file *f = open_ok(MODELS "tiny-f32.gguf");
    gguf_str s;
    uint32_t u;
    float x;
    assert_int_equal(gguf_version(f), 3);
    assert_int_equal(gguf_file_size(f), 1065440);
    assert_int_equal(gguf_alignment(f), 32);
    assert_int_equal(gguf_data_offset(f), 14560);
    assert_int_equal(gguf_n_kv(f), 20);
    assert_int_equal(gguf_n_tensors(f), 39);
    assert_true(gguf_get_str(f, "general.architecture", &s) && str_is(s, "llama"));
    assert_true(gguf_get_str(f, "general.name", &s) && str_is(s, "synthetic-tiny-11"));
    assert_true(gguf_get_u32(f, "llama.block_count", &u) && u == 4);
    assert_true(gguf_get_u32(f, "llama.embedding_length", &u) && u == 64);
    assert_true(gguf_get_u32(f, "llama.feed_forward_length", &u) && u == 192);
    assert_true(gguf_get_u32(f, "llama.attention.head_count", &u) && u == 4);
    assert_true(gguf_get_u32(f, "llama.attention.head_count_kv", &u) && u == 2);
    assert_true(gguf_get_u32(f, "llama.vocab_size", &u) && u == 512);
    assert_true(gguf_get_f32(f, "llama.rope.freq_base", &x) && x == 10000.0f);
    assert_true(gguf_get_f32(f, "llama.attention.layer_norm_rms_epsilon", &x));
    assert_float_equal(x, 1e-5f, 1e-9f);
    assert_false(gguf_get_u32(f, "llama.rope.freq_base", &u)); /* a float, not an integer */
    assert_false(gguf_get_u32(f, "no.such.key", &u));
    assert_int_equal(gguf_find_key(f, "no.such.key"), -1);

    assert_true(str_is(gguf_arr_str(f, "tokenizer.ggml.tokens", 0), "<unk>"));
    assert_true(str_is(gguf_arr_str(f, "tokenizer.ggml.tokens", 1), "<s>"));
    assert_true(str_is(gguf_arr_str(f, "tokenizer.ggml.tokens", 2), "</s>"));
    assert_true(str_is(gguf_arr_str(f, "tokenizer.ggml.tokens", 3), "<0x00>"));
    assert_null(gguf_arr_str(f, "tokenizer.ggml.tokens", 512).ptr);
    assert_true(gguf_arr_f32(f, "tokenizer.ggml.scores", 1, &x) && x == -1.0f);
    int64_t v;
    assert_true(gguf_arr_i64(f, "tokenizer.ggml.token_type", 0, &v) && v == 2);
    assert_true(gguf_arr_i64(f, "tokenizer.ggml.token_type", 3, &v) && v == 6);

    char buf[128];
    gguf_format_value(f, gguf_find_key(f, "tokenizer.ggml.tokens"), buf, sizeof buf);
    assert_true(strncmp(buf, "[str x 512] \"<unk>\", \"<s>\", \"</s>\", \"<0x00>\"", 44) == 0);
    gguf_format_value(f, gguf_find_key(f, "llama.block_count"), buf, sizeof buf);
    assert_string_equal(buf, "4");
    gguf_format_value(f, gguf_find_key(f, "general.architecture"), buf, sizeof buf);
    assert_string_equal(buf, "\"llama\"");
    gguf_format_value(f, gguf_find_key(f, "llama.attention.layer_norm_rms_epsilon"), buf, sizeof buf);
    assert_string_equal(buf, "1e-05");

    const gguf_tensor *t = gguf_find_tensor(f, "token_embd.weight");
    assert_non_null(t);
    assert_int_equal(t->n_dims, 2);
    assert_int_equal(t->ne[0], 64);
    assert_int_equal(t->ne[1], 512);
    assert_int_equal(t->ne[2], 1);
    assert_int_equal(t->type, RL_F32);
    assert_int_equal(t->nbytes, 64 * 512 * 4);
    assert_int_equal(t->offset, 0);
    t = gguf_find_tensor(f, "output.weight");
    assert_non_null(t);
    assert_int_equal(t->offset, 919808);
    t = gguf_find_tensor(f, "blk.3.ffn_down.weight");
    assert_non_null(t);
    assert_int_equal(t->ne[0], 192);
    assert_int_equal(t->ne[1], 64);
    assert_null(gguf_find_tensor(f, "blk.4.ffn_down.weight"));
    gguf_close(&f);
}

/* Tensor data pointers must address exactly the bytes the file holds there,
 * and paging hints must not change what is read. */
static void test_tensor_data_matches_file(void **state) {
    size_t n;
    uint8_t *raw = slurp(MODELS "tiny-q4_0.gguf", &n);
    gguf_file *f = open_ok(MODELS "tiny-q4_0.gguf");
    for (int64_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        uint64_t at = gguf_data_offset(f) + t->offset;
        assert_memory_equal(t->data, raw + at, t->nbytes);
        gguf_advise(f, t->data, t->nbytes, i % 2 == 0);
        assert_memory_equal(t->data, raw + at, t->nbytes);
    }
    const gguf_tensor *t = gguf_find_tensor(f, "token_embd.weight");
    assert_int_equal(t->type, RL_Q4_0);
    assert_int_equal(t->nbytes, 512 * 2 * 18);
    assert_int_equal(gguf_find_tensor(f, "blk.0.attn_norm.weight")->type, RL_F32);
    gguf_advise(f, raw, 16, true); /* not in the mapping: ignored */
    gguf_advise(f, t->data, UINT64_MAX, false);
    assert_memory_equal(t->data, raw + gguf_data_offset(f), t->nbytes);
    gguf_close(&f);
    free(raw);
}

static void test_other_shared_models(void **state) {
    uint32_t u;
    uint64_t u64, n;
    int64_t v;
    bool b;
    gguf_type elem;

    gguf_file *f = open_ok(MODELS "small-q4_k_m.gguf");
    assert_int_equal(gguf_find_tensor(f, "token_embd.weight")->type, RL_Q4_K);
    assert_int_equal(gguf_find_tensor(f, "output.weight")->type, RL_Q6_K);
    assert_int_equal(gguf_find_tensor(f, "token_embd.weight")->nbytes, 1024 * 144);
    assert_true(gguf_get_u32(f, "general.file_type", &u) && u == 15);
    assert_true(gguf_get_u32(f, "llama.embedding_length", &u) && u == 256);
    gguf_close(&f);

    f = open_ok(MODELS "stories260K.gguf"); /* no general.alignment: default 32 */
    assert_int_equal(gguf_find_key(f, "general.alignment"), -1);
    assert_int_equal(gguf_alignment(f), 32);
    assert_int_equal(gguf_data_offset(f), 14176);
    assert_int_equal(gguf_n_tensors(f), 48);
    assert_true(gguf_get_u32(f, "llama.block_count", &u) && u == 5);
    assert_true(gguf_get_u32(f, "llama.feed_forward_length", &u) && u == 172);
    assert_true(gguf_get_u32(f, "tokenizer.ggml.padding_token_id", &u) && u == UINT32_MAX);
    assert_true(gguf_get_u64(f, "tokenizer.ggml.padding_token_id", &u64) && u64 == UINT32_MAX);
    assert_true(gguf_get_i64(f, "tokenizer.ggml.padding_token_id", &v) && v == UINT32_MAX);
    gguf_close(&f);

    f = open_ok(MODELS "tiny-swa.gguf");
    assert_true(gguf_get_u32(f, "llama.attention.sliding_window", &u) && u == 8);
    assert_true(gguf_get_arr(f, "llama.attention.sliding_window_pattern", &elem, &n, NULL));
    assert_int_equal(elem, GGUF_BOOL);
    assert_int_equal(n, 4);
    static const int64_t pattern[4] = {0, 1, 1, 1};
    for (uint64_t i = 0; i < 4; i++)
        assert_true(gguf_arr_i64(f, "llama.attention.sliding_window_pattern", i, &v) && v == pattern[i]);
    assert_false(gguf_arr_i64(f, "llama.attention.sliding_window_pattern", 4, &v));
    char buf[64];
    gguf_format_value(f, gguf_find_key(f, "llama.attention.sliding_window_pattern"), buf, sizeof buf);
    assert_string_equal(buf, "[bool x 4] false, true, true, true");
    gguf_close(&f);

    f = open_ok(MODELS "vocab-llama-spm.gguf");
    assert_int_equal(gguf_n_tensors(f), 0);
    assert_true(gguf_get_arr(f, "tokenizer.ggml.tokens", &elem, &n, NULL) && n == 32000);
    assert_true(gguf_get_bool(f, "tokenizer.ggml.add_bos_token", &b) && b);
    assert_true(gguf_get_bool(f, "tokenizer.ggml.add_eos_token", &b) && !b);
    assert_false(gguf_get_bool(f, "tokenizer.ggml.bos_token_id", &b));
    gguf_close(&f);

    /* Ends right after its metadata, without padding up to the data section. */
    f = open_ok(MODELS "vocab-gpt2.gguf");
    assert_int_equal(gguf_n_tensors(f), 0);
    assert_true(gguf_data_offset(f) >= gguf_file_size(f));
    assert_true(gguf_get_arr(f, "tokenizer.ggml.tokens", &elem, &n, NULL) && n == 50257);
    assert_true(gguf_get_arr(f, "tokenizer.ggml.merges", &elem, &n, NULL) && n == 50000);
    assert_true(str_is(gguf_arr_str(f, "tokenizer.ggml.tokens", 0), "!"));
    assert_true(str_is(gguf_arr_str(f, "tokenizer.ggml.merges", 1), "\xc4\xa0 a"));
    gguf_close(&f);

    f = open_ok(MODELS "vocab-tekken-shaped.gguf");
    assert_true(str_is(gguf_arr_str(f, "tokenizer.ggml.tokens", 3), "[INST]"));
    assert_true(gguf_get_u32(f, "llama.vocab_size", &u) && u == 51257);
    gguf_close(&f);
}

/* ---- writer round trip ------------------------------------------------------------- */

typedef struct {
    const char *name;
    rl_dtype type;
    uint32_t n_dims;
    uint64_t ne[4];
    size_t nbytes;
} tensor_spec;

static const tensor_spec round_trip_tensors[] = {
    {"a.f32", RL_F32, 2, {8, 3, 1, 1}, 96},      {"b.f16", RL_F16, 1, {16, 1, 1, 1}, 32},
    {"c.q4_0", RL_Q4_0, 2, {64, 2, 1, 1}, 72},   {"d.q8_0", RL_Q8_0, 3, {32, 1, 2, 1}, 68},
    {"e.q4_K", RL_Q4_K, 2, {256, 2, 1, 1}, 288}, {"f.bf16", RL_BF16, 4, {4, 2, 2, 2}, 64},
    {"g.q6_K", RL_Q6_K, 1, {256, 1, 1, 1}, 210}, /* last and padded */
};
#define N_RT_TENSORS (sizeof round_trip_tensors / sizeof round_trip_tensors[0])

static const char *const rt_strings[] = {"alpha", "", "g\xc3\xa4mma \"q\"", "d", "e", "f", "g", "h", "i", "j"};
static const int32_t rt_i32s[] = {-5, 0, 7, INT32_MAX, INT32_MIN};
static const double rt_f64s[] = {0.5, -2.25, 1e300};
static const uint8_t rt_bools[] = {1, 0, 1};
static const uint64_t rt_u64s[] = {1, (uint64_t)1 << 63};
static const float rt_f32s[] = {0.25f, -1.0f};

/* Writes a file with every metadata type and the tensors above, their data
 * streamed in chunks of varying size that straddle tensor boundaries. */
static void write_round_trip(const char *path) {
    gguf_writer *w = gguf_writer_new();
    assert_non_null(w);
    uint8_t u8 = 200;
    int8_t i8 = -100;
    uint16_t u16 = 60000;
    int16_t i16 = -30000;
    int64_t i64 = -((int64_t)1 << 62);
    double f64 = 3.141592653589793;
    gguf_writer_set_u32(w, "general.alignment", 64);
    gguf_writer_set_str(w, "general.architecture", "llama");
    gguf_writer_set_scalar(w, "t.u8", GGUF_UINT8, &u8);
    gguf_writer_set_scalar(w, "t.i8", GGUF_INT8, &i8);
    gguf_writer_set_scalar(w, "t.u16", GGUF_UINT16, &u16);
    gguf_writer_set_scalar(w, "t.i16", GGUF_INT16, &i16);
    gguf_writer_set_u32(w, "t.u32", 4000000000u);
    gguf_writer_set_i32(w, "t.i32", -2000000000);
    gguf_writer_set_f32(w, "t.f32", 1.5f);
    gguf_writer_set_bool(w, "t.bool", true);
    gguf_writer_set_str(w, "t.str", "h\xc3\xa9llo \"x\"\n\x01");
    gguf_writer_set_u64(w, "t.u64", ((uint64_t)1 << 63) + 5);
    gguf_writer_set_scalar(w, "t.i64", GGUF_INT64, &i64);
    gguf_writer_set_scalar(w, "t.f64", GGUF_FLOAT64, &f64);
    gguf_writer_set_arr_str(w, "a.str", rt_strings, 10);
    gguf_writer_set_arr(w, "a.i32", GGUF_INT32, rt_i32s, 5);
    gguf_writer_set_arr(w, "a.f64", GGUF_FLOAT64, rt_f64s, 3);
    gguf_writer_set_arr(w, "a.bool", GGUF_BOOL, rt_bools, 3);
    gguf_writer_set_arr(w, "a.u64", GGUF_UINT64, rt_u64s, 2);
    gguf_writer_set_arr(w, "a.f32", GGUF_FLOAT32, rt_f32s, 2);
    gguf_writer_set_arr(w, "a.empty", GGUF_UINT32, NULL, 0);
    gguf_writer_set_arr_str(w, "a.nostr", NULL, 0);
    gguf_writer_set_u32(w, "t.replaced", 1);
    gguf_writer_set_u32(w, "t.replaced", 2); /* keeps its place, takes the new value */

    size_t total = 0;
    for (size_t i = 0; i < N_RT_TENSORS; i++) {
        const tensor_spec *s = &round_trip_tensors[i];
        gguf_writer_add_tensor(w, s->name, s->type, s->n_dims, s->ne);
        total += s->nbytes;
    }
    uint8_t *data = malloc(total);
    assert_non_null(data);
    size_t at = 0;
    for (size_t i = 0; i < N_RT_TENSORS; i++)
        for (size_t k = 0; k < round_trip_tensors[i].nbytes; k++)
            data[at++] = pattern_byte(i, k);

    char err[256] = "";
    if (gguf_writer_begin(w, path, err, sizeof err) != 0)
        fail_msg("begin: %s", err);
    static const size_t chunks[] = {1, 5, 50, 13, 200};
    for (size_t done = 0, c = 0; done < total; c++) {
        size_t k = chunks[c % 5] < total - done ? chunks[c % 5] : total - done;
        assert_int_equal(gguf_writer_write_data(w, data + done, k, err, sizeof err), 0);
        done += k;
    }
    if (gguf_writer_close(w, err, sizeof err) != 0)
        fail_msg("close: %s", err);
    gguf_writer_destroy(&w);
    assert_null(w);
    free(data);
}

static void check_round_trip_scalars(gguf_file *f) {
    uint32_t u32;
    uint64_t u64;
    int64_t i64;
    float x;
    bool b;
    gguf_str s;
    assert_true(gguf_get_u32(f, "t.u8", &u32) && u32 == 200);
    assert_true(gguf_get_i64(f, "t.i8", &i64) && i64 == -100);
    assert_false(gguf_get_u32(f, "t.i8", &u32)); /* negative */
    assert_false(gguf_get_u64(f, "t.i8", &u64));
    assert_true(gguf_get_u32(f, "t.u16", &u32) && u32 == 60000);
    assert_true(gguf_get_i64(f, "t.i16", &i64) && i64 == -30000);
    assert_true(gguf_get_u32(f, "t.u32", &u32) && u32 == 4000000000u);
    assert_true(gguf_get_i64(f, "t.i32", &i64) && i64 == -2000000000);
    assert_true(gguf_get_f32(f, "t.f32", &x) && x == 1.5f);
    assert_true(gguf_get_bool(f, "t.bool", &b) && b);
    assert_true(gguf_get_str(f, "t.str", &s) && str_is(s, "h\xc3\xa9llo \"x\"\n\x01"));
    assert_true(gguf_get_u64(f, "t.u64", &u64) && u64 == ((uint64_t)1 << 63) + 5);
    assert_false(gguf_get_i64(f, "t.u64", &i64)); /* above INT64_MAX */
    assert_false(gguf_get_u32(f, "t.u64", &u32)); /* above UINT32_MAX */
    assert_true(gguf_get_i64(f, "t.i64", &i64) && i64 == -((int64_t)1 << 62));
    assert_true(gguf_get_f32(f, "t.f64", &x) && x == (float)3.141592653589793);
    assert_true(gguf_get_u32(f, "t.replaced", &u32) && u32 == 2);
    assert_true(gguf_get_u32(f, "general.alignment", &u32) && u32 == 64);
    /* Wrong kinds are refused, not converted. */
    assert_false(gguf_get_f32(f, "t.u32", &x));
    assert_false(gguf_get_bool(f, "t.u8", &b));
    assert_false(gguf_get_str(f, "t.u32", &s));
    assert_false(gguf_get_u32(f, "t.str", &u32));
    assert_false(gguf_get_u32(f, "a.i32", &u32));
    assert_false(gguf_get_i64(f, "t.f32", &i64));
}

static void check_round_trip_arrays(gguf_file *f) {
    gguf_type elem;
    uint64_t n;
    const void *data;
    int64_t v;
    float x;
    assert_true(gguf_get_arr(f, "a.str", &elem, &n, &data));
    assert_int_equal(elem, GGUF_STRING);
    assert_int_equal(n, 10);
    assert_null(data);
    for (uint64_t i = 0; i < n; i++)
        assert_true(str_is(gguf_arr_str(f, "a.str", i), rt_strings[i]));
    assert_null(gguf_arr_str(f, "a.str", 10).ptr);
    assert_null(gguf_arr_str(f, "a.i32", 0).ptr);
    assert_null(gguf_arr_str(f, "t.str", 0).ptr);

    assert_true(gguf_get_arr(f, "a.i32", &elem, &n, &data) && elem == GGUF_INT32 && n == 5);
    assert_memory_equal(data, rt_i32s, sizeof rt_i32s);
    for (uint64_t i = 0; i < 5; i++) {
        assert_true(gguf_arr_i64(f, "a.i32", i, &v) && v == rt_i32s[i]);
        assert_true(gguf_arr_f32(f, "a.i32", i, &x) && x == (float)rt_i32s[i]);
    }
    assert_false(gguf_arr_i64(f, "a.i32", 5, &v));
    assert_true(gguf_get_arr(f, "a.f64", &elem, &n, &data) && elem == GGUF_FLOAT64 && n == 3);
    assert_memory_equal(data, rt_f64s, sizeof rt_f64s);
    assert_true(gguf_arr_f32(f, "a.f64", 1, &x) && x == -2.25f);
    assert_false(gguf_arr_i64(f, "a.f64", 0, &v)); /* floats are not integers */
    assert_true(gguf_arr_f32(f, "a.f32", 0, &x) && x == 0.25f);
    assert_true(gguf_get_arr(f, "a.bool", &elem, &n, NULL) && elem == GGUF_BOOL && n == 3);
    assert_true(gguf_arr_i64(f, "a.bool", 0, &v) && v == 1);
    assert_true(gguf_arr_i64(f, "a.bool", 1, &v) && v == 0);
    assert_true(gguf_arr_i64(f, "a.u64", 0, &v) && v == 1);
    assert_false(gguf_arr_i64(f, "a.u64", 1, &v)); /* 2^63 */
    assert_true(gguf_get_arr(f, "a.empty", &elem, &n, NULL) && elem == GGUF_UINT32 && n == 0);
    assert_false(gguf_arr_i64(f, "a.empty", 0, &v));
    assert_true(gguf_get_arr(f, "a.nostr", &elem, &n, NULL) && elem == GGUF_STRING && n == 0);
    assert_false(gguf_get_arr(f, "t.u32", &elem, &n, NULL));
    assert_false(gguf_arr_f32(f, "a.str", 0, &x));
}

static void expect_format(gguf_file *f, const char *key, const char *want) {
    char buf[256];
    gguf_format_value(f, gguf_find_key(f, key), buf, sizeof buf);
    assert_string_equal(buf, want);
}

static void check_round_trip_format(gguf_file *f) {
    expect_format(f, "t.u8", "200");
    expect_format(f, "t.i8", "-100");
    expect_format(f, "t.i64", "-4611686018427387904");
    expect_format(f, "t.u64", "9223372036854775813");
    expect_format(f, "t.f32", "1.5");
    expect_format(f, "t.f64", "3.14159265358979");
    expect_format(f, "t.bool", "true");
    expect_format(f, "t.str", "\"h\xc3\xa9llo \\\"x\\\"\\n\\x01\"");
    expect_format(f, "a.i32", "[i32 x 5] -5, 0, 7, 2147483647, -2147483648");
    expect_format(f, "a.empty", "[u32 x 0]");
    expect_format(f, "a.str",
                  "[str x 10] \"alpha\", \"\", \"g\xc3\xa4mma \\\"q\\\"\", \"d\", \"e\", \"f\", "
                  "\"g\", \"h\", ...");
    char small[12];
    gguf_format_value(f, gguf_find_key(f, "a.str"), small, sizeof small);
    assert_string_equal(small, "[str x 1...");
    gguf_format_value(f, -1, small, sizeof small);
    assert_string_equal(small, "");
}

static void test_writer_round_trip(void **state) {
    scratch_path path_buf = tmp_path("round-trip.gguf");
    const char *path = path_buf.s;
    write_round_trip(path);
    gguf_file *f = open_ok(path);
    assert_int_equal(gguf_version(f), 3);
    assert_int_equal(gguf_alignment(f), 64);
    assert_int_equal(gguf_data_offset(f) % 64, 0);
    assert_int_equal(gguf_n_kv(f), 23);
    assert_int_equal(gguf_find_key(f, "t.replaced"), 22);
    assert_int_equal(gguf_kv_type(f, gguf_find_key(f, "t.i16")), GGUF_INT16);
    assert_true(str_is(gguf_kv_key(f, 1), "general.architecture"));
    check_round_trip_scalars(f);
    check_round_trip_arrays(f);
    check_round_trip_format(f);
    check_consistent(f);

    assert_int_equal(gguf_n_tensors(f), N_RT_TENSORS);
    uint64_t expect_offset = 0;
    for (size_t i = 0; i < N_RT_TENSORS; i++) {
        const tensor_spec *s = &round_trip_tensors[i];
        const gguf_tensor *t = gguf_find_tensor(f, s->name);
        assert_ptr_equal(t, gguf_tensor_at(f, (int64_t)i));
        assert_int_equal(t->type, s->type);
        assert_int_equal(t->n_dims, s->n_dims);
        for (int d = 0; d < 4; d++)
            assert_int_equal(t->ne[d], s->ne[d]);
        assert_int_equal(t->nbytes, s->nbytes);
        assert_int_equal(t->offset, expect_offset);
        expect_offset += (s->nbytes + 63) / 64 * 64;
        for (size_t k = 0; k < s->nbytes; k++)
            assert_int_equal(((const uint8_t *)t->data)[k], pattern_byte(i, k));
    }
    assert_int_equal(gguf_file_size(f), gguf_data_offset(f) + expect_offset);
    gguf_close(&f);
}

/* A v2 file has the same layout with these field widths, so patching the
 * version of a v3 file gives a valid v2 file. */
static void test_version_2_accepted(void **state) {
    scratch_path path_buf = tmp_path("round-trip.gguf");
    const char *path = path_buf.s;
    write_round_trip(path);
    size_t n;
    uint8_t *buf = slurp(path, &n);
    uint32_t two = 2;
    memcpy(buf + 4, &two, 4);
    spit(tmp_path("v2.gguf").s, buf, n);
    gguf_file *f = open_ok(tmp_path("v2.gguf").s);
    assert_int_equal(gguf_version(f), 2);
    check_round_trip_scalars(f);
    gguf_close(&f);
    free(buf);
}

/* ---- writer misuse ------------------------------------------------------------------ */

static void expect_begin_fails(gguf_writer *w, const char *needle) {
    char err[256] = "";
    assert_int_equal(gguf_writer_begin(w, tmp_path("never.gguf").s, err, sizeof err), -1);
    if (!strstr(err, needle))
        fail_msg("message \"%s\" lacks \"%s\"", err, needle);
    gguf_writer_destroy(&w);
}

static void test_writer_errors(void **state) {
    static const uint64_t ne[4] = {100, 2, 1, 1};
    static const uint64_t ne32[4] = {32, 1, 1, 1};
    gguf_writer *w = gguf_writer_new();
    gguf_writer_add_tensor(w, "bad.type", (rl_dtype)4, 1, ne);
    expect_begin_fails(w, "bad.type");

    w = gguf_writer_new();
    gguf_writer_add_tensor(w, "bad.block", RL_Q4_K, 2, ne);
    expect_begin_fails(w, "multiple");

    w = gguf_writer_new();
    gguf_writer_add_tensor(w, "no.dims", RL_F32, 0, ne);
    expect_begin_fails(w, "n_dims 0");

    w = gguf_writer_new();
    gguf_writer_add_tensor(w, "twice", RL_F32, 1, ne);
    gguf_writer_add_tensor(w, "twice", RL_F32, 1, ne);
    expect_begin_fails(w, "declared twice");

    w = gguf_writer_new();
    gguf_writer_set_u32(w, "general.alignment", 48);
    expect_begin_fails(w, "power of two");

    w = gguf_writer_new();
    gguf_writer_set_u64(w, "general.alignment", 64);
    expect_begin_fails(w, "must be a u32");

    w = gguf_writer_new();
    gguf_writer_set_arr(w, "arr.of.str", GGUF_STRING, NULL, 1);
    expect_begin_fails(w, "arr.of.str");

    w = gguf_writer_new();
    gguf_writer_set_u32(w, "x", 1);
    char err[256] = "";
    assert_int_equal(gguf_writer_begin(w, "/nonexistent-dir/x.gguf", err, sizeof err), -1);
    assert_non_null(strstr(err, "cannot create"));
    gguf_writer_destroy(&w);

    /* Too much data, then too little. */
    uint8_t buf[256] = {0};
    w = gguf_writer_new();
    assert_int_equal(gguf_writer_write_data(w, buf, 1, err, sizeof err), -1); /* before begin */
    gguf_writer_destroy(&w);
    w = gguf_writer_new();
    gguf_writer_add_tensor(w, "small", RL_F32, 1, ne32);
    assert_int_equal(gguf_writer_begin(w, tmp_path("over.gguf").s, err, sizeof err), 0);
    assert_int_equal(gguf_writer_write_data(w, buf, 129, err, sizeof err), -1);
    assert_non_null(strstr(err, "beyond the last declared tensor"));
    assert_int_equal(gguf_writer_close(w, err, sizeof err), -1);
    gguf_writer_destroy(&w);

    w = gguf_writer_new();
    gguf_writer_add_tensor(w, "short", RL_F32, 1, ne32);
    assert_int_equal(gguf_writer_begin(w, tmp_path("short.gguf").s, err, sizeof err), 0);
    assert_int_equal(gguf_writer_write_data(w, buf, 100, err, sizeof err), 0);
    assert_int_equal(gguf_writer_close(w, err, sizeof err), -1);
    assert_non_null(strstr(err, "'short' got 100 of its 128 bytes"));
    gguf_writer_destroy(&w);
    expect_refused(tmp_path("short.gguf").s, "short", "runs past end of file");
}

/* ---- truncation ------------------------------------------------------------------- */

/* Copies src into the scratch dir, then cuts the copy shorter and shorter:
 * every length in [0, keep) listed by `step` must be refused. */
static void truncate_all(const char *src, uint64_t keep, uint64_t dense_until, uint64_t step) {
    size_t n;
    uint8_t *buf = slurp(src, &n);
    scratch_path path_buf = tmp_path("truncated.gguf");
    const char *path = path_buf.s;
    spit(path, buf, n);
    free(buf);
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    for (uint64_t len = keep; len-- > 0;) {
        if (len >= dense_until && len + 64 < keep && (len - dense_until) % step != 0)
            continue;
        assert_int_equal(ftruncate(fd, (off_t)len), 0);
        expect_refused(path, NULL, NULL);
    }
    close(fd);
}

static void test_truncated_written_file(void **state) {
    scratch_path path_buf = tmp_path("round-trip.gguf");
    const char *path = path_buf.s;
    write_round_trip(path);
    gguf_file *f = open_ok(path);
    const gguf_tensor *last = gguf_tensor_at(f, gguf_n_tensors(f) - 1);
    uint64_t end = gguf_data_offset(f) + last->offset + last->nbytes;
    assert_true(end < gguf_file_size(f)); /* the last tensor is padded */
    gguf_close(&f);
    truncate_all(path, end, UINT64_MAX, 1);

    /* Cutting only padding after the last tensor leaves a valid file. */
    size_t n;
    uint8_t *buf = slurp(path, &n);
    spit(tmp_path("cut-padding.gguf").s, buf, (size_t)end);
    free(buf);
    f = open_ok(tmp_path("cut-padding.gguf").s);
    gguf_close(&f);
}

static void test_truncated_shared_model(void **state) {
    gguf_file *f = open_ok(MODELS "tiny-q4_0.gguf");
    uint64_t size = gguf_file_size(f), data = gguf_data_offset(f);
    gguf_close(&f);
    /* Every cut inside the metadata and tensor table, every 97th in the data. */
    truncate_all(MODELS "tiny-q4_0.gguf", size, data + 64, 97);
}

/* ---- targeted corruption --------------------------------------------------------------- */

static uint8_t *victim; /* a small valid file, rewritten with one patch at a time */
static size_t victim_len;

static void make_victim(void) {
    static const char *const strs[] = {"ab", "cd", "ef"};
    static const uint32_t nums[] = {1, 2, 3};
    static const uint64_t ne_a[4] = {8, 2, 1, 1}, ne_b[4] = {32, 2, 1, 1};
    uint8_t one = 1;
    gguf_writer *w = gguf_writer_new();
    gguf_writer_set_u32(w, "general.alignment", 32);
    gguf_writer_set_u32(w, "k.num", 7);
    gguf_writer_set_arr_str(w, "k.strs", strs, 3);
    gguf_writer_set_arr(w, "k.arr", GGUF_UINT32, nums, 3);
    gguf_writer_set_scalar(w, "dup.k1", GGUF_UINT8, &one);
    gguf_writer_set_scalar(w, "dup.k2", GGUF_UINT8, &one);
    gguf_writer_add_tensor(w, "t.a", RL_F32, 2, ne_a);
    gguf_writer_add_tensor(w, "t.b", RL_Q4_0, 2, ne_b);
    char err[256];
    uint8_t data[64 + 36] = {0};
    assert_int_equal(gguf_writer_begin(w, tmp_path("victim.gguf").s, err, sizeof err), 0);
    assert_int_equal(gguf_writer_write_data(w, data, sizeof data, err, sizeof err), 0);
    assert_int_equal(gguf_writer_close(w, err, sizeof err), 0);
    gguf_writer_destroy(&w);
    victim = slurp(tmp_path("victim.gguf").s, &victim_len);
    gguf_file *f = open_ok(tmp_path("victim.gguf").s);
    gguf_close(&f);
}

/* Writes the victim with `len` bytes at `at` replaced and expects refusal
 * quickly (a huge count must not be walked). */
static void refuse_patch(size_t at, const void *bytes, size_t len, const char *needle1, const char *needle2) {
    uint8_t *buf = malloc(victim_len);
    assert_non_null(buf);
    memcpy(buf, victim, victim_len);
    assert_true(at + len <= victim_len);
    memcpy(buf + at, bytes, len);
    spit(tmp_path("patched.gguf").s, buf, victim_len);
    free(buf);
    double t0 = now_seconds();
    expect_refused(tmp_path("patched.gguf").s, needle1, needle2);
    assert_true(now_seconds() - t0 < 1.0);
}

static void patch_u32(size_t at, uint32_t v, const char *n1, const char *n2) { refuse_patch(at, &v, 4, n1, n2); }
static void patch_u64(size_t at, uint64_t v, const char *n1, const char *n2) { refuse_patch(at, &v, 8, n1, n2); }

static void test_corrupt_header_and_metadata(void **state) {
    make_victim();
    refuse_patch(0, "GGUX", 4, "not a GGUF file", NULL);
    patch_u32(4, 1, "version 1", "not supported");
    patch_u32(4, 4, "version 4", "not supported");
    patch_u32(4, 0x03000000, "big-endian", NULL);
    patch_u64(8, (uint64_t)1 << 60, "tensor count", NULL);
    patch_u64(16, (uint64_t)1 << 60, "metadata count", NULL);
    patch_u64(16, 7, "tensor #0", NULL); /* one kv too many eats the start of the tensor table */

    size_t num = after_name(victim, victim_len, "k.num");
    patch_u32(num, 13, "'k.num'", "value type 13");
    patch_u32(num, 0xFFFFFFFFu, "'k.num'", "not a GGUF type");
    patch_u32(num, GGUF_STRING, "'k.num'", "runs past end of file");
    patch_u32(num, GGUF_ARRAY, "kv #2", "key length"); /* k.num swallows the next key */
    patch_u64(num - 5 - 8, (uint64_t)1 << 63, "kv #1", "key length");

    size_t strs = after_name(victim, victim_len, "k.strs");
    patch_u32(strs + 4, GGUF_ARRAY, "'k.strs'", "arrays of arrays");
    patch_u32(strs + 4, 99, "'k.strs'", "not a GGUF type");
    patch_u64(strs + 8, (uint64_t)1 << 60, "'k.strs'", "string array of 1152921504606846976");
    patch_u64(strs + 16 + 10, 9999999, "'k.strs'", "string array element 1 length 9999999");

    size_t arr = after_name(victim, victim_len, "k.arr");
    patch_u64(arr + 8, (uint64_t)1 << 62, "'k.arr'", "runs past end of file");
    patch_u64(arr + 8, UINT64_MAX, "'k.arr'", "runs past end of file");

    refuse_patch(after_name(victim, victim_len, "dup.k2") - 1, "1", 1, "'dup.k1'", "duplicate key");

    size_t align = after_name(victim, victim_len, "general.alignment");
    patch_u32(align + 4, 0, "general.alignment", "power of two");
    patch_u32(align + 4, 48, "general.alignment", "power of two");
    patch_u32(align, GGUF_INT32, "general.alignment", "must be a u32");
    free(victim);
}

static void test_corrupt_tensor_infos(void **state) {
    make_victim();
    size_t a = after_name(victim, victim_len, "t.a"); /* n_dims, ne[2], type, offset */
    size_t b = after_name(victim, victim_len, "t.b");
    patch_u32(b + 4 + 16, 4, "'t.b'", "not a known ggml type");
    patch_u32(b + 4 + 16, 1000, "'t.b'", "tensor type 1000");
    patch_u32(b, 0, "'t.b'", "n_dims 0");
    patch_u32(b, 5, "'t.b'", "n_dims 5");
    patch_u64(a + 4 + 8, 0, "'t.a'", "ne[1]");
    patch_u64(b + 4, 33, "'t.b'", "not a multiple of the q4_0 block size 32");
    uint64_t big[2] = {(uint64_t)1 << 40, (uint64_t)1 << 40};
    refuse_patch(a + 4, big, 16, "'t.a'", "overflow");
    uint64_t wide_rows[2] = {(uint64_t)1 << 61, 2}, wide_row[2] = {(uint64_t)1 << 62, 1};
    refuse_patch(a + 4, wide_rows, 16, "'t.a'", "data size"); /* 2 rows of 2^63 bytes */
    refuse_patch(a + 4, wide_row, 16, "'t.a'", "data size");  /* one row of 2^64 bytes */
    patch_u64(a + 4, UINT64_MAX, "'t.a'", "overflow");
    patch_u64(b + 4 + 16 + 4, 64 + 1, "'t.b'", "not a multiple of the alignment");
    patch_u64(b + 4 + 16 + 4, (uint64_t)1 << 62, "'t.b'", "past end of file");
    patch_u64(b + 4 + 16 + 4, 96, "'t.b'", "runs past end of file"); /* starts inside, ends outside */
    patch_u64(b + 4 + 16 + 4, UINT64_MAX - 31, "'t.b'", "past end of file");
    refuse_patch(b - 1, "a", 1, "'t.a'", "duplicate tensor name");
    refuse_patch(b - 2, "\0", 1, "tensor #1", "NUL byte");
    patch_u64(b - 3 - 8, (uint64_t)1 << 40, "tensor #1", "name length");
    free(victim);
}

/* The same kind of damage in a real model, found by name. */
static void test_corrupt_shared_model(void **state) {
    uint8_t *buf = slurp(MODELS "tiny-f32.gguf", &victim_len);
    victim = buf;
    size_t tokens = after_name(victim, victim_len, "tokenizer.ggml.tokens");
    patch_u64(tokens + 8, (uint64_t)1 << 60, "'tokenizer.ggml.tokens'", "string array");
    patch_u64(tokens + 16 + 8 + 5, 9999999, "'tokenizer.ggml.tokens'", "element 1 length 9999999");
    size_t emb = after_name(victim, victim_len, "token_embd.weight");
    patch_u32(emb + 4 + 16, 5, "'token_embd.weight'", "not a known ggml type");
    patch_u64(emb + 4 + 16 + 4, 1065440, "'token_embd.weight'", "runs past end of file");
    size_t out = after_name(victim, victim_len, "output.weight");
    patch_u64(out + 4 + 16 + 4, 919808 + 32, "'output.weight'", "runs past end of file (1065440 bytes)");
    free(victim);
}

static void test_not_files(void **state) {
    spit(tmp_path("empty.gguf").s, "", 0);
    expect_refused(tmp_path("empty.gguf").s, "magic", "0 bytes");
    spit(tmp_path("short.gguf").s, "GGUF\3\0", 6);
    expect_refused(tmp_path("short.gguf").s, "version", NULL);
    expect_refused(tmpdir, "not a regular file", NULL);
    expect_refused(tmp_path("does-not-exist.gguf").s, "cannot open", NULL);
    gguf_file *f = gguf_open(tmp_path("does-not-exist.gguf").s, NULL, 0);
    assert_null(f);
    gguf_close(&f);
    gguf_close(NULL);
}

/* ---- random damage -------------------------------------------------------------------- */

/* Flips random bytes of a valid file many times: each open either fails with
 * a message or yields a file whose every value and tensor byte is readable
 * (the sanitizer build turns any stray read into a failure). */
static void test_random_byte_flips(void **state) {
    scratch_path src_buf = tmp_path("round-trip.gguf");
    const char *src = src_buf.s;
    write_round_trip(src);
    gguf_file *f = open_ok(src);
    uint64_t header = gguf_data_offset(f);
    gguf_close(&f);
    size_t n;
    uint8_t *orig = slurp(src, &n);
    uint8_t *buf = malloc(n);
    assert_non_null(buf);
    uint64_t rng = 0x9E3779B97F4A7C15ull;
    int opened = 0;
    for (int iter = 0; iter < 3000; iter++) {
        memcpy(buf, orig, n);
        for (int k = 0; k < 1 + iter % 4; k++) {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            buf[(rng >> 16) % header] ^= (uint8_t)(1u << (rng % 8));
        }
        spit(tmp_path("flipped.gguf").s, buf, n);
        char err[512] = "";
        f = gguf_open(tmp_path("flipped.gguf").s, err, sizeof err);
        if (!f) {
            assert_true(err[0] != '\0');
            continue;
        }
        opened++;
        char text[128];
        for (int64_t i = 0; i < gguf_n_kv(f); i++)
            gguf_format_value(f, i, text, sizeof text);
        const gguf_tensor *first = gguf_tensor_at(f, 0);
        for (int64_t i = 0; i < gguf_n_tensors(f); i++) {
            const gguf_tensor *t = gguf_tensor_at(f, i);
            assert_true(gguf_data_offset(f) + t->offset + t->nbytes <= gguf_file_size(f));
            assert_ptr_equal(t->data, (const uint8_t *)first->data - first->offset + t->offset);
        }
        gguf_close(&f);
    }
    assert_true(opened > 0); /* flips in string contents leave valid files */
    free(buf);
    free(orig);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_shared_models_open),
        cmocka_unit_test(test_tiny_f32),
        cmocka_unit_test(test_tensor_data_matches_file),
        cmocka_unit_test(test_other_shared_models),
        cmocka_unit_test(test_writer_round_trip),
        cmocka_unit_test(test_version_2_accepted),
        cmocka_unit_test(test_writer_errors),
        cmocka_unit_test(test_truncated_written_file),
        cmocka_unit_test(test_truncated_shared_model),
        cmocka_unit_test(test_corrupt_header_and_metadata),
        cmocka_unit_test(test_corrupt_tensor_infos),
        cmocka_unit_test(test_corrupt_shared_model),
        cmocka_unit_test(test_not_files),
        cmocka_unit_test(test_random_byte_flips),
    };
    return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}
