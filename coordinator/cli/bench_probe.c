/* `relais bench --probe`: the engine's streaming-read probe (machine.h), run in
 * a child process so its buffer stays out of the benchmark's peak RSS. */
#include "bench_probe.h"

#include <sys/wait.h>
#include <unistd.h>
#include "machine.h"

double bench_probe_gbps(int threads, size_t bytes) {
    int fd[2];
    double gbps = 0;
    if (pipe(fd) != 0)
        return 0;
    const pid_t pid = fork();
    if (pid == 0) {
        gbps = rl_read_probe(threads, bytes);
        _exit(write(fd[1], &gbps, sizeof gbps) == (ssize_t)sizeof gbps ? 0 : 1);
    }
    close(fd[1]);
    if (pid < 0 || read(fd[0], &gbps, sizeof gbps) != (ssize_t)sizeof gbps)
        gbps = 0;
    close(fd[0]);
    if (pid > 0)
        waitpid(pid, NULL, 0);
    return gbps;
}
