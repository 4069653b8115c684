/*
 * bench_cold.py's joiner: puts this process into the cgroup files given, then becomes the
 * function (execv), so the function runs under its CPU quota from its first instruction.
 *
 *   cgroup_join FILE... -- PROGRAM ARG...
 *
 * FILE is a cgroup v1 `tasks` file (this writes "0": the calling thread, which is the whole
 * process, as it has one) or a cgroup v2 `cgroup.procs` file (this writes its pid).
 *
 * Why C and static: the cost of the joiner lands on the function's clock and CPU account,
 * and Lambda has no such step. A /bin/sh wrapper cost ~0.7 ms of CPU per cold start here
 * (dash's start, dynamic loading, two execs); a static binary that makes four system
 * calls costs ~0.05 ms. bench_cold.py builds it with `cc -static` and says which it used.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    char pid[32];
    int sep = 1;
    while (sep < argc && strcmp(argv[sep], "--") != 0) sep++;
    if (sep + 1 >= argc) {
        fputs("usage: cgroup_join FILE... -- PROGRAM ARG...\n", stderr);
        return 2;
    }
    for (int i = 1; i < sep; i++) {
        size_t n = strlen(argv[i]);
        int v1 = n >= 5 && strcmp(argv[i] + n - 5, "tasks") == 0;
        int len = v1 ? snprintf(pid, sizeof pid, "0\n") : snprintf(pid, sizeof pid, "%d\n", (int)getpid());
        int fd = open(argv[i], O_WRONLY | O_CLOEXEC);
        if (fd < 0 || write(fd, pid, (size_t)len) != len) {
            fprintf(stderr, "bench_cold: cannot join %s: ", argv[i]);
            perror(NULL);
            return 111;
        }
        close(fd);
    }
    execvp(argv[sep + 1], argv + sep + 1);
    fprintf(stderr, "bench_cold: cannot run %s: ", argv[sep + 1]);
    perror(NULL);
    return 127;
}
