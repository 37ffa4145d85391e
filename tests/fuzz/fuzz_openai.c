/* libFuzzer harness for the OpenAI request reader
 * (coordinator/serve/openai_request.c): any bytes as the body of
 * /v1/chat/completions (first input byte even) or /v1/completions (odd),
 * read with the Tekken-shaped vocabulary of the test data, as `relais serve`
 * reads them with a real model's tokenizer and chat template. Every body
 * must give a request or a 4xx error with a message, never a crash or a
 * leak; an accepted request's stop strings are also run through the output
 * assembler (openai_output.c) over a generated text. Seeds: corpus/openai. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "gguf.h"
#include "openai.h"
#include "tokenizer.h"

#define VOCAB RELAIS_SHARED_DIR "/models/vocab-tekken-shaped.gguf"

static gguf_file *g_f;
static rl_tokenizer *g_tok;
static rl_oai_model g_m;

static void model_init(void) {
    char err[512];
    if (g_tok)
        return;
    if (!(g_f = gguf_open(VOCAB, err, sizeof err)) || !(g_tok = rl_tok_new(g_f, err, sizeof err))) {
        fprintf(stderr, "fuzz_openai: %s\n", err);
        abort();
    }
    g_m = (rl_oai_model){g_tok, rl_chat_template_detect(g_tok, g_f), 4096, "shaped"};
}

/* The request's own prompt ids, fed back as if generated: the stop strings
 * are matched over text they may well occur in. */
static void run_output(const rl_oai_req *r) {
    rl_oai_out *o = rl_oai_out_new(g_tok, r->stop, r->n_stop, r->tools_offered, false);
    if (!o)
        return;
    for (size_t i = 0; i < r->n_prompt && i < 256; i++)
        if (!rl_oai_out_feed(o, r->prompt[i]))
            break;
    rl_oai_out_finish(o);
    size_t len;
    (void)rl_oai_out_content(o, &len);
    rl_oai_out_destroy(&o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    model_init();
    if (size == 0)
        return 0;
    bool chat = (data[0] & 1) == 0;
    rl_oai_req r;
    rl_oai_err e;
    memset(&r, 0, sizeof r);
    memset(&e, 0, sizeof e);
    if (rl_oai_req_parse(&g_m, chat, (const char *)data + 1, size - 1, &r, &e) == 0) {
        run_output(&r);
        rl_oai_req_free(&r);
    } else if (e.status < 400 || e.status > 499 || !e.message[0]) {
        abort(); /* a refusal is a client error with a message */
    }
    return 0;
}
