/* Streaming GGUF v3 writer: the metadata and tensor table are declared first,
 * then each tensor's bytes are written in the declared order, so a file of any
 * size is written with memory for one tensor row at a time. Used by
 * `relais synth`, by the tests to make valid and deliberately broken files,
 * and (layout only) by the coordinator's weight transfer. */
#ifndef RELAIS_GGUF_WRITE_H
#define RELAIS_GGUF_WRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "dtype.h"
#include "gguf.h"

typedef struct gguf_writer gguf_writer;

/* Alignment 32 unless a general.alignment kv is set. NULL when out of memory. */
gguf_writer *gguf_writer_new(void);
void gguf_writer_destroy(gguf_writer **w); /* NULLs *w */

/* Metadata, in the order added. Keys and strings are copied. Setting a key
 * again replaces its value in place. general.alignment must be set as a u32
 * power of two. A setter cannot fail on the spot: a bad argument or a failed
 * allocation is remembered and reported by gguf_writer_begin, as are the
 * tensor declarations' problems. */
void gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v);
void gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v);
void gguf_writer_set_u64(gguf_writer *w, const char *key, uint64_t v);
void gguf_writer_set_f32(gguf_writer *w, const char *key, float v);
void gguf_writer_set_bool(gguf_writer *w, const char *key, bool v);
void gguf_writer_set_str(gguf_writer *w, const char *key, const char *v);
/* Any fixed-size type (not GGUF_STRING or GGUF_ARRAY), value copied from *v
 * in host (little-endian) layout; a GGUF bool is one byte. */
void gguf_writer_set_scalar(gguf_writer *w, const char *key, gguf_type type, const void *v);
/* Array of n elements of a numeric/bool type (bool: one byte each), copied
 * from packed `data`. */
void gguf_writer_set_arr(gguf_writer *w, const char *key, gguf_type elem, const void *data, uint64_t n);
void gguf_writer_set_arr_str(gguf_writer *w, const char *key, const char *const *v, uint64_t n);

/* Declares a tensor; ne[0] is the fastest dimension, entries past n_dims are
 * not read. */
void gguf_writer_add_tensor(gguf_writer *w, const char *name, rl_dtype type, uint32_t n_dims, const uint64_t ne[4]);

/* Writes header, metadata and tensor table to `path`. Then the caller writes
 * each tensor's data, in declaration order, in as many pieces as it likes with
 * gguf_writer_write_data; padding is inserted between tensors. Finish with
 * gguf_writer_close, which checks every declared byte was written.
 * Each returns 0, or -1 with a message in err. */
/* Lays the file out without writing it, for a sender that streams the file
 * from other sources: the bytes before the data section, alignment padding
 * included, in *header (malloc'd; the caller frees it), each declared
 * tensor's offset from the start of the file in offsets (one per tensor, in
 * declaration order), and the data section's size, padding included: the
 * file is *header_len + *data_size bytes, zeros wherever no tensor lies.
 * 0, or -1 with err. */
int gguf_writer_layout(gguf_writer *w, uint8_t **header, size_t *header_len, uint64_t *offsets, uint64_t *data_size,
                       char *err, size_t errlen);

int gguf_writer_begin(gguf_writer *w, const char *path, char *err, size_t errlen);
int gguf_writer_write_data(gguf_writer *w, const void *data, size_t len, char *err, size_t errlen);
int gguf_writer_close(gguf_writer *w, char *err, size_t errlen);

#endif
