/* Tests of the quantization kernels (engine/quant*.c, engine/kernels/cpu.c).
 *
 * The block formats are checked three ways: hand-made blocks against the
 * format definitions written out again here (independently of quant_ref.c),
 * real tensors from the shared llama.cpp-made models against the same
 * weights stored unquantized or at higher precision, and quantize/dequantize
 * round trips against analytic error bounds. Every SIMD kernel set the CPU
 * supports is compared with the scalar reference on many random blocks, and
 * the dispatcher's RELAIS_ISA handling is checked in child processes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cpu.h"
#include "gguf.h"
#include "quant.h"

#define MODELS RELAIS_SHARED_DIR "/models/"

static const rl_dtype all_types[] = {RL_F32, RL_F16, RL_BF16, RL_Q4_0, RL_Q8_0, RL_Q4_K, RL_Q5_K, RL_Q6_K};
#define N_TYPES (sizeof all_types / sizeof all_types[0])

/* ---- helpers --------------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint32_t rnd_u32(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

static float rnd_unit(void) /* uniform in [-1, 1) */
{
    return (float)((double)rnd_u32() / 2147483648.0 - 1.0);
}

/* Roughly normal values whose scale changes from one 16-element group to the
 * next (over three decades), the way real weights and activations vary. */
static void fill_random(float *x, int n) {
    float scale = 1;
    for (int i = 0; i < n; i++) {
        if (i % 16 == 0)
            scale = powf(10.0f, 1.5f * rnd_unit());
        x[i] = scale * (rnd_unit() + rnd_unit() + rnd_unit());
    }
}

static uint32_t fbits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bitsf(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* A random finite half of magnitude 2^-12 .. 2^-2, either sign. */
static rl_fp16 rnd_scale16(void) {
    return (rl_fp16)(((rnd_u32() & 1) << 15) | ((3 + rnd_u32() % 11) << 10) | (rnd_u32() & 0x3ff));
}

static void *xmalloc(size_t n) {
    void *p = malloc(n);
    assert_non_null(p);
    return p;
}

/* ---- half and bfloat16 ----------------------------------------------------- */

static void test_fp16_to_f32_all(void **state) {
    (void)state;
    for (uint32_t h = 0; h < 0x10000; h++) {
        const uint32_t e = (h >> 10) & 31, m = h & 0x3ff;
        const double sign = (h & 0x8000) ? -1.0 : 1.0;
        const float got = rl_fp16_to_f32((rl_fp16)h);
        if (e == 31 && m) {
            assert_true(isnan(got));
            assert_int_equal((fbits(got) >> 13) & 0x3ff, m); /* payload kept */
        } else if (e == 31) {
            assert_true(isinf(got) && !!signbit(got) == (sign < 0));
        } else {
            const double want = e ? sign * ldexp(1024.0 + m, (int)e - 25) : sign * ldexp(m, -24);
            assert_true(got == (float)want && !!signbit(got) == (sign < 0));
        }
    }
}

static void test_f32_to_fp16_rounding(void **state) {
    (void)state;
    for (uint32_t h = 0; h < 0x7c00; h++) {
        if (rl_f32_to_fp16(rl_fp16_to_f32((rl_fp16)h)) != h)
            fail_msg("round trip of half 0x%04x", h);
        assert_int_equal(rl_f32_to_fp16(-rl_fp16_to_f32((rl_fp16)h)), h | 0x8000);
        if (h + 1 == 0x7c00)
            break;
        /* the midpoint of two neighbours is exact in f32 and goes to the even one */
        const float lo = rl_fp16_to_f32((rl_fp16)h), hi = rl_fp16_to_f32((rl_fp16)(h + 1));
        const float mid = (lo + hi) / 2;
        assert_int_equal(rl_f32_to_fp16(mid), (h & 1) ? h + 1 : h);
        assert_int_equal(rl_f32_to_fp16(nextafterf(mid, INFINITY)), h + 1);
        assert_int_equal(rl_f32_to_fp16(nextafterf(mid, 0)), h);
    }
    assert_int_equal(rl_f32_to_fp16(65519.996f), 0x7bff);
    assert_int_equal(rl_f32_to_fp16(65520.0f), 0x7c00);
    assert_int_equal(rl_f32_to_fp16(-1e30f), 0xfc00);
    assert_int_equal(rl_f32_to_fp16(INFINITY), 0x7c00);
    assert_int_equal(rl_f32_to_fp16(0x1p-25f), 0x0000); /* tie to even zero */
    assert_int_equal(rl_f32_to_fp16(nextafterf(0x1p-25f, 1)), 0x0001);
    assert_int_equal(rl_f32_to_fp16(0x1.8p-24f), 0x0002);   /* tie 1.5 -> 2 */
    assert_int_equal(rl_f32_to_fp16(0x1p-14f), 0x0400);     /* smallest normal */
    assert_int_equal(rl_f32_to_fp16(0x1.ff8p-15f), 0x03ff); /* largest subnormal */
    assert_int_equal(rl_f32_to_fp16(1e-30f), 0x0000);
    assert_int_equal(rl_f32_to_fp16(-0.0f), 0x8000);
    const rl_fp16 n = rl_f32_to_fp16(bitsf(0x7fa00000u)); /* signalling NaN */
    assert_true((n & 0x7c00) == 0x7c00 && (n & 0x3ff) != 0 && (n & 0x200));
#ifdef __FLT16_MAX__
    for (int i = 0; i < 1000000; i++) {                 /* against the compiler's conversion */
        const float f = bitsf(rnd_u32() & 0xc7ffffffu); /* exponents up to 2^16 */
        const _Float16 c = (_Float16)f;
        uint16_t want;
        memcpy(&want, &c, sizeof want);
        if (!isnan(f) && rl_f32_to_fp16(f) != want)
            fail_msg("f32 %a -> half 0x%04x, compiler says 0x%04x", f, rl_f32_to_fp16(f), want);
    }
#endif
}

static void test_bf16(void **state) {
    (void)state;
    for (uint32_t h = 0; h < 0x10000; h++) {
        const float f = rl_bf16_to_f32((rl_bf16)h);
        assert_int_equal(fbits(f), h << 16);
        if (!isnan(f))
            assert_int_equal(rl_f32_to_bf16(f), h);
        if ((h & 0x7fff) >= 0x7f7f)
            continue;
        const uint32_t mid = (h << 16) | 0x8000u; /* exactly between h and h+1 */
        assert_int_equal(rl_f32_to_bf16(bitsf(mid)), (h & 1) ? h + 1 : h);
        assert_int_equal(rl_f32_to_bf16(bitsf(mid + 1)), h + 1);
        assert_int_equal(rl_f32_to_bf16(bitsf(mid - 1)), h);
    }
    assert_int_equal(rl_f32_to_bf16(bitsf(0x7f7f8000u)), 0x7f80); /* rounds to inf */
    const rl_bf16 n = rl_f32_to_bf16(bitsf(0x7f800001u));         /* NaN with low payload */
    assert_true(isnan(rl_bf16_to_f32(n)));
}

/* ---- hand-made blocks against the format definitions ------------------------ */

static void test_dequant_q4_0_q8_0_known(void **state) {
    (void)state;
    block_q4_0 b4 = {.d = 0x3800}; /* 0.5 */
    for (int l = 0; l < 16; l++)
        b4.qs[l] = (uint8_t)(l | ((15 - l) << 4));
    float y[32];
    rl_dequantize_row(RL_Q4_0, &b4, y, 32);
    for (int l = 0; l < 16; l++) {
        assert_true(y[l] == 0.5f * (float)(l - 8));
        assert_true(y[l + 16] == 0.5f * (float)(7 - l));
    }
    block_q8_0 b8 = {.d = 0xb400}; /* -0.25 */
    for (int l = 0; l < 32; l++)
        b8.qs[l] = (int8_t)(8 * l - 128);
    rl_dequantize_row(RL_Q8_0, &b8, y, 32);
    for (int l = 0; l < 32; l++)
        assert_true(y[l] == -0.25f * (float)(8 * l - 128));
}

/* ggml's get_scale_min_k4, written out from the format description. */
static void k4_scale_min(int j, const uint8_t *q, int *sc, int *mn) {
    if (j < 4) {
        *sc = q[j] & 63;
        *mn = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4);
        *mn = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

static const uint8_t k_scales_example[12] = {0xc5, 0x02, 0x7f, 0x11, 0x40, 0x83, 0x3e, 0xc9, 0x21, 0xf0, 0x0a, 0x5c};

static void test_k_scales_known(void **state) {
    (void)state;
    /* worked by hand from the bit layout */
    const uint8_t want_sc[8] = {5, 2, 63, 17, 1 | 48, 0, 10 | 16, 12};
    const uint8_t want_mn[8] = {0, 3, 62, 9, 2 | 16, 15 | 32, 0, 5 | 48};
    uint8_t got[16];
    rl_k_scales_unpack(k_scales_example, got);
    for (int j = 0; j < 8; j++) {
        int sc, mn;
        k4_scale_min(j, k_scales_example, &sc, &mn);
        assert_int_equal(sc, want_sc[j]);
        assert_int_equal(mn, want_mn[j]);
        assert_int_equal(got[j], sc);
        assert_int_equal(got[8 + j], mn);
    }
}

/* Dequantizes Q4_K (qh NULL) or Q5_K the way ggml's loop states it. */
static void k_expected(rl_fp16 d16, rl_fp16 dmin16, const uint8_t *scales, const uint8_t *qh, const uint8_t *qs,
                       float *y) {
    const float d = rl_fp16_to_f32(d16), dmin = rl_fp16_to_f32(dmin16);
    int is = 0;
    uint8_t u1 = 1, u2 = 2;
    for (int j = 0; j < 256; j += 64) {
        int sc, mn;
        k4_scale_min(is, scales, &sc, &mn);
        const float d1 = d * sc, m1 = dmin * mn;
        k4_scale_min(is + 1, scales, &sc, &mn);
        const float d2 = d * sc, m2 = dmin * mn;
        for (int l = 0; l < 32; l++)
            *y++ = d1 * (float)((qs[l] & 0xf) + (qh && (qh[l] & u1) ? 16 : 0)) - m1;
        for (int l = 0; l < 32; l++)
            *y++ = d2 * (float)((qs[l] >> 4) + (qh && (qh[l] & u2) ? 16 : 0)) - m2;
        qs += 32;
        is += 2;
        u1 = (uint8_t)(u1 << 2);
        u2 = (uint8_t)(u2 << 2);
    }
}

static void test_dequant_q4_K_q5_K_known(void **state) {
    (void)state;
    block_q4_K b4 = {.d = 0x3800, .dmin = 0x3400}; /* 0.5, 0.25 */
    memcpy(b4.scales, k_scales_example, 12);
    for (int l = 0; l < 128; l++)
        b4.qs[l] = (uint8_t)(l * 37 + 11);
    float y[256], want[256];
    rl_dequantize_row(RL_Q4_K, &b4, y, 256);
    k_expected(b4.d, b4.dmin, b4.scales, NULL, b4.qs, want);
    assert_memory_equal(y, want, sizeof y);
    /* qs[0] = 11: element 0 is 0.5*5*11 - 0.25*0; element 32 (high nibble 0, sub-block 1) is -0.25*3 */
    assert_true(y[0] == 27.5f && y[32] == -0.75f);
    /* element 255: qs[127] = 0x66 (high nibble 6), sub-block 7: sc 12, min 53 */
    assert_true(y[255] == 0.5f * 12 * 6 - 0.25f * 53);

    block_q5_K b5 = {.d = 0xb800, .dmin = 0x3c00}; /* -0.5, 1 */
    memcpy(b5.scales, k_scales_example, 12);
    for (int l = 0; l < 128; l++)
        b5.qs[l] = (uint8_t)(l * 91 + 5);
    for (int l = 0; l < 32; l++)
        b5.qh[l] = (uint8_t)(l * 53 + 7);
    rl_dequantize_row(RL_Q5_K, &b5, y, 256);
    k_expected(b5.d, b5.dmin, b5.scales, b5.qh, b5.qs, want);
    assert_memory_equal(y, want, sizeof y);
    /* element 0: qs 5, qh[0] = 7 has bit 0 -> q 21, sc 5, min 0 -> -0.5*5*21 */
    assert_true(y[0] == -52.5f);
}

static void test_dequant_q6_K_known(void **state) {
    (void)state;
    block_q6_K b = {.d = 0x3400}; /* 0.25 */
    for (int l = 0; l < 128; l++)
        b.ql[l] = (uint8_t)(l * 29 + 3);
    for (int l = 0; l < 64; l++)
        b.qh[l] = (uint8_t)(l * 71 + 9);
    for (int g = 0; g < 16; g++)
        b.scales[g] = (int8_t)(g * 17 - 128);
    float y[256], want[256];
    rl_dequantize_row(RL_Q6_K, &b, y, 256);
    /* ggml's loop: each 128-half takes 64 ql, 32 qh and 8 scales */
    const uint8_t *ql = b.ql, *qh = b.qh;
    const int8_t *sc = b.scales;
    float *w = want;
    for (int n = 0; n < 256; n += 128) {
        for (int l = 0; l < 32; l++) {
            const int is = l / 16;
            const int q1 = ((ql[l] & 0xf) | (((qh[l] >> 0) & 3) << 4)) - 32;
            const int q2 = ((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) - 32;
            const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            w[l] = 0.25f * sc[is] * q1;
            w[l + 32] = 0.25f * sc[is + 2] * q2;
            w[l + 64] = 0.25f * sc[is + 4] * q3;
            w[l + 96] = 0.25f * sc[is + 6] * q4;
        }
        w += 128;
        ql += 64;
        qh += 32;
        sc += 8;
    }
    assert_memory_equal(y, want, sizeof y);
    /* element 0: ql 3, qh 9 -> low 2 bits 1 -> q = 3 + 16 - 32 = -13; scale -128 */
    assert_true(y[0] == 0.25f * -128.0f * -13.0f);
}

/* ---- real tensors from the shared models ------------------------------------- */

static const gguf_tensor *open_tensor(const char *path, const char *name, gguf_file **f) {
    char err[256];
    *f = gguf_open(path, err, sizeof err);
    if (!*f)
        fail_msg("%s: %s", path, err);
    const gguf_tensor *t = gguf_find_tensor(*f, name);
    if (!t)
        fail_msg("%s has no tensor %s", path, name);
    return t;
}

/* Dequantizes the same tensor from a quantized and a reference file; returns
 * both and a copy of the quantized bytes (caller frees all three), the row
 * length in *row, after checking the quantized file's type. */
static int64_t load_pair(const char *qfile, const char *reffile, const char *name, rl_dtype want, float **q,
                         float **ref, const void **qdata, int64_t *row) {
    gguf_file *fa, *fb;
    const gguf_tensor *ta = open_tensor(qfile, name, &fa), *tb = open_tensor(reffile, name, &fb);
    assert_int_equal(ta->type, want);
    const int64_t n = (int64_t)(ta->ne[0] * ta->ne[1] * ta->ne[2] * ta->ne[3]);
    assert_int_equal(n, (int64_t)(tb->ne[0] * tb->ne[1] * tb->ne[2] * tb->ne[3]));
    *row = (int64_t)ta->ne[0];
    *q = xmalloc((size_t)n * sizeof(float));
    *ref = xmalloc((size_t)n * sizeof(float));
    rl_dequantize_row(ta->type, ta->data, *q, n);
    rl_dequantize_row(tb->type, tb->data, *ref, n);
    void *copy = xmalloc(ta->nbytes);
    memcpy(copy, ta->data, ta->nbytes);
    *qdata = copy;
    gguf_close(&fa);
    gguf_close(&fb);
    return n;
}

static double rms(const float *a, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += (double)a[i] * a[i];
    return sqrt(s / (double)n);
}

/* The tiny Q4_0/Q8_0 models hold other random draws than tiny-f32.gguf, from
 * the same distribution: the dequantized tensors must match its rms. Each
 * block must also show the mark of llama.cpp's quantizer: the element of
 * largest magnitude lands exactly on -8 (Q4_0) or +-127 (Q8_0) steps. */
static void check_real_blocks(const char *qfile, rl_dtype t) {
    static const char *names[] = {"token_embd.weight", "blk.0.attn_q.weight", "blk.3.ffn_down.weight"};
    for (size_t k = 0; k < 3; k++) {
        float *q, *ref;
        const void *raw;
        int64_t row;
        const int64_t n = load_pair(qfile, MODELS "tiny-f32.gguf", names[k], t, &q, &ref, &raw, &row);
        const double r = rms(q, n) / rms(ref, n);
        if (!(r > 0.95 && r < 1.05))
            fail_msg("%s %s: rms ratio %g to the f32 model", qfile, names[k], r);
        for (int64_t i = 0; i < n / 32; i++) {
            const float d =
                rl_fp16_to_f32(t == RL_Q4_0 ? ((const block_q4_0 *)raw)[i].d : ((const block_q8_0 *)raw)[i].d);
            float amax = 0, extreme = 0;
            for (int l = 0; l < 32; l++)
                if (fabsf(q[32 * i + l]) > amax) {
                    amax = fabsf(q[32 * i + l]);
                    extreme = q[32 * i + l];
                }
            if (t == RL_Q4_0 ? extreme != -8 * d : amax != 127 * fabsf(d))
                fail_msg("%s %s block %lld: extreme %g, d %g", qfile, names[k], (long long)i, extreme, d);
        }
        free(q);
        free(ref);
        free((void *)raw);
    }
}

static void test_real_q4_0_q8_0(void **state) {
    (void)state;
    check_real_blocks(MODELS "tiny-q4_0.gguf", RL_Q4_0);
    check_real_blocks(MODELS "tiny-q8_0.gguf", RL_Q8_0);
}

/* rms(a - b) / rms(b) */
static double rel_rms(const float *a, const float *b, int64_t n) {
    double e = 0, s = 0;
    for (int64_t i = 0; i < n; i++) {
        e += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        s += (double)b[i] * b[i];
    }
    return sqrt(e / s);
}

/* The Q4_K_M file against the Q6_K file of the same weights: Q4_K's error is
 * a few percent of the signal, a misread layout would be of its order. The
 * Q6_K output matrix is in both files and must dequantize identically. */
static void test_real_q4_K_q6_K(void **state) {
    (void)state;
    static const char *names[] = {"token_embd.weight", "blk.0.attn_k.weight", "blk.2.ffn_gate.weight"};
    for (size_t k = 0; k < 3; k++) {
        float *q, *ref;
        const void *raw;
        int64_t row;
        const int64_t n =
            load_pair(MODELS "small-q4_k_m.gguf", MODELS "small-q6_k.gguf", names[k], RL_Q4_K, &q, &ref, &raw, &row);
        const double e = rel_rms(q, ref, n);
        if (!(e > 0.01 && e < 0.12))
            fail_msg("%s: relative rms difference %g", names[k], e);
        free(q);
        free(ref);
        free((void *)raw);
    }
    float *q, *ref;
    const void *raw;
    int64_t row;
    const int64_t n =
        load_pair(MODELS "small-q4_k_m.gguf", MODELS "small-q6_k.gguf", "output.weight", RL_Q6_K, &q, &ref, &raw, &row);
    assert_memory_equal(q, ref, (size_t)n * sizeof(float));
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += (double)q[i] * q[i];
    assert_true(s > 0 && isfinite(s));
    free(q);
    free(ref);
    free((void *)raw);
}

/* ---- quantize / dequantize round trips --------------------------------------- */

/* The largest error the quantizer may make on x[0 .. block), from the format's
 * arithmetic (see quant_ref.c): half a step, plus what clamping and the
 * quantization of sub-block scales to 6 or 8 bits can add. */
static float kminmax_bound(const float *x, int nmax) {
    float smax = 0, mmax = 0;
    for (int s = 0; s < 8; s++) {
        float lo = 0, hi = x[32 * s];
        for (int l = 0; l < 32; l++) {
            lo = fminf(lo, x[32 * s + l]);
            hi = fmaxf(hi, x[32 * s + l]);
        }
        smax = fmaxf(smax, (hi - lo) / (float)nmax);
        mmax = fmaxf(mmax, -lo);
    }
    const float d = smax / 63, dmin = mmax / 63;
    return 1.01f * (0.5f * smax + (float)(nmax + 1) * d / 2 + dmin / 2);
}

static float q6_K_group_bound(const float *x, int g) {
    float gmax = 0, all = 0;
    for (int h = 0; h < 16; h++) {
        float m = 0;
        for (int l = 0; l < 16; l++)
            m = fmaxf(m, fabsf(x[16 * h + l]));
        all = fmaxf(all, m / 32);
        if (h == g)
            gmax = m / 32;
    }
    return 1.01f * (gmax + 16 * all / 128);
}

static float element_bound(rl_dtype t, const float *x, int64_t i) {
    const int64_t b0 = i / 32 * 32, k0 = i / 256 * 256;
    float amax = 0;
    for (int l = 0; l < 32; l++)
        amax = fmaxf(amax, fabsf(x[b0 + l]));
    switch (t) {
    case RL_F32:
        return 0;
    case RL_F16:
        return fmaxf(fabsf(x[i]) * 0x1p-11f, 0x1p-25f); /* subnormals: absolute */
    case RL_BF16:
        return fabsf(x[i]) * 0x1p-8f;
    case RL_Q8_0:
        return 0.6f * amax / 127;
    case RL_Q4_0:
        return 1.01f * amax / 8;
    case RL_Q4_K:
        return kminmax_bound(x + k0, 15);
    case RL_Q5_K:
        return kminmax_bound(x + k0, 31);
    case RL_Q6_K:
        return q6_K_group_bound(x + k0, (int)(i - k0) / 16);
    default:
        fail_msg("no bound for type %d", t);
    }
    return 0;
}

static void test_roundtrip(void **state) {
    (void)state;
    /* relative rms error ceilings on this data, a guard against quality loss */
    static const double rms_max[] = {0, 3e-4, 3e-3, 0.1, 7e-3, 0.1, 0.05, 0.022};
    const int n = 4096;
    float *x = xmalloc(n * sizeof(float)), *y = xmalloc(n * sizeof(float));
    void *q = xmalloc((size_t)n * 4);
    fill_random(x, n);
    x[5] = 0;
    for (int l = 0; l < 256; l++) /* an all-zero super-block */
        x[1024 + l] = 0;
    for (int l = 0; l < 256; l++) /* all positive, all negative */
        x[2048 + l] = fabsf(x[2048 + l]), x[2304 + l] = -fabsf(x[2304 + l]);
    for (size_t k = 0; k < N_TYPES; k++) {
        const rl_dtype t = all_types[k];
        assert_int_equal(rl_quantize_row(t, x, q, n), rl_dtype_row_bytes(t, (uint64_t)n));
        rl_dequantize_row(t, q, y, n);
        for (int i = 0; i < n; i++)
            if (!(fabsf(y[i] - x[i]) <= element_bound(t, x, i)))
                fail_msg("%s element %d: %g -> %g (bound %g)", rl_dtype_name(t), i, x[i], y[i], element_bound(t, x, i));
        const double e = rel_rms(y, x, n);
        if (!(e <= rms_max[k]))
            fail_msg("%s: relative rms error %g", rl_dtype_name(t), e);
    }
    assert_int_equal(rl_quantize_row(RL_Q4_K, x, q, 100), 0); /* not a block multiple */
    assert_int_equal(rl_quantize_row(RL_Q4_1, x, q, 256), 0); /* unsupported */
    assert_int_equal(rl_quantize_row(RL_Q8_0, x, q, 0), 0);
    free(x);
    free(y);
    free(q);
}

/* ---- dot products ------------------------------------------------------------ */

/* Activation row in the type the weight is dotted with. */
static void *make_act(const rl_kernel_set *ks, rl_dtype wt, const float *x, int n) {
    const rl_dtype at = rl_vec_dot_type(wt);
    void *a = xmalloc(rl_dtype_row_bytes(at, (uint64_t)n));
    if (at == RL_Q8_0)
        ks->quantize_q8_0(x, a, n);
    else if (at == RL_Q8_K)
        ks->quantize_q8_K(x, a, n);
    else
        memcpy(a, x, (size_t)n * sizeof(float));
    return a;
}

/* The activation row as floats, whatever its type. */
static void dequant_act(rl_dtype at, const void *a, float *ad, int n) {
    if (at == RL_Q8_K)
        for (int i = 0; i < n; i++)
            ad[i] = ((const block_q8_K *)a)[i / QK_K].d * ((const block_q8_K *)a)[i / QK_K].qs[i % QK_K];
    else
        rl_dequantize_row(at, a, ad, n);
}

/* sum |w_i * a_i|: the scale of the rounding error of any summation order. */
static double abs_dot(rl_dtype t, const void *w, const void *a, int n) {
    float *wd = xmalloc((size_t)n * sizeof(float)), *ad = xmalloc((size_t)n * sizeof(float));
    rl_dequantize_row(t, w, wd, n);
    dequant_act(rl_vec_dot_type(t), a, ad, n);
    double s = 0;
    for (int i = 0; i < n; i++)
        s += fabs((double)wd[i] * ad[i]);
    free(wd);
    free(ad);
    return s;
}

/* Random weight rows: half from the quantizer, half raw random bytes with
 * sane scales (every bit pattern of quants, scales and mins gets exercised). */
static void random_weights(rl_dtype t, void *w, const float *x, int n, int raw) {
    rl_quantize_row(t, x, w, n);
    if (!raw || rl_dtype_block(t) == 1)
        return;
    const size_t bytes = rl_dtype_row_bytes(t, (uint64_t)n), bb = rl_dtype_block_bytes(t);
    for (size_t i = 0; i < bytes; i++)
        ((uint8_t *)w)[i] = (uint8_t)rnd_u32();
    for (size_t b = 0; b < bytes / bb; b++) {
        uint8_t *blk = (uint8_t *)w + b * bb;
        const rl_fp16 d = rnd_scale16(), dmin = rnd_scale16();
        const size_t at = t == RL_Q6_K ? bb - 2 : 0; /* Q6_K keeps d last */
        memcpy(blk + at, &d, 2);
        if (t == RL_Q4_K || t == RL_Q5_K)
            memcpy(blk + 2, &dmin, 2);
    }
}

static void compare_sets(const rl_kernel_set *ks) {
    const rl_kernel_set *ref = rl_kernels_ref();
    static const int lengths[] = {256, 512, 768, 1792, 4096, 11008};
    for (size_t k = 0; k < N_TYPES; k++) {
        const rl_dtype t = all_types[k];
        for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++)
            for (int rep = 0; rep < 8; rep++) {
                /* odd block counts and float tails too */
                const int bs = (int)rl_dtype_block(t), n = lengths[li] + (bs == 1 ? rep : bs == 32 ? 32 * rep : 0);
                float *x = xmalloc((size_t)n * sizeof(float)), *act = xmalloc((size_t)n * sizeof(float));
                void *w = xmalloc((size_t)n * 4);
                fill_random(x, n);
                fill_random(act, n);
                random_weights(t, w, x, n, rep % 2);
                void *a = make_act(ref, t, act, n);
                const double want = ref->vec_dot[t](n, w, a), got = ks->vec_dot[t](n, w, a);
                const double tol = 1e-5 * abs_dot(t, w, a, n) + 1e-30;
                if (!(fabs(got - want) <= tol))
                    fail_msg("%s %s n=%d: %.9g vs ref %.9g (tol %g)", ks->name, rl_dtype_name(t), n, got, want, tol);
                free(x);
                free(act);
                free(w);
                free(a);
            }
    }
}

/* Activation quantizers must produce the reference's bytes exactly. */
static void compare_act_quantizers(const rl_kernel_set *ks) {
    const rl_kernel_set *ref = rl_kernels_ref();
    const int n = 4096;
    float *x = xmalloc(n * sizeof(float));
    block_q8_K *k1 = xmalloc(n / QK_K * sizeof *k1), *k2 = xmalloc(n / QK_K * sizeof *k2);
    block_q8_0 *z1 = xmalloc(n / QK8_0 * sizeof *z1), *z2 = xmalloc(n / QK8_0 * sizeof *z2);
    for (int rep = 0; rep < 50; rep++) {
        fill_random(x, n);
        if (rep % 5 == 1) /* ties at half steps, zeros, equal magnitudes of both signs */
            for (int i = 0; i < n; i++)
                x[i] = (float)((int)(rnd_u32() % 64) - 32) * 0.5f;
        if (rep % 5 == 2)
            memset(x + 256, 0, 512 * sizeof(float));
        ks->quantize_q8_0(x, z1, n);
        ref->quantize_q8_0(x, z2, n);
        assert_memory_equal(z1, z2, n / QK8_0 * sizeof *z1);
        ks->quantize_q8_K(x, k1, n);
        ref->quantize_q8_K(x, k2, n);
        assert_memory_equal(k1, k2, n / QK_K * sizeof *k1);
    }
    free(x);
    free(k1);
    free(k2);
    free(z1);
    free(z2);
}

/* The attention's kernels. Cache rows to f32: exact, every set the
 * reference's bytes, for rows of whole blocks and (f16) odd lengths, a
 * stride longer than the row. */
static void compare_kv_rows(const rl_kernel_set *ks) {
    const rl_kernel_set *ref = rl_kernels_ref();
    static const rl_dtype types[] = {RL_F16, RL_Q8_0};
    static const int lengths[] = {32, 64, 128, 160, 256};
    enum { ROWS = 5 };
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++)
        for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
            const rl_dtype t = types[k];
            const int n = lengths[li] + (t == RL_F16 ? (int)li : 0);
            const size_t stride = rl_dtype_row_bytes(t, (uint64_t)n) + 40;
            char *src = xmalloc(stride * ROWS);
            float *x = xmalloc((size_t)n * sizeof(float)), *want = xmalloc((size_t)n * sizeof(float));
            float *d1 = xmalloc((size_t)ROWS * n * sizeof(float)), *d2 = xmalloc((size_t)ROWS * n * sizeof(float));
            for (int r = 0; r < ROWS; r++) {
                fill_random(x, n);
                assert_true(rl_quantize_row(t, x, src + r * stride, n) > 0);
            }
            assert_non_null(ks->kv_rows[t]);
            ks->kv_rows[t](n, src, stride, ROWS, d1);
            ref->kv_rows[t](n, src, stride, ROWS, d2);
            if (memcmp(d1, d2, (size_t)ROWS * n * sizeof(float)))
                fail_msg("%s kv_rows %s n=%d differs from the reference", ks->name, rl_dtype_name(t), n);
            for (int r = 0; r < ROWS; r++) {
                rl_dequantize_row(t, src + r * stride, want, n);
                assert_memory_equal(d2 + (size_t)r * n, want, (size_t)n * sizeof(float));
            }
            free(src), free(x), free(want), free(d1), free(d2);
        }
}

/* Value sums: every set gives the reference's bits, which are the sum asked
 * for, and cutting the positions into two calls changes no bit (the
 * attention cuts them at ring wraps and blocks). */
static void compare_kv_values(const rl_kernel_set *ks) {
    const rl_kernel_set *ref = rl_kernels_ref();
    static const int lengths[] = {8, 13, 32, 64, 128, 136};
    static const int queries[] = {1, 2, 3, 4, 5, 8, 9};
    static const int positions[] = {1, 2, 7, 33};
    enum { P_PAD = 3, V_PAD = 5 };
    for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++)
        for (size_t qi = 0; qi < sizeof queries / sizeof queries[0]; qi++)
            for (size_t pi = 0; pi < sizeof positions / sizeof positions[0]; pi++) {
                const int n = lengths[li], nq = queries[qi], nv = positions[pi];
                const size_t p_stride = (size_t)nv + P_PAD, v_stride = (size_t)n + V_PAD, yn = (size_t)nq * n;
                float *p = xmalloc((size_t)nq * p_stride * sizeof(float));
                float *v = xmalloc((size_t)nv * v_stride * sizeof(float));
                float *y0 = xmalloc(yn * sizeof(float)), *y1 = xmalloc(yn * sizeof(float));
                float *y2 = xmalloc(yn * sizeof(float)), *y3 = xmalloc(yn * sizeof(float));
                for (size_t i = 0; i < (size_t)nq * p_stride; i++)
                    p[i] = fabsf(rnd_unit()) * (i % 2 ? 1.0f : 1e-3f);
                fill_random(v, (int)((size_t)nv * v_stride));
                fill_random(y0, (int)yn);
                memcpy(y1, y0, yn * sizeof(float));
                memcpy(y2, y0, yn * sizeof(float));
                memcpy(y3, y0, yn * sizeof(float));
                ks->kv_values(n, p, p_stride, nq, v, v_stride, nv, y1);
                ref->kv_values(n, p, p_stride, nq, v, v_stride, nv, y2);
                if (memcmp(y1, y2, yn * sizeof(float)))
                    fail_msg("%s kv_values n=%d nq=%d nv=%d differs from the reference", ks->name, n, nq, nv);
                const int cut = nv / 2;
                ks->kv_values(n, p, p_stride, nq, v, v_stride, cut, y3);
                ks->kv_values(n, p + cut, p_stride, nq, v + (size_t)cut * v_stride, v_stride, nv - cut, y3);
                if (memcmp(y1, y3, yn * sizeof(float)))
                    fail_msg("%s kv_values n=%d nq=%d nv=%d: cut at %d gives other bits", ks->name, n, nq, nv, cut);
                for (int i = 0; i < nq; i++)
                    for (int e = 0; e < n; e++) {
                        double want = y0[(size_t)i * n + e], mag = fabs(want);
                        for (int j = 0; j < nv; j++) {
                            const double term = (double)p[i * p_stride + j] * v[j * v_stride + e];
                            want += term, mag += fabs(term);
                        }
                        if (fabs(y1[(size_t)i * n + e] - want) > 1e-6 * mag)
                            fail_msg("%s kv_values n=%d nq=%d nv=%d: y[%d][%d] = %.9g, want %.9g", ks->name, n, nq, nv,
                                     i, e, y1[(size_t)i * n + e], want);
                    }
                free(p), free(v), free(y0), free(y1), free(y2), free(y3);
            }
}

/* Scores: within float rounding of the reference, and each the same bits
 * as that query and key alone, whatever the tile's shape (a row's scores
 * must not depend on the rows attended with it). */
static void compare_kv_scores(const rl_kernel_set *ks) {
    const rl_kernel_set *ref = rl_kernels_ref();
    static const int lengths[] = {8, 13, 32, 64, 128, 130};
    static const int queries[] = {1, 2, 3, 4, 5, 8, 9, 32};
    static const int keys[] = {1, 2, 3, 33};
    enum { K_PAD = 7, S_PAD = 2 };
    for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++)
        for (size_t qi = 0; qi < sizeof queries / sizeof queries[0]; qi++)
            for (size_t ki = 0; ki < sizeof keys / sizeof keys[0]; ki++) {
                const int n = lengths[li], nq = queries[qi], nk = keys[ki];
                const size_t k_stride = (size_t)n + K_PAD, s_stride = (size_t)nk + S_PAD;
                float *q = xmalloc((size_t)nq * n * sizeof(float)), *k = xmalloc((size_t)nk * k_stride * sizeof(float));
                float *s1 = xmalloc((size_t)nq * s_stride * sizeof(float));
                float *s2 = xmalloc((size_t)nq * s_stride * sizeof(float));
                fill_random(q, nq * n);
                fill_random(k, (int)((size_t)nk * k_stride));
                ks->kv_scores(n, q, nq, k, k_stride, nk, s1, s_stride);
                ref->kv_scores(n, q, nq, k, k_stride, nk, s2, s_stride);
                for (int i = 0; i < nq; i++)
                    for (int j = 0; j < nk; j++) {
                        const float got = s1[i * s_stride + j];
                        double mag = 0;
                        for (int e = 0; e < n; e++)
                            mag += fabs((double)q[i * n + e] * k[j * k_stride + e]);
                        if (!(fabs(got - s2[i * s_stride + j]) <= 1e-5 * mag + 1e-30))
                            fail_msg("%s kv_scores n=%d nq=%d nk=%d [%d][%d]: %.9g vs ref %.9g", ks->name, n, nq, nk, i,
                                     j, got, s2[i * s_stride + j]);
                        float one;
                        ks->kv_scores(n, q + (size_t)i * n, 1, k + j * k_stride, k_stride, 1, &one, 1);
                        if (fbits(one) != fbits(got))
                            fail_msg("%s kv_scores n=%d nq=%d nk=%d [%d][%d]: %.9g in the tile, %.9g alone", ks->name,
                                     n, nq, nk, i, j, got, one);
                    }
                free(q), free(k), free(s1), free(s2);
            }
}

/* The softmax: every set the reference's bits; the reference within a few
 * ulp of exp() in double of the same float differences; scores far below
 * the maximum (down to e^-240, under FLT_MIN) and ties included. */
static void compare_kv_softmax(const rl_kernel_set *ks) {
    const rl_kernel_set *ref = rl_kernels_ref();
    static const int lengths[] = {1, 7, 8, 9, 31, 100, 3419};
    for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++)
        for (int rep = 0; rep < 3; rep++) {
            const int n = lengths[li];
            const float scale = rep == 2 ? 1.0f : 0.088388f;
            float *x = xmalloc((size_t)n * sizeof(float)), *x1 = xmalloc((size_t)n * sizeof(float));
            float *x2 = xmalloc((size_t)n * sizeof(float));
            for (int j = 0; j < n; j++)
                x[j] = rep == 1 ? (float)(rnd_u32() % 4) : 40.0f * rnd_unit() * (j % 5 ? 1.0f : 3.0f);
            memcpy(x1, x, (size_t)n * sizeof(float));
            memcpy(x2, x, (size_t)n * sizeof(float));
            ks->kv_softmax(x1, n, scale);
            ref->kv_softmax(x2, n, scale);
            if (memcmp(x1, x2, (size_t)n * sizeof(float)))
                fail_msg("%s kv_softmax n=%d rep %d differs from the reference", ks->name, n, rep);
            float mx = -INFINITY; /* x * scale - max in float, as any float softmax has it */
            double sum = 0;
            for (int j = 0; j < n; j++)
                mx = fmaxf(mx, x[j] * scale);
            for (int j = 0; j < n; j++)
                sum += exp((double)(x[j] * scale - mx));
            for (int j = 0; j < n; j++) {
                const double want = exp((double)(x[j] * scale - mx)) / sum;
                if (fabs(x2[j] - want) > 4e-7 * want + 1e-37)
                    fail_msg("kv_softmax n=%d rep %d: [%d] = %.9g, want %.9g", n, rep, j, x2[j], want);
            }
            free(x), free(x1), free(x2);
        }
}

static void compare_kv_kernels(const rl_kernel_set *ks) {
    assert_non_null(ks->kv_scores);
    assert_non_null(ks->kv_values);
    assert_non_null(ks->kv_softmax);
    compare_kv_rows(ks);
    compare_kv_values(ks);
    compare_kv_scores(ks);
    compare_kv_softmax(ks);
}

static void check_set(const rl_kernel_set *ks) {
    assert_non_null(ks->quantize_q8_0);
    assert_non_null(ks->quantize_q8_K);
    for (size_t k = 0; k < N_TYPES; k++)
        assert_non_null(ks->vec_dot[all_types[k]]);
    compare_act_quantizers(ks);
    compare_sets(ks);
    compare_kv_kernels(ks);
}

/* A set exists exactly where the CPU has its ISA, and then matches the reference. */
static void set_vs_ref(const rl_kernel_set *ks, bool cpu_has, const char *isa) {
    assert_true((ks != NULL) == cpu_has);
    if (ks)
        check_set(ks);
    else
        print_message("no %s on this CPU: nothing to compare\n", isa);
}

static void test_kv_kernels_ref(void **state) {
    (void)state;
    compare_kv_kernels(rl_kernels_ref());
}

static void test_avx2_vs_ref(void **state) {
    (void)state;
    set_vs_ref(rl_kernels_avx2(), rl_cpu()->avx2, "AVX2");
}

static void test_avx512_vs_ref(void **state) {
    (void)state;
    set_vs_ref(rl_kernels_avx512(), rl_cpu()->avx512, "AVX-512");
}

static void test_neon_vs_ref(void **state) {
    (void)state;
    set_vs_ref(rl_kernels_neon(), rl_cpu()->neon, "NEON");
}

/* The reference dot is exactly the float dot of the dequantized rows (up to
 * summation rounding), and within the activation's quantization error of the
 * dot with the unquantized activation. */
static void test_dot_vs_dequant(void **state) {
    (void)state;
    const rl_kernel_set *ref = rl_kernels_ref();
    const int n = 2048;
    float *x = xmalloc(n * sizeof(float)), *act = xmalloc(n * sizeof(float));
    float *wd = xmalloc(n * sizeof(float)), *ad = xmalloc(n * sizeof(float));
    void *w = xmalloc((size_t)n * 4);
    for (size_t k = 0; k < N_TYPES; k++) {
        const rl_dtype t = all_types[k], at = rl_vec_dot_type(t);
        fill_random(x, n);
        fill_random(act, n);
        rl_quantize_row(t, x, w, n);
        void *a = make_act(ref, t, act, n);
        rl_dequantize_row(t, w, wd, n);
        dequant_act(at, a, ad, n);
        double exact = 0, mag = 0, orig = 0, act_err = 0;
        for (int i = 0; i < n; i++) {
            exact += (double)wd[i] * ad[i];
            mag += fabs((double)wd[i] * ad[i]);
            orig += (double)wd[i] * act[i];
            act_err += fabs((double)wd[i]) * fabs((double)ad[i] - act[i]);
        }
        const double got = ref->vec_dot[t](n, w, a);
        if (!(fabs(got - exact) <= 1e-5 * mag))
            fail_msg("%s: %.9g vs dequantized %.9g", rl_dtype_name(t), got, exact);
        if (!(fabs(got - orig) <= act_err * 1.001 + 1e-5 * mag))
            fail_msg("%s: %.9g vs unquantized activation %.9g", rl_dtype_name(t), got, orig);
        free(a);
    }
    free(x);
    free(act);
    free(wd);
    free(ad);
    free(w);
}

/* Rows of the real files through every kernel set against dequantize+dot. */
static void test_real_rows_dot(void **state) {
    (void)state;
    static const struct {
        const char *file, *tensor;
        rl_dtype t;
    } cases[] = {
        {MODELS "tiny-q4_0.gguf", "blk.1.ffn_up.weight", RL_Q4_0},
        {MODELS "tiny-q8_0.gguf", "blk.1.ffn_up.weight", RL_Q8_0},
        {MODELS "small-q4_k_m.gguf", "blk.1.ffn_up.weight", RL_Q4_K},
        {MODELS "small-q4_k_m.gguf", "output.weight", RL_Q6_K},
    };
    const rl_kernel_set *sets[] = {rl_kernels_ref(), rl_kernels_avx2(), rl_kernels_avx512(), rl_kernels_neon()};
    const size_t n_sets = sizeof sets / sizeof sets[0];
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        float *q, *ref;
        const void *raw;
        int64_t row;
        const int64_t n = load_pair(cases[c].file, cases[c].file, cases[c].tensor, cases[c].t, &q, &ref, &raw, &row);
        float *act = xmalloc((size_t)row * sizeof(float)), *ad = xmalloc((size_t)row * sizeof(float));
        fill_random(act, (int)row);
        const size_t rb = rl_dtype_row_bytes(cases[c].t, (uint64_t)row);
        for (int64_t r = 0; r < n / row; r += 7) {
            void *a = make_act(rl_kernels_ref(), cases[c].t, act, (int)row);
            dequant_act(rl_vec_dot_type(cases[c].t), a, ad, (int)row);
            double want = 0, mag = 0;
            for (int64_t i = 0; i < row; i++) {
                want += (double)q[r * row + i] * ad[i];
                mag += fabs((double)q[r * row + i] * ad[i]);
            }
            for (size_t s = 0; s < n_sets; s++)
                if (sets[s]) {
                    const double got = sets[s]->vec_dot[cases[c].t]((int)row, (const char *)raw + r * rb, a);
                    if (!(fabs(got - want) <= 1e-5 * mag))
                        fail_msg("%s %s row %lld: %.9g vs %.9g", sets[s]->name, cases[c].tensor, (long long)r, got,
                                 want);
                }
            free(a);
        }
        free(act);
        free(ad);
        free(q);
        free(ref);
        free((void *)raw);
    }
}

/* ---- dispatch ---------------------------------------------------------------- */

/* Runs rl_kernels() twice in a child with RELAIS_ISA=isa (NULL: unset); gives
 * the chosen set's name and the number of lines the child wrote to stderr. */
static void child_choice(const char *isa, char *name, size_t len, int *lines) {
    int out[2], err[2];
    assert_int_equal(pipe(out), 0);
    assert_int_equal(pipe(err), 0);
    const pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(err[1], 2);
        if (isa)
            setenv("RELAIS_ISA", isa, 1);
        else
            unsetenv("RELAIS_ISA");
        const char *n1 = rl_kernels()->name, *n2 = rl_kernels()->name;
        const ssize_t w = write(out[1], n1, strlen(n1));
        _exit(w > 0 && strcmp(n1, n2) == 0 ? 0 : 1);
    }
    close(out[1]);
    close(err[1]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    const ssize_t got = read(out[0], name, len - 1);
    assert_true(got > 0);
    name[got] = 0;
    char buf[1024];
    const ssize_t e = read(err[0], buf, sizeof buf - 1);
    *lines = 0;
    for (ssize_t i = 0; i < e; i++)
        *lines += buf[i] == '\n';
    close(out[0]);
    close(err[0]);
}

static void test_dispatch(void **state) {
    (void)state;
    const char *best = rl_kernels_avx512() ? "avx512"
        : rl_kernels_avx2()                ? "avx2"
        : rl_kernels_neon()                ? "neon"
                                           : "scalar";
    char name[32];
    int lines;
    child_choice(NULL, name, sizeof name, &lines);
    assert_string_equal(name, best);
    assert_int_equal(lines, 0);
    child_choice("scalar", name, sizeof name, &lines);
    assert_string_equal(name, "scalar");
    assert_int_equal(lines, 0);
    if (rl_kernels_avx2()) {
        child_choice("avx2", name, sizeof name, &lines);
        assert_string_equal(name, "avx2");
        assert_int_equal(lines, 0);
    }
    child_choice("sse9", name, sizeof name, &lines); /* unknown: best, one message */
    assert_string_equal(name, best);
    assert_int_equal(lines, 1);
    const char *absent = rl_kernels_neon() ? "avx2" : "neon";
    if (!rl_kernels_neon() || !rl_kernels_avx2()) { /* unsupported here: best, one message */
        child_choice(absent, name, sizeof name, &lines);
        assert_string_equal(name, best);
        assert_int_equal(lines, 1);
    }
    /* every set is complete */
    const rl_kernel_set *sets[] = {rl_kernels_ref(), rl_kernels_avx2(), rl_kernels_avx512(), rl_kernels_neon()};
    for (size_t s = 0; s < 4; s++)
        for (size_t k = 0; sets[s] && k < N_TYPES; k++)
            assert_non_null(sets[s]->vec_dot[all_types[k]]);
    assert_int_equal(rl_vec_dot_type(RL_Q4_0), RL_Q8_0);
    assert_int_equal(rl_vec_dot_type(RL_Q5_K), RL_Q8_K);
    assert_int_equal(rl_vec_dot_type(RL_BF16), RL_F32);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fp16_to_f32_all),
        cmocka_unit_test(test_f32_to_fp16_rounding),
        cmocka_unit_test(test_bf16),
        cmocka_unit_test(test_dequant_q4_0_q8_0_known),
        cmocka_unit_test(test_k_scales_known),
        cmocka_unit_test(test_dequant_q4_K_q5_K_known),
        cmocka_unit_test(test_dequant_q6_K_known),
        cmocka_unit_test(test_real_q4_0_q8_0),
        cmocka_unit_test(test_real_q4_K_q6_K),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_dot_vs_dequant),
        cmocka_unit_test(test_real_rows_dot),
        cmocka_unit_test(test_kv_kernels_ref),
        cmocka_unit_test(test_avx2_vs_ref),
        cmocka_unit_test(test_avx512_vs_ref),
        cmocka_unit_test(test_neon_vs_ref),
        cmocka_unit_test(test_dispatch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
