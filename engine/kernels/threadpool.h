/* A persistent pool of worker threads for the forward pass. Threads are
 * created once; each operation (a matrix product, the attention of a layer)
 * is one rl_pool_run call that wakes them, so no thread is created per token.
 * Idle workers spin briefly before sleeping, because decode issues hundreds
 * of short operations per token and a sleep/wake per operation would cost
 * more than the operation. */
#ifndef RELAIS_THREADPOOL_H
#define RELAIS_THREADPOOL_H

/* Runs on every thread: ith in [0, nth), the caller being thread 0. */
typedef void (*rl_task_fn)(void *arg, int ith, int nth);

typedef struct rl_pool rl_pool;

/* n_threads <= 0: one per online core. NULL if threads cannot be created. */
rl_pool *rl_pool_new(int n_threads);
void rl_pool_destroy(rl_pool **p); /* joins the workers, NULLs *p */
int rl_pool_size(const rl_pool *p);

/* Runs fn(arg, ith, nth) on all threads and returns when all have finished.
 * Not reentrant: one caller thread at a time. */
void rl_pool_run(rl_pool *p, rl_task_fn fn, void *arg);

/* Splits [0, n) evenly: the share of thread ith out of nth. */
void rl_split(long n, int ith, int nth, long *begin, long *end);

#endif
