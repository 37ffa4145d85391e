/* GGUF reader. The file is mapped read-only as a whole and parsed once, front
 * to back, with a bounds-checked cursor: no byte is read before the cursor
 * has proved it lies inside the file, and every count is compared with the
 * bytes left before anything is allocated for it, so allocations stay
 * proportional to the file's real size whatever its header claims. Values and
 * tensor data are not copied: the index built here (key and tensor hash
 * tables, an offset table per string array) points into the mapping, and
 * pages nobody touches are never read from disk. */
#include "gguf.h"
#include "gguf_priv.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Values are read in place with memcpy, which is only right on a
 * little-endian host (x86-64 and aarch64, the targets). */
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the GGUF reader needs a little-endian host"
#endif

#define MIN_KV_BYTES 13          /* key length, value type, 1-byte value */
#define MIN_TENSOR_INFO_BYTES 32 /* name length, n_dims, one ne, type, offset */
#define DEFAULT_ALIGNMENT 32
#define NO_INDEX UINT64_MAX /* a message item that is not an array element */

/* The parse position plus what it is parsing, for error messages. */
typedef struct {
    const uint8_t *p; /* the mapping */
    uint64_t size;    /* bytes in the mapping */
    uint64_t pos;     /* next byte to read; never above size */
    char *err;        /* caller's message buffer */
    size_t errlen;
    char ctx[160]; /* "kv #5 'tokenizer.ggml.tokens'", prefixed to messages */
} cursor;

static const char *const type_names[GGUF_TYPE_COUNT] = {
    "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "str", "arr", "u64", "i64", "f64",
};

const char *gguf_type_name(gguf_type t) {
    if ((int)t < 0 || t >= GGUF_TYPE_COUNT)
        return "unknown";
    return type_names[t];
}

uint64_t gguf_type_size(gguf_type t) {
    static const uint8_t sizes[GGUF_TYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    if ((int)t < 0 || t >= GGUF_TYPE_COUNT)
        return 0;
    return sizes[t];
}

/* ---- error reporting ---------------------------------------------------- */

static bool fail(cursor *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static bool fail(cursor *c, const char *fmt, ...) {
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->ctx[0])
        rl_errf(c->err, c->errlen, "%s: %s", c->ctx, msg);
    else
        rl_errf(c->err, c->errlen, "%s", msg);
    return false;
}

/* Copies a name from the file into a message, bounded and with control bytes
 * masked, since a hostile name could be megabytes long or hold escapes. */
static void describe(char *dst, size_t n, const char *s, uint64_t len) {
    const size_t max = 96;
    size_t k = 0;
    for (uint64_t i = 0; i < len && i < max && k + 1 < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        dst[k++] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
    }
    dst[k] = '\0';
    if (len > max && k + 4 < n)
        memcpy(dst + k, "...", 4);
}

static void set_ctx(cursor *c, const char *what, int64_t i, const gguf_str *name) {
    if (!name) {
        snprintf(c->ctx, sizeof c->ctx, "%s #%" PRId64, what, i);
        return;
    }
    char shown[112];
    describe(shown, sizeof shown, name->ptr, name->len);
    snprintf(c->ctx, sizeof c->ctx, "%s #%" PRId64 " '%s'", what, i, shown);
}

static const char *label(char *buf, size_t n, const char *what, uint64_t idx) {
    if (idx == NO_INDEX)
        return what;
    snprintf(buf, n, "%s %" PRIu64, what, idx);
    return buf;
}

/* ---- bounds-checked reads ------------------------------------------------ */

static bool need(cursor *c, uint64_t n, const char *what, uint64_t idx) {
    if (n <= c->size - c->pos)
        return true;
    char buf[96];
    return fail(c, "%s (%" PRIu64 " bytes) at offset %" PRIu64 " runs past end of file (%" PRIu64 " bytes)",
                label(buf, sizeof buf, what, idx), n, c->pos, c->size);
}

static bool rd_u32(cursor *c, const char *what, uint32_t *v) {
    if (!need(c, 4, what, NO_INDEX))
        return false;
    memcpy(v, c->p + c->pos, 4);
    c->pos += 4;
    return true;
}

static bool rd_u64(cursor *c, const char *what, uint64_t *v) {
    if (!need(c, 8, what, NO_INDEX))
        return false;
    memcpy(v, c->p + c->pos, 8);
    c->pos += 8;
    return true;
}

static bool rd_str(cursor *c, const char *what, uint64_t idx, gguf_str *s) {
    char buf[96];
    if (!need(c, 8, what, idx))
        return false;
    uint64_t at = c->pos, len;
    memcpy(&len, c->p + at, 8);
    c->pos += 8;
    if (len > c->size - c->pos) {
        return fail(c, "%s length %" PRIu64 " at offset %" PRIu64 " runs past end of file (%" PRIu64 " bytes)",
                    label(buf, sizeof buf, what, idx), len, at, c->size);
    }
    s->ptr = (const char *)c->p + c->pos;
    s->len = len;
    c->pos += len;
    return true;
}

/* ---- name index ----------------------------------------------------------- */

typedef gguf_str (*name_fn)(const gguf_file *f, int64_t i);

static gguf_str kv_name(const gguf_file *f, int64_t i) { return f->kv[i].key; }

static gguf_str tensor_name(const gguf_file *f, int64_t i) {
    gguf_str s = {f->tensors[i].name, strlen(f->tensors[i].name)};
    return s;
}

static uint64_t hash_bytes(const char *s, uint64_t len) {
    uint64_t h = 14695981039346656037ull; /* FNV-1a */
    for (uint64_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static bool index_init(name_index *ix, int64_t n) {
    uint64_t slots = 8;
    while (slots < 2 * (uint64_t)n)
        slots *= 2;
    ix->slot = calloc(slots, sizeof *ix->slot);
    ix->mask = slots - 1;
    return ix->slot != NULL;
}

/* The slot holding `s`, or the empty slot where it would go. */
static uint64_t index_probe(const name_index *ix, const gguf_file *f, name_fn at, const char *s, uint64_t len) {
    uint64_t h = hash_bytes(s, len) & ix->mask;
    while (ix->slot[h]) {
        gguf_str e = at(f, ix->slot[h] - 1);
        if (e.len == len && memcmp(e.ptr, s, len) == 0)
            break;
        h = (h + 1) & ix->mask;
    }
    return h;
}

static int64_t index_find(const name_index *ix, const gguf_file *f, name_fn at, const char *s) {
    if (!ix->slot || !s)
        return -1;
    return ix->slot[index_probe(ix, f, at, s, strlen(s))] - 1;
}

/* Adds entry i; returns -1, or the index of an earlier entry of that name. */
static int64_t index_add(name_index *ix, const gguf_file *f, name_fn at, int64_t i) {
    gguf_str s = at(f, i);
    uint64_t h = index_probe(ix, f, at, s.ptr, s.len);
    if (ix->slot[h])
        return ix->slot[h] - 1;
    ix->slot[h] = i + 1;
    return -1;
}

/* ---- parsing -------------------------------------------------------------- */

static bool parse_header(gguf_file *f, cursor *c, uint64_t *n_tensors, uint64_t *n_kv) {
    if (!need(c, 4, "magic", NO_INDEX))
        return false;
    if (memcmp(c->p, "GGUF", 4) != 0) {
        return fail(c, "not a GGUF file: magic at offset 0 is %02x %02x %02x %02x, not \"GGUF\"", c->p[0], c->p[1],
                    c->p[2], c->p[3]);
    }
    c->pos = 4;
    if (!rd_u32(c, "version", &f->version))
        return false;
    uint32_t v = f->version;
    uint32_t swapped = __builtin_bswap32(v);
    if (v == 1)
        return fail(c, "GGUF version 1 (at offset 4) is not supported: only versions 2 and 3 are");
    if (v != 2 && v != 3) {
        return fail(c, "GGUF version %" PRIu32 " at offset 4 is not supported: only versions 2 and 3 are%s", v,
                    (swapped == 2 || swapped == 3) ? " (this looks like a big-endian file)" : "");
    }
    if (!rd_u64(c, "tensor count", n_tensors) || !rd_u64(c, "metadata count", n_kv))
        return false;
    uint64_t room = c->size - c->pos;
    if (*n_kv > room / MIN_KV_BYTES) {
        return fail(c, "metadata count %" PRIu64 " at offset 16 is more than a file of %" PRIu64 " bytes can hold",
                    *n_kv, c->size);
    }
    if (*n_tensors > room / MIN_TENSOR_INFO_BYTES) {
        return fail(c, "tensor count %" PRIu64 " at offset 8 is more than a file of %" PRIu64 " bytes can hold",
                    *n_tensors, c->size);
    }
    return true;
}

static bool parse_type(cursor *c, const char *what, gguf_type *t) {
    uint64_t at = c->pos;
    uint32_t v;
    if (!rd_u32(c, what, &v))
        return false;
    if (v >= GGUF_TYPE_COUNT)
        return fail(c, "%s %" PRIu32 " at offset %" PRIu64 " is not a GGUF type", what, v, at);
    *t = (gguf_type)v;
    return true;
}

static bool parse_array(cursor *c, kv_entry *e) {
    uint64_t at = c->pos;
    if (!parse_type(c, "array element type", &e->elem))
        return false;
    if (e->elem == GGUF_ARRAY)
        return fail(c, "arrays of arrays (at offset %" PRIu64 ") are not supported", at);
    if (!rd_u64(c, "array length", &e->n))
        return false;
    e->off = c->pos;
    uint64_t room = c->size - c->pos;
    if (e->elem != GGUF_STRING) {
        uint64_t sz = gguf_type_size(e->elem);
        if (e->n > room / sz) {
            return fail(
                c, "array of %" PRIu64 " %s elements at offset %" PRIu64 " runs past end of file (%" PRIu64 " bytes)",
                e->n, gguf_type_name(e->elem), e->off, c->size);
        }
        c->pos += e->n * sz;
        return true;
    }
    if (e->n > room / 8) {
        return fail(
            c, "string array of %" PRIu64 " elements at offset %" PRIu64 " runs past end of file (%" PRIu64 " bytes)",
            e->n, e->off, c->size);
    }
    e->str_off = malloc((e->n ? e->n : 1) * sizeof *e->str_off);
    if (!e->str_off)
        return fail(c, "out of memory for a string array of %" PRIu64 " elements", e->n);
    for (uint64_t i = 0; i < e->n; i++) {
        gguf_str s;
        e->str_off[i] = c->pos;
        if (!rd_str(c, "string array element", i, &s))
            return false;
    }
    return true;
}

static bool parse_value(cursor *c, kv_entry *e) {
    if (!parse_type(c, "value type", &e->type))
        return false;
    if (e->type == GGUF_ARRAY)
        return parse_array(c, e);
    e->off = c->pos;
    if (e->type == GGUF_STRING) {
        gguf_str s;
        return rd_str(c, "string value", NO_INDEX, &s);
    }
    uint64_t sz = gguf_type_size(e->type);
    if (!need(c, sz, gguf_type_name(e->type), NO_INDEX))
        return false;
    c->pos += sz;
    return true;
}

static bool parse_kvs(gguf_file *f, cursor *c, uint64_t n) {
    f->kv = calloc(n ? n : 1, sizeof *f->kv);
    if (!f->kv || !index_init(&f->kv_index, (int64_t)n))
        return fail(c, "out of memory for %" PRIu64 " metadata entries", n);
    f->n_kv = (int64_t)n;
    for (int64_t i = 0; i < (int64_t)n; i++) {
        kv_entry *e = &f->kv[i];
        set_ctx(c, "kv", i, NULL);
        if (!rd_str(c, "key", NO_INDEX, &e->key))
            return false;
        set_ctx(c, "kv", i, &e->key);
        if (!parse_value(c, e))
            return false;
        int64_t first = index_add(&f->kv_index, f, kv_name, i);
        if (first >= 0)
            return fail(c, "duplicate key (first defined by kv #%" PRId64 ")", first);
    }
    c->ctx[0] = '\0';
    return true;
}

static bool read_alignment(gguf_file *f, cursor *c) {
    int64_t i = index_find(&f->kv_index, f, kv_name, "general.alignment");
    f->alignment = DEFAULT_ALIGNMENT;
    if (i < 0)
        return true;
    const kv_entry *e = &f->kv[i];
    set_ctx(c, "kv", i, &e->key);
    if (e->type != GGUF_UINT32)
        return fail(c, "alignment must be a u32, not %s", gguf_type_name(e->type));
    uint32_t a;
    memcpy(&a, f->map + e->off, 4);
    if (a == 0 || (a & (a - 1)) != 0)
        return fail(c, "alignment %" PRIu32 " at offset %" PRIu64 " is not a nonzero power of two", a, e->off);
    f->alignment = a;
    c->ctx[0] = '\0';
    return true;
}

/* Dimensions, element count and byte size of one tensor, all overflow-checked. */
static bool parse_shape(cursor *c, gguf_tensor *t) {
    uint64_t at = c->pos;
    if (!rd_u32(c, "n_dims", &t->n_dims))
        return false;
    if (t->n_dims < 1 || t->n_dims > 4)
        return fail(c, "n_dims %" PRIu32 " at offset %" PRIu64 " is not in 1..4", t->n_dims, at);
    uint64_t elements = 1;
    for (uint32_t d = 0; d < 4; d++)
        t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        at = c->pos;
        if (!rd_u64(c, "dimension", &t->ne[d]))
            return false;
        if (t->ne[d] == 0)
            return fail(c, "ne[%" PRIu32 "] at offset %" PRIu64 " is zero", d, at);
        if (t->ne[d] > INT64_MAX / elements) {
            return fail(c, "ne[%" PRIu32 "] = %" PRIu64 " at offset %" PRIu64 " makes the element count overflow", d,
                        t->ne[d], at);
        }
        elements *= t->ne[d];
    }
    at = c->pos;
    uint32_t type;
    if (!rd_u32(c, "tensor type", &type))
        return false;
    t->type = (rl_dtype)type;
    uint32_t block = rl_dtype_block(t->type);
    if (block == 0)
        return fail(c, "tensor type %" PRIu32 " at offset %" PRIu64 " is not a known ggml type", type, at);
    if (t->ne[0] % block != 0) {
        return fail(c, "ne[0] = %" PRIu64 " is not a multiple of the %s block size %" PRIu32, t->ne[0],
                    rl_dtype_name(t->type), block);
    }
    uint64_t row = rl_dtype_row_bytes(t->type, t->ne[0]);
    uint64_t rows = elements / t->ne[0];
    if (row == 0 || rows > UINT64_MAX / row)
        return fail(c, "data size of %" PRIu64 " %s elements overflows", elements, rl_dtype_name(t->type));
    t->nbytes = row * rows;
    return true;
}

static bool parse_tensor_infos(gguf_file *f, cursor *c, uint64_t n) {
    f->tensors = calloc(n ? n : 1, sizeof *f->tensors);
    if (!f->tensors || !index_init(&f->tensor_index, (int64_t)n))
        return fail(c, "out of memory for %" PRIu64 " tensors", n);
    f->n_tensors = (int64_t)n;
    for (int64_t i = 0; i < (int64_t)n; i++) {
        gguf_tensor *t = &f->tensors[i];
        gguf_str name;
        set_ctx(c, "tensor", i, NULL);
        uint64_t at = c->pos;
        if (!rd_str(c, "name", NO_INDEX, &name))
            return false;
        set_ctx(c, "tensor", i, &name);
        if (memchr(name.ptr, '\0', name.len))
            return fail(c, "name at offset %" PRIu64 " contains a NUL byte", at);
        t->name = malloc(name.len + 1);
        if (!t->name)
            return fail(c, "out of memory for the name");
        memcpy(t->name, name.ptr, name.len);
        t->name[name.len] = '\0';
        if (!parse_shape(c, t) || !rd_u64(c, "data offset", &t->offset))
            return false;
        int64_t first = index_add(&f->tensor_index, f, tensor_name, i);
        if (first >= 0)
            return fail(c, "duplicate tensor name (first used by tensor #%" PRId64 ")", first);
    }
    c->ctx[0] = '\0';
    return true;
}

/* Runs once the data section's start is known: every tensor's bytes must be
 * aligned and lie inside the file. */
static bool place_tensors(gguf_file *f, cursor *c) {
    for (int64_t i = 0; i < f->n_tensors; i++) {
        gguf_tensor *t = &f->tensors[i];
        gguf_str name = {t->name, strlen(t->name)};
        set_ctx(c, "tensor", i, &name);
        if (t->offset % f->alignment != 0) {
            return fail(c, "data offset %" PRIu64 " is not a multiple of the alignment %" PRIu64, t->offset,
                        f->alignment);
        }
        if (t->offset > f->size)
            return fail(c, "data offset %" PRIu64 " is past end of file (%" PRIu64 " bytes)", t->offset, f->size);
        uint64_t start = f->data_offset + t->offset;
        if (start > f->size || t->nbytes > f->size - start) {
            return fail(c, "data [%" PRIu64 "+%" PRIu64 ") runs past end of file (%" PRIu64 " bytes)", start, t->nbytes,
                        f->size);
        }
        t->data = f->map + start;
    }
    c->ctx[0] = '\0';
    return true;
}

static bool parse(gguf_file *f, cursor *c) {
    uint64_t n_tensors, n_kv;
    if (!parse_header(f, c, &n_tensors, &n_kv) || !parse_kvs(f, c, n_kv) || !read_alignment(f, c) ||
        !parse_tensor_infos(f, c, n_tensors))
        return false;
    /* A file without tensors may end before the aligned start of its (empty)
     * data section; the start is still reported as the aligned offset. */
    f->data_offset = (c->pos + f->alignment - 1) & ~(f->alignment - 1);
    return place_tensors(f, c);
}

static bool map_file(gguf_file *f, const char *path, char *err, size_t errlen) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rl_errf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return false;
    }
    struct stat st;
    bool ok = false;
    if (fstat(fd, &st) != 0) {
        rl_errf(err, errlen, "%s: cannot stat: %s", path, strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        rl_errf(err, errlen, "%s: not a regular file", path);
    } else if ((uint64_t)st.st_size > SIZE_MAX) {
        rl_errf(err, errlen, "%s: file of %" PRIu64 " bytes is too large to map", path, (uint64_t)st.st_size);
    } else {
        f->size = (uint64_t)st.st_size;
        ok = true;
        if (f->size > 0) {
            void *m = mmap(NULL, (size_t)f->size, PROT_READ, MAP_PRIVATE, fd, 0);
            if (m == MAP_FAILED) {
                rl_errf(err, errlen, "%s: cannot map %" PRIu64 " bytes: %s", path, f->size, strerror(errno));
                ok = false;
            } else {
                f->map = m;
            }
        }
    }
    close(fd);
    return ok;
}

gguf_file *gguf_open(const char *path, char *err, size_t errlen) {
    if (!err)
        errlen = 0;
    if (errlen)
        err[0] = '\0';
    gguf_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        rl_errf(err, errlen, "%s: out of memory", path);
        free(f);
        return NULL;
    }
    if (!map_file(f, path, err, errlen)) {
        gguf_close(&f);
        return NULL;
    }
    cursor c = {.p = f->map, .size = f->size, .err = err, .errlen = errlen};
    if (!parse(f, &c)) {
        /* The path goes in front so a message stands on its own in a log. */
        if (errlen) {
            char *msg = strdup(err);
            if (msg) {
                rl_errf(err, errlen, "%s: %s", path, msg);
                free(msg);
            }
        }
        gguf_close(&f);
        return NULL;
    }
    return f;
}

void gguf_close(gguf_file **fp) {
    if (!fp || !*fp)
        return;
    gguf_file *f = *fp;
    for (int64_t i = 0; i < f->n_kv; i++)
        free(f->kv[i].str_off);
    for (int64_t i = 0; i < f->n_tensors; i++)
        free(f->tensors[i].name);
    free(f->kv);
    free(f->tensors);
    free(f->kv_index.slot);
    free(f->tensor_index.slot);
    if (f->map)
        munmap((void *)f->map, (size_t)f->size);
    free(f->path);
    free(f);
    *fp = NULL;
}

/* ---- file-level accessors -------------------------------------------------- */

uint32_t gguf_version(const gguf_file *f) { return f->version; }
uint64_t gguf_file_size(const gguf_file *f) { return f->size; }
uint64_t gguf_alignment(const gguf_file *f) { return f->alignment; }
uint64_t gguf_data_offset(const gguf_file *f) { return f->data_offset; }
const char *gguf_path(const gguf_file *f) { return f->path; }
int64_t gguf_n_kv(const gguf_file *f) { return f->n_kv; }
int64_t gguf_n_tensors(const gguf_file *f) { return f->n_tensors; }

int64_t gguf_find_key(const gguf_file *f, const char *key) { return index_find(&f->kv_index, f, kv_name, key); }

gguf_str gguf_kv_key(const gguf_file *f, int64_t i) {
    gguf_str none = {NULL, 0};
    return (i >= 0 && i < f->n_kv) ? f->kv[i].key : none;
}

gguf_type gguf_kv_type(const gguf_file *f, int64_t i) {
    return (i >= 0 && i < f->n_kv) ? f->kv[i].type : GGUF_TYPE_COUNT;
}

const gguf_tensor *gguf_tensor_at(const gguf_file *f, int64_t i) {
    return (i >= 0 && i < f->n_tensors) ? &f->tensors[i] : NULL;
}

const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name) {
    int64_t i = index_find(&f->tensor_index, f, tensor_name, name);
    return i < 0 ? NULL : &f->tensors[i];
}

/* ---- paging hints ------------------------------------------------------------- */

void gguf_advise(const gguf_file *f, const void *ptr, uint64_t len, bool willneed) {
    uintptr_t base = (uintptr_t)f->map, p = (uintptr_t)ptr;
    if (!f->map || len == 0 || p < base || p - base >= f->size)
        return;
    uint64_t begin = p - base;
    uint64_t end = len > f->size - begin ? f->size : begin + len;
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    /* Pages wanted are rounded outwards; pages to drop inwards, so a page
     * shared with a neighbouring tensor someone does use is left alone. */
    if (willneed) {
        begin &= ~(page - 1);
        end = (end + page - 1) & ~(page - 1);
    } else {
        begin = (begin + page - 1) & ~(page - 1);
        end = end == f->size ? (end + page - 1) & ~(page - 1) : end & ~(page - 1);
    }
    if (end <= begin)
        return;
    void *at = (void *)(f->map + begin);
    size_t n = (size_t)(end - begin);
    /* Hints only: a failure costs speed, never correctness, so it is ignored. */
    if (willneed) {
        (void)madvise(at, n, MADV_NORMAL);
        (void)madvise(at, n, MADV_WILLNEED);
    } else {
        /* No read-ahead into the range, and pages already resident (say from
         * a checksum pass) leave this process; the file is mapped read-only,
         * so dropping them loses nothing. */
        (void)madvise(at, n, MADV_RANDOM);
        (void)madvise(at, n, MADV_DONTNEED);
    }
}

/* The whole pages holding [ptr, ptr + len), or false when the range is not
 * inside the mapping. */
static bool page_range(const gguf_file *f, const void *ptr, uint64_t len, uintptr_t *begin, uintptr_t *end) {
    uintptr_t base = (uintptr_t)f->map, p = (uintptr_t)ptr;
    if (!f->map || p < base || p - base > f->size || len > f->size - (p - base))
        return false;
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    *begin = p & ~(page - 1);
    *end = (p + len + page - 1) & ~(page - 1);
    return true;
}

int gguf_load_range(gguf_file *f, const void *ptr, uint64_t len) {
    uintptr_t begin, end;
    if (!page_range(f, ptr, len, &begin, &end))
        return -1;
    void *m = mmap((void *)begin, end - begin, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (m == MAP_FAILED)
        return -1;
    (void)madvise(m, end - begin, MADV_HUGEPAGE); /* a hint: without it the pages are small */
    const int fd = open(f->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    uint64_t off = begin - (uintptr_t)f->map, stop = end - (uintptr_t)f->map;
    if (stop > f->size)
        stop = f->size;
    while (off < stop) {
        const ssize_t got = pread(fd, (void *)((uintptr_t)f->map + off), (size_t)(stop - off), (off_t)off);
        if (got <= 0 && !(got < 0 && errno == EINTR))
            break;
        off += got > 0 ? (uint64_t)got : 0;
    }
    close(fd);
    return off < stop ? -1 : 0;
}
