/* The round trip to each node, for the planner's link cost (see
 * cluster_measure_links in cluster.h). Heartbeats, not Hello: a node
 * answers a heartbeat at once, while Hello rescans its model folder and the
 * first one carries the connection's handshake. The smallest of a few
 * rounds is kept, the link's own time rather than a moment the node was
 * busy. */
#include "cluster.h"
#include "cluster_priv.h"

#include <stdio.h>
#include <string.h>
#include "util.h"

#define SEQ_BASE (1ull << 62) /* apart from cluster_heartbeat's sequence numbers */

int cluster_measure_links(cluster *c, int rounds, const bool *only, char *err, size_t errlen) {
    double best[CLUSTER_MAX_NODES];
    bool heard[CLUSTER_MAX_NODES] = {false};
    for (uint32_t i = 0; i < c->n; i++)
        best[i] = 0;
    for (int r = 0; r < rounds; r++) {
        Relais__Heartbeat h = RELAIS__HEARTBEAT__INIT;
        h.seq = SEQ_BASE + (uint64_t)r;
        Relais__Envelope env = RELAIS__ENVELOPE__INIT;
        env.body_case = RELAIS__ENVELOPE__BODY_HEARTBEAT;
        env.heartbeat = &h;
        double sent[CLUSTER_MAX_NODES];
        bool pending[CLUSTER_MAX_NODES];
        uint32_t waiting = 0;
        for (uint32_t i = 0; i < c->n; i++) {
            char why[256];
            sent[i] = rl_now_s();
            pending[i] = (!only || only[i]) && wire_send(c->nodes[i].dealer, NULL, 0, &env, why, sizeof why) == 0;
            waiting += pending[i];
        }
        const int64_t deadline = rl_now_us() / 1000 + c->control_ms;
        while (waiting) {
            wire_msg *m = NULL;
            int from;
            if (cluster_next_msg(c, deadline, &m, &from, err, errlen) <= 0)
                break;
            const Relais__Envelope *e = wire_msg_code(m) ? NULL : wire_msg_env(m);
            if (from >= 0 && pending[from] && e && e->body_case == RELAIS__ENVELOPE__BODY_HEARTBEAT &&
                e->heartbeat->seq == h.seq) {
                const double t = rl_now_s() - sent[from];
                best[from] = heard[from] && best[from] < t ? best[from] : t;
                heard[from] = true;
                pending[from] = false;
                waiting--;
            }
            wire_msg_destroy(&m);
        }
    }
    uint32_t n_heard = 0;
    for (uint32_t i = 0; i < c->n; i++) {
        c->nodes[i].info.rtt_s = best[i];
        n_heard += heard[i];
    }
    if (n_heard == 0)
        return rl_errf(err, errlen, "no node answered a heartbeat");
    return 0;
}
