/* The ggml tensor type table: for every type id a GGUF file may carry, its
 * block length in elements, its block size in bytes and its ggml name. Ids
 * that ggml retired or never assigned (4, 5, 31-33, 36-38) have an all-zero
 * entry, which is how callers recognise an id they must refuse. The sizes are
 * those of ggml's block structs; quant.h asserts the ones relais computes
 * with against its own struct definitions. */
#include "dtype.h"

#include <stdint.h>
#include <strings.h>

typedef struct {
    const char *name; /* ggml's name, NULL for an unused id */
    uint32_t block;   /* elements per block */
    uint32_t bytes;   /* bytes per block */
    bool supported;   /* relais has kernels for it */
} dtype_info;

static const dtype_info dtype_table[RL_DTYPE_COUNT] = {
    [RL_F32] = {"f32", 1, 4, true},
    [RL_F16] = {"f16", 1, 2, true},
    [RL_Q4_0] = {"q4_0", 32, 18, true},
    [RL_Q4_1] = {"q4_1", 32, 20, false},
    [RL_Q5_0] = {"q5_0", 32, 22, false},
    [RL_Q5_1] = {"q5_1", 32, 24, false},
    [RL_Q8_0] = {"q8_0", 32, 34, true},
    [RL_Q8_1] = {"q8_1", 32, 36, false},
    [RL_Q2_K] = {"q2_K", 256, 84, false},
    [RL_Q3_K] = {"q3_K", 256, 110, false},
    [RL_Q4_K] = {"q4_K", 256, 144, true},
    [RL_Q5_K] = {"q5_K", 256, 176, true},
    [RL_Q6_K] = {"q6_K", 256, 210, true},
    [RL_Q8_K] = {"q8_K", 256, 292, false},
    [RL_IQ2_XXS] = {"iq2_xxs", 256, 66, false},
    [RL_IQ2_XS] = {"iq2_xs", 256, 74, false},
    [RL_IQ3_XXS] = {"iq3_xxs", 256, 98, false},
    [RL_IQ1_S] = {"iq1_s", 256, 50, false},
    [RL_IQ4_NL] = {"iq4_nl", 32, 18, false},
    [RL_IQ3_S] = {"iq3_s", 256, 110, false},
    [RL_IQ2_S] = {"iq2_s", 256, 82, false},
    [RL_IQ4_XS] = {"iq4_xs", 256, 136, false},
    [RL_I8] = {"i8", 1, 1, false},
    [RL_I16] = {"i16", 1, 2, false},
    [RL_I32] = {"i32", 1, 4, false},
    [RL_I64] = {"i64", 1, 8, false},
    [RL_F64] = {"f64", 1, 8, false},
    [RL_IQ1_M] = {"iq1_m", 256, 56, false},
    [RL_BF16] = {"bf16", 1, 2, true},
    [RL_TQ1_0] = {"tq1_0", 256, 54, false},
    [RL_TQ2_0] = {"tq2_0", 256, 66, false},
    [RL_MXFP4] = {"mxfp4", 32, 17, false},
};

/* Ids come straight from files, so anything outside the table is possible. */
static const dtype_info *lookup(rl_dtype t) {
    static const dtype_info none = {NULL, 0, 0, false};
    if ((int)t < 0 || (int)t >= RL_DTYPE_COUNT)
        return &none;
    return &dtype_table[t];
}

uint32_t rl_dtype_block(rl_dtype t) { return lookup(t)->block; }

uint32_t rl_dtype_block_bytes(rl_dtype t) { return lookup(t)->bytes; }

const char *rl_dtype_name(rl_dtype t) {
    const char *name = lookup(t)->name;
    return name ? name : "unknown";
}

bool rl_dtype_supported(rl_dtype t) { return lookup(t)->supported; }

size_t rl_dtype_row_bytes(rl_dtype t, uint64_t n) {
    const dtype_info *d = lookup(t);
    if (d->block == 0 || n % d->block != 0)
        return 0;
    uint64_t blocks = n / d->block;
    if (blocks > SIZE_MAX / d->bytes)
        return 0;
    return (size_t)(blocks * d->bytes);
}

int rl_dtype_from_name(const char *name) {
    if (!name)
        return -1;
    for (int i = 0; i < RL_DTYPE_COUNT; i++)
        if (dtype_table[i].name && strcasecmp(dtype_table[i].name, name) == 0)
            return i;
    return -1;
}
