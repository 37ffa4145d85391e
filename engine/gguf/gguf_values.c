/* Typed access to GGUF metadata values and their one-line formatting for
 * `relais inspect`. The parser (gguf.c) has already proved every value lies
 * inside the mapping, so reads here only check the type asked for and
 * whether the value fits it. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "gguf.h"
#include "gguf_priv.h"

#define FORMAT_ARRAY_ITEMS 8 /* array elements gguf_format_value shows */
#define FORMAT_STR_BYTES 48  /* bytes shown of each string in an array */

/* ---- typed values ------------------------------------------------------------ */

/* An integer of any GGUF width, kept so both signed and unsigned callers can
 * tell whether it fits. */
typedef struct {
    bool neg;   /* below zero; then only `i` is meaningful */
    uint64_t u; /* the value when not negative */
    int64_t i;  /* the value when it fits in int64 */
} wide_int;

static bool read_int(gguf_type t, const uint8_t *p, wide_int *w) {
    uint64_t u = 0;
    int64_t s = 0;
    bool is_signed = false;
    switch (t) {
    case GGUF_UINT8: {
        uint8_t v;
        memcpy(&v, p, 1);
        u = v;
        break;
    }
    case GGUF_UINT16: {
        uint16_t v;
        memcpy(&v, p, 2);
        u = v;
        break;
    }
    case GGUF_UINT32: {
        uint32_t v;
        memcpy(&v, p, 4);
        u = v;
        break;
    }
    case GGUF_UINT64: {
        memcpy(&u, p, 8);
        break;
    }
    case GGUF_INT8: {
        int8_t v;
        memcpy(&v, p, 1);
        s = v;
        is_signed = true;
        break;
    }
    case GGUF_INT16: {
        int16_t v;
        memcpy(&v, p, 2);
        s = v;
        is_signed = true;
        break;
    }
    case GGUF_INT32: {
        int32_t v;
        memcpy(&v, p, 4);
        s = v;
        is_signed = true;
        break;
    }
    case GGUF_INT64: {
        memcpy(&s, p, 8);
        is_signed = true;
        break;
    }
    default:
        return false;
    }
    if (is_signed) {
        w->neg = s < 0;
        w->i = s;
        w->u = s < 0 ? 0 : (uint64_t)s;
    } else {
        w->neg = false;
        w->u = u;
        w->i = u <= INT64_MAX ? (int64_t)u : INT64_MAX;
    }
    return true;
}

static bool int_to_i64(const wide_int *w, int64_t *out) {
    if (!w->neg && w->u > INT64_MAX)
        return false;
    *out = w->i;
    return true;
}

static const kv_entry *find_kv(const gguf_file *f, const char *key) {
    int64_t i = gguf_find_key(f, key);
    return i < 0 ? NULL : &f->kv[i];
}

static bool scalar_int(const gguf_file *f, const char *key, wide_int *w) {
    const kv_entry *e = find_kv(f, key);
    return e && read_int(e->type, f->map + e->off, w);
}

bool gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out) {
    wide_int w;
    if (!scalar_int(f, key, &w) || w.neg || w.u > UINT32_MAX)
        return false;
    *out = (uint32_t)w.u;
    return true;
}

bool gguf_get_u64(const gguf_file *f, const char *key, uint64_t *out) {
    wide_int w;
    if (!scalar_int(f, key, &w) || w.neg)
        return false;
    *out = w.u;
    return true;
}

bool gguf_get_i64(const gguf_file *f, const char *key, int64_t *out) {
    wide_int w;
    return scalar_int(f, key, &w) && int_to_i64(&w, out);
}

static bool read_float(gguf_type t, const uint8_t *p, double *out) {
    if (t == GGUF_FLOAT32) {
        float v;
        memcpy(&v, p, 4);
        *out = v;
        return true;
    }
    if (t == GGUF_FLOAT64) {
        memcpy(out, p, 8);
        return true;
    }
    return false;
}

bool gguf_get_f32(const gguf_file *f, const char *key, float *out) {
    const kv_entry *e = find_kv(f, key);
    double v;
    if (!e || !read_float(e->type, f->map + e->off, &v))
        return false;
    *out = (float)v;
    return true;
}

bool gguf_get_bool(const gguf_file *f, const char *key, bool *out) {
    const kv_entry *e = find_kv(f, key);
    if (!e || e->type != GGUF_BOOL)
        return false;
    *out = f->map[e->off] != 0;
    return true;
}

static gguf_str str_at(const gguf_file *f, uint64_t off) {
    gguf_str s;
    memcpy(&s.len, f->map + off, 8);
    s.ptr = (const char *)f->map + off + 8;
    return s;
}

bool gguf_get_str(const gguf_file *f, const char *key, gguf_str *out) {
    const kv_entry *e = find_kv(f, key);
    if (!e || e->type != GGUF_STRING)
        return false;
    *out = str_at(f, e->off);
    return true;
}

bool gguf_get_arr(const gguf_file *f, const char *key, gguf_type *elem, uint64_t *n, const void **data) {
    const kv_entry *e = find_kv(f, key);
    if (!e || e->type != GGUF_ARRAY)
        return false;
    if (elem)
        *elem = e->elem;
    if (n)
        *n = e->n;
    if (data)
        *data = e->elem == GGUF_STRING ? NULL : f->map + e->off;
    return true;
}

gguf_str gguf_arr_str(const gguf_file *f, const char *key, uint64_t i) {
    const kv_entry *e = find_kv(f, key);
    if (!e || e->type != GGUF_ARRAY || e->elem != GGUF_STRING || i >= e->n) {
        gguf_str none = {NULL, 0};
        return none;
    }
    return str_at(f, e->str_off[i]);
}

/* Element i of a numeric or bool array, or NULL. */
static const uint8_t *num_elem(const gguf_file *f, const char *key, uint64_t i, gguf_type *t) {
    const kv_entry *e = find_kv(f, key);
    if (!e || e->type != GGUF_ARRAY || e->elem == GGUF_STRING || i >= e->n)
        return NULL;
    *t = e->elem;
    return f->map + e->off + i * gguf_type_size(e->elem);
}

bool gguf_arr_i64(const gguf_file *f, const char *key, uint64_t i, int64_t *out) {
    gguf_type t;
    const uint8_t *p = num_elem(f, key, i, &t);
    wide_int w;
    if (!p)
        return false;
    if (t == GGUF_BOOL) {
        *out = *p != 0;
        return true;
    }
    return read_int(t, p, &w) && int_to_i64(&w, out);
}

bool gguf_arr_f32(const gguf_file *f, const char *key, uint64_t i, float *out) {
    gguf_type t;
    const uint8_t *p = num_elem(f, key, i, &t);
    wide_int w;
    double v;
    if (!p)
        return false;
    if (t == GGUF_BOOL)
        v = *p != 0;
    else if (read_int(t, p, &w))
        v = w.neg ? (double)w.i : (double)w.u;
    else if (!read_float(t, p, &v))
        return false;
    *out = (float)v;
    return true;
}

/* ---- formatting ------------------------------------------------------------- */

/* Appends into a fixed buffer; once it overflows, the end becomes "...". */
typedef struct {
    char *buf;  /* caller's buffer */
    size_t cap; /* its size */
    size_t len; /* characters written, excluding the NUL */
    bool full;  /* something did not fit */
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->full || b->cap == 0)
        return;
    size_t room = b->cap - 1 - b->len;
    if (n > room) {
        n = room;
        b->full = true;
    }
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    b->buf[b->len] = '\0';
}

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sb_printf(sbuf *b, const char *fmt, ...) {
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        sb_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* A string in double quotes with quotes and control bytes escaped, cut after
 * `max` bytes (at a UTF-8 character boundary). */
static void sb_quoted(sbuf *b, gguf_str s, uint64_t max) {
    uint64_t n = s.len;
    if (n > max) {
        n = max;
        while (n > 0 && ((unsigned char)s.ptr[n] & 0xC0) == 0x80)
            n--;
    }
    sb_put(b, "\"", 1);
    for (uint64_t i = 0; i < n && !b->full; i++) {
        unsigned char ch = (unsigned char)s.ptr[i];
        if (ch == '"' || ch == '\\')
            sb_printf(b, "\\%c", ch);
        else if (ch == '\n')
            sb_put(b, "\\n", 2);
        else if (ch == '\t')
            sb_put(b, "\\t", 2);
        else if (ch < 0x20 || ch == 0x7f)
            sb_printf(b, "\\x%02x", ch);
        else
            sb_put(b, (const char *)&ch, 1);
    }
    if (n < s.len)
        sb_put(b, "...", 3);
    sb_put(b, "\"", 1);
}

static void sb_scalar(sbuf *b, gguf_type t, const uint8_t *p) {
    wide_int w;
    double v;
    if (t == GGUF_BOOL) {
        sb_printf(b, "%s", *p ? "true" : "false");
    } else if (read_float(t, p, &v)) {
        sb_printf(b, t == GGUF_FLOAT32 ? "%.7g" : "%.15g", v);
    } else if (read_int(t, p, &w)) {
        if (w.neg)
            sb_printf(b, "%" PRId64, w.i);
        else
            sb_printf(b, "%" PRIu64, w.u);
    }
}

void gguf_format_value(const gguf_file *f, int64_t i, char *buf, size_t buflen) {
    sbuf b = {buf, buflen, 0, false};
    if (buflen)
        buf[0] = '\0';
    if (i < 0 || i >= f->n_kv)
        return;
    const kv_entry *e = &f->kv[i];
    if (e->type == GGUF_STRING) {
        sb_quoted(&b, str_at(f, e->off), UINT64_MAX);
    } else if (e->type != GGUF_ARRAY) {
        sb_scalar(&b, e->type, f->map + e->off);
    } else {
        sb_printf(&b, "[%s x %" PRIu64 "]", gguf_type_name(e->elem), e->n);
        uint64_t shown = e->n < FORMAT_ARRAY_ITEMS ? e->n : FORMAT_ARRAY_ITEMS;
        for (uint64_t k = 0; k < shown; k++) {
            sb_put(&b, k ? ", " : " ", k ? 2 : 1);
            if (e->elem == GGUF_STRING)
                sb_quoted(&b, str_at(f, e->str_off[k]), FORMAT_STR_BYTES);
            else
                sb_scalar(&b, e->elem, f->map + e->off + k * gguf_type_size(e->elem));
        }
        if (shown < e->n)
            sb_put(&b, ", ...", 5);
    }
    if (b.full && buflen >= 4)
        memcpy(buf + buflen - 4, "...", 4);
}
