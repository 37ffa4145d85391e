/* Tensor element types as GGUF numbers them (the ggml type ids), with their
 * block geometry. Only the types relais computes with have kernels; the rest
 * are known by name and size so that a file using them can be read, inspected
 * and refused with a message that names the type. */
#ifndef RELAIS_DTYPE_H
#define RELAIS_DTYPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    RL_F32 = 0,
    RL_F16 = 1,
    RL_Q4_0 = 2,
    RL_Q4_1 = 3,
    RL_Q5_0 = 6,
    RL_Q5_1 = 7,
    RL_Q8_0 = 8,
    RL_Q8_1 = 9,
    RL_Q2_K = 10,
    RL_Q3_K = 11,
    RL_Q4_K = 12,
    RL_Q5_K = 13,
    RL_Q6_K = 14,
    RL_Q8_K = 15,
    RL_IQ2_XXS = 16,
    RL_IQ2_XS = 17,
    RL_IQ3_XXS = 18,
    RL_IQ1_S = 19,
    RL_IQ4_NL = 20,
    RL_IQ3_S = 21,
    RL_IQ2_S = 22,
    RL_IQ4_XS = 23,
    RL_I8 = 24,
    RL_I16 = 25,
    RL_I32 = 26,
    RL_I64 = 27,
    RL_F64 = 28,
    RL_IQ1_M = 29,
    RL_BF16 = 30,
    RL_TQ1_0 = 34,
    RL_TQ2_0 = 35,
    RL_MXFP4 = 39,
    RL_DTYPE_COUNT = 40
} rl_dtype;

/* Elements per block (1 for plain types); 0 for an id no ggml type uses. */
uint32_t rl_dtype_block(rl_dtype t);
/* Bytes per block; 0 for an unknown id. */
uint32_t rl_dtype_block_bytes(rl_dtype t);
/* "q4_K", "f32", ...; "unknown" for an unknown id. Never NULL. */
const char *rl_dtype_name(rl_dtype t);
/* Types relais has dequantization and dot kernels for. */
bool rl_dtype_supported(rl_dtype t);
/* Bytes of a row of n elements, or 0 when n is not a multiple of the block,
 * the id is unknown or the size does not fit in size_t. */
size_t rl_dtype_row_bytes(rl_dtype t, uint64_t n);
/* Parses a name as written by rl_dtype_name, case-insensitive; -1 if none. */
int rl_dtype_from_name(const char *name);

#endif
