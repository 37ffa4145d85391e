/* A small, fast, seedable pseudo-random generator (xoshiro256**, seeded
 * through splitmix64) shared by the sampler and the synthetic-model writer.
 * Header-only so the hot loops that draw billions of numbers inline it.
 * The sequence for a given seed is fixed forever: seeded runs and synthetic
 * files are reproducible across versions and machines. */
#ifndef RELAIS_RNG_H
#define RELAIS_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4]; /* xoshiro256** state; never all zero after seeding */
} rl_rng;

/* One step of splitmix64: also a good 64-bit mixing function for deriving
 * independent seeds from (seed, stream) pairs. */
static inline uint64_t rl_splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline void rl_rng_seed(rl_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++)
        r->s[i] = rl_splitmix64(&seed);
}

static inline uint64_t rl_rng_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t rl_rng_next(rl_rng *r) {
    uint64_t *s = r->s;
    uint64_t out = rl_rng_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rl_rng_rotl(s[3], 45);
    return out;
}

/* Uniform in [0, 1) with 53 random bits. */
static inline double rl_rng_uniform(rl_rng *r) { return (double)(rl_rng_next(r) >> 11) * 0x1.0p-53; }

/* Uniform integer in [0, n), n > 0 (multiply-shift; bias below 2^-32 for
 * the small n used here). */
static inline uint32_t rl_rng_below(rl_rng *r, uint32_t n) {
    return (uint32_t)(((rl_rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

#endif
