/* Unicode character classes for the byte-level BPE pre-tokenizers: letters by
 * case class, marks, numbers and White_Space. The table itself is generated
 * (engine/tok/unicode_tables.c by deploy/gen_unicode_tables.py); the class numbers
 * below are the ones that script writes. */
#ifndef RELAIS_UNICODE_TABLES_H
#define RELAIS_UNICODE_TABLES_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    RL_UC_OTHER = 0, /* punctuation, symbols, controls, unassigned... */
    RL_UC_LU = 1,    /* uppercase letter */
    RL_UC_LL = 2,    /* lowercase letter */
    RL_UC_LT = 3,    /* titlecase letter */
    RL_UC_LM = 4,    /* modifier letter */
    RL_UC_LO = 5,    /* other letter */
    RL_UC_M = 6,     /* mark: Mn, Mc, Me */
    RL_UC_N = 7,     /* number: Nd, Nl, No */
    RL_UC_SPACE = 8  /* White_Space property */
} rl_uclass;

extern const char rl_unicode_version[];
/* (first code point << 4) | class, ascending; a run lasts until the next entry. */
extern const uint32_t rl_unicode_runs[];
extern const size_t rl_unicode_n_runs;

/* Class of a code point (RL_UC_OTHER beyond U+10FFFF). */
rl_uclass rl_unicode_class(uint32_t cp);

#endif
