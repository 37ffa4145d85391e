/* A slice of a model as a file of its own: what the coordinator streams to
 * a node that does not hold the model. The slice is a valid GGUF file with
 * all of the model's metadata and only the tensors of layers [l0, l1) (their
 * names keep their layer numbers, so rl_model_load binds them with the same
 * range), plus output_norm and output when the node runs the head (token_embd
 * instead of output when the head is tied to it).
 *
 * The bytes are a pure function of the model file and (l0, l1, head): the
 * tensors keep the model's order, the metadata its order and values, and
 * padding is zeros. So a transfer can resume at any offset, and the slice's
 * sha256 is the same on every run. Nothing is copied up front: the header is
 * built in memory and tensor bytes are read from the model's mapping on
 * demand. */
#ifndef RELAIS_WEIGHTS_SLICE_H
#define RELAIS_WEIGHTS_SLICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct weights_slice weights_slice;

/* Lays out the slice of model_path. NULL with err (unreadable model, empty
 * or out-of-range layers, metadata that cannot be copied). */
weights_slice *weights_slice_new(const char *model_path, uint32_t l0, uint32_t l1, bool head, char *err, size_t errlen);
/* A draft model cut from the target (speculative decoding, draft.h): its
 * first n layers with the embedding and the head, the metadata saying n
 * layers; read it out as a slice to write the file. NULL with err. */
weights_slice *weights_slice_draft(const char *model_path, uint32_t n, char *err, size_t errlen);
void weights_slice_destroy(weights_slice **s); /* NULLs *s */

uint64_t weights_slice_size(const weights_slice *s);

/* Copies bytes [off, off + len) of the slice into buf; off + len must not
 * pass the size. Bytes read in order from the start feed the hash, so a
 * transfer from offset 0 costs no second pass. */
void weights_slice_read(weights_slice *s, uint64_t off, uint8_t *buf, size_t len);

/* The sha256 of the whole slice (reading what the reads so far did not
 * hash). 0, or -1 when out of memory. */
int weights_slice_sha256(weights_slice *s, uint8_t out[32]);

#endif
