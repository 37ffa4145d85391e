/* Keeps a process's message handling on one CPU, when asked to.
 *
 * A message that reaches a relais process wakes two threads in turn:
 * ZeroMQ's I/O thread, which reads the socket, and the thread blocked in
 * zmq_poll, which it signals. The kernel wakes each on whichever CPU is idle,
 * and between two tokens every CPU of a pipeline stage is idle. Waking an
 * idle CPU is the costly part of a hop where idle CPUs halt (virtual
 * machines whose guests do not poll before halting): on loopback, a ZeroMQ
 * link after a 40 ms wait took 200-234 us one way with the threads free to
 * go anywhere, 126-144 us with all of them on one CPU (bench/link_bench.c
 * under taskset).
 *
 * So the I/O threads of a ZeroMQ context go to one CPU, and the thread that
 * polls is held on that CPU only while it waits; the compute that follows is
 * free to use every core. Both halves are needed: the I/O threads alone on
 * one CPU saved nothing measurable. The 5 links of a 4-node pipeline on one
 * machine took 0.87-1.04 ms per token instead of 1.14-1.32 (BENCHMARKS.md).
 *
 * It is not the default, because a thread held on one CPU must wait for that
 * CPU: with several nodes on one machine serving concurrent requests, their
 * stages compute at the same time, and a poller woken while another node
 * computes on its CPU waits for it. bench/serve_bench.sh with 2 and 4 nodes
 * on this 2-CPU machine served 7-14% fewer tokens/s at 4 and 16 concurrent
 * requests pinned than not. One node per machine, or one request at a time,
 * has no such cost. */
#ifndef RELAIS_IO_PIN_H
#define RELAIS_IO_PIN_H

#include <stddef.h>

struct zmq_pollitem_t; /* zmq.h */

#define IO_PIN_NONE (-1) /* pin nothing: the default */

typedef struct io_pin io_pin;

/* Parses "none" (IO_PIN_NONE) or a CPU number. 0, or -1 with err. */
int io_pin_parse(const char *text, int *cpu, char *err, size_t errlen);

/* Pins the I/O threads of zctx, which must not have made a socket yet, to
 * cpu (a number, or IO_PIN_NONE for nothing), and remembers the CPUs the
 * calling thread may use now, to give them back after each wait. NULL with
 * err when cpu is not one of those CPUs or ZeroMQ refuses the setting.
 * Destroy with io_pin_destroy. */
io_pin *io_pin_new(void *zctx, int cpu, char *err, size_t errlen);
void io_pin_destroy(io_pin **p); /* NULLs *p */

/* The CPU messages are handled on, or IO_PIN_NONE. */
int io_pin_cpu(const io_pin *p);

/* zmq_poll, with the calling thread on the pinned CPU while it waits. */
int io_pin_poll(const io_pin *p, struct zmq_pollitem_t *items, int n, long timeout_ms);

#endif
