/* nfq_delay: a fixed one-way delay for the packets an iptables rule sends
 * to an NFQUEUE, for kernels built without the netem qdisc. Every queued
 * packet is held until DELAY_US microseconds after it arrived here and is then
 * accepted, in arrival order (the delay is the same for all, so the order the
 * wire had is kept). tests/net/netns_cluster.sh runs one per network
 * namespace: queues belong to the namespace that binds them.
 *
 * usage: nfq_delay QUEUE_NUM DELAY_US
 * Prints "ready" on stdout once the queue is bound (packets reaching an
 * unbound queue are dropped, so the caller waits for that line), and runs
 * until SIGTERM or SIGINT, when it accepts what it still holds and exits. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>
#include <linux/netfilter.h>
#include <libnetfilter_queue/libnetfilter_queue.h>

/* More than the kernel will queue to us (its queue length is set to the
 * same), so a burst never overflows the ring. */
#define HELD_MAX 8192u

typedef struct {
    uint32_t id;
    int64_t due_ns;
} held_packet;

typedef struct {
    struct nfq_q_handle *queue;
    int64_t delay_ns;
    held_packet ring[HELD_MAX];
    unsigned head, count;
    unsigned long long overflows;
} delay_state;

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Called by nfq_handle_packet for each packet read from the socket. */
static int on_packet(struct nfq_q_handle *qh, struct nfgenmsg *msg, struct nfq_data *nfa, void *arg) {
    (void)msg;
    delay_state *st = arg;
    struct nfqnl_msg_packet_hdr *ph = nfq_get_msg_packet_hdr(nfa);
    if (!ph)
        return 0;
    uint32_t id = ntohl(ph->packet_id);
    if (st->count == HELD_MAX) {
        /* Cannot happen with the kernel queue no longer than the ring; if it
         * does, passing the packet on late-less beats losing it silently. */
        st->overflows++;
        return nfq_set_verdict(qh, id, NF_ACCEPT, 0, NULL) < 0 ? -1 : 0;
    }
    held_packet *slot = &st->ring[(st->head + st->count) % HELD_MAX];
    slot->id = id;
    slot->due_ns = now_ns() + st->delay_ns;
    st->count++;
    return 0;
}

/* Accepts every held packet whose time has come (all of them when flush is
 * set); returns -1 if the kernel refused a verdict. */
static int release_due(delay_state *st, int flush) {
    int64_t now = now_ns();
    while (st->count > 0 && (flush || st->ring[st->head].due_ns <= now)) {
        if (nfq_set_verdict(st->queue, st->ring[st->head].id, NF_ACCEPT, 0, NULL) < 0)
            return -1;
        st->head = (st->head + 1) % HELD_MAX;
        st->count--;
    }
    return 0;
}

/* How long ppoll() may sleep: until the oldest held packet is due, or
 * 200 ms with nothing held (to notice signals). ppoll's nanosecond timeout
 * and a 1 ns timer slack let a packet leave within microseconds of its due
 * time, where poll()'s whole milliseconds would add up to one more. */
static struct timespec wait_time(const delay_state *st) {
    int64_t wait = st->count ? st->ring[st->head].due_ns - now_ns() : 200000000;
    if (wait < 0)
        wait = 0;
    return (struct timespec){wait / 1000000000, wait % 1000000000};
}

static int run(delay_state *st, struct nfq_handle *h) {
    int fd = nfq_fd(h);
    char buf[65536] __attribute__((aligned));
    while (!stop_requested) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        struct timespec timeout = wait_time(st);
        int n = ppoll(&pfd, 1, &timeout, NULL);
        if (n < 0 && errno != EINTR) {
            perror("nfq_delay: poll");
            return -1;
        }
        if (n > 0) {
            ssize_t len = recv(fd, buf, sizeof buf, 0);
            if (len < 0 && errno == ENOBUFS) {
                fprintf(stderr, "nfq_delay: the kernel dropped queued packets (socket buffer full)\n");
            } else if (len < 0 && errno != EINTR) {
                perror("nfq_delay: recv");
                return -1;
            } else if (len > 0) {
                nfq_handle_packet(h, buf, (int)len);
            }
        }
        if (release_due(st, 0) < 0) {
            perror("nfq_delay: verdict");
            return -1;
        }
    }
    return release_due(st, 1);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: nfq_delay QUEUE_NUM DELAY_US\n");
        return 2;
    }
    char *end;
    long qnum = strtol(argv[1], &end, 10);
    if (*end || qnum < 0 || qnum > 65535) {
        fprintf(stderr, "nfq_delay: bad queue number %s\n", argv[1]);
        return 2;
    }
    long delay_us = strtol(argv[2], &end, 10);
    if (*end || delay_us < 0 || delay_us > 10000000) {
        fprintf(stderr, "nfq_delay: bad delay %s\n", argv[2]);
        return 2;
    }

    static delay_state st;
    st.delay_ns = (int64_t)delay_us * 1000;
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);

    struct nfq_handle *h = nfq_open();
    if (!h) {
        perror("nfq_delay: nfq_open");
        return 1;
    }
    st.queue = nfq_create_queue(h, (uint16_t)qnum, on_packet, &st);
    if (!st.queue) {
        perror("nfq_delay: nfq_create_queue");
        nfq_close(h);
        return 1;
    }
    int rc = 1;
    /* Only the packet id is needed, never the payload. */
    if (nfq_set_mode(st.queue, NFQNL_COPY_META, 0) < 0) {
        perror("nfq_delay: nfq_set_mode");
        goto out;
    }
    if (nfq_set_queue_maxlen(st.queue, HELD_MAX) < 0) {
        perror("nfq_delay: nfq_set_queue_maxlen");
        goto out;
    }
    /* Large TCP segments stay whole instead of being split for us. */
    nfq_set_queue_flags(st.queue, NFQA_CFG_F_GSO, NFQA_CFG_F_GSO);
    printf("ready\n");
    fflush(stdout);
    rc = run(&st, h) < 0 ? 1 : 0;
    if (st.overflows)
        fprintf(stderr, "nfq_delay: %llu packets passed undelayed (ring full)\n", st.overflows);
out:
    nfq_destroy_queue(st.queue);
    nfq_close(h);
    return rc;
}
