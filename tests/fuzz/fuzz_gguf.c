/* libFuzzer harness for the GGUF reader (engine/gguf/gguf.c): any bytes as a
 * file, opened, and when the header parses every key formatted, every
 * string array read, every tensor looked up by name, and a tokenizer built
 * from the vocabulary keys (the reader's largest consumer of untrusted
 * arrays). A malformed file must give an error, never a crash, a leak or
 * an allocation out of proportion to its size. Seeds: corpus/gguf. */
#include <string.h>
#include "fuzz_util.h"
#include "gguf.h"
#include "tokenizer.h"

static void walk(const gguf_file *f) {
    char buf[256];
    for (int64_t i = 0; i < gguf_n_kv(f); i++) {
        gguf_format_value(f, i, buf, sizeof buf);
        gguf_str key = gguf_kv_key(f, i);
        if (gguf_kv_type(f, i) != GGUF_ARRAY || key.len >= sizeof buf)
            continue;
        memcpy(buf, key.ptr, key.len);
        buf[key.len] = 0;
        gguf_type elem;
        uint64_t n;
        if (!gguf_get_arr(f, buf, &elem, &n, NULL))
            continue;
        for (uint64_t k = 0; k < n && k < 64; k++) {
            int64_t iv;
            float fv;
            (void)gguf_arr_str(f, buf, k);
            (void)gguf_arr_i64(f, buf, k, &iv);
            (void)gguf_arr_f32(f, buf, k, &fv);
        }
    }
    for (int64_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        if (t && gguf_find_tensor(f, t->name) != t)
            abort(); /* every listed tensor is found by its name */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[64], err[512];
    int fd = fuzz_memfd(data, size, path, sizeof path);
    if (fd < 0)
        return 0;
    gguf_file *f = gguf_open(path, err, sizeof err);
    close(fd);
    if (!f)
        return 0;
    walk(f);
    rl_tokenizer *t = rl_tok_new(f, err, sizeof err);
    if (t) {
        int32_t *ids = NULL;
        size_t n = 0;
        if (rl_tok_encode(t, "Hello [INST] world", 18, true, true, &ids, &n) == 0)
            free(ids);
        rl_tok_destroy(&t);
    }
    gguf_close(&f);
    return 0;
}
