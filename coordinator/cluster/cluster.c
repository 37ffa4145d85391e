/* The coordinator's cluster client (see cluster.h).
 *
 * One thread does everything: every wait is a poll over the node links, the
 * result endpoint, its ZAP handler and the links' monitors, so a node that
 * refuses our key or goes away ends the wait at once with its name, instead
 * of running into the timeout. Messages that belong to an earlier call (a
 * Result or Error of a step that already failed) carry an older step id and
 * are skipped. One session's steps are in cluster_step.c and the server's
 * micro-batches in cluster_batch.c; the state they share with this file is
 * declared in cluster_priv.h. */
#include "cluster.h"
#include "cluster_priv.h"

#include <errno.h>
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
#include "forward.h"
#include "gguf.h"
#include "io_pin.h"
#include "log.h"
#include "weights_send.h"
#include "wire.h"
#include "util.h"

#define ROLE_NODE "node"
#define MAX_POLL (2 + 2 * CLUSTER_MAX_NODES)
/* a node that refused an assignment is asked again after this */
#define REFUSED_PROBE_MS 30000
/* a hello wait looks at its links this often */
#define HELLO_POLL_MS 50
/* the answers still to come after a failed wait are taken this long */
#define SETTLE_MS 2000

/* ---- setup ---- */

static int open_link(cluster *c, cl_node *nd, const cluster_node *spec, char *err, size_t errlen) {
    char why[256];
    snprintf(nd->name, sizeof nd->name, "%s", spec->name ? spec->name : spec->address);
    snprintf(nd->address, sizeof nd->address, "%s", spec->address);
    if (curve_public_load(spec->public_key, nd->key, why, sizeof why)) {
        snprintf(err, errlen, "node %s: public key: %s", nd->name, why);
        return -1;
    }
    if (!(nd->dealer = wire_socket(c->zctx, ZMQ_DEALER, WIRE_CONTROL_MAX, why, sizeof why)) ||
        curve_apply_client(nd->dealer, &c->keys, nd->key, why, sizeof why) ||
        !(nd->mon = wire_monitor_new(c->zctx, nd->dealer, "node", why, sizeof why))) {
        snprintf(err, errlen, "node %s: %s", nd->name, why);
        return -1;
    }
    if (zmq_connect(nd->dealer, nd->address)) {
        snprintf(err, errlen, "node %s: cannot connect to %s: %s", nd->name, nd->address, zmq_strerror(errno));
        return -1;
    }
    return 0;
}

/* The result endpoint as nodes reach it: `advertise` (its port * replaced
 * by the port bound), or the bound endpoint with 127.0.0.1 for a wildcard
 * host. */
static void advertised(cluster *c, const char *advertise) {
    char bound[256] = "";
    size_t len = sizeof bound;
    zmq_getsockopt(c->results, ZMQ_LAST_ENDPOINT, bound, &len);
    const char *host = strstr(bound, "://");
    const size_t n = advertise ? strlen(advertise) : 0;
    if (n > 2 && !strcmp(advertise + n - 2, ":*") && strrchr(bound, ':'))
        snprintf(c->result_ep, sizeof c->result_ep, "%.*s%s", (int)(n - 2), advertise, strrchr(bound, ':'));
    else if (advertise)
        snprintf(c->result_ep, sizeof c->result_ep, "%s", advertise);
    else if (host && (!strncmp(host + 3, "0.0.0.0:", 8) || !strncmp(host + 3, "*:", 2)))
        snprintf(c->result_ep, sizeof c->result_ep, "tcp://127.0.0.1%s", strrchr(bound, ':'));
    else
        snprintf(c->result_ep, sizeof c->result_ep, "%s", bound);
}

static int bind_results(cluster *c, const char *listen, const char *advertise, char *err, size_t errlen) {
    char why[256];
    if (!(c->zap = curve_zap_new(c->zctx, "not the last node of the current assignment", why, sizeof why)) ||
        !(c->results = wire_socket(c->zctx, ZMQ_ROUTER, WIRE_CONTROL_MAX, why, sizeof why)) ||
        curve_apply_server(c->results, &c->keys, why, sizeof why)) {
        snprintf(err, errlen, "result endpoint: %s", why);
        return -1;
    }
    if (zmq_bind(c->results, listen)) {
        snprintf(err, errlen, "cannot bind the result endpoint %s: %s", listen, zmq_strerror(errno));
        return -1;
    }
    advertised(c, advertise);
    return 0;
}

cluster *cluster_new(const char *key_path, const char *listen, const char *advertise, int io_cpu,
                     const cluster_node *nodes, uint32_t n_nodes, char *err, size_t errlen) {
    if (n_nodes == 0 || n_nodes > CLUSTER_MAX_NODES) {
        snprintf(err, errlen, "a cluster has 1 to %d nodes, not %u", CLUSTER_MAX_NODES, n_nodes);
        return NULL;
    }
    cluster *c = calloc(1, sizeof *c);
    if (!c || !(c->nodes = calloc(n_nodes, sizeof *c->nodes))) {
        free(c);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->n = n_nodes;
    c->next_step = 1;
    c->failed_node = -1;
    randombytes_buf(c->id, sizeof c->id);
    cluster_set_timeouts(c, 30000, 120000, 600000);
    char why[256];
    if (curve_keys_load(key_path, false, &c->keys, why, sizeof why)) {
        snprintf(err, errlen, "coordinator key: %s", why);
        goto fail;
    }
    if (!(c->zctx = zmq_ctx_new())) {
        snprintf(err, errlen, "cannot create a ZeroMQ context: %s", zmq_strerror(errno));
        goto fail;
    }
    if (!(c->pin = io_pin_new(c->zctx, io_cpu, err, errlen)))
        goto fail;
    if (bind_results(c, listen, advertise, err, errlen))
        goto fail;
    for (uint32_t i = 0; i < n_nodes; i++)
        if (open_link(c, &c->nodes[i], &nodes[i], err, errlen))
            goto fail;
    return c;
fail:
    cluster_destroy(&c);
    return NULL;
}

int cluster_add_node(cluster *c, const cluster_node *spec, char *err, size_t errlen) {
    if (c->n == CLUSTER_MAX_NODES)
        return rl_errf(err, errlen, "node %s: the cluster has %d nodes already", spec->name, CLUSTER_MAX_NODES);
    cl_node *nodes = realloc(c->nodes, (c->n + 1) * sizeof *nodes);
    if (!nodes)
        return rl_errf(err, errlen, "out of memory");
    c->nodes = nodes;
    cl_node *nd = &nodes[c->n];
    memset(nd, 0, sizeof *nd);
    if (open_link(c, nd, spec, err, errlen) == 0) {
        c->n++;
        return 0;
    }
    wire_monitor_destroy(&nd->mon); /* half a link is no node */
    if (nd->dealer)
        zmq_close(nd->dealer);
    return -1;
}

int cluster_node_readdress(cluster *c, uint32_t i, const char *address, char *err, size_t errlen) {
    cl_node *nd = &c->nodes[i];
    zmq_disconnect(nd->dealer, nd->address);
    snprintf(nd->address, sizeof nd->address, "%s", address);
    nd->up = false;
    nd->state = "moved; connecting to the new address";
    if (zmq_connect(nd->dealer, nd->address))
        return rl_errf(err, errlen, "node %s: cannot connect to %s: %s", nd->name, address, zmq_strerror(errno));
    return 0;
}

const uint8_t *cluster_node_key(const cluster *c, uint32_t i) { return c->nodes[i].key; }
const char *cluster_node_address(const cluster *c, uint32_t i) { return c->nodes[i].address; }

void cluster_set_timeouts(cluster *c, int control_ms, int load_ms, int step_ms) {
    c->control_ms = control_ms, c->load_ms = load_ms, c->step_ms = step_ms;
}

/* Frees the nodes this process holds for another coordinator (a node
 * ignores a Release that is not its holder's). Only over live links: a
 * send to a node without one would wait for the send timeout. */
static void release_nodes(cluster *c) {
    Relais__Release r = RELAIS__RELEASE__INIT;
    r.cluster_id = (ProtobufCBinaryData){sizeof c->id, c->id};
    Relais__Envelope env = RELAIS__ENVELOPE__INIT;
    env.body_case = RELAIS__ENVELOPE__BODY_RELEASE;
    env.release = &r;
    char why[256];
    for (uint32_t i = 0; i < c->n; i++)
        if (c->nodes[i].dealer && c->nodes[i].up && wire_send(c->nodes[i].dealer, NULL, 0, &env, why, sizeof why))
            rl_log(RL_LOG_DEBUG, "node %s: %s", c->nodes[i].name, why);
}

void cluster_destroy(cluster **pc) {
    cluster *c = pc ? *pc : NULL;
    if (!c)
        return;
    if (c->nodes && c->zctx)
        release_nodes(c);
    for (uint32_t i = 0; i < c->n; i++) {
        wire_monitor_destroy(&c->nodes[i].mon);
        if (c->nodes[i].dealer)
            zmq_close(c->nodes[i].dealer);
        free(c->nodes[i].models);
        free(c->nodes[i].slices);
    }
    if (c->results)
        zmq_close(c->results);
    curve_zap_destroy(&c->zap);
    if (c->zctx)
        zmq_ctx_term(c->zctx);
    io_pin_destroy(&c->pin);
    rl_model_destroy(&c->model);
    weights_send_destroy(&c->weights);
    sodium_memzero(&c->keys, sizeof c->keys);
    free(c->x), free(c->act), free(c->nodes);
    free(c);
    *pc = NULL;
}

uint32_t cluster_n_nodes(const cluster *c) { return c->n; }
const char *cluster_node_name(const cluster *c, uint32_t i) { return c->nodes[i].name; }
const cluster_node_info *cluster_info(const cluster *c, uint32_t i) { return &c->nodes[i].info; }
const rl_model *cluster_model(const cluster *c) { return c->model; }
rl_kv_type cluster_kv_type(const cluster *c) { return c->kv_type; }
uint64_t cluster_weight_bytes_sent(const cluster *c) { return c->weight_bytes; }

bool cluster_node_holds(const cluster *c, uint32_t i, const uint8_t sha256[32]) {
    for (size_t k = 0; k < c->nodes[i].n_models; k++)
        if (!memcmp(c->nodes[i].models[k], sha256, 32))
            return true;
    return false;
}

bool cluster_node_cached(const cluster *c, uint32_t i, const uint8_t sha256[32], uint32_t l0, uint32_t l1, bool head) {
    for (size_t k = 0; k < c->nodes[i].n_slices; k++) {
        const cl_slice *sl = &c->nodes[i].slices[k];
        if (!memcmp(sl->sha256, sha256, 32) && sl->l0 == l0 && sl->l1 == l1 && sl->head == head)
            return true;
    }
    return false;
}

/* ---- waiting ---- */

/* One event of a node link: a refused handshake or a lost connection fails
 * whatever is waiting. 0, or -1 with err. */
static int link_event(cluster *c, cl_node *nd, char *err, size_t errlen) {
    uint16_t ev;
    uint32_t val;
    char ep[256];
    if (wire_monitor_read(nd->mon, &ev, &val, ep, sizeof ep))
        return 0;
    if (ev == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
        nd->up = true;
        nd->state = "connected";
        nd->greet = true;   /* a hello wait greets it on this connection */
        nd->probed = false; /* and, left out, it is asked again whether it answers */
        return 0;
    }
    if (ev == ZMQ_EVENT_CONNECT_RETRIED)
        nd->state = "no connection: nothing listens there, or the host is unreachable";
    else if (ev == ZMQ_EVENT_CONNECTED)
        nd->state = "connected, handshake under way";
    if (ev == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
        nd->state = "the node refused this coordinator's key";
        snprintf(err, errlen,
                 "node %s (%s) refused this coordinator's key: is the coordinator's public "
                 "certificate in the node's --trust directory?",
                 nd->name, nd->address);
    } else if (ev & (ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL)) {
        nd->state = "handshake failed: wrong public key for the node?";
        snprintf(err, errlen,
                 "handshake with node %s (%s) failed: %s; the likely cause: the public_key the cluster file "
                 "gives for this node is not the node's own (relais-node logs its key's fingerprint at start; "
                 "`relais keygen` writes the .pub beside the node's .key)",
                 nd->name, nd->address, wire_event_text(ev, val));
    } else if (ev == ZMQ_EVENT_DISCONNECTED && nd->up) {
        nd->up = false;
        nd->state = "disconnected";
        /* A node the pipeline does without (lost before, left out by the
         * last plan) may come and go without harm. */
        if (c->n_pipe && nd->range.l0 == nd->range.l1)
            return 0;
        snprintf(err, errlen, "lost the connection to node %s (%s)", nd->name, nd->address);
    } else
        return 0;
    if (c->hello_wait) { /* the pipeline is being planned again: the wait goes on without this node */
        rl_log(RL_LOG_WARN, "%s", err);
        snprintf(c->lost, sizeof c->lost, "%s", err);
        return 0;
    }
    return -1;
}

void cluster_poll_links(cluster *c) {
    for (uint32_t i = 0; i < c->n; i++) {
        zmq_pollitem_t it = {wire_monitor_socket(c->nodes[i].mon), 0, ZMQ_POLLIN, 0};
        char err[256];
        while (zmq_poll(&it, 1, 0) > 0 && it.revents)
            if (link_event(c, &c->nodes[i], err, sizeof err))
                snprintf(c->lost, sizeof c->lost, "%s", err);
    }
}

bool cluster_node_up(const cluster *c, uint32_t i) { return c->nodes[i].up; }
plan_range cluster_node_range(const cluster *c, uint32_t i) { return c->nodes[i].range; }
bool cluster_node_in_pipeline(const cluster *c, uint32_t i) {
    return c->n_pipe && c->nodes[i].range.l0 != c->nodes[i].range.l1;
}

/* RELAIS_TRACE: when a message from the last node woke the poll and was read. */
static void trace_result(const wire_msg *m, int64_t wake) {
    const Relais__Envelope *e = wire_msg_env(m);
    const bool result = e && e->body_case == RELAIS__ENVELOPE__BODY_RESULT;
    rl_trace("result step=%llu wake=%lld read=%lld", result ? (unsigned long long)e->result->step_id : 0ULL,
             (long long)wake, (long long)rl_now_us());
}

/* The next message from a node link (*from = its index) or from the result
 * endpoint (*from = -1) before deadline, serving ZAP and link events
 * meanwhile. 1 with *m, 0 on timeout, -1 with err when a link failed. */
int cluster_next_msg(cluster *c, int64_t deadline, wire_msg **m, int *from, char *err, size_t errlen) {
    zmq_pollitem_t items[MAX_POLL];
    for (;;) {
        int k = 0;
        items[k++] = (zmq_pollitem_t){curve_zap_socket(c->zap), 0, ZMQ_POLLIN, 0};
        items[k++] = (zmq_pollitem_t){c->results, 0, ZMQ_POLLIN, 0};
        for (uint32_t i = 0; i < c->n; i++) {
            items[k++] = (zmq_pollitem_t){wire_monitor_socket(c->nodes[i].mon), 0, ZMQ_POLLIN, 0};
            items[k++] = (zmq_pollitem_t){c->nodes[i].dealer, 0, ZMQ_POLLIN, 0};
        }
        int64_t left = deadline - (rl_now_us() / 1000);
        if (left <= 0)
            return 0;
        if (io_pin_poll(c->pin, items, k, (long)left) < 0) {
            if (errno == EINTR)
                continue;
            snprintf(err, errlen, "poll: %s", zmq_strerror(errno));
            return -1;
        }
        const int64_t wake = rl_trace_on() ? rl_now_us() : 0;
        while (items[0].revents && curve_zap_handle(c->zap))
            ;
        for (uint32_t i = 0; i < c->n; i++)
            if (items[2 + 2 * i].revents && link_event(c, &c->nodes[i], err, errlen)) {
                snprintf(c->lost, sizeof c->lost, "%s", err);
                return -1;
            }
        if (items[1].revents && (*m = wire_msg_recv(c->results, true))) {
            *from = -1;
            if (rl_trace_on())
                trace_result(*m, wake);
            return 1;
        }
        for (uint32_t i = 0; i < c->n; i++)
            if (items[3 + 2 * i].revents && (*m = wire_msg_recv(c->nodes[i].dealer, false))) {
                *from = (int)i;
                const Relais__Envelope *e = wire_msg_env(*m);
                if (e && e->body_case == RELAIS__ENVELOPE__BODY_CAPABILITIES)
                    c->nodes[i].answers = true; /* a left-out node is alive: it may be planned again */
                return 1;
            }
    }
}

static void show_progress(cluster *c) {
    if (!c->show_progress)
        return;
    fprintf(stderr, "\rrelais: loading");
    for (uint32_t k = 0; k < c->n_pipe; k++) {
        const cl_node *nd = &c->nodes[c->pipe[k]];
        fprintf(stderr, " %s%s %3d%%", nd->name, strcmp(nd->phase, "receive") ? "" : " receiving",
                nd->total ? (int)(nd->done * 100 / nd->total) : 0);
    }
    fflush(stderr);
}

/* Whether e is node i's answer to what a wait asked: 1 or 0. */
typedef int (*answer_fn)(cluster *c, uint32_t i, const Relais__Envelope *e, void *ud);

/* A wait for one answer from every node with pending[i] set. A node's Error
 * or an unreadable message is its answer too, and the wait goes on until
 * every node has answered, so that no answer is left over to be taken for
 * the next call's; then it fails with the first error. */
typedef struct wait_spec wait_spec;
struct wait_spec {
    bool pending[CLUSTER_MAX_NODES];
    answer_fn fn;
    void *ud;
    int timeout_ms;
    bool renew;                         /* every message from a pending node restarts the timeout */
    const char *what;                   /* what is awaited, for the timeout message */
    bool (*enough)(const wait_spec *w); /* ends the wait early (pending answers stay pending); or NULL */
};

/* Node i's message during a wait: 1 (its answer), -1 (its answer, an error:
 * written to err when err is not NULL) or 0 (not an answer). */
static int answer_of(cluster *c, uint32_t i, const wire_msg *m, const wait_spec *w, char *err, size_t errlen) {
    const cl_node *nd = &c->nodes[i];
    const Relais__Envelope *e = wire_msg_env(m);
    if (!w->pending[i])
        return 0; /* left over from an earlier call, or not asked for */
    if (!e) {
        if (err)
            snprintf(err, errlen, "node %s sent a message this coordinator cannot read: %s", nd->name,
                     wire_msg_error(m));
        return -1;
    }
    if (e->body_case == RELAIS__ENVELOPE__BODY_ERROR) {
        if (e->error->step_id == 0 && c->failed_node < 0)
            c->failed_node = (int)i;
        if (err)
            snprintf(err, errlen, "node %s: %s: %s", nd->name, wire_code_name(e->error->code), e->error->message);
        return e->error->step_id == 0 ? -1 : 0; /* a step's error is an earlier step's */
    }
    if (e->body_case == RELAIS__ENVELOPE__BODY_LOAD_PROGRESS) {
        c->nodes[i].done = e->load_progress->done;
        c->nodes[i].total = e->load_progress->total;
        snprintf(c->nodes[i].phase, sizeof c->nodes[i].phase, "%s", e->load_progress->phase);
        show_progress(c);
    }
    return w->fn(c, i, e, w->ud) ? 1 : 0;
}

static int collect(cluster *c, wait_spec *w, char *err, size_t errlen) {
    int64_t deadline = (rl_now_us() / 1000) + w->timeout_ms;
    bool failed = false;
    for (;;) {
        uint32_t waiting = c->n;
        for (uint32_t i = 0; i < c->n && waiting == c->n; i++)
            if (w->pending[i])
                waiting = i;
        if (waiting == c->n || (w->enough && w->enough(w)))
            return failed ? -1 : 0;
        wire_msg *m = NULL;
        int from, rc = cluster_next_msg(c, deadline, &m, &from, err, errlen);
        const cl_node *nd = &c->nodes[waiting];
        if (rc == 0 && !failed)
            snprintf(err, errlen, "no %s from node %s (%s) within %d s; link: %s", w->what, nd->name, nd->address,
                     w->timeout_ms / 1000, nd->state ? nd->state : "no connection yet");
        if (rc <= 0)
            return -1;
        if (from >= 0) {
            int a = answer_of(c, (uint32_t)from, m, w, failed ? NULL : err, errlen);
            failed |= a < 0;
            if (a)
                w->pending[from] = false;
            else if (w->renew && w->pending[from])
                deadline = (rl_now_us() / 1000) + w->timeout_ms;
        }
        wire_msg_destroy(&m);
    }
}

/* Whether the pipeline can take a request: assigned, and no link lost since. */
int cluster_check_usable(const cluster *c, char *err, size_t errlen) {
    if (!c->n_pipe || !c->model)
        snprintf(err, errlen, "no model assigned to the cluster");
    else if (c->lost[0])
        snprintf(err, errlen, "the cluster is unusable until it is assigned again: %s", c->lost);
    else
        return 0;
    return -1;
}

/* After a failed wait: the answers still to come from the nodes whose link
 * is up are taken for a short while, so that none is taken for the next
 * call's; a node whose link went down will not answer (its loss ended the
 * wait already), and a late one is skipped by the next call anyway. */
static void settle(cluster *c, wait_spec *w) {
    char ignored[256];
    for (uint32_t i = 0; i < c->n; i++)
        w->pending[i] &= c->nodes[i].up;
    w->timeout_ms = SETTLE_MS;
    w->renew = false;
    collect(c, w, ignored, sizeof ignored);
}

/* Sends env to every pipeline node (or every node when all) and waits for
 * their answers (those it could send to, when a send fails). */
static int ask(cluster *c, Relais__Envelope *env, bool all, wait_spec *w, char *err, size_t errlen) {
    memset(w->pending, 0, sizeof w->pending);
    if (!all && cluster_check_usable(c, err, errlen))
        return -1;
    for (uint32_t k = 0; k < (all ? c->n : c->n_pipe); k++) {
        uint32_t i = all ? k : c->pipe[k];
        char why[256];
        if (wire_send(c->nodes[i].dealer, NULL, 0, env, why, sizeof why)) {
            snprintf(err, errlen, "node %s: %s", c->nodes[i].name, why);
            settle(c, w);
            return -1;
        }
        w->pending[i] = true;
    }
    return collect(c, w, err, errlen);
}

/* ---- hello ---- */

/* ud: NULL, or (n) flags set for the nodes that answer. */
static int on_capabilities(cluster *c, uint32_t i, const Relais__Envelope *e, void *ud) {
    if (e->body_case != RELAIS__ENVELOPE__BODY_CAPABILITIES)
        return 0;
    if (ud)
        ((bool *)ud)[i] = true;
    const Relais__Capabilities *cap = e->capabilities;
    cl_node *nd = &c->nodes[i];
    cluster_node_info *in = &nd->info;
    snprintf(in->hostname, sizeof in->hostname, "%s", cap->hostname);
    snprintf(in->software, sizeof in->software, "%s", cap->software);
    in->simd[0] = '\0';
    for (size_t k = 0; k < cap->n_simd; k++)
        snprintf(in->simd + strlen(in->simd), sizeof in->simd - strlen(in->simd), "%s%s", k ? " " : "", cap->simd[k]);
    in->cores = cap->cores;
    in->free_ram = cap->free_ram;
    in->total_ram = cap->total_ram;
    in->matvec_bytes_per_s = cap->matvec_bytes_per_s;
    free(nd->models);
    nd->models = calloc(cap->n_models ? cap->n_models : 1, sizeof *nd->models);
    nd->n_models = 0;
    for (size_t k = 0; nd->models && k < cap->n_models; k++)
        if (cap->models[k]->sha256.len == 32)
            memcpy(nd->models[nd->n_models++], cap->models[k]->sha256.data, 32);
    free(nd->slices);
    nd->slices = calloc(cap->n_slices ? cap->n_slices : 1, sizeof *nd->slices);
    nd->n_slices = 0;
    for (size_t k = 0; nd->slices && k < cap->n_slices; k++) {
        const Relais__CachedSlice *cs = cap->slices[k];
        if (cs->model_sha256.len != 32)
            continue;
        cl_slice *sl = &nd->slices[nd->n_slices++];
        memcpy(sl->sha256, cs->model_sha256.data, 32);
        sl->l0 = cs->layer_begin, sl->l1 = cs->layer_end, sl->head = cs->head;
    }
    return 1;
}

static void hello_env(cluster *c, Relais__Hello *h, Relais__Envelope *env, char *host, size_t len) {
    snprintf(host, len, "coordinator");
    gethostname(host, len - 1);
    relais__hello__init(h);
    h->coordinator_name = host;
    h->cluster_id = (ProtobufCBinaryData){sizeof c->id, c->id};
    relais__envelope__init(env);
    env->body_case = RELAIS__ENVELOPE__BODY_HELLO;
    env->hello = h;
}

int cluster_hello(cluster *c, char *err, size_t errlen) {
    char host[64];
    Relais__Hello h;
    Relais__Envelope env;
    hello_env(c, &h, &env, host, sizeof host);
    wait_spec w = {.fn = on_capabilities, .timeout_ms = c->control_ms, .what = "answer to hello"};
    return ask(c, &env, true, &w, err, errlen);
}

/* Hello to node i, which must answer (again). */
static void greet(cluster *c, uint32_t i, Relais__Envelope *env, wait_spec *w) {
    char why[256];
    c->nodes[i].greet = false;
    if (wire_send(c->nodes[i].dealer, NULL, 0, env, why, sizeof why) == 0)
        w->pending[i] = true;
    else
        rl_log(RL_LOG_WARN, "node %s: %s", c->nodes[i].name, why);
}

/* A hello wait that lost links do not end: a node whose link drops is not
 * waited for, a node whose link comes up (restarted) is greeted then; the
 * wait ends when some node answered and no node it greeted is still to
 * answer, or at the deadline (so with every node down, it waits for one to
 * come back). The nodes that answered are flagged in w->ud. */
static void collect_hellos(cluster *c, wait_spec *w, Relais__Envelope *env, int64_t deadline, char *why, size_t len) {
    for (;;) {
        bool waiting = false, some = false;
        for (uint32_t i = 0; i < c->n; i++) {
            if (c->nodes[i].greet && !((bool *)w->ud)[i])
                greet(c, i, env, w);
            if (w->pending[i] && !c->nodes[i].up)
                w->pending[i] = false; /* its link went down: that hello is lost */
            waiting |= w->pending[i];
            some |= ((bool *)w->ud)[i];
        }
        if (!waiting && some)
            return;
        wire_msg *m = NULL;
        const int64_t now = rl_now_us() / 1000; /* short polls: a link that comes up is greeted at once */
        int from,
            rc = cluster_next_msg(c, now + HELLO_POLL_MS < deadline ? now + HELLO_POLL_MS : deadline, &m, &from, why,
                                  len);
        if (rc == 0 && (rl_now_us() / 1000) < deadline)
            continue;
        if (rc == 0) {
            size_t used = (size_t)snprintf(why, len, "no answer to hello within %d s:", w->timeout_ms / 1000);
            for (uint32_t i = 0; i < c->n && used < len; i++)
                used +=
                    (size_t)snprintf(why + used, len - used, " node %s (%s) link: %s;", c->nodes[i].name,
                                     c->nodes[i].address, c->nodes[i].state ? c->nodes[i].state : "no connection yet");
            return;
        }
        if (rc > 0 && from >= 0 && answer_of(c, (uint32_t)from, m, w, why, len))
            w->pending[from] = false;
        wire_msg_destroy(&m);
    }
}

int cluster_hello_some(cluster *c, int timeout_ms, bool *answered, char *err, size_t errlen) {
    memset(answered, 0, c->n * sizeof *answered);
    char host[64], why[512] = "every node is unreachable";
    Relais__Hello h;
    Relais__Envelope env;
    hello_env(c, &h, &env, host, sizeof host);
    wait_spec w = {.fn = on_capabilities, .ud = answered, .timeout_ms = timeout_ms, .what = "answer to hello"};
    cluster_poll_links(c);
    c->hello_wait = true;
    for (uint32_t i = 0; i < c->n; i++)
        if (c->nodes[i].up)
            greet(c, i, &env, &w);
        else
            c->nodes[i].greet = false; /* greeted when its link comes up */
    collect_hellos(c, &w, &env, (rl_now_us() / 1000) + timeout_ms, why, sizeof why);
    c->hello_wait = false;
    int n = 0;
    for (uint32_t i = 0; i < c->n; i++)
        n += answered[i];
    if (n && n < (int)c->n)
        rl_log(RL_LOG_WARN, "%d of %u nodes answered hello", n, c->n);
    if (!n)
        snprintf(err, errlen, "no node answered: %s", why);
    return n ? n : -1;
}

/* Hello to every node left out of the plan whose link is up and that was
 * not asked since (cluster.h). */
void cluster_probe_left_out(cluster *c) {
    char host[64];
    Relais__Hello h;
    Relais__Envelope env;
    hello_env(c, &h, &env, host, sizeof host);
    cluster_poll_links(c);
    for (uint32_t i = 0; i < c->n; i++) {
        cl_node *nd = &c->nodes[i];
        char why[256];
        if (cluster_node_in_pipeline(c, i) || !nd->up || nd->probed || (rl_now_us() / 1000) < nd->probe_after)
            continue;
        nd->probed = true;
        if (wire_send(nd->dealer, NULL, 0, &env, why, sizeof why))
            rl_log(RL_LOG_DEBUG, "node %s: %s", nd->name, why);
    }
}

bool cluster_node_answers(const cluster *c, uint32_t i) { return c->nodes[i].answers; }

/* ---- model hash ---- */

static void hash_progress(void *ud, uint64_t done, uint64_t total) {
    const char *name = ud;
    fprintf(stderr, "\rrelais: hashing %s %3d%%%s", name, (int)(done * 100 / (total ? total : 1)),
            done >= total ? "\n" : "");
}

int cluster_model_hash(const char *path, uint8_t out[32], char *err, size_t errlen) {
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    char dir[4096] = "", cache[4200];
    if (xdg && *xdg)
        snprintf(dir, sizeof dir, "%s/relais", xdg);
    else if (home && *home) {
        snprintf(dir, sizeof dir, "%s/.cache", home);
        mkdir(dir, 0700);
        snprintf(dir, sizeof dir, "%s/.cache/relais", home);
    }
    bool cached = dir[0] && (mkdir(dir, 0700) == 0 || errno == EEXIST);
    snprintf(cache, sizeof cache, "%s/model-hashes", dir);
    struct stat st;
    bool show = isatty(STDERR_FILENO) && stat(path, &st) == 0 && st.st_size > (256 << 20);
    const char *base = strrchr(path, '/');
    return filehash_sha256(path, cached ? cache : NULL, show ? hash_progress : NULL, (void *)(base ? base + 1 : path),
                           out, err, errlen);
}

/* ---- assignment ---- */

/* Takes the ranges: in order, without gap or overlap, covering the model. */
static int set_pipeline(cluster *c, const plan_range *r, uint32_t n_layer, char *err, size_t errlen) {
    uint32_t next = 0;
    c->n_pipe = 0;
    for (uint32_t i = 0; i < c->n; i++) {
        c->nodes[i].range = r[i];
        if (r[i].l0 == r[i].l1)
            continue;
        if (r[i].l0 != next || r[i].l1 < r[i].l0) {
            snprintf(err, errlen, "node %s: layers [%u, %u) do not continue the pipeline at layer %u", c->nodes[i].name,
                     r[i].l0, r[i].l1, next);
            return -1;
        }
        next = r[i].l1;
        c->pipe[c->n_pipe++] = i;
    }
    if (next != n_layer || c->n_pipe == 0) {
        snprintf(err, errlen, "the ranges cover %u of the model's %u layers", next, n_layer);
        return -1;
    }
    return 0;
}

/* The coordinator's part of the model: token_embd only. */
static int load_embedding(cluster *c, const cluster_assign_opts *o, uint32_t *n_layer, char *err, size_t errlen) {
    rl_model_opts mo = rl_model_opts_default();
    mo.swa_window = o->swa_window;
    mo.swa_pattern = o->swa_pattern;
    rl_hparams hp;
    gguf_file *f = gguf_open(o->model_path, err, errlen);
    int rc = !f || rl_hparams_read(f, &mo, &hp, err, errlen) ? -1 : 0;
    gguf_close(&f);
    if (rc)
        return -1;
    mo.l0 = mo.l1 = hp.n_layer;
    mo.head = false;
    rl_model_destroy(&c->model);
    if (!(c->model = rl_model_load(o->model_path, &mo, err, errlen)))
        return -1;
    *n_layer = hp.n_layer;
    free(c->x), free(c->act);
    c->max_batch = o->max_batch;
    c->forward_max = wire_forward_max(&(wire_bounds){o->max_batch, o->max_sessions, o->n_ctx, hp.dim, hp.n_vocab});
    c->x = malloc((size_t)o->max_batch * hp.dim * sizeof *c->x);
    c->act = malloc(wire_activations_max(o->max_batch, hp.dim));
    if (!c->x || !c->act) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

static void fill_assign(const cluster *c, const cluster_assign_opts *o, uint32_t k, const uint8_t *sha,
                        uint32_t n_layer, Relais__Assign *a) {
    const cl_node *nd = &c->nodes[c->pipe[k]];
    const bool last = k + 1 == c->n_pipe;
    const cl_node *next = last ? NULL : &c->nodes[c->pipe[k + 1]];
    const char *base = strrchr(o->model_path, '/');
    a->model_sha256 = (ProtobufCBinaryData){32, (uint8_t *)sha};
    a->layer_begin = nd->range.l0;
    a->layer_end = nd->range.l1;
    a->n_layer = n_layer;
    a->n_ctx = o->n_ctx;
    a->max_sessions = o->max_sessions;
    a->max_batch = o->max_batch;
    a->threads = o->threads;
    a->swa_window = o->swa_window;
    a->swa_pattern = (char *)(o->swa_pattern ? o->swa_pattern : "");
    a->run_head = last;
    a->wire_dtype = c->wire;
    a->next_hop = (char *)(last ? c->result_ep : next->address);
    a->next_hop_public_key = (ProtobufCBinaryData){32, (uint8_t *)(last ? c->keys.public_key : next->key)};
    a->prev_hop_public_key =
        (ProtobufCBinaryData){32, (uint8_t *)(k ? c->nodes[c->pipe[k - 1]].key : c->keys.public_key)};
    a->model_name = (char *)(base ? base + 1 : o->model_path);
    a->gemm_min = o->gemm_min;
    a->no_gemm = o->no_gemm;
    a->kv_type_k = o->kv_type.k;
    a->kv_type_v = o->kv_type.v;
    a->cluster_id = (ProtobufCBinaryData){sizeof c->id, (uint8_t *)c->id};
    a->coordinator_endpoint = (char *)c->result_ep;
}

/* An assignment's answers: a first progress report says the node took it
 * (it admits its previous hop from then on), Ready that it is loaded and
 * linked to its next hop. */
typedef struct {
    bool taken[CLUSTER_MAX_NODES];
    uint32_t node;   /* the node whose taking is awaited */
    char error[512]; /* a weight request that could not be answered */
} assign_wait;

/* A node without the model asks for its slice: the answer goes out at once;
 * a request that cannot be answered is the node's (failed) answer. */
static int on_weight_request(cluster *c, uint32_t i, const Relais__WeightRequest *r, assign_wait *aw) {
    const cl_node *nd = &c->nodes[i];
    const bool head = c->pipe[c->n_pipe - 1] == i;
    aw->taken[i] = true;
    if (aw->error[0])
        return 1; /* the assignment failed already: no more transfers */
    return weights_send_answer(c->weights, i, nd->name, nd->dealer, nd->range.l0, nd->range.l1, head, r, aw->error,
                               sizeof aw->error) != 0;
}

static int on_assign(cluster *c, uint32_t i, const Relais__Envelope *e, void *ud) {
    assign_wait *aw = ud;
    if (e->body_case == RELAIS__ENVELOPE__BODY_WEIGHT_REQUEST)
        return on_weight_request(c, i, e->weight_request, aw);
    aw->taken[i] |=
        e->body_case == RELAIS__ENVELOPE__BODY_LOAD_PROGRESS || e->body_case == RELAIS__ENVELOPE__BODY_READY;
    return e->body_case == RELAIS__ENVELOPE__BODY_READY;
}

static bool taken(const wait_spec *w) {
    const assign_wait *aw = w->ud;
    return aw->taken[aw->node] || !w->pending[aw->node];
}

/* Every node its Assign, from the last node back, each after the next one
 * took its own: a node admits its previous hop from then on, so no node
 * ever connects to a next hop that would refuse it. Loading overlaps. */
static int send_assignments(cluster *c, const cluster_assign_opts *o, const uint8_t *sha, uint32_t n_layer,
                            wait_spec *w, char *err, size_t errlen) {
    assign_wait *aw = w->ud;
    for (uint32_t k = c->n_pipe; k-- > 0;) {
        cl_node *nd = &c->nodes[c->pipe[k]];
        Relais__Assign a = RELAIS__ASSIGN__INIT;
        fill_assign(c, o, k, sha, n_layer, &a);
        Relais__Envelope env = RELAIS__ENVELOPE__INIT;
        env.body_case = RELAIS__ENVELOPE__BODY_ASSIGN;
        env.assign = &a;
        char why[256];
        nd->done = nd->total = 0;
        nd->phase[0] = '\0';
        rl_log(RL_LOG_INFO, "node %s: layers %u-%u%s from %s", nd->name, a.layer_begin, a.layer_end - 1,
               a.run_head ? " and the head" : "",
               cluster_node_holds(c, c->pipe[k], sha) ? "its copy of the model"
                   : cluster_node_cached(c, c->pipe[k], sha, a.layer_begin, a.layer_end, a.run_head)
                   ? "the slice in its cache"
                   : "a weight transfer (the node does not hold the model)");
        if (wire_send(nd->dealer, NULL, 0, &env, why, sizeof why)) {
            snprintf(err, errlen, "node %s: %s", nd->name, why);
            return -1;
        }
        w->pending[c->pipe[k]] = true;
        aw->node = c->pipe[k];
        w->enough = taken;
        w->what = "answer to the assignment";
        if (collect(c, w, err, errlen))
            return -1;
    }
    w->enough = NULL;
    w->what = "progress while loading";
    return 0;
}

/* Before any measure, a step's time per row: the whole model file streamed
 * by the slowest node of the pipeline (a generous bound: the rows of a
 * prompt chunk share their weight reads). */
static double estimated_row_ms(const cluster *c, const char *model_path) {
    struct stat st;
    double slowest = 0;
    for (uint32_t k = 0; k < c->n_pipe; k++) {
        const double v = c->nodes[c->pipe[k]].info.matvec_bytes_per_s;
        if (v > 0 && (slowest == 0 || v < slowest))
            slowest = v;
    }
    if (stat(model_path, &st) || slowest == 0)
        return 0;
    return (double)st.st_size / slowest * 1000.0;
}

int cluster_assign(cluster *c, const cluster_assign_opts *o, char *err, size_t errlen) {
    uint8_t sha[32];
    uint32_t n_layer;
    snprintf(c->lost, sizeof c->lost, "the last assignment failed"); /* until this one succeeds */
    c->failed_node = -1;
    for (uint32_t i = 0; i < c->n; i++)
        c->nodes[i].answers = c->nodes[i].probed = false; /* the next plan is made over who answers now */
    if (o->max_batch == 0 || o->max_batch > WIRE_MAX_BATCH || o->n_ctx == 0 || o->max_sessions == 0) {
        snprintf(err, errlen, "batch %u, context %u and sessions %u must be positive (batch at most %d)", o->max_batch,
                 o->n_ctx, o->max_sessions, WIRE_MAX_BATCH);
        return -1;
    }
    if (!wire_dtype_name(o->wire)) {
        snprintf(err, errlen, "wire dtype %d is not one of the protocol's", (int)o->wire);
        return -1;
    }
    if (load_embedding(c, o, &n_layer, err, errlen) || set_pipeline(c, o->ranges, n_layer, err, errlen) ||
        cluster_model_hash(o->model_path, sha, err, errlen))
        return -1;
    c->wire = (Relais__DType)o->wire;
    c->n_ctx = o->n_ctx;
    curve_zap_forget_role(c->zap, ROLE_NODE);
    if (curve_zap_allow(c->zap, c->nodes[c->pipe[c->n_pipe - 1]].key, ROLE_NODE)) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    c->show_progress = o->progress && isatty(STDERR_FILENO);
    int64_t t0 = (rl_now_us() / 1000);
    assign_wait aw = {.node = 0};
    wait_spec w = {.fn = on_assign, .ud = &aw, .timeout_ms = c->load_ms, .renew = true};
    weights_send_destroy(&c->weights);
    if (!(c->weights = weights_send_new(o->model_path, sha, c->n))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = send_assignments(c, o, sha, n_layer, &w, err, errlen);
    w.enough = NULL;
    if (rc == 0)
        rc = collect(c, &w, err, errlen);
    else
        settle(c, &w);
    if (rc == 0 && aw.error[0]) {
        snprintf(err, errlen, "%s", aw.error);
        rc = -1;
    }
    c->weight_bytes += weights_send_bytes(c->weights);
    weights_send_destroy(&c->weights);
    if (c->show_progress)
        fputc('\n', stderr);
    c->show_progress = false;
    if (rc && c->failed_node >= 0) /* it answers hello but refused: ask it again later, not at once */
        c->nodes[c->failed_node].probe_after = (rl_now_us() / 1000) + REFUSED_PROBE_MS;
    if (rc == 0) {
        c->kv_type = o->kv_type;
        c->lost[0] = '\0';
        c->flying = c->rows_flying = 0; /* what was in flight went down with the old pipeline */
        memset(c->step_rows, 0, sizeof c->step_rows);
        c->row_ms = estimated_row_ms(c, o->model_path);
        c->gap_ms = 0;
        c->first_step = c->next_step; /* and its late answers are not this pipeline's */
        rl_log(RL_LOG_INFO, "%u nodes ready in %.1f s", c->n_pipe, ((rl_now_us() / 1000) - t0) / 1000.0);
    }
    return rc;
}

/* ---- sessions and liveness ---- */

static int on_heartbeat(cluster *c, uint32_t i, const Relais__Envelope *e, void *ud) {
    (void)c, (void)i;
    return e->body_case == RELAIS__ENVELOPE__BODY_HEARTBEAT && e->heartbeat->seq == *(uint64_t *)ud;
}

int cluster_heartbeat(cluster *c, char *err, size_t errlen) {
    Relais__Heartbeat h = RELAIS__HEARTBEAT__INIT;
    h.seq = ++c->hb_seq;
    h.unix_ms = (uint64_t)time(NULL) * 1000;
    Relais__Envelope env = RELAIS__ENVELOPE__INIT;
    env.body_case = RELAIS__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &h;
    wait_spec w = {.fn = on_heartbeat, .ud = &h.seq, .timeout_ms = c->control_ms, .what = "heartbeat"};
    return ask(c, &env, false, &w, err, errlen);
}

void cluster_describe(const cluster *c, char *buf, size_t len) {
    size_t used = (size_t)snprintf(buf, len, "%u-node pipeline (%s wire):", c->n_pipe, wire_dtype_name(c->wire));
    for (uint32_t k = 0; k < c->n_pipe && used < len; k++) {
        const cl_node *nd = &c->nodes[c->pipe[k]];
        used += (size_t)snprintf(buf + used, len - used, " %s %u-%u", nd->name, nd->range.l0, nd->range.l1 - 1);
    }
}
