/* GGUF reader: maps a model file and exposes its metadata and tensors.
 *
 * Versions 2 and 3. Everything the file claims (counts, string lengths, array
 * lengths, value types, tensor dimensions and types, offsets, alignment) is
 * checked against the file's real size before it is used, so a truncated or
 * hostile file gets an error naming what is wrong and where (byte offset),
 * never a read past the end. Strings in GGUF are not NUL-terminated: they are
 * handed out as (pointer, length) views into the mapping. A gguf_file does not
 * change after gguf_open, so any number of threads may read it at once. */
#ifndef RELAIS_GGUF_H
#define RELAIS_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "dtype.h"

typedef enum {
    GGUF_UINT8 = 0,
    GGUF_INT8 = 1,
    GGUF_UINT16 = 2,
    GGUF_INT16 = 3,
    GGUF_UINT32 = 4,
    GGUF_INT32 = 5,
    GGUF_FLOAT32 = 6,
    GGUF_BOOL = 7,
    GGUF_STRING = 8,
    GGUF_ARRAY = 9,
    GGUF_UINT64 = 10,
    GGUF_INT64 = 11,
    GGUF_FLOAT64 = 12,
    GGUF_TYPE_COUNT
} gguf_type;

typedef struct {
    const char *ptr; /* not NUL-terminated */
    uint64_t len;
} gguf_str;

typedef struct {
    char *name;      /* NUL-terminated copy of the tensor's name */
    uint32_t n_dims; /* 1..4 */
    uint64_t ne[4];  /* elements per dimension, ne[0] fastest; unused = 1 */
    rl_dtype type;
    uint64_t offset;  /* from the start of the data section */
    uint64_t nbytes;  /* validated to lie inside the file */
    const void *data; /* into the mapping */
} gguf_tensor;

typedef struct gguf_file gguf_file;

/* Opens and validates `path`. On failure returns NULL and writes a message
 * naming the file, the problem and its byte offset into err. Close with
 * gguf_close. Every pointer the accessors below return (keys, strings, tensor
 * infos and names, data) points into the gguf_file and lives until it is
 * closed; the caller frees none of them. */
gguf_file *gguf_open(const char *path, char *err, size_t errlen);
void gguf_close(gguf_file **f); /* NULLs *f */

uint32_t gguf_version(const gguf_file *f);
uint64_t gguf_file_size(const gguf_file *f);
uint64_t gguf_alignment(const gguf_file *f);
uint64_t gguf_data_offset(const gguf_file *f); /* start of tensor data in the file */
const char *gguf_path(const gguf_file *f);

/* ---- metadata ---- */
int64_t gguf_n_kv(const gguf_file *f);
int64_t gguf_find_key(const gguf_file *f, const char *key); /* index, or -1 */
gguf_str gguf_kv_key(const gguf_file *f, int64_t i);        /* {NULL, 0} if i is out of range */
gguf_type gguf_kv_type(const gguf_file *f, int64_t i);      /* GGUF_TYPE_COUNT if out of range */

/* Typed getters by key. They return false when the key is absent or its value
 * cannot be represented (a negative number asked for as unsigned, an array
 * asked for as a scalar...). Integers of any GGUF integer type are accepted. */
bool gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out);
bool gguf_get_u64(const gguf_file *f, const char *key, uint64_t *out);
bool gguf_get_i64(const gguf_file *f, const char *key, int64_t *out);
bool gguf_get_f32(const gguf_file *f, const char *key, float *out); /* f32 or f64 */
bool gguf_get_bool(const gguf_file *f, const char *key, bool *out);
bool gguf_get_str(const gguf_file *f, const char *key, gguf_str *out);

/* Arrays. gguf_get_arr gives the element type and count; for non-string
 * arrays *data points at the packed little-endian elements in the mapping
 * (NULL for string arrays). Any of elem, n, data may be NULL. String elements
 * are reached by index through gguf_arr_str (O(1); {NULL, 0} when the key is
 * absent, not a string array, or i is out of range). */
bool gguf_get_arr(const gguf_file *f, const char *key, gguf_type *elem, uint64_t *n, const void **data);
gguf_str gguf_arr_str(const gguf_file *f, const char *key, uint64_t i);
/* Element i of a numeric array, converted: gguf_arr_i64 takes integer and
 * bool elements (bool as 0/1; a u64 above INT64_MAX is false), gguf_arr_f32
 * takes any numeric or bool element. False when the key is absent, the array
 * holds another type, or i is out of range. */
bool gguf_arr_i64(const gguf_file *f, const char *key, uint64_t i, int64_t *out);
bool gguf_arr_f32(const gguf_file *f, const char *key, uint64_t i, float *out);

/* Formats any value (scalar or array, arrays abbreviated) for `relais inspect`:
 * `"llama"`, `4`, `1e-05`, `[str x 32000] "<unk>", "<s>", ...`. Strings are
 * quoted with control bytes escaped; text that does not fit ends in "...". */
void gguf_format_value(const gguf_file *f, int64_t i, char *buf, size_t buflen);
const char *gguf_type_name(gguf_type t); /* "u32", "str", "arr"...; "unknown" if invalid */
/* Bytes of one value of a fixed-size type; 0 for strings, arrays and invalid ids. */
uint64_t gguf_type_size(gguf_type t);

/* ---- tensors ---- */
int64_t gguf_n_tensors(const gguf_file *f);
const gguf_tensor *gguf_tensor_at(const gguf_file *f, int64_t i);          /* NULL if out of range */
const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name); /* NULL if absent */

/* Tells the kernel which byte range of the file will be used soon (or not at
 * all), so a node that holds one slice of layers only pages in that slice.
 * ptr must point into the mapping (a tensor's data); other pointers are
 * ignored. Pages to keep are rounded outwards, pages to drop inwards. */
void gguf_advise(const gguf_file *f, const void *ptr, uint64_t len, bool willneed);

/* Reads [ptr, ptr + len) of the file (a tensor's data) into memory: its
 * pages of the mapping are replaced by anonymous ones, backed by huge pages
 * where the kernel has them, and filled from the file. Pointers stay valid,
 * the pages stay resident and writable. Pages shared with a neighbouring
 * range are read again, so load every range before changing any. 0, or -1
 * when the range is not in the mapping or the file cannot be read (the
 * range's contents are then undefined). */
int gguf_load_range(gguf_file *f, const void *ptr, uint64_t len);

#endif
