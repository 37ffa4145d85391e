/* The wire layer on its own, in one process: Envelope framing over inproc
 * sockets (malformed bytes, other versions, missing bodies and extra frames
 * are refused with the right code), the validation of Assign and Forward,
 * activation encoding (f32, f16, and block-scaled int16: its sizes, error
 * bound, zeros, outliers, non-finite values and hostile bytes), key files,
 * the ZAP policy, and the file hash cache. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <fcntl.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>
#include "curve.h"
#include "filehash.h"
#include "testutil.h"
#include "wire.h"

static char g_dir[TU_DIR_MAX];

/* ---- the largest frames an assignment allows ---- */

enum { BIG_SEGS = 16, BIG_TOKENS = 4 }; /* 16 sessions verifying 4 tokens each: a max_batch of 64 */

/* Every field of a Sampling at its longest under b: a full mask, n_ctx ids
 * of history, WIRE_MAX_TOP top logits, a draft of RL_Q_MAX ids per drafted
 * token. The arrays are the caller's. */
static void big_sampling(const wire_bounds *b, Relais__Sampling *s, int32_t *hist, uint8_t *mask, Relais__DraftDist *dd,
                         Relais__DraftDist **dp, int32_t *ids, float *probs) {
    relais__sampling__init(s);
    s->temperature = 1.5f, s->top_k = INT32_MAX, s->top_p = 0.9f, s->min_p = 0.1f, s->repeat_penalty = 1.1f;
    s->frequency_penalty = -2, s->presence_penalty = -2, s->seed = UINT64_MAX, s->top_logits = WIRE_MAX_TOP;
    s->stream = s->samples_before = s->window = UINT32_MAX;
    for (uint32_t i = 0; i < b->n_ctx; i++)
        hist[i] = (int32_t)b->n_vocab - 1;
    s->history = hist, s->n_history = b->n_ctx;
    memset(mask, 0xff, (b->n_vocab + 7) / 8);
    s->allowed = (ProtobufCBinaryData){(b->n_vocab + 7) / 8, mask};
    for (int j = 0; j < RL_Q_MAX; j++)
        ids[j] = (int32_t)b->n_vocab - 1 - j, probs[j] = 1.0f / RL_Q_MAX;
    for (int k = 0; k < BIG_TOKENS - 1; k++) {
        relais__draft_dist__init(&dd[k]);
        dd[k].token = ids[0], dd[k].ids = ids, dd[k].n_ids = RL_Q_MAX, dd[k].probs = probs, dd[k].n_probs = RL_Q_MAX;
        dp[k] = &dd[k];
    }
    s->draft = dp, s->n_draft = BIG_TOKENS - 1;
}

/* The largest legal Forward under Tekken's vocabulary (every segment
 * sampling with a full mask and a sampled draft, the longest history, the
 * most top logits, drops and stage times) encodes within wire_forward_max
 * and passes the receiving checks; one id, byte or entry more is refused
 * in words. The largest Result fits wire_result_max, and any Result the
 * protocol allows fits the coordinator's result socket. */
static void test_largest_frames(void **state) {
    (void)state;
    const wire_bounds b = {BIG_SEGS * BIG_TOKENS, BIG_SEGS, 4096, 512, 131072};
    char err[256];
    static int32_t hist[BIG_SEGS][4097];
    static uint8_t mask[BIG_SEGS][131072 / 8 + 1];
    static Relais__DraftDist dd[BIG_SEGS][BIG_TOKENS];
    Relais__DraftDist *dp[BIG_SEGS][BIG_TOKENS];
    int32_t ids[RL_Q_MAX];
    float probs[RL_Q_MAX];
    Relais__Sampling smp[BIG_SEGS];
    Relais__Segment seg[BIG_SEGS], *segp[BIG_SEGS];
    uint64_t drops[BIG_SEGS];
    float stages[WIRE_MAX_STAGES - 1];
    for (int i = 0; i < WIRE_MAX_STAGES - 1; i++)
        stages[i] = 1e30f;
    for (int i = 0; i < BIG_SEGS; i++) {
        big_sampling(&b, &smp[i], hist[i], mask[i], dd[i], dp[i], ids, probs);
        relais__segment__init(&seg[i]);
        seg[i].session_id = drops[i] = UINT64_MAX - (uint64_t)i;
        seg[i].pos = b.n_ctx - BIG_TOKENS, seg[i].n_tokens = BIG_TOKENS, seg[i].n_ctx = b.n_ctx;
        seg[i].sampling = &smp[i];
        seg[i].sample = seg[i].sgemm = seg[i].verify = seg[i].rewind = true;
        segp[i] = &seg[i];
    }
    const size_t act = wire_activations_max(b.max_batch, b.dim);
    uint8_t *acts = calloc(1, act);
    assert_non_null(acts);
    Relais__Forward f = RELAIS__FORWARD__INIT;
    f.dtype = RELAIS__DTYPE__DTYPE_F32, f.activations = (ProtobufCBinaryData){act, acts}, f.step_id = UINT64_MAX;
    f.segments = segp, f.n_segments = BIG_SEGS, f.drop_sessions = drops, f.n_drop_sessions = BIG_SEGS;
    f.stage_seconds = stages, f.n_stage_seconds = WIRE_MAX_STAGES - 1;
    Relais__Envelope env = RELAIS__ENVELOPE__INIT;
    env.version = UINT32_MAX, env.body_case = RELAIS__ENVELOPE__BODY_FORWARD, env.forward = &f;
    const size_t packed = relais__envelope__get_packed_size(&env);
    const int64_t bound = wire_forward_max(&b);
    printf("largest Forward: %zu bytes, bound %lld\n", packed, (long long)bound);
    assert_true((int64_t)packed <= bound);
    assert_true((int64_t)packed > bound * 9 / 10); /* and the bound is not loose by much */
    uint8_t *buf = malloc(packed);
    assert_non_null(buf);
    relais__envelope__pack(&env, buf);
    Relais__Envelope *got = relais__envelope__unpack(NULL, packed, buf);
    assert_non_null(got);
    assert_int_equal(got->forward->n_segments, BIG_SEGS);
    for (size_t i = 0; i < got->forward->n_segments; i++) {
        const Relais__Segment *g = got->forward->segments[i];
        assert_int_equal(wire_check_segment(g, err, sizeof err), RELAIS__ERROR_CODE__ERR_NONE);
        assert_int_equal(wire_check_sampling(g->sampling, b.n_vocab, b.n_ctx, err, sizeof err),
                         RELAIS__ERROR_CODE__ERR_NONE);
    }
    relais__envelope__free_unpacked(got, NULL);
    free(buf);
    /* one more of each is refused with a sentence */
    Relais__Sampling *s = &smp[0];
    hist[0][b.n_ctx] = 1, s->n_history++;
    assert_int_equal(wire_check_sampling(s, b.n_vocab, b.n_ctx, err, sizeof err), RELAIS__ERROR_CODE__ERR_MALFORMED);
    assert_non_null(strstr(err, "more than the context of 4096"));
    s->n_history--, s->allowed.len++;
    assert_int_equal(wire_check_sampling(s, b.n_vocab, b.n_ctx, err, sizeof err), RELAIS__ERROR_CODE__ERR_MALFORMED);
    assert_non_null(strstr(err, "allowed-ids mask of 16385 bytes"));
    s->allowed.len--, s->top_logits++;
    assert_int_equal(wire_check_sampling(s, b.n_vocab, b.n_ctx, err, sizeof err), RELAIS__ERROR_CODE__ERR_MALFORMED);
    s->top_logits--;
    int32_t ids33[RL_Q_MAX + 1];
    float probs33[RL_Q_MAX + 1];
    for (int j = 0; j <= RL_Q_MAX; j++)
        ids33[j] = j, probs33[j] = 1.0f / (RL_Q_MAX + 1);
    dd[0][0].token = 0, dd[0][0].ids = ids33, dd[0][0].probs = probs33,
    dd[0][0].n_ids = dd[0][0].n_probs = RL_Q_MAX + 1;
    assert_int_equal(wire_check_sampling(s, b.n_vocab, b.n_ctx, err, sizeof err), RELAIS__ERROR_CODE__ERR_MALFORMED);
    assert_non_null(strstr(err, "1 to 32 of each"));
    s->n_draft++; /* a draft distribution more than the segment's tokens after its first */
    assert_int_equal(wire_check_segment(&seg[0], err, sizeof err), RELAIS__ERROR_CODE__ERR_MALFORMED);
    s->n_draft--, seg[0].sample = seg[0].verify = false; /* a Sampling where nothing is sampled */
    assert_int_equal(wire_check_segment(&seg[0], err, sizeof err), RELAIS__ERROR_CODE__ERR_MALFORMED);
    assert_non_null(strstr(err, "carries a Sampling but does not sample"));
    free(acts);

    /* the largest Result: an id per token, WIRE_MAX_TOP top logits */
    Relais__SegmentResult sr[BIG_SEGS], *srp[BIG_SEGS];
    static Relais__TopLogit top[WIRE_MAX_TOP];
    Relais__TopLogit *topp[WIRE_MAX_TOP];
    int32_t vids[BIG_TOKENS];
    for (int j = 0; j < BIG_TOKENS; j++)
        vids[j] = (int32_t)b.n_vocab - 1;
    for (int t = 0; t < WIRE_MAX_TOP; t++) {
        relais__top_logit__init(&top[t]);
        top[t].id = (int32_t)b.n_vocab - 1, top[t].logit = 1e30f, topp[t] = &top[t];
    }
    for (int i = 0; i < BIG_SEGS; i++) {
        relais__segment_result__init(&sr[i]);
        sr[i].session_id = UINT64_MAX - (uint64_t)i, sr[i].id = (int32_t)b.n_vocab - 1, sr[i].pos = b.n_ctx;
        sr[i].top_lse = sr[i].chosen_logit = 1e30f, sr[i].ids = vids, sr[i].n_ids = BIG_TOKENS;
        sr[i].top = topp + i * (WIRE_MAX_TOP / BIG_SEGS), sr[i].n_top = WIRE_MAX_TOP / BIG_SEGS;
        srp[i] = &sr[i];
    }
    float all_stages[WIRE_MAX_STAGES];
    for (int i = 0; i < WIRE_MAX_STAGES; i++)
        all_stages[i] = 1e30f;
    Relais__Result r = RELAIS__RESULT__INIT;
    r.step_id = UINT64_MAX, r.results = srp, r.n_results = BIG_SEGS;
    r.stage_seconds = all_stages, r.n_stage_seconds = WIRE_MAX_STAGES;
    Relais__Envelope renv = RELAIS__ENVELOPE__INIT;
    renv.version = UINT32_MAX, renv.body_case = RELAIS__ENVELOPE__BODY_RESULT, renv.result = &r;
    const size_t rpacked = relais__envelope__get_packed_size(&renv);
    printf("largest Result: %zu bytes, bound %lld\n", rpacked, (long long)wire_result_max(&b));
    assert_true((int64_t)rpacked <= wire_result_max(&b));
    const wire_bounds most = {WIRE_MAX_BATCH, WIRE_MAX_BATCH, UINT32_MAX, 1, UINT32_MAX};
    assert_true(wire_result_max(&most) <= WIRE_CONTROL_MAX);

    /* a real configuration: Tekken's vocabulary, width 5120 (Ministral 3
     * 14B), the serve defaults (micro-batches of 64, here 16 sessions) at
     * 4096 positions and at 262144 (the model's context) fits the default
     * 64 MiB of relais-node; a batch of 4096 such tokens does not, and the
     * node refuses that Assign (node_stage.c, check_fit). */
    const wire_bounds ctx4k = {64, 16, 4096, 5120, 131072}, ctx256k = {64, 16, 262144, 5120, 131072},
                      wide = {4096, 16, 4096, 5120, 131072};
    printf("Tekken, dim 5120, batch 64, 16 sessions: %.1f MiB at 4096 positions, %.1f MiB at 262144; "
           "batch 4096: %.1f MiB\n",
           wire_forward_max(&ctx4k) / 1048576.0, wire_forward_max(&ctx256k) / 1048576.0,
           wire_forward_max(&wide) / 1048576.0);
    assert_true(wire_forward_max(&ctx4k) < (64 << 20) && wire_forward_max(&ctx256k) < (64 << 20));
    assert_true(wire_forward_max(&wide) > (64 << 20));
}

/* ---- framing ---- */

typedef struct {
    void *ctx, *router, *dealer;
} link_pair;

static void link_open(link_pair *l, const char *name) {
    char err[256], ep[64];
    snprintf(ep, sizeof ep, "inproc://%s", name);
    l->ctx = zmq_ctx_new();
    l->router = wire_socket(l->ctx, ZMQ_ROUTER, 1 << 20, err, sizeof err);
    l->dealer = wire_socket(l->ctx, ZMQ_DEALER, 1 << 20, err, sizeof err);
    assert_non_null(l->router);
    assert_non_null(l->dealer);
    assert_int_equal(zmq_bind(l->router, ep), 0);
    assert_int_equal(zmq_connect(l->dealer, ep), 0);
}

static void link_close(link_pair *l) {
    zmq_close(l->dealer);
    zmq_close(l->router);
    zmq_ctx_term(l->ctx);
}

static wire_msg *recv_within(void *sock, bool routed, int ms) {
    zmq_pollitem_t it = {sock, 0, ZMQ_POLLIN, 0};
    return zmq_poll(&it, 1, ms) > 0 ? wire_msg_recv(sock, routed) : NULL;
}

/* What the router makes of `len` raw bytes from the dealer. */
static Relais__ErrorCode code_of_raw(link_pair *l, const void *data, size_t len, char *why, size_t whylen) {
    assert_int_equal(zmq_send(l->dealer, data, len, 0), (int)len);
    wire_msg *m = recv_within(l->router, true, 2000);
    assert_non_null(m);
    Relais__ErrorCode code = wire_msg_code(m);
    snprintf(why, whylen, "%s", wire_msg_error(m));
    assert_true(code == RELAIS__ERROR_CODE__ERR_NONE ? wire_msg_env(m) != NULL : wire_msg_env(m) == NULL);
    wire_msg_destroy(&m);
    assert_null(m);
    return code;
}

static void test_roundtrip(void **state) {
    (void)state;
    link_pair l;
    link_open(&l, "roundtrip");
    char err[256];
    float x[2 * 8];
    for (int i = 0; i < 16; i++)
        x[i] = (float)i * 0.25f - 1.0f;
    Relais__Segment g = RELAIS__SEGMENT__INIT, *segs[1] = {&g};
    g.session_id = 42, g.pos = 7, g.n_tokens = 2, g.sgemm = true;
    Relais__Forward f = RELAIS__FORWARD__INIT;
    f.segments = segs, f.n_segments = 1, f.step_id = 9;
    f.activations = (ProtobufCBinaryData){sizeof x, (uint8_t *)x};
    Relais__Envelope env = RELAIS__ENVELOPE__INIT;
    env.body_case = RELAIS__ENVELOPE__BODY_FORWARD;
    env.forward = &f;
    assert_int_equal(wire_send(l.dealer, NULL, 0, &env, err, sizeof err), 0);
    wire_msg *m = recv_within(l.router, true, 2000);
    assert_non_null(m);
    assert_int_equal(wire_msg_code(m), RELAIS__ERROR_CODE__ERR_NONE);
    const Relais__Envelope *e = wire_msg_env(m);
    assert_int_equal(e->version, WIRE_VERSION);
    assert_int_equal(e->body_case, RELAIS__ENVELOPE__BODY_FORWARD);
    assert_int_equal(e->forward->n_segments, 1);
    assert_int_equal(e->forward->segments[0]->session_id, 42);
    assert_int_equal(e->forward->segments[0]->pos, 7);
    assert_true(e->forward->segments[0]->sgemm);
    assert_int_equal(e->forward->activations.len, sizeof x);
    assert_memory_equal(e->forward->activations.data, x, sizeof x);
    assert_null(wire_msg_peer_key(m)); /* no ZAP handler on this link */
    size_t rid_len;
    const uint8_t *rid = wire_msg_routing_id(m, &rid_len);
    assert_true(rid_len > 0);
    assert_int_equal(
        wire_send_error(l.router, rid, rid_len, RELAIS__ERROR_CODE__ERR_RANGE, 42, 9, "too far", err, sizeof err), 0);
    wire_msg *r = recv_within(l.dealer, false, 2000);
    assert_non_null(r);
    assert_int_equal(wire_msg_env(r)->error->code, RELAIS__ERROR_CODE__ERR_RANGE);
    assert_string_equal(wire_msg_env(r)->error->message, "too far");
    assert_string_equal(wire_code_name(RELAIS__ERROR_CODE__ERR_RANGE), "ERR_RANGE");
    assert_string_equal(wire_body_name(RELAIS__ENVELOPE__BODY_HEARTBEAT), "heartbeat");
    assert_string_equal(wire_body_name(19), "unknown message"); /* KvTruncate's field, reserved */
    wire_msg_destroy(&r);
    wire_msg_destroy(&m);
    /* a peer that is gone: ROUTER_MANDATORY turns the reply into an error */
    assert_int_equal(wire_send_error(l.router, (const uint8_t *)"nobody", 6, RELAIS__ERROR_CODE__ERR_NONE, 0, 0, "",
                                     err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "no longer connected"));
    link_close(&l);
}

static void test_refused_frames(void **state) {
    (void)state;
    link_pair l;
    link_open(&l, "refused");
    char why[256];
    uint8_t buf[256];
    assert_int_equal(code_of_raw(&l, "\xff\xff\xff\xff garbage", 13, why, sizeof why),
                     RELAIS__ERROR_CODE__ERR_MALFORMED);
    assert_non_null(strstr(why, "not a relais Envelope"));
    /* a valid Envelope cut short */
    Relais__Hello h = RELAIS__HELLO__INIT;
    h.coordinator_name = "a coordinator with a long name";
    Relais__Envelope env = RELAIS__ENVELOPE__INIT;
    env.version = WIRE_VERSION;
    env.body_case = RELAIS__ENVELOPE__BODY_HELLO;
    env.hello = &h;
    size_t n = relais__envelope__pack(&env, buf);
    assert_int_equal(code_of_raw(&l, buf, n - 5, why, sizeof why), RELAIS__ERROR_CODE__ERR_MALFORMED);
    assert_int_equal(code_of_raw(&l, buf, n, why, sizeof why), RELAIS__ERROR_CODE__ERR_NONE);
    /* another protocol version: a newer one, and version 1 (whose Forward
     * and Result carried a single session); the refusal names both */
    env.version = WIRE_VERSION + 1;
    n = relais__envelope__pack(&env, buf);
    assert_int_equal(code_of_raw(&l, buf, n, why, sizeof why), RELAIS__ERROR_CODE__ERR_VERSION);
    assert_non_null(strstr(why, "version 3"));
    assert_int_equal(WIRE_VERSION, 2);
    env.version = 1;
    n = relais__envelope__pack(&env, buf);
    assert_int_equal(code_of_raw(&l, buf, n, why, sizeof why), RELAIS__ERROR_CODE__ERR_VERSION);
    assert_non_null(strstr(why, "protocol version 1, this side speaks version 2"));
    /* no body */
    env = (Relais__Envelope)RELAIS__ENVELOPE__INIT;
    env.version = WIRE_VERSION;
    n = relais__envelope__pack(&env, buf);
    assert_int_equal(code_of_raw(&l, buf, n, why, sizeof why), RELAIS__ERROR_CODE__ERR_MALFORMED);
    assert_non_null(strstr(why, "without"));
    /* two frames where one was expected */
    assert_int_equal(zmq_send(l.dealer, "a", 1, ZMQ_SNDMORE), 1);
    assert_int_equal(zmq_send(l.dealer, "b", 1, 0), 1);
    wire_msg *m = recv_within(l.router, true, 2000);
    assert_non_null(m);
    assert_int_equal(wire_msg_code(m), RELAIS__ERROR_CODE__ERR_MALFORMED);
    wire_msg_destroy(&m);
    link_close(&l);
}

/* ---- validation ---- */

static Relais__Assign good_assign(uint8_t *key) {
    Relais__Assign a = RELAIS__ASSIGN__INIT;
    a.model_sha256 = a.next_hop_public_key = a.prev_hop_public_key = (ProtobufCBinaryData){32, key};
    a.layer_begin = 2, a.layer_end = 4, a.n_layer = 4;
    a.n_ctx = 64, a.max_sessions = 1, a.max_batch = 16, a.swa_window = -1;
    a.next_hop = "tcp://127.0.0.1:7700";
    return a;
}

static void test_check_assign(void **state) {
    (void)state;
    char err[256];
    uint8_t key[32] = {0};
    Relais__Assign a = good_assign(key);
    assert_int_equal(wire_check_assign(&a, err, sizeof err), RELAIS__ERROR_CODE__ERR_NONE);
    a.next_hop_public_key.len = 31;
    assert_int_equal(wire_check_assign(&a, err, sizeof err), RELAIS__ERROR_CODE__ERR_MALFORMED);
    assert_non_null(strstr(err, "next_hop_public_key"));
    Relais__Assign bad[8];
    uint8_t id[WIRE_CLUSTER_ID_MAX + 1] = {0};
    char endpoint[300];
    memset(endpoint, 'x', sizeof endpoint - 1);
    endpoint[sizeof endpoint - 1] = '\0';
    for (int i = 0; i < 8; i++)
        bad[i] = good_assign(key);
    bad[0].layer_begin = 4; /* empty range */
    bad[1].layer_end = 5;   /* past the model */
    bad[2].n_ctx = 0;
    bad[3].max_batch = WIRE_MAX_BATCH + 1;
    bad[4].wire_dtype = 7;
    bad[5].next_hop = "localhost"; /* not an endpoint */
    bad[6].cluster_id = (ProtobufCBinaryData){sizeof id, id};
    bad[7].coordinator_endpoint = endpoint;
    for (int i = 0; i < 8; i++)
        if (wire_check_assign(&bad[i], err, sizeof err) != RELAIS__ERROR_CODE__ERR_MALFORMED)
            fail_msg("bad assignment %d accepted", i);
    a.next_hop_public_key.len = 32;
    a.cluster_id = (ProtobufCBinaryData){16, id};
    a.coordinator_endpoint = "tcp://127.0.0.1:5555";
    assert_int_equal(wire_check_assign(&a, err, sizeof err), RELAIS__ERROR_CODE__ERR_NONE);
    /* a Release names its coordinator process as an Assign does */
    Relais__Release r = RELAIS__RELEASE__INIT;
    r.cluster_id = (ProtobufCBinaryData){16, id};
    assert_int_equal(wire_check_release(&r, err, sizeof err), RELAIS__ERROR_CODE__ERR_NONE);
    r.cluster_id.len = sizeof id;
    assert_int_equal(wire_check_release(&r, err, sizeof err), RELAIS__ERROR_CODE__ERR_MALFORMED);
    assert_non_null(strstr(err, "cluster_id"));
}

/* The sizes a Forward's activations must have, and the sampling checks the
 * head stage applies to each sampling segment. */
static void test_check_sampling(void **state) {
    (void)state;
    char err[256];
    assert_int_equal(wire_activations_bytes(RELAIS__DTYPE__DTYPE_F16, 3, 8), 48);
    assert_int_equal(wire_activations_bytes(RELAIS__DTYPE__DTYPE_F32, 3, 8), 96);
    assert_int_equal(wire_activations_bytes(RELAIS__DTYPE__DTYPE_I16, 3, 8), 60); /* 3 x (4 + 16) */
    Relais__Sampling s = RELAIS__SAMPLING__INIT;
    int32_t hist[2] = {5, -1};
    s.top_p = 1;
    assert_int_equal(wire_check_sampling(&s, 20, 64, err, sizeof err), RELAIS__ERROR_CODE__ERR_NONE);
    uint8_t mask[3] = {0xff, 0xff, 0x0f};
    s.allowed = (ProtobufCBinaryData){3, mask}; /* 20 ids: 3 bytes */
    assert_int_equal(wire_check_sampling(&s, 20, 64, err, sizeof err), RELAIS__ERROR_CODE__ERR_NONE);
    assert_int_equal(wire_check_sampling(&s, 25, 64, err, sizeof err), RELAIS__ERROR_CODE__ERR_MALFORMED);
    assert_non_null(strstr(err, "needs 4"));
    s.allowed = (ProtobufCBinaryData){0, NULL};
    s.temperature = NAN;
    assert_int_equal(wire_check_sampling(&s, 20, 64, err, sizeof err), RELAIS__ERROR_CODE__ERR_MALFORMED);
    s.temperature = 0.5f, s.top_logits = WIRE_MAX_TOP + 1;
    assert_int_equal(wire_check_sampling(&s, 20, 64, err, sizeof err), RELAIS__ERROR_CODE__ERR_MALFORMED);
    s.top_logits = 8, s.history = hist, s.n_history = 2;
    assert_int_equal(wire_check_sampling(&s, 20, 64, err, sizeof err), RELAIS__ERROR_CODE__ERR_MALFORMED);
    s.n_history = 1;
    assert_int_equal(wire_check_sampling(&s, 20, 64, err, sizeof err), RELAIS__ERROR_CODE__ERR_NONE);
    s.top_p = 1.5f;
    assert_int_equal(wire_check_sampling(&s, 20, 64, err, sizeof err), RELAIS__ERROR_CODE__ERR_MALFORMED);
    /* a segment that verifies a draft must sample */
    Relais__Segment g = RELAIS__SEGMENT__INIT;
    g.n_tokens = 5, g.verify = true;
    assert_int_equal(wire_check_segment(&g, err, sizeof err), RELAIS__ERROR_CODE__ERR_MALFORMED);
    assert_non_null(strstr(err, "verifies a draft"));
    g.sample = true;
    assert_int_equal(wire_check_segment(&g, err, sizeof err), RELAIS__ERROR_CODE__ERR_NONE);
    /* a sampled draft's distributions: one per token after the first, each
     * of distinct ids of the vocabulary, probabilities > 0 summing to 1,
     * its token among them */
    s.top_p = 1, s.n_history = 0;
    int32_t ids[2] = {3, 7};
    float probs[2] = {0.25f, 0.75f};
    Relais__DraftDist dd = RELAIS__DRAFT_DIST__INIT, *dp[4] = {&dd, &dd, &dd, &dd};
    dd.token = 7, dd.ids = ids, dd.n_ids = 2, dd.probs = probs, dd.n_probs = 2;
    s.draft = dp, s.n_draft = 4;
    assert_int_equal(wire_check_sampling(&s, 20, 64, err, sizeof err), RELAIS__ERROR_CODE__ERR_NONE);
    g.sampling = &s;
    assert_int_equal(wire_check_segment(&g, err, sizeof err), RELAIS__ERROR_CODE__ERR_NONE);
    s.n_draft = 3;
    assert_int_equal(wire_check_segment(&g, err, sizeof err), RELAIS__ERROR_CODE__ERR_MALFORMED);
    assert_non_null(strstr(err, "3 draft distributions"));
    g.verify = false, s.n_draft = 4;
    assert_int_equal(wire_check_segment(&g, err, sizeof err), RELAIS__ERROR_CODE__ERR_MALFORMED);
    dd.token = 5; /* drawn from a q that does not hold it */
    assert_int_equal(wire_check_sampling(&s, 20, 64, err, sizeof err), RELAIS__ERROR_CODE__ERR_MALFORMED);
    assert_non_null(strstr(err, "not among its ids"));
    dd.token = 7, probs[0] = 0.5f; /* sums to 1.25 */
    assert_int_equal(wire_check_sampling(&s, 20, 64, err, sizeof err), RELAIS__ERROR_CODE__ERR_MALFORMED);
    probs[0] = 0.25f, ids[0] = 7; /* twice */
    assert_int_equal(wire_check_sampling(&s, 20, 64, err, sizeof err), RELAIS__ERROR_CODE__ERR_MALFORMED);
    ids[0] = 20; /* past the vocabulary */
    assert_int_equal(wire_check_sampling(&s, 20, 64, err, sizeof err), RELAIS__ERROR_CODE__ERR_MALFORMED);
    ids[0] = 3, dd.n_probs = 1;
    assert_int_equal(wire_check_sampling(&s, 20, 64, err, sizeof err), RELAIS__ERROR_CODE__ERR_MALFORMED);
}

static void test_activations_and_sampling(void **state) {
    (void)state;
    float x[6] = {1.0f, -2.5f, 0.1f, 65504.0f, 1e-8f, 3.14159265f}, y[6];
    uint8_t buf[sizeof x];
    wire_activations_encode(x, 2, 3, RELAIS__DTYPE__DTYPE_F32, buf);
    wire_activations_decode(buf, 2, 3, RELAIS__DTYPE__DTYPE_F32, y);
    assert_memory_equal(x, y, sizeof x);
    wire_activations_encode(x, 2, 3, RELAIS__DTYPE__DTYPE_F16, buf);
    assert_int_equal(buf[0] | buf[1] << 8, 0x3c00); /* 1.0 in IEEE half */
    wire_activations_decode(buf, 2, 3, RELAIS__DTYPE__DTYPE_F16, y);
    for (int i = 0; i < 6; i++)
        assert_true(fabsf(y[i] - x[i]) <= fabsf(x[i]) * 0x1p-11f + 6e-8f);
    assert_string_equal(wire_dtype_name(RELAIS__DTYPE__DTYPE_I16), "i16");
    assert_null(wire_dtype_name(9));
    assert_null(wire_dtype_name(-1));
    assert_int_equal(wire_dtype_from_name("f16"), RELAIS__DTYPE__DTYPE_F16);
    assert_int_equal(wire_dtype_from_name("bf16"), -1);
    rl_sampler_params p = rl_sampler_defaults(), q;
    p.temperature = 0.7f, p.top_k = 40, p.top_p = 0.9f, p.min_p = 0.05f, p.repeat_penalty = 1.1f;
    p.frequency_penalty = 0.2f, p.presence_penalty = 0.3f, p.seed = 77, p.repeat_last_n = 16;
    Relais__Sampling s = RELAIS__SAMPLING__INIT;
    wire_sampling_from_params(&p, &s);
    q = wire_sampling_to_params(&s);
    assert_true(q.temperature == p.temperature && q.top_k == p.top_k && q.top_p == p.top_p && q.min_p == p.min_p);
    assert_true(q.repeat_penalty == p.repeat_penalty && q.frequency_penalty == p.frequency_penalty);
    assert_true(q.presence_penalty == p.presence_penalty && q.seed == p.seed && q.repeat_last_n == -1);
    assert_int_equal(wire_history_window(&p, 100), 16);
    assert_int_equal(wire_history_window(&p, 5), 5);
    p.repeat_last_n = -1;
    assert_int_equal(wire_history_window(&p, 100), 100);
    p.repeat_last_n = 0;
    assert_int_equal(wire_history_window(&p, 100), 0);
}

/* ---- keys ---- */

static void path_in(char *out, size_t len, const char *name) { snprintf(out, len, "%s/%s", g_dir, name); }

static void test_keys(void **state) {
    (void)state;
    char key[128], pub[128], err[512], derived[128], fp[CURVE_FP_LEN];
    struct stat st;
    curve_keys k, back;
    path_in(key, sizeof key, "a.key");
    path_in(pub, sizeof pub, "a.pub");
    assert_int_equal(curve_keys_create(key, pub, &k, err, sizeof err), 0);
    assert_int_equal(stat(key, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(curve_keys_create(key, pub, &k, err, sizeof err), -1); /* never overwrites */
    assert_non_null(strstr(err, "already exists"));
    assert_int_equal(curve_keys_load(key, false, &back, err, sizeof err), 0);
    assert_memory_equal(&k, &back, sizeof k);
    uint8_t p1[32], p2[32];
    assert_int_equal(curve_public_load(pub, p1, err, sizeof err), 0);
    assert_int_equal(curve_public_load(key, p2, err, sizeof err), 0);
    assert_memory_equal(p1, k.public_key, 32);
    assert_memory_equal(p2, k.public_key, 32);
    assert_int_equal(curve_keys_load(pub, false, &back, err, sizeof err), -1); /* a public certificate */
    assert_non_null(strstr(err, "no secret key"));
    path_in(key, sizeof key, "missing.key");
    assert_int_equal(curve_keys_load(key, false, &back, err, sizeof err), -1);
    assert_int_equal(curve_keys_load(key, true, &back, err, sizeof err), 0); /* a node makes its own */
    curve_public_path(key, derived, sizeof derived);
    assert_int_equal(stat(derived, &st), 0);
    curve_public_path("x/node", derived, sizeof derived);
    assert_string_equal(derived, "x/node.pub");
    path_in(key, sizeof key, "junk.key");
    FILE *f = fopen(key, "w");
    fputs("not a certificate\n", f);
    fclose(f);
    assert_int_equal(curve_keys_load(key, false, &back, err, sizeof err), -1);
    curve_fingerprint(k.public_key, fp);
    assert_int_equal(strlen(fp), 16);
    assert_int_equal(strspn(fp, "0123456789abcdef"), 16);
}

/* ---- ZAP ---- */

/* Runs the handler while waiting for the server to receive something. */
static wire_msg *serve_until_message(curve_zap *z, void *server, int ms) {
    for (int waited = 0; waited < ms; waited += 20) {
        zmq_pollitem_t it[2] = {{curve_zap_socket(z), 0, ZMQ_POLLIN, 0}, {server, 0, ZMQ_POLLIN, 0}};
        zmq_poll(it, 2, 20);
        while (it[0].revents && curve_zap_handle(z))
            ;
        if (it[1].revents)
            return wire_msg_recv(server, true);
    }
    return NULL;
}

static void *client(void *ctx, const curve_keys *k, const uint8_t *server_key, const char *ep) {
    char err[256];
    void *s = wire_socket(ctx, ZMQ_DEALER, 1 << 20, err, sizeof err);
    assert_int_equal(curve_apply_client(s, k, server_key, err, sizeof err), 0);
    assert_int_equal(zmq_connect(s, ep), 0);
    assert_int_equal(zmq_send(s, "x", 1, 0), 1);
    return s;
}

static void test_zap_policy(void **state) {
    (void)state;
    char err[256], ep[256], trust[128], pubfile[128];
    curve_keys server_k, good, bad;
    char zp[41], zs[41];
    curve_keys *ks[] = {&server_k, &good, &bad};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(zmq_curve_keypair(zp, zs), 0);
        zmq_z85_decode(ks[i]->public_key, zp);
        zmq_z85_decode(ks[i]->secret_key, zs);
    }
    void *ctx = zmq_ctx_new();
    curve_zap *z = curve_zap_new(ctx, "not on the test's list", err, sizeof err);
    assert_non_null(z);
    assert_null(curve_zap_new(ctx, "second", err, sizeof err)); /* one handler per context */
    path_in(trust, sizeof trust, "trust");
    path_in(pubfile, sizeof pubfile, "trust/good.pub");
    mkdir(trust, 0700);
    char keyfile[128];
    path_in(keyfile, sizeof keyfile, "good.key");
    assert_int_equal(curve_keys_create(keyfile, pubfile, &good, err, sizeof err), 0);
    assert_int_equal(curve_zap_allow_dir(z, "/nonexistent-relais-dir", "coordinator", err, sizeof err), -1);
    assert_int_equal(curve_zap_allow_dir(z, trust, "coordinator", err, sizeof err), 1);
    assert_string_equal(curve_zap_role(z, good.public_key), "coordinator");
    assert_int_equal(curve_zap_allow(z, good.public_key, "neighbour"), 0); /* keeps its first role */
    assert_string_equal(curve_zap_role(z, good.public_key), "coordinator");
    void *server = wire_socket(ctx, ZMQ_ROUTER, 1 << 20, err, sizeof err);
    assert_int_equal(curve_apply_server(server, &server_k, err, sizeof err), 0);
    assert_int_equal(zmq_bind(server, "tcp://127.0.0.1:*"), 0);
    size_t len = sizeof ep;
    zmq_getsockopt(server, ZMQ_LAST_ENDPOINT, ep, &len);
    void *c1 = client(ctx, &good, server_k.public_key, ep);
    wire_msg *m = serve_until_message(z, server, 5000);
    assert_non_null(m);
    assert_string_equal(wire_msg_user(m), "coordinator");
    assert_non_null(wire_msg_peer_key(m));
    assert_memory_equal(wire_msg_peer_key(m), good.public_key, 32);
    wire_msg_destroy(&m);
    void *c2 = client(ctx, &bad, server_k.public_key, ep); /* unknown: refused, nothing arrives */
    assert_null(serve_until_message(z, server, 500));
    curve_zap_forget_role(z, "coordinator");
    assert_string_equal(curve_zap_role(z, good.public_key), "");
    zmq_close(c1), zmq_close(c2), zmq_close(server);
    curve_zap_destroy(&z);
    assert_null(z);
    zmq_ctx_term(ctx);
}

/* ---- file hashes ---- */

static void test_filehash(void **state) {
    (void)state;
    char file[128], cache[128], err[256], hex[65];
    path_in(file, sizeof file, "model.bin");
    path_in(cache, sizeof cache, "hashes");
    FILE *f = fopen(file, "w");
    for (int i = 0; i < 100000; i++)
        fputc(i * 31 % 251, f);
    fclose(f);
    uint8_t h[32], want[32], again[32];
    unsigned char *data = malloc(100000);
    f = fopen(file, "r");
    assert_int_equal(fread(data, 1, 100000, f), 100000);
    fclose(f);
    crypto_hash_sha256(want, data, 100000);
    free(data);
    assert_int_equal(filehash_sha256(file, cache, NULL, NULL, h, err, sizeof err), 0);
    assert_memory_equal(h, want, 32);
    /* the cache is used: a forged entry for the same path, size and mtime wins */
    f = fopen(cache, "r+");
    assert_non_null(f);
    fputs("0000000000000000000000000000000000000000000000000000000000000000", f);
    fclose(f);
    f = fopen(cache, "a");
    fputs("this line is not an entry\n", f);
    fclose(f);
    assert_int_equal(filehash_sha256(file, cache, NULL, NULL, again, err, sizeof err), 0);
    filehash_hex(again, hex);
    assert_string_equal(hex, "0000000000000000000000000000000000000000000000000000000000000000");
    /* a new mtime invalidates it */
    struct timespec t[2] = {{0, UTIME_OMIT}, {12345, 0}};
    assert_int_equal(utimensat(AT_FDCWD, file, t, 0), 0);
    assert_int_equal(filehash_sha256(file, cache, NULL, NULL, again, err, sizeof err), 0);
    assert_memory_equal(again, want, 32);
    path_in(file, sizeof file, "absent.bin");
    assert_int_equal(filehash_sha256(file, cache, NULL, NULL, again, err, sizeof err), -1);
    assert_int_equal(filehash_sha256(g_dir, NULL, NULL, NULL, again, err, sizeof err), -1); /* a directory */
}

/* ---- block-scaled int16 activations ---- */

/* The scale DTYPE_I16 sent for block b (of WIRE_I16_BLOCK values) of a row
 * starting at row: it leads the block, whose values take 2 bytes each. */
static float i16_scale(const uint8_t *row, size_t b) {
    float s;
    memcpy(&s, row + b * (sizeof(float) + 2 * WIRE_I16_BLOCK), sizeof s);
    return s;
}

/* Encodes rows x dim, checks that exactly wire_activations_bytes were
 * written (the byte after them keeps its sentinel), and decodes. */
static uint8_t *i16_roundtrip(const float *x, size_t rows, size_t dim, float *y) {
    const size_t n = wire_activations_bytes(RELAIS__DTYPE__DTYPE_I16, rows, dim);
    uint8_t *buf = malloc(n + 1);
    assert_non_null(buf);
    buf[n] = 0xa5;
    wire_activations_encode(x, rows, dim, RELAIS__DTYPE__DTYPE_I16, buf);
    assert_int_equal(buf[n], 0xa5);
    wire_activations_decode(buf, rows, dim, RELAIS__DTYPE__DTYPE_I16, y);
    return buf;
}

static void test_i16_sizes(void **state) {
    (void)state;
    /* per row: a 4-byte scale per block of 32 (the last may be shorter) and 2 bytes per value */
    assert_int_equal(wire_activations_bytes(RELAIS__DTYPE__DTYPE_I16, 3, 64), 3 * (2 * 4 + 64 * 2)); /* 408 */
    assert_int_equal(wire_activations_bytes(RELAIS__DTYPE__DTYPE_I16, 1, 4096), 128 * 4 + 4096 * 2); /* 53.1% */
    assert_int_equal(wire_activations_bytes(RELAIS__DTYPE__DTYPE_I16, 2, 40), 2 * (2 * 4 + 40 * 2)); /* a tail of 8 */
    assert_int_equal(wire_activations_bytes(RELAIS__DTYPE__DTYPE_I16, 1, 1), 4 + 2);
    assert_int_equal(wire_activations_bytes(RELAIS__DTYPE__DTYPE_F32, 3, 64), 3 * 64 * 4);
    assert_int_equal(wire_activations_bytes(RELAIS__DTYPE__DTYPE_F16, 3, 64), 3 * 64 * 2);
    assert_int_equal(wire_activations_bytes(9, 3, 64), 0);
    assert_int_equal(wire_activations_max(3, 64), 3 * 64 * 4);
    assert_int_equal(wire_activations_max(2, 1), 2 * 6); /* one value a row: i16 is the largest */
}

/* Random rows of 72 (two blocks and a tail of 8), each block of its own
 * magnitude: every value comes back within half its block's scale (plus the
 * float rounding of the product), the scale being the block's max|x|/32767. */
static void test_i16_error_bound(void **state) {
    (void)state;
    enum { ROWS = 3, DIM = 72 };
    float x[ROWS * DIM], y[ROWS * DIM];
    uint32_t seed = 12345;
    for (size_t i = 0; i < ROWS * DIM; i++) {
        seed = seed * 1664525u + 1013904223u;
        const float mag = powf(10.0f, (float)((i / WIRE_I16_BLOCK) % 7) - 3.0f); /* 1e-3 .. 1e3 */
        x[i] = mag * ((float)(seed >> 8) / 16777216.0f * 2.0f - 1.0f);
    }
    uint8_t *buf = i16_roundtrip(x, ROWS, DIM, y);
    const size_t row_bytes = wire_activations_bytes(RELAIS__DTYPE__DTYPE_I16, 1, DIM);
    for (size_t r = 0; r < ROWS; r++)
        for (size_t b = 0; b * WIRE_I16_BLOCK < DIM; b++) {
            const size_t j0 = r * DIM + b * WIRE_I16_BLOCK,
                         len = DIM - b * WIRE_I16_BLOCK < WIRE_I16_BLOCK ? DIM - b * WIRE_I16_BLOCK : WIRE_I16_BLOCK;
            float amax = 0;
            for (size_t j = j0; j < j0 + len; j++)
                amax = fmaxf(amax, fabsf(x[j]));
            const float scale = i16_scale(buf + r * row_bytes, b);
            assert_true(scale == amax / 32767.0f);
            for (size_t j = j0; j < j0 + len; j++)
                if (!(fabsf(y[j] - x[j]) <= 0.5f * scale + fabsf(x[j]) * 0x1p-24f))
                    fail_msg("row %zu value %zu: %.9g came back as %.9g (scale %g)", r, j - r * DIM, (double)x[j],
                             (double)y[j], (double)scale);
        }
    free(buf);
}

/* Zeros stay zeros (a zero scale, no 0/0); an outlier costs only its own
 * block precision, and a row's bytes do not depend on the rows sent with it. */
static void test_i16_zeros_and_outlier(void **state) {
    (void)state;
    enum { DIM = 64 };
    float x[2 * DIM], y[2 * DIM];
    memset(x, 0, sizeof x);
    x[DIM + 5] = -0.0f;
    uint8_t *buf = i16_roundtrip(x, 2, DIM, y);
    for (size_t i = 0; i < 2 * DIM; i++)
        assert_true(y[i] == 0 && !signbit(y[i]));
    assert_true(i16_scale(buf, 0) == 0);
    free(buf);
    for (size_t i = 0; i < 2 * DIM; i++)
        x[i] = 1e-3f * (float)((int)(i % 17) - 8);
    x[DIM + 3] = 1000.0f; /* row 1, block 0 */
    buf = i16_roundtrip(x, 2, DIM, y);
    assert_true(fabsf(y[DIM + 3] - 1000.0f) <= 1000.0f / 65534.0f);
    for (size_t i = DIM; i < DIM + WIRE_I16_BLOCK; i++) /* its neighbours: within 1000/65534 */
        assert_true(fabsf(y[i] - x[i]) <= 0.5f * 1000.0f / 32767.0f);
    for (size_t i = DIM + WIRE_I16_BLOCK; i < 2 * DIM; i++) /* the next block keeps its precision */
        assert_true(fabsf(y[i] - x[i]) <= 0.5f * 8e-3f / 32767.0f + 1e-9f);
    float alone[DIM];
    uint8_t *one = i16_roundtrip(x + DIM, 1, DIM, alone);
    const size_t row_bytes = wire_activations_bytes(RELAIS__DTYPE__DTYPE_I16, 1, DIM);
    assert_memory_equal(one, buf + row_bytes, row_bytes);
    free(one);
    free(buf);
}

/* A block holding a NaN or an infinity decodes as NaN throughout (a NaN
 * scale): it never turns into finite numbers, and other blocks are intact.
 * Hostile bytes (any scale, any values) decode without harm. */
static void test_i16_non_finite(void **state) {
    (void)state;
    enum { DIM = 40 }; /* a block of 32, a tail of 8 */
    const float bad[3] = {NAN, INFINITY, -INFINITY};
    float x[DIM], y[DIM];
    for (int k = 0; k < 3; k++)
        for (size_t at = 0; at < DIM; at += 37) { /* in the first block, in the tail */
            for (size_t i = 0; i < DIM; i++)
                x[i] = 0.25f * (float)i - 3.0f;
            x[at] = bad[k];
            uint8_t *buf = i16_roundtrip(x, 1, DIM, y);
            const size_t b0 = at < WIRE_I16_BLOCK ? 0 : WIRE_I16_BLOCK, b1 = b0 ? DIM : WIRE_I16_BLOCK;
            assert_true(isnan(i16_scale(buf, b0 / WIRE_I16_BLOCK)));
            for (size_t i = 0; i < DIM; i++)
                if (i >= b0 && i < b1)
                    assert_true(isnan(y[i]));
                else
                    assert_true(fabsf(y[i] - x[i]) <= 0.5f * 6.75f / 32767.0f);
            free(buf);
        }
    uint8_t junk[4 + 2 * WIRE_I16_BLOCK];
    const float scales[4] = {INFINITY, NAN, -1e30f, 1e-45f};
    for (int k = 0; k < 4; k++) {
        memset(junk, 0x80 + k, sizeof junk);
        memcpy(junk, &scales[k], sizeof(float));
        wire_activations_decode(junk, 1, WIRE_I16_BLOCK, RELAIS__DTYPE__DTYPE_I16, x);
    }
}

static int setup(void **state) {
    (void)state;
    return tu_dir_new(g_dir, "wire");
}

static int teardown(void **state) {
    (void)state;
    return tu_dir_remove(g_dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_refused_frames),
        cmocka_unit_test(test_check_assign),
        cmocka_unit_test(test_check_sampling),
        cmocka_unit_test(test_activations_and_sampling),
        cmocka_unit_test(test_i16_sizes),
        cmocka_unit_test(test_i16_error_bound),
        cmocka_unit_test(test_i16_zeros_and_outlier),
        cmocka_unit_test(test_i16_non_finite),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_zap_policy),
        cmocka_unit_test(test_filehash),
        cmocka_unit_test(test_largest_frames),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
