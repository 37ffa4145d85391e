/* IEEE half and bfloat16 as stored bits, and their exact scalar conversions
 * (round-to-nearest-even): public, because the wire's f16 activations and
 * the engine's f16 weights and caches use the same layout. */
#ifndef RELAIS_FP16_H
#define RELAIS_FP16_H

#include <stdint.h>

typedef uint16_t rl_fp16; /* IEEE half, stored as bits */
typedef uint16_t rl_bf16; /* bfloat16, stored as bits */

float rl_fp16_to_f32(rl_fp16 h);
rl_fp16 rl_f32_to_fp16(float f);
float rl_bf16_to_f32(rl_bf16 h);
rl_bf16 rl_f32_to_bf16(float f);

#endif
