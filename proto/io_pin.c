/* io_pin (see io_pin.h). sched_setaffinity on the calling thread costs about
 * a microsecond and moves it only when it is not already on the CPU asked
 * for; a failure there (a CPU taken offline since) leaves the wait
 * unpinned, which is slower but no error. */
#include "io_pin.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

struct io_pin {
    int cpu;           /* where I/O threads run and polls wait; IO_PIN_NONE */
    cpu_set_t one;     /* {cpu} */
    cpu_set_t allowed; /* the creating thread's CPUs: the poller's between waits */
};

int io_pin_parse(const char *text, int *cpu, char *err, size_t errlen) {
    if (!strcmp(text, "none")) {
        *cpu = IO_PIN_NONE;
        return 0;
    }
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || *text < '0' || *text > '9' || *end || v >= CPU_SETSIZE) {
        snprintf(err, errlen, "'%s' is neither a CPU number (0-%d) nor 'none'", text, CPU_SETSIZE - 1);
        return -1;
    }
    *cpu = (int)v;
    return 0;
}

static void describe(const cpu_set_t *s, char *out, size_t len) {
    size_t k = 0;
    out[0] = '\0';
    for (int i = 0; i < CPU_SETSIZE && k + 8 < len; i++)
        if (CPU_ISSET(i, s))
            k += (size_t)snprintf(out + k, len - k, "%s%d", k ? "," : "", i);
}

io_pin *io_pin_new(void *zctx, int cpu, char *err, size_t errlen) {
    io_pin *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->cpu = IO_PIN_NONE;
    if (cpu == IO_PIN_NONE)
        return p;
    if (sched_getaffinity(0, sizeof p->allowed, &p->allowed)) {
        snprintf(err, errlen, "cannot read this thread's CPUs: %s", strerror(errno));
        goto fail;
    }
    if (cpu < 0 || cpu >= CPU_SETSIZE || !CPU_ISSET(cpu, &p->allowed)) {
        char cpus[256];
        describe(&p->allowed, cpus, sizeof cpus);
        snprintf(err, errlen, "CPU %d is not one this process may run on (%s)", cpu, cpus);
        goto fail;
    }
    if (zmq_ctx_set(zctx, ZMQ_THREAD_AFFINITY_CPU_ADD, cpu)) {
        snprintf(err, errlen, "ZeroMQ cannot pin its I/O threads to CPU %d: %s", cpu, zmq_strerror(errno));
        goto fail;
    }
    p->cpu = cpu;
    CPU_ZERO(&p->one);
    CPU_SET(cpu, &p->one);
    return p;
fail:
    free(p);
    return NULL;
}

void io_pin_destroy(io_pin **pp) {
    if (pp) {
        free(*pp);
        *pp = NULL;
    }
}

int io_pin_cpu(const io_pin *p) { return p->cpu; }

int io_pin_poll(const io_pin *p, struct zmq_pollitem_t *items, int n, long timeout_ms) {
    if (p->cpu == IO_PIN_NONE)
        return zmq_poll(items, n, timeout_ms);
    (void)sched_setaffinity(0, sizeof p->one, &p->one);
    int rc = zmq_poll(items, n, timeout_ms);
    int saved = errno;
    (void)sched_setaffinity(0, sizeof p->allowed, &p->allowed);
    errno = saved;
    return rc;
}
