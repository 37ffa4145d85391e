/* Tests of the batched quantized product (engine/qgemm_*.c).
 *
 * The scalar reference is checked against the definition of the formats:
 * each output must be the exact dot product of the dequantized weight row
 * (rl_dequantize_row) and the dequantized Q8_0 activation, up to float
 * summation error. Every SIMD set the CPU supports must then pack tiles to
 * the reference's bytes exactly and compute the reference's outputs within
 * summation error, for full and partial tiles, any token count, and weights
 * that are either quantized floats or random bytes (so every quant, scale
 * and min pattern occurs), and with every quant and activation at its
 * largest. Where a set has a direct product from the x16 layout (qg_gemv,
 * decode's path), it must give the reference's outputs bit for bit. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "quant.h"
#include "x16.h"

static const rl_dtype qg_types[] = {RL_Q4_0, RL_Q8_0, RL_Q4_K, RL_Q5_K, RL_Q6_K};
#define N_QG_TYPES (sizeof qg_types / sizeof qg_types[0])

static uint64_t rng = 0x2545f4914f6cdd1dULL;

static uint32_t rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

/* Roughly normal, with a scale that jumps every 16 values. */
static float rnd_val(int i, float *scale) {
    if (i % 16 == 0)
        *scale = powf(10.0f, 1.5f * ((float)(rnd() % 2001) / 1000.0f - 1.0f));
    float s = 0;
    for (int k = 0; k < 3; k++)
        s += (float)(rnd() % 20001) / 10000.0f - 1.0f;
    return *scale * s;
}

static void *xmalloc(size_t n) {
    void *p = aligned_alloc(64, (n + 63) / 64 * 64);
    assert_non_null(p);
    return p;
}

/* rows x cols weights of type t: quantized random floats, or (raw) random
 * bytes with every half-float scale replaced by a sane one. */
static void *make_weights(rl_dtype t, int rows, uint32_t cols, bool raw) {
    const size_t rb = rl_dtype_row_bytes(t, cols), bb = rl_dtype_block_bytes(t);
    uint8_t *w = xmalloc(rb * (size_t)rows);
    float *x = malloc(cols * sizeof *x), scale = 1;
    for (int r = 0; r < rows; r++) {
        for (uint32_t i = 0; i < cols; i++)
            x[i] = rnd_val((int)i, &scale);
        assert_int_equal(rl_quantize_row(t, x, w + (size_t)r * rb, cols), rb);
    }
    free(x);
    if (!raw)
        return w;
    for (size_t i = 0; i < rb * (size_t)rows; i++)
        w[i] = (uint8_t)rnd();
    for (size_t b = 0; b < rb * (size_t)rows / bb; b++) {
        uint8_t *blk = w + b * bb;
        for (int k = 0; k < 2; k++) { /* d (and dmin): magnitude 2^-12 .. 2^-2 */
            const rl_fp16 h = (rl_fp16)(((rnd() & 1) << 15) | ((3 + rnd() % 11) << 10) | (rnd() & 0x3ff));
            const size_t at = t == RL_Q6_K ? bb - 2 : 2 * (size_t)k;
            if (k == 0 || t == RL_Q4_K || t == RL_Q5_K)
                memcpy(blk + at, &h, 2);
        }
    }
    return w;
}

/* Every quant of weights w (bytes long, type t) at its largest magnitude
 * (15, 31 or 63 unsigned, -128 for Q8_0), the scales kept: with activations
 * of 127 every 16-bit step of the SIMD kernels (VPMADDUBSW's pair sums,
 * SMULL's products, Q8_0's sign transfer) is at its limit. */
static void saturate_quants(rl_dtype t, uint8_t *w, size_t bytes) {
    const size_t bb = rl_dtype_block_bytes(t);
    size_t from = t == RL_Q8_0 ? offsetof(block_q8_0, qs) : offsetof(block_q4_0, qs), to = bb;
    if (t == RL_Q4_K)
        from = offsetof(block_q4_K, qs);
    else if (t == RL_Q5_K)
        from = offsetof(block_q5_K, qh);
    else if (t == RL_Q6_K)
        from = 0, to = offsetof(block_q6_K, scales);
    for (size_t b = 0; b < bytes / bb; b++)
        memset(w + b * bb + from, t == RL_Q8_0 ? 0x80 : 0xff, to - from);
}

typedef struct {
    rl_qg_act_buf buf;
    rl_qg_act act;
    float *x;
} act_rows;

static void make_act(act_rows *a, rl_qg_format f, uint32_t n, uint32_t cols, bool extreme) {
    float scale = 1;
    a->x = malloc((size_t)n * cols * sizeof *a->x);
    for (size_t i = 0; i < (size_t)n * cols; i++)
        a->x[i] = extreme ? 1.0f : rnd_val((int)(i % cols), &scale);
    assert_int_equal(rl_qg_act_buf_init(&a->buf, n, cols), 0);
    rl_qg_act_rows(rl_kernels_ref()->quantize_q8_0, f, a->x, cols, 0, n, &a->buf);
    a->act = rl_qg_act_view(&a->buf, f, n, cols);
}

static void free_act(act_rows *a) {
    rl_qg_act_buf_free(&a->buf);
    free(a->x);
}

/* The exact dot of weight row r with activation j, and sum |w a|. */
static double exact_dot(rl_dtype t, const void *w, uint32_t cols, const rl_qg_act *a, uint32_t j, double *mag) {
    float *wd = malloc(cols * sizeof *wd);
    rl_dequantize_row(t, w, wd, cols);
    double s = 0;
    *mag = 0;
    for (uint32_t e = 0; e < cols; e++) {
        const double ad = (double)a->d[(size_t)j * (cols / 32) + e / 32] * a->qs[(size_t)j * cols + e];
        s += wd[e] * ad;
        *mag += fabs(wd[e] * ad);
    }
    free(wd);
    return s;
}

typedef struct {
    rl_dtype t;
    int rows;
    uint32_t cols, n;
    bool raw;
} shape;

/* acc (n, RL_QG_ROWS) = the tile's rows times the tokens, chunk by chunk as
 * the engine runs it, from the file's layout or (x16) from the rearranged
 * one; the packed chunks are kept in `packed` when given. */
static void run_tiles(const rl_kernel_set *ks, const shape *sh, const void *w, bool x16, const rl_qg_act *act,
                      float *acc, rl_qg_tile *packed) {
    const size_t rb = rl_dtype_row_bytes(sh->t, sh->cols), bs = rl_dtype_block(sh->t);
    const size_t group = rb * RL_QG_ROWS / (sh->cols / bs); /* bytes of one block group */
    rl_qg_tile *tile = xmalloc(sizeof *tile);
    memset(acc, 0, (size_t)sh->n * RL_QG_ROWS * sizeof *acc);
    for (uint32_t c0 = 0, k = 0; c0 < sh->cols; c0 += RL_QG_CHUNK, k++) {
        const uint32_t nc = sh->cols - c0 < RL_QG_CHUNK ? sh->cols - c0 : RL_QG_CHUNK;
        memset(tile, 0x5a, sizeof *tile);
        if (x16)
            ks->qg_unpack(sh->t, (const uint8_t *)w + c0 / bs * group, nc, tile);
        else
            ks->qg_pack(sh->t, w, rb, sh->rows, c0, nc, tile);
        ks->qg_kernel(tile, act, c0, acc);
        if (packed)
            packed[k] = *tile;
    }
    free(tile);
}

/* The reference pack + kernel against the format definition. */
static void check_ref_case(const shape *sh) {
    const rl_qg_format f = rl_qg_format_of(sh->t);
    const size_t rb = rl_dtype_row_bytes(sh->t, sh->cols);
    void *w = make_weights(sh->t, sh->rows, sh->cols, sh->raw);
    act_rows a;
    make_act(&a, f, sh->n, sh->cols, false);
    float *acc = malloc((size_t)sh->n * RL_QG_ROWS * sizeof *acc);
    run_tiles(rl_kernels_ref(), sh, w, false, &a.act, acc, NULL);
    for (uint32_t j = 0; j < sh->n; j++)
        for (int i = 0; i < RL_QG_ROWS; i++) {
            double mag = 0, want = 0;
            if (i < sh->rows)
                want = exact_dot(sh->t, (const char *)w + (size_t)i * rb, sh->cols, &a.act, j, &mag);
            const double got = acc[(size_t)j * RL_QG_ROWS + i];
            if (!(fabs(got - want) <= 1e-5 * mag))
                fail_msg("ref %s cols %u row %d token %u: %.9g, exact %.9g (mag %g)", rl_dtype_name(sh->t), sh->cols, i,
                         j, got, want, mag);
        }
    free(acc);
    free(w);
    free_act(&a);
}

static const shape shapes[] = {
    {RL_Q4_0, 16, 96, 5, false},   {RL_Q4_0, 7, 256, 9, true},    {RL_Q4_0, 16, 4096, 17, false},
    {RL_Q4_0, 16, 352, 2, true},   {RL_Q8_0, 5, 800, 7, false},   {RL_Q8_0, 16, 160, 3, true},
    {RL_Q8_0, 12, 1024, 8, false}, {RL_Q4_K, 16, 512, 11, false}, {RL_Q4_K, 3, 256, 2, true},
    {RL_Q5_K, 16, 768, 6, true},   {RL_Q5_K, 9, 256, 1, false},   {RL_Q6_K, 16, 1024, 13, false},
    {RL_Q6_K, 15, 256, 4, true},   {RL_Q8_0, 16, 32, 1, false},
};
#define N_SHAPES (sizeof shapes / sizeof shapes[0])

static void test_ref_matches_definition(void **state) {
    (void)state;
    for (size_t i = 0; i < N_SHAPES; i++)
        check_ref_case(&shapes[i]);
}

/* The rearrangement is a permutation of each group's bytes: undone exactly,
 * and in place it leaves partial groups alone. */
static void test_x16_layout(void **state) {
    (void)state;
    for (size_t k = 0; k < N_QG_TYPES; k++) {
        const rl_dtype t = qg_types[k];
        const uint32_t cols = 512, rows = 37;
        const size_t rb = rl_dtype_row_bytes(t, cols), nblk = cols / rl_dtype_block(t);
        uint8_t *w = make_weights(t, (int)rows, cols, true), *x = xmalloc(rb * rows), *back = xmalloc(rb * rows);
        memcpy(x, w, rb * rows);
        assert_int_equal(rl_x16_repack(t, x, rb, 0, rows / 16), 0);
        assert_memory_equal(x + rb * 32, w + rb * 32, rb * 5); /* the partial group is untouched */
        for (uint32_t g = 0; g < rows / 16; g++) {
            uint8_t *want = xmalloc(rb * 16);
            rl_x16_interleave(t, w + rb * 16 * g, rb, 0, (uint32_t)nblk, want);
            assert_memory_equal(x + rb * 16 * g, want, rb * 16);
            rl_x16_deinterleave(t, want, 0, (uint32_t)nblk, back + rb * 16 * g, rb);
            free(want);
        }
        assert_memory_equal(back, w, rb * 32);
        /* a block's halves and the first dword of its quants, where the layout says */
        if (t == RL_Q4_0) {
            assert_memory_equal(x + 2 * 3, w + rb * 3, 2);          /* d of row 3 */
            assert_memory_equal(x + 32 + 4 * 5, w + rb * 5 + 2, 4); /* qs[0..3] of row 5 */
            assert_memory_equal(x + 32 + 64 + 4 * 5, w + rb * 5 + 6, 4);
        }
        free(w);
        free(x);
        free(back);
    }
    assert_false(rl_x16_supported(RL_F16));
    assert_true(rl_x16_supported(RL_Q6_K));
}

static void test_formats(void **state) {
    (void)state;
    for (size_t k = 0; k < N_QG_TYPES; k++) {
        const rl_qg_format f = rl_qg_format_of(qg_types[k]);
        assert_true(f.sub == 16 || f.sub == 32);
        assert_int_equal(rl_dtype_block(qg_types[k]) % f.sub, 0);
    }
    assert_int_equal(rl_qg_format_of(RL_F32).sub, 0);
    assert_int_equal(rl_qg_format_of(RL_BF16).sub, 0);
    assert_int_equal(rl_qg_format_of(RL_Q4_1).sub, 0);
}

/* A set's packing (from either layout) must give the reference's bytes and
 * its kernel the reference's outputs bit for bit (both sum each sub-block
 * exactly, then do the same float operations), so results never depend on
 * the ISA. */
static void compare_runs(const rl_kernel_set *ks, const shape *sh, const void *w, bool x16, const rl_qg_act *act,
                         const rl_qg_tile *p1, const float *y1) {
    const uint32_t chunks = (sh->cols + RL_QG_CHUNK - 1) / RL_QG_CHUNK;
    rl_qg_tile *p2 = xmalloc(chunks * sizeof *p2);
    float *y2 = malloc((size_t)sh->n * RL_QG_ROWS * sizeof *y2);
    run_tiles(ks, sh, w, x16, act, y2, p2);
    for (uint32_t k = 0; k < chunks; k++)
        if (memcmp(&p1[k], &p2[k], sizeof p1[k]) != 0)
            fail_msg("%s %s %s rows %d cols %u chunk %u differs from the reference", ks->name, x16 ? "unpack" : "pack",
                     rl_dtype_name(sh->t), sh->rows, sh->cols, k);
    for (size_t i = 0; i < (size_t)sh->n * RL_QG_ROWS; i++)
        if (memcmp(&y1[i], &y2[i], sizeof y1[i]) != 0)
            fail_msg("%s kernel %s cols %u: output %zu (row %zu, token %zu) is %.9g, reference %.9g", ks->name,
                     rl_dtype_name(sh->t), sh->cols, i, i % RL_QG_ROWS, i / RL_QG_ROWS, y2[i], y1[i]);
    free(y2);
    free(p2);
}

/* A set's direct product from the x16 layout (decode's path) gives the
 * reference's outputs bit for bit, at every batch size. */
static void compare_gemv(const rl_kernel_set *ks, const shape *sh, const void *x16, const rl_qg_act *act,
                         const float *y1) {
    const size_t group = rl_dtype_row_bytes(sh->t, sh->cols) * RL_QG_ROWS / (sh->cols / rl_dtype_block(sh->t));
    float *y2 = malloc((size_t)sh->n * RL_QG_ROWS * sizeof *y2);
    memset(y2, 0, (size_t)sh->n * RL_QG_ROWS * sizeof *y2);
    for (uint32_t c0 = 0; c0 < sh->cols; c0 += RL_QG_CHUNK) {
        const uint32_t nc = sh->cols - c0 < RL_QG_CHUNK ? sh->cols - c0 : RL_QG_CHUNK;
        ks->qg_gemv(sh->t, (const uint8_t *)x16 + c0 / rl_dtype_block(sh->t) * group, nc, act, c0, y2);
    }
    for (size_t i = 0; i < (size_t)sh->n * RL_QG_ROWS; i++)
        if (memcmp(&y1[i], &y2[i], sizeof y1[i]) != 0)
            fail_msg("%s gemv %s cols %u: output %zu (row %zu, token %zu) is %.9g, reference %.9g", ks->name,
                     rl_dtype_name(sh->t), sh->cols, i, i % RL_QG_ROWS, i / RL_QG_ROWS, y2[i], y1[i]);
    free(y2);
}

/* extreme: every quant at its largest magnitude, every activation 127. */
static void check_set_case(const rl_kernel_set *ks, const shape *sh, bool extreme) {
    const size_t rb = rl_dtype_row_bytes(sh->t, sh->cols);
    const uint32_t chunks = (sh->cols + RL_QG_CHUNK - 1) / RL_QG_CHUNK;
    void *w = make_weights(sh->t, sh->rows, sh->cols, sh->raw);
    if (extreme)
        saturate_quants(sh->t, w, rb * (size_t)sh->rows);
    act_rows a;
    make_act(&a, rl_qg_format_of(sh->t), sh->n, sh->cols, extreme);
    rl_qg_tile *p1 = xmalloc(chunks * sizeof *p1);
    float *y1 = malloc((size_t)sh->n * RL_QG_ROWS * sizeof *y1);
    run_tiles(rl_kernels_ref(), sh, w, false, &a.act, y1, p1);
    compare_runs(ks, sh, w, false, &a.act, p1, y1);
    if (sh->rows == RL_QG_ROWS) {
        void *x = xmalloc(rb * RL_QG_ROWS);
        rl_x16_interleave(sh->t, w, rb, 0, sh->cols / rl_dtype_block(sh->t), x);
        compare_runs(ks, sh, x, true, &a.act, p1, y1);
        if (ks->qg_gemv)
            compare_gemv(ks, sh, x, &a.act, y1);
        free(x);
    }
    free(y1);
    free(p1);
    free(w);
    free_act(&a);
}

/* A token's outputs do not depend on the tokens it is batched with. */
static void test_batch_independence(void **state) {
    (void)state;
    const rl_kernel_set *ks = rl_kernels();
    for (size_t k = 0; k < N_QG_TYPES; k++) {
        const shape all = {qg_types[k], 16, 512, 13, false}, one = {qg_types[k], 16, 512, 1, false};
        void *w = make_weights(all.t, all.rows, all.cols, false);
        act_rows a;
        make_act(&a, rl_qg_format_of(all.t), all.n, all.cols, false);
        float *y = malloc(all.n * RL_QG_ROWS * sizeof *y), y1[RL_QG_ROWS];
        run_tiles(ks, &all, w, false, &a.act, y, NULL);
        for (uint32_t j = 0; j < all.n; j++) {
            rl_qg_act single = a.act;
            single.n = 1;
            single.qs += (size_t)j * all.cols;
            single.d += (size_t)j * (all.cols / 32);
            single.dsum += (size_t)j * (all.cols / 32);
            single.corr += (size_t)j * (all.cols / single.sub);
            run_tiles(ks, &one, w, false, &single, y1, NULL);
            assert_memory_equal(y1, y + (size_t)j * RL_QG_ROWS, sizeof y1);
        }
        free(y);
        free(w);
        free_act(&a);
    }
}

/* The activation quantizer every set brings gives the reference's bytes. */
static void check_quantizer(const rl_kernel_set *ks) {
    float x[1024], scale = 1;
    block_q8_0 a[1024 / QK8_0], b[1024 / QK8_0];
    for (int rep = 0; rep < 20; rep++) {
        for (int i = 0; i < 1024; i++)
            x[i] = rep % 4 == 1 ? (float)((int)(rnd() % 64) - 32) * 0.5f : rnd_val(i, &scale);
        ks->quantize_q8_0(x, a, 1024);
        rl_kernels_ref()->quantize_q8_0(x, b, 1024);
        assert_memory_equal(a, b, sizeof a);
    }
}

static void check_set(const rl_kernel_set *ks) {
    assert_non_null(ks->qg_pack);
    assert_non_null(ks->qg_kernel);
    check_quantizer(ks);
    for (size_t i = 0; i < N_SHAPES; i++)
        check_set_case(ks, &shapes[i], false);
    for (size_t k = 0; k < N_QG_TYPES; k++) /* every token count up to two register tiles */
        for (uint32_t n = 1; n <= 17; n++) {
            const shape sh = {qg_types[k], (int)(1 + rnd() % 16), 512, n, n % 2 == 0};
            check_set_case(ks, &sh, false);
        }
    for (size_t k = 0; k < N_QG_TYPES; k++) /* products at their largest */
        for (uint32_t n = 1; n <= 5; n++) {
            const shape sh = {qg_types[k], RL_QG_ROWS, 512, n, true};
            check_set_case(ks, &sh, true);
        }
}

static void test_avx2(void **state) {
    (void)state;
    const rl_kernel_set *ks = rl_kernels_avx2();
    if (!ks) {
        print_message("no AVX2 on this CPU: nothing to compare\n");
        return;
    }
    assert_non_null(ks->qg_gemv);
    check_set(ks);
}

static void test_avx512(void **state) {
    (void)state;
    const rl_kernel_set *ks = rl_kernels_avx512();
    if (!ks || !rl_cpu()->avx512vnni) {
        print_message("no AVX-512 VNNI on this CPU: nothing to compare\n");
        return;
    }
    assert_non_null(ks->qg_gemv);
    check_set(ks);
}

static void test_neon(void **state) {
    (void)state;
    const rl_kernel_set *ks = rl_kernels_neon();
    if (!ks) {
        print_message("no NEON in this build: nothing to compare\n");
        return;
    }
    assert_non_null(ks->qg_gemv);
#if defined(__aarch64__) /* the dot-product kernel exactly where the CPU has it */
    assert_true(ks->qg_kernel == (rl_cpu()->dotprod ? rl_qg_kernel_neon_dot : rl_qg_kernel_neon));
    assert_true(ks->qg_gemv == (rl_cpu()->dotprod ? rl_qg_gemv_neon_dot : rl_qg_gemv_neon));
    print_message("NEON kernel %s dot product\n", rl_cpu()->dotprod ? "with" : "without");
    /* Set by deploy/test-arm.sh for the emulated CPU, so a run meant for the
     * A72 (or the A76) cannot silently test the other kernel. */
    const char *expect = getenv("RELAIS_EXPECT_DOTPROD");
    if (expect)
        assert_int_equal(rl_cpu()->dotprod, strcmp(expect, "1") == 0);
#endif
    check_set(ks);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_formats),
        cmocka_unit_test(test_x16_layout),
        cmocka_unit_test(test_ref_matches_definition),
        cmocka_unit_test(test_batch_independence),
        cmocka_unit_test(test_avx2),
        cmocka_unit_test(test_avx512),
        cmocka_unit_test(test_neon),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
