/* Persistent thread pool. The caller publishes a task by bumping a
 * generation counter; workers spin on it for a while, then sleep on a
 * condition variable. The caller only takes the mutex when someone sleeps,
 * so a busy decode loop dispatches with a few atomic operations.
 *
 * A task's n shares (ith = 0..n-1) are claimed from a counter by whichever
 * thread comes first, the caller included, rather than share i going to
 * thread i. On a shared machine a worker is often preempted by another
 * process; with fixed shares every operation then waited a scheduler slice
 * for it (2 threads decoded at half the speed of 1 under load, measured),
 * while now the caller runs the shares the worker has not started. */
#include "threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

/* About a millisecond of pause instructions: longer than the gap between two
 * operations of a decode step, far shorter than the gap between tokens. */
#define SPIN_ROUNDS 20000

struct rl_pool {
    int n;               /* threads including the caller */
    int spin;            /* pause rounds before sleeping; 0 when oversubscribed */
    pthread_t *threads;  /* (n - 1) workers */
    rl_task_fn fn;       /* current task */
    void *arg;           /* its argument */
    atomic_uint gen;     /* bumped once per task */
    atomic_ullong claim; /* (generation << 32) | next unclaimed share of the current task */
    atomic_int done;     /* shares finished of the current task */
    atomic_int sleeping; /* workers blocked on wake */
    atomic_bool quit;    /* set by destroy */
    pthread_mutex_t mu;
    pthread_cond_t wake;
};

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    _mm_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static unsigned wait_for_task(rl_pool *p, unsigned seen) {
    for (int i = 0; i < p->spin; i++) {
        unsigned g = atomic_load(&p->gen);
        if (g != seen || atomic_load(&p->quit))
            return g;
        cpu_relax();
    }
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add(&p->sleeping, 1);
    while (atomic_load(&p->gen) == seen && !atomic_load(&p->quit))
        pthread_cond_wait(&p->wake, &p->mu);
    atomic_fetch_sub(&p->sleeping, 1);
    pthread_mutex_unlock(&p->mu);
    return atomic_load(&p->gen);
}

/* Runs unclaimed shares of the task of generation gen until none is left.
 * A claim only succeeds while the task is current, and the task stays
 * current (fn and arg unchanged) until its claimed shares are done. */
static void run_shares(rl_pool *p, unsigned gen) {
    unsigned long long c = atomic_load(&p->claim);
    while ((unsigned)(c >> 32) == gen && (int)(c & 0xffffffffu) < p->n) {
        if (!atomic_compare_exchange_weak(&p->claim, &c, c + 1))
            continue; /* c now holds the current value */
        p->fn(p->arg, (int)(c & 0xffffffffu), p->n);
        atomic_fetch_add(&p->done, 1);
        c = atomic_load(&p->claim);
    }
}

static void *worker_main(void *v) {
    rl_pool *p = v;
    unsigned seen = 0; /* the generation at creation: a task published before we got here still runs */
    for (;;) {
        seen = wait_for_task(p, seen);
        if (atomic_load(&p->quit))
            return NULL;
        run_shares(p, seen);
    }
}

rl_pool *rl_pool_new(int n_threads) {
    if (n_threads <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = c > 0 ? (int)c : 1;
    }
    rl_pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->n = n_threads;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    /* More threads than cores: a spinning worker would steal the core that
     * the thread it waits for needs. */
    p->spin = cores > 0 && n_threads > cores ? 0 : SPIN_ROUNDS;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    p->threads = calloc((size_t)n_threads, sizeof *p->threads);
    if (!p->threads) {
        rl_pool_destroy(&p);
        return NULL;
    }
    for (int i = 1; i < n_threads; i++) {
        if (pthread_create(&p->threads[i - 1], NULL, worker_main, p) != 0) {
            p->n = i; /* destroy joins only the threads that exist */
            rl_pool_destroy(&p);
            return NULL;
        }
    }
    return p;
}

void rl_pool_destroy(rl_pool **pp) {
    rl_pool *p = pp ? *pp : NULL;
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->quit, true);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n && p->threads; i++)
        pthread_join(p->threads[i - 1], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    free(p->threads);
    free(p);
    *pp = NULL;
}

int rl_pool_size(const rl_pool *p) { return p->n; }

void rl_pool_run(rl_pool *p, rl_task_fn fn, void *arg) {
    if (p->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    atomic_store(&p->done, 0);
    const unsigned gen = atomic_load(&p->gen) + 1;
    atomic_store(&p->claim, (unsigned long long)gen << 32);
    atomic_store(&p->gen, gen);
    if (atomic_load(&p->sleeping) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mu);
    }
    run_shares(p, gen);
    for (long spins = 0; atomic_load(&p->done) < p->n; spins++) {
        if (spins < p->spin)
            cpu_relax();
        else
            sched_yield();
    }
}

void rl_split(long n, int ith, int nth, long *begin, long *end) {
    long per = n / nth, rem = n % nth;
    *begin = ith * per + (ith < rem ? ith : rem);
    *end = *begin + per + (ith < rem ? 1 : 0);
}
