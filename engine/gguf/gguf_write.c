/* Streaming GGUF v3 writer. Metadata values are serialised into small byte
 * blobs as they are set (a vocabulary is the largest, a few megabytes); tensors
 * are only declared. gguf_writer_begin then writes the header, the blobs and
 * the tensor table through a buffered FILE, and tensor bytes go straight from
 * the caller to the file, so the writer never holds tensor data and a model
 * larger than memory can be produced piece by piece. */
#include "gguf_write.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_ALIGNMENT 32
#define FILE_BUFFER_BYTES (1u << 20)

/* A growable byte buffer; `oom` sticks after the first failed allocation so
 * callers check once at the end. */
typedef struct {
    uint8_t *p; /* bytes */
    size_t len; /* bytes used */
    size_t cap; /* bytes allocated */
    bool oom;   /* an append failed */
} bytes;

typedef struct {
    char *key; /* NUL-terminated copy */
    bytes val; /* value type (u32) followed by the value, as in the file */
} wkv;

typedef struct {
    char *name; /* NUL-terminated copy */
    rl_dtype type;
    uint32_t n_dims;
    uint64_t ne[4];  /* unused dimensions are 1 */
    uint64_t nbytes; /* data bytes, without padding */
    uint64_t offset; /* in the data section, set by begin */
} wtensor;

typedef enum { W_DECLARING, W_WRITING, W_CLOSED, W_FAILED } wstate;

struct gguf_writer {
    wkv *kv; /* metadata in the order added */
    size_t n_kv, cap_kv;
    wtensor *t; /* tensors in the order declared */
    size_t n_t, cap_t;
    uint64_t alignment; /* from general.alignment, else 32 */
    char err[256];      /* first problem found while declaring; empty if none */
    wstate state;
    FILE *fp;          /* open between begin and close */
    char *path;        /* file being written, for messages */
    uint64_t pos;      /* bytes written to fp so far */
    size_t cur;        /* tensor whose data is being written */
    uint64_t cur_done; /* bytes of it written */
};

/* Keeps the first problem only: later ones are usually its consequences. */
static void defer_err(gguf_writer *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void defer_err(gguf_writer *w, const char *fmt, ...) {
    if (w->err[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->err, sizeof w->err, fmt, ap);
    va_end(ap);
}

static uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) & ~(a - 1); }

/* ---- byte buffers ------------------------------------------------------ */

static void put(bytes *b, const void *src, size_t n) {
    if (b->oom)
        return;
    uint8_t *p = n <= SIZE_MAX - b->len ? rl_grow(b->p, &b->cap, b->len + n, 1, 64) : NULL;
    if (!p) {
        b->oom = true;
        return;
    }
    b->p = p;
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void put_u32(bytes *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(bytes *b, uint64_t v) { put(b, &v, 8); }

static void put_str(bytes *b, const char *s) {
    size_t n = strlen(s);
    put_u64(b, n);
    put(b, s, n);
}

/* ---- declaring ------------------------------------------------------------ */

gguf_writer *gguf_writer_new(void) {
    gguf_writer *w = calloc(1, sizeof *w);
    if (w)
        w->alignment = DEFAULT_ALIGNMENT;
    return w;
}

void gguf_writer_destroy(gguf_writer **wp) {
    if (!wp || !*wp)
        return;
    gguf_writer *w = *wp;
    if (w->fp)
        fclose(w->fp);
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].val.p);
    }
    for (size_t i = 0; i < w->n_t; i++)
        free(w->t[i].name);
    free(w->kv);
    free(w->t);
    free(w->path);
    free(w);
    *wp = NULL;
}

/* The alignment is taken from the blob so every setter is checked the same way. */
static bool check_alignment(gguf_writer *w, const bytes *val) {
    uint32_t type, a;
    memcpy(&type, val->p, 4);
    if (type != GGUF_UINT32) {
        defer_err(w, "general.alignment must be a u32, not %s", gguf_type_name((gguf_type)type));
        return false;
    }
    memcpy(&a, val->p + 4, 4);
    if (a == 0 || (a & (a - 1)) != 0) {
        defer_err(w, "general.alignment %" PRIu32 " is not a nonzero power of two", a);
        return false;
    }
    w->alignment = a;
    return true;
}

/* Takes ownership of val's bytes in every case. */
static void store_kv(gguf_writer *w, const char *key, bytes *val) {
    bool ok = false;
    if (w->state != W_DECLARING)
        defer_err(w, "metadata '%s' set after gguf_writer_begin", key ? key : "(null)");
    else if (!key)
        defer_err(w, "metadata key is NULL");
    else if (val->oom)
        defer_err(w, "out of memory for the value of '%s'", key);
    else if (strcmp(key, "general.alignment") != 0 || check_alignment(w, val))
        ok = true;
    if (!ok) {
        free(val->p);
        return;
    }
    for (size_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->kv[i].key, key) == 0) {
            free(w->kv[i].val.p);
            w->kv[i].val = *val;
            return;
        }
    }
    char *k = strdup(key);
    if (w->n_kv == w->cap_kv) {
        size_t cap = w->cap_kv ? 2 * w->cap_kv : 16;
        wkv *p = k ? realloc(w->kv, cap * sizeof *p) : NULL;
        if (p) {
            w->kv = p;
            w->cap_kv = cap;
        }
    }
    if (!k || w->n_kv == w->cap_kv) {
        defer_err(w, "out of memory for metadata '%s'", key);
        free(k);
        free(val->p);
        return;
    }
    w->kv[w->n_kv].key = k;
    w->kv[w->n_kv].val = *val;
    w->n_kv++;
}

void gguf_writer_set_scalar(gguf_writer *w, const char *key, gguf_type type, const void *v) {
    uint64_t sz = gguf_type_size(type);
    bytes b = {0};
    if (sz == 0 || !v) {
        defer_err(w, "metadata '%s': %s is not a fixed-size type or the value is NULL", key ? key : "(null)",
                  gguf_type_name(type));
        return;
    }
    put_u32(&b, type);
    put(&b, v, sz);
    store_kv(w, key, &b);
}

void gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v) {
    gguf_writer_set_scalar(w, key, GGUF_UINT32, &v);
}

void gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v) { gguf_writer_set_scalar(w, key, GGUF_INT32, &v); }

void gguf_writer_set_u64(gguf_writer *w, const char *key, uint64_t v) {
    gguf_writer_set_scalar(w, key, GGUF_UINT64, &v);
}

void gguf_writer_set_f32(gguf_writer *w, const char *key, float v) { gguf_writer_set_scalar(w, key, GGUF_FLOAT32, &v); }

void gguf_writer_set_bool(gguf_writer *w, const char *key, bool v) {
    uint8_t b = v ? 1 : 0;
    gguf_writer_set_scalar(w, key, GGUF_BOOL, &b);
}

void gguf_writer_set_str(gguf_writer *w, const char *key, const char *v) {
    bytes b = {0};
    if (!v) {
        defer_err(w, "metadata '%s': string is NULL", key ? key : "(null)");
        return;
    }
    put_u32(&b, GGUF_STRING);
    put_str(&b, v);
    store_kv(w, key, &b);
}

void gguf_writer_set_arr(gguf_writer *w, const char *key, gguf_type elem, const void *data, uint64_t n) {
    uint64_t sz = gguf_type_size(elem);
    bytes b = {0};
    if (sz == 0) {
        defer_err(w, "metadata '%s': %s arrays need gguf_writer_set_arr_str or are not supported", key ? key : "(null)",
                  gguf_type_name(elem));
        return;
    }
    if (n > SIZE_MAX / sz || (n && !data)) {
        defer_err(w, "metadata '%s': array of %" PRIu64 " elements has no data or is too large", key ? key : "(null)",
                  n);
        return;
    }
    put_u32(&b, GGUF_ARRAY);
    put_u32(&b, elem);
    put_u64(&b, n);
    if (n)
        put(&b, data, (size_t)(n * sz));
    store_kv(w, key, &b);
}

void gguf_writer_set_arr_str(gguf_writer *w, const char *key, const char *const *v, uint64_t n) {
    bytes b = {0};
    put_u32(&b, GGUF_ARRAY);
    put_u32(&b, GGUF_STRING);
    put_u64(&b, n);
    for (uint64_t i = 0; i < n; i++) {
        if (!v || !v[i]) {
            defer_err(w, "metadata '%s': string array element %" PRIu64 " is NULL", key ? key : "(null)", i);
            free(b.p);
            return;
        }
        put_str(&b, v[i]);
    }
    store_kv(w, key, &b);
}

/* Shape checks mirror the reader's, so a declared tensor always reads back. */
static bool tensor_size(gguf_writer *w, const char *name, rl_dtype type, uint32_t n_dims, const uint64_t ne[4],
                        uint64_t *nbytes) {
    uint32_t block = rl_dtype_block(type);
    if (n_dims < 1 || n_dims > 4) {
        defer_err(w, "tensor '%s': n_dims %" PRIu32 " is not in 1..4", name, n_dims);
        return false;
    }
    if (block == 0) {
        defer_err(w, "tensor '%s': type %d is not a known ggml type", name, (int)type);
        return false;
    }
    uint64_t elements = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        if (ne[d] == 0 || ne[d] > INT64_MAX / elements) {
            defer_err(w, "tensor '%s': ne[%" PRIu32 "] = %" PRIu64 " is zero or overflows", name, d, ne[d]);
            return false;
        }
        elements *= ne[d];
    }
    uint64_t row = rl_dtype_row_bytes(type, ne[0]);
    uint64_t rows = elements / ne[0];
    if (row == 0 || rows > UINT64_MAX / row) {
        defer_err(w,
                  "tensor '%s': ne[0] = %" PRIu64 " is not a multiple of the %s block size %" PRIu32
                  " or the size overflows",
                  name, ne[0], rl_dtype_name(type), block);
        return false;
    }
    *nbytes = row * rows;
    return true;
}

void gguf_writer_add_tensor(gguf_writer *w, const char *name, rl_dtype type, uint32_t n_dims, const uint64_t ne[4]) {
    wtensor t = {.type = type, .n_dims = n_dims, .ne = {1, 1, 1, 1}};
    if (w->state != W_DECLARING) {
        defer_err(w, "tensor '%s' declared after gguf_writer_begin", name ? name : "(null)");
        return;
    }
    if (!name || !name[0]) {
        defer_err(w, "tensor name is NULL or empty");
        return;
    }
    for (size_t i = 0; i < w->n_t; i++) {
        if (strcmp(w->t[i].name, name) == 0) {
            defer_err(w, "tensor '%s' declared twice", name);
            return;
        }
    }
    if (!tensor_size(w, name, type, n_dims, ne, &t.nbytes))
        return;
    memcpy(t.ne, ne, n_dims * sizeof *ne);
    if (w->n_t == w->cap_t) {
        size_t cap = w->cap_t ? 2 * w->cap_t : 64;
        wtensor *p = realloc(w->t, cap * sizeof *p);
        if (p) {
            w->t = p;
            w->cap_t = cap;
        }
    }
    t.name = w->n_t < w->cap_t ? strdup(name) : NULL;
    if (!t.name) {
        defer_err(w, "out of memory for tensor '%s'", name);
        return;
    }
    w->t[w->n_t++] = t;
}

/* ---- writing ---------------------------------------------------------------- */

static int fail(gguf_writer *w, char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Any failure after begin leaves the file incomplete, so the writer stops. */
static int fail(gguf_writer *w, char *err, size_t errlen, const char *fmt, ...) {
    char msg[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (err && errlen)
        snprintf(err, errlen, "%s: %s", w->path ? w->path : "gguf writer", msg);
    w->state = W_FAILED;
    return -1;
}

static int write_bytes(gguf_writer *w, const void *p, size_t n, char *err, size_t errlen) {
    if (n && fwrite(p, 1, n, w->fp) != n)
        return fail(w, err, errlen, "write failed at offset %" PRIu64 ": %s", w->pos, strerror(errno));
    w->pos += n;
    return 0;
}

static int write_padding(gguf_writer *w, char *err, size_t errlen) {
    static const uint8_t zeros[256];
    uint64_t n = align_up(w->pos, w->alignment) - w->pos;
    while (n > 0) {
        size_t k = n < sizeof zeros ? (size_t)n : sizeof zeros;
        if (write_bytes(w, zeros, k, err, errlen) != 0)
            return -1;
        n -= k;
    }
    return 0;
}

/* Everything before the data section (padding excluded), built in memory once. */
static bytes build_header(const gguf_writer *w) {
    bytes h = {0};
    put(&h, "GGUF", 4);
    put_u32(&h, 3);
    put_u64(&h, w->n_t);
    put_u64(&h, w->n_kv);
    for (size_t i = 0; i < w->n_kv; i++) {
        put_str(&h, w->kv[i].key);
        put(&h, w->kv[i].val.p, w->kv[i].val.len);
    }
    for (size_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        put_str(&h, t->name);
        put_u32(&h, t->n_dims);
        put(&h, t->ne, t->n_dims * sizeof t->ne[0]);
        put_u32(&h, (uint32_t)t->type);
        put_u64(&h, t->offset);
    }
    return h;
}

static int write_header(gguf_writer *w, char *err, size_t errlen) {
    bytes h = build_header(w);
    int rc = h.oom ? fail(w, err, errlen, "out of memory for the header") : write_bytes(w, h.p, h.len, err, errlen);
    free(h.p);
    return rc == 0 ? write_padding(w, err, errlen) : -1;
}

/* Places every tensor in the data section, each at an aligned offset; the
 * data section's size, padding included, in *data_size. */
static int assign_offsets(gguf_writer *w, uint64_t *data_size, char *err, size_t errlen) {
    if (w->err[0])
        return fail(w, err, errlen, "%s", w->err);
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        w->t[i].offset = off;
        uint64_t padded = align_up(w->t[i].nbytes, w->alignment);
        if (padded < w->t[i].nbytes || padded > UINT64_MAX - off)
            return fail(w, err, errlen, "tensor '%s': data section size overflows", w->t[i].name);
        off += padded;
    }
    *data_size = off;
    return 0;
}

int gguf_writer_layout(gguf_writer *w, uint8_t **header, size_t *header_len, uint64_t *offsets, uint64_t *data_size,
                       char *err, size_t errlen) {
    if (w->state != W_DECLARING)
        return fail(w, err, errlen, "gguf_writer_layout after gguf_writer_begin");
    if (assign_offsets(w, data_size, err, errlen) != 0)
        return -1;
    static const uint8_t zeros[256];
    bytes h = build_header(w);
    while (!h.oom && h.len % w->alignment) {
        uint64_t gap = align_up(h.len, w->alignment) - h.len;
        put(&h, zeros, gap < sizeof zeros ? (size_t)gap : sizeof zeros);
    }
    if (h.oom) {
        free(h.p);
        return fail(w, err, errlen, "out of memory for the header");
    }
    for (size_t i = 0; i < w->n_t; i++)
        offsets[i] = h.len + w->t[i].offset;
    *header = h.p;
    *header_len = h.len;
    return 0;
}

int gguf_writer_begin(gguf_writer *w, const char *path, char *err, size_t errlen) {
    if (w->state != W_DECLARING)
        return fail(w, err, errlen, "gguf_writer_begin called twice");
    w->path = strdup(path);
    if (!w->path)
        return fail(w, err, errlen, "out of memory");
    uint64_t data_size;
    if (assign_offsets(w, &data_size, err, errlen) != 0)
        return -1;
    w->fp = fopen(path, "wb");
    if (!w->fp)
        return fail(w, err, errlen, "cannot create: %s", strerror(errno));
    setvbuf(w->fp, NULL, _IOFBF, FILE_BUFFER_BYTES);
    w->state = W_WRITING;
    return write_header(w, err, errlen);
}

int gguf_writer_write_data(gguf_writer *w, const void *data, size_t len, char *err, size_t errlen) {
    const uint8_t *p = data;
    if (w->state != W_WRITING)
        return fail(w, err, errlen, "write_data outside gguf_writer_begin .. gguf_writer_close");
    while (len > 0) {
        if (w->cur == w->n_t)
            return fail(w, err, errlen, "%zu bytes of data beyond the last declared tensor", len);
        const wtensor *t = &w->t[w->cur];
        uint64_t left = t->nbytes - w->cur_done;
        size_t k = len < left ? len : (size_t)left;
        if (write_bytes(w, p, k, err, errlen) != 0)
            return -1;
        p += k;
        len -= k;
        w->cur_done += k;
        if (w->cur_done == t->nbytes) {
            if (write_padding(w, err, errlen) != 0)
                return -1;
            w->cur++;
            w->cur_done = 0;
        }
    }
    return 0;
}

int gguf_writer_close(gguf_writer *w, char *err, size_t errlen) {
    if (w->state != W_WRITING)
        return fail(w, err, errlen, "gguf_writer_close without a successful gguf_writer_begin");
    if (w->cur < w->n_t) {
        const wtensor *t = &w->t[w->cur];
        return fail(w, err, errlen, "tensor '%s' got %" PRIu64 " of its %" PRIu64 " bytes", t->name, w->cur_done,
                    t->nbytes);
    }
    FILE *fp = w->fp;
    w->fp = NULL;
    bool bad = ferror(fp) != 0;
    if (fclose(fp) != 0 || bad)
        return fail(w, err, errlen, "closing failed: %s", strerror(errno));
    w->state = W_CLOSED;
    return 0;
}
