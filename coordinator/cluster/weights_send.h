/* The coordinator's side of a weight transfer: a node that does not hold the
 * model file asks for its slice (WeightRequest: from an offset, a window of
 * chunks of a given size) and gets that window as WeightChunk messages, the
 * last one carrying the slice's sha256. The node asks for the next window
 * when one has arrived, so neither side buffers more than a window, and a
 * node that restarts asks from the size of its partial file (resume).
 *
 * One weights_send serves one assignment: it knows the model file, its hash
 * and each node's layers, and checks every request against them. Slices are
 * laid out on a node's first request and kept until the assignment ends. */
#ifndef RELAIS_WEIGHTS_SEND_H
#define RELAIS_WEIGHTS_SEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "relais.pb-c.h"

#define WEIGHTS_DEFAULT_CHUNK (1u << 20) /* bytes per chunk when the node leaves it to us */
#define WEIGHTS_MIN_CHUNK (4u << 10)
#define WEIGHTS_MAX_CHUNK (16u << 20)
#define WEIGHTS_DEFAULT_WINDOW 4             /* chunks per request when the node leaves it to us */
#define WEIGHTS_MAX_WINDOW_BYTES (64u << 20) /* a window never holds more */

typedef struct weights_send weights_send;

/* For the model at model_path (hash sha256) and up to n_nodes nodes. NULL
 * when out of memory. */
weights_send *weights_send_new(const char *model_path, const uint8_t sha256[32], uint32_t n_nodes);
void weights_send_destroy(weights_send **w); /* NULLs *w; logs what was sent */

/* Node i (called name, assigned layers [l0, l1), head or not) asks for r:
 * sends it the window on sock (its DEALER). 0, or -1 with err when the
 * request does not match the assignment or a send fails. */
int weights_send_answer(weights_send *w, uint32_t i, const char *name, void *sock, uint32_t l0, uint32_t l1, bool head,
                        const Relais__WeightRequest *r, char *err, size_t errlen);

/* Slice bytes sent so far to all nodes. */
uint64_t weights_send_bytes(const weights_send *w);

#endif
