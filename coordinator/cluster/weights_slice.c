/* A model's slice as a file (see weights_slice.h). The layout comes from the
 * GGUF writer (header bytes and tensor offsets, without writing anything);
 * the tensor bytes come from the model's mapping. */
#include "weights_slice.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "gguf.h"
#include "gguf_write.h"

#define HASH_BLOCK (1u << 20)

typedef struct {
    uint64_t off; /* in the slice */
    uint64_t len;
    const uint8_t *src; /* in the model's mapping */
} piece;

struct weights_slice {
    gguf_file *model; /* mapped; the tensor bytes */
    uint8_t *header;  /* (header_len) everything before the data section */
    size_t header_len;
    piece *pieces; /* (n_pieces) tensors in slice order */
    size_t n_pieces;
    uint64_t size;
    crypto_hash_sha256_state hash; /* over bytes [0, hashed) */
    uint64_t hashed;
    bool hash_done;
    uint8_t digest[32];
    char draft_key[96]; /* a draft's: its block_count key, set to the layers it keeps */
};

/* ---- what goes in ---- */

static bool wanted(const char *name, uint32_t l0, uint32_t l1, bool head, bool tied, bool embed) {
    if (!strncmp(name, "blk.", 4)) {
        char *end;
        unsigned long il = strtoul(name + 4, &end, 10);
        return end != name + 4 && *end == '.' && il >= l0 && il < l1;
    }
    if (embed && !strcmp(name, "token_embd.weight"))
        return true;
    if (!head)
        return false;
    return !strcmp(name, "output_norm.weight") || !strcmp(name, "output.weight") ||
        (tied && !strcmp(name, "token_embd.weight"));
}

/* A metadata string as a C string; GGUF strings carry a length, so one with
 * a NUL byte inside cannot pass through the writer's C-string setters. */
static char *c_string(gguf_str s, const char *key, char *err, size_t errlen) {
    char *c = NULL;
    if (s.len && memchr(s.ptr, 0, s.len))
        snprintf(err, errlen, "metadata %s holds a NUL byte inside a string: it cannot be copied into a slice", key);
    else if (!(c = strndup(s.ptr ? s.ptr : "", s.len)))
        snprintf(err, errlen, "out of memory");
    return c;
}

static int copy_str_array(gguf_writer *w, const gguf_file *f, const char *key, uint64_t n, char *err, size_t errlen) {
    char **v = calloc(n ? n : 1, sizeof *v);
    uint64_t i = 0;
    if (!v)
        snprintf(err, errlen, "out of memory");
    while (v && i < n && (v[i] = c_string(gguf_arr_str(f, key, i), key, err, errlen)))
        i++;
    if (v && i == n)
        gguf_writer_set_arr_str(w, key, (const char *const *)v, n);
    for (uint64_t k = 0; v && k < i; k++)
        free(v[k]);
    free(v);
    return v && i == n ? 0 : -1;
}

/* Copies metadata entry i with its type. Integers go through 64 bits and
 * back (exact); an f64 goes through a float, which is how the engine reads
 * every float key, so the slice means the same to it. */
static int copy_kv(gguf_writer *w, const gguf_file *f, int64_t i, char *err, size_t errlen) {
    char *key = c_string(gguf_kv_key(f, i), "key", err, errlen);
    gguf_type t = gguf_kv_type(f, i), elem;
    union {
        int64_t i;
        uint64_t u;
        bool b;
        float f;
        double d;
    } v;
    uint64_t n;
    const void *data;
    gguf_str s;
    int rc = key ? 0 : -1;
    if (rc == 0 && t == GGUF_UINT64 && gguf_get_u64(f, key, &v.u))
        gguf_writer_set_scalar(w, key, t, &v.u);
    else if (rc == 0 && (t <= GGUF_INT32 || t == GGUF_INT64) && gguf_get_i64(f, key, &v.i))
        gguf_writer_set_scalar(w, key, t, &v.i); /* little-endian: the low bytes are the value */
    else if (rc == 0 && t == GGUF_FLOAT32 && gguf_get_f32(f, key, &v.f))
        gguf_writer_set_f32(w, key, v.f);
    else if (rc == 0 && t == GGUF_FLOAT64 && gguf_get_f32(f, key, &v.f)) {
        v.d = v.f;
        gguf_writer_set_scalar(w, key, t, &v.d);
    } else if (rc == 0 && t == GGUF_BOOL && gguf_get_bool(f, key, &v.b))
        gguf_writer_set_bool(w, key, v.b);
    else if (rc == 0 && t == GGUF_STRING && gguf_get_str(f, key, &s)) {
        char *c = c_string(s, key, err, errlen);
        rc = c ? 0 : -1;
        if (c)
            gguf_writer_set_str(w, key, c);
        free(c);
    } else if (rc == 0 && t == GGUF_ARRAY && gguf_get_arr(f, key, &elem, &n, &data)) {
        if (elem == GGUF_STRING)
            rc = copy_str_array(w, f, key, n, err, errlen);
        else if (gguf_type_size(elem))
            gguf_writer_set_arr(w, key, elem, data, n);
        else {
            snprintf(err, errlen, "metadata %s: an array of %s cannot be copied into a slice", key,
                     gguf_type_name(elem));
            rc = -1;
        }
    } else if (rc == 0) {
        snprintf(err, errlen, "metadata %s: its %s value cannot be read back", key, gguf_type_name(t));
        rc = -1;
    }
    free(key);
    return rc;
}

/* ---- layout ---- */

/* Declares the metadata and the slice's tensors; records where their bytes
 * are in the model. A draft (s->draft_key set) has the embedding too and
 * says it has l1 layers. */
static int declare(weights_slice *s, gguf_writer *w, uint32_t l0, uint32_t l1, bool head, char *err, size_t errlen) {
    const gguf_file *f = s->model;
    for (int64_t i = 0; i < gguf_n_kv(f); i++)
        if (copy_kv(w, f, i, err, errlen))
            return -1;
    if (s->draft_key[0])
        gguf_writer_set_u32(w, s->draft_key, l1);
    const bool tied = gguf_find_tensor(f, "output.weight") == NULL;
    if (!(s->pieces = calloc((size_t)gguf_n_tensors(f) + 1, sizeof *s->pieces))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (int64_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        if (!wanted(t->name, l0, l1, head, tied, s->draft_key[0] != 0))
            continue;
        gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne);
        s->pieces[s->n_pieces++] = (piece){0, t->nbytes, t->data};
    }
    return 0;
}

static int lay_out(weights_slice *s, uint32_t l0, uint32_t l1, bool head, char *err, size_t errlen) {
    gguf_writer *w = gguf_writer_new();
    uint64_t *offsets = NULL, data_size = 0;
    int rc = -1;
    if (!w)
        snprintf(err, errlen, "out of memory");
    else if (declare(s, w, l0, l1, head, err, errlen) == 0) {
        if (!(offsets = malloc((s->n_pieces + 1) * sizeof *offsets)))
            snprintf(err, errlen, "out of memory");
        else if (gguf_writer_layout(w, &s->header, &s->header_len, offsets, &data_size, err, errlen) == 0)
            rc = 0;
    }
    for (size_t i = 0; rc == 0 && i < s->n_pieces; i++)
        s->pieces[i].off = offsets[i];
    s->size = s->header_len + data_size;
    free(offsets);
    gguf_writer_destroy(&w);
    return rc;
}

static weights_slice *slice_new(const char *model_path, uint32_t l0, uint32_t l1, bool head, bool draft, char *err,
                                size_t errlen) {
    weights_slice *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    uint32_t n_layer = 0;
    gguf_str arch;
    char key[96] = "";
    if (!(s->model = gguf_open(model_path, err, errlen)))
        goto fail;
    if (gguf_get_str(s->model, "general.architecture", &arch))
        snprintf(key, sizeof key, "%.*s.block_count", (int)(arch.len < 64 ? arch.len : 64), arch.ptr);
    if (!gguf_get_u32(s->model, key, &n_layer) || l0 >= l1 || l1 > n_layer) {
        snprintf(err, errlen, "layers [%u, %u) are not a slice of %s (%u layers)", l0, l1, model_path, n_layer);
        goto fail;
    }
    if (draft)
        snprintf(s->draft_key, sizeof s->draft_key, "%s", key);
    if (lay_out(s, l0, l1, head, err, errlen))
        goto fail;
    crypto_hash_sha256_init(&s->hash);
    return s;
fail:
    weights_slice_destroy(&s);
    return NULL;
}

weights_slice *weights_slice_new(const char *model_path, uint32_t l0, uint32_t l1, bool head, char *err,
                                 size_t errlen) {
    return slice_new(model_path, l0, l1, head, false, err, errlen);
}

weights_slice *weights_slice_draft(const char *model_path, uint32_t n, char *err, size_t errlen) {
    return slice_new(model_path, 0, n, true, true, err, errlen);
}

void weights_slice_destroy(weights_slice **ps) {
    weights_slice *s = ps ? *ps : NULL;
    if (!s)
        return;
    gguf_close(&s->model);
    free(s->header), free(s->pieces);
    free(s);
    *ps = NULL;
}

uint64_t weights_slice_size(const weights_slice *s) { return s->size; }

/* ---- reading ---- */

static void copy_out(const weights_slice *s, uint64_t off, uint8_t *buf, size_t len) {
    memset(buf, 0, len); /* padding */
    uint64_t end = off + len;
    if (off < s->header_len)
        memcpy(buf, s->header + off, (size_t)((end < s->header_len ? end : s->header_len) - off));
    for (size_t i = 0; i < s->n_pieces; i++) {
        const piece *p = &s->pieces[i];
        uint64_t a = p->off > off ? p->off : off, b = p->off + p->len < end ? p->off + p->len : end;
        if (a < b)
            memcpy(buf + (a - off), p->src + (a - p->off), (size_t)(b - a));
    }
}

void weights_slice_read(weights_slice *s, uint64_t off, uint8_t *buf, size_t len) {
    copy_out(s, off, buf, len);
    if (!s->hash_done && off <= s->hashed && off + len > s->hashed) {
        crypto_hash_sha256_update(&s->hash, buf + (s->hashed - off), (size_t)(off + len - s->hashed));
        s->hashed = off + len;
    }
}

int weights_slice_sha256(weights_slice *s, uint8_t out[32]) {
    if (!s->hash_done) {
        uint8_t *buf = malloc(HASH_BLOCK);
        if (!buf)
            return -1;
        while (s->hashed < s->size) {
            uint64_t left = s->size - s->hashed;
            weights_slice_read(s, s->hashed, buf, left < HASH_BLOCK ? (size_t)left : HASH_BLOCK);
        }
        free(buf);
        crypto_hash_sha256_final(&s->hash, s->digest);
        s->hash_done = true;
    }
    memcpy(out, s->digest, 32);
    return 0;
}
