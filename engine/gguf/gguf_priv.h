/* The GGUF reader's index of a mapped file, shared by the parser (gguf.c)
 * and the typed accessors and formatting (gguf_values.c). Nothing outside
 * those two files sees it: callers use gguf.h. */
#ifndef RELAIS_GGUF_PRIV_H
#define RELAIS_GGUF_PRIV_H

#include <stdint.h>
#include "gguf.h"

typedef struct {
    gguf_str key; /* view into the mapping */
    gguf_type type;
    gguf_type elem;    /* element type when type is GGUF_ARRAY */
    uint64_t n;        /* element count when type is GGUF_ARRAY */
    uint64_t off;      /* file offset of the value, of the first element for arrays */
    uint64_t *str_off; /* string arrays: file offset of each element's length field */
} kv_entry;

/* Open-addressing hash table from names to entry indices, so lookups and
 * duplicate checks stay linear even for a file with millions of entries. */
typedef struct {
    int64_t *slot; /* entry index + 1; 0 marks an empty slot */
    uint64_t mask; /* slot count - 1 (a power of two) */
} name_index;

struct gguf_file {
    char *path;              /* copy of the path opened */
    const uint8_t *map;      /* the whole file, read-only; NULL when empty */
    uint64_t size;           /* file size in bytes */
    uint32_t version;        /* 2 or 3 */
    uint64_t alignment;      /* general.alignment or 32 */
    uint64_t data_offset;    /* aligned end of the tensor infos */
    int64_t n_kv;            /* entries in kv */
    kv_entry *kv;            /* metadata in file order */
    name_index kv_index;     /* key -> kv index */
    int64_t n_tensors;       /* entries in tensors */
    gguf_tensor *tensors;    /* tensor infos in file order */
    name_index tensor_index; /* tensor name -> tensors index */
};

#endif
