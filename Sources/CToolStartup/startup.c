#include "f2a_startup.h"

#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* OpenBLAS starts its worker threads in its library constructor, before main: under a tight
 * `ulimit -v` a worker either cannot be created (OpenBLAS then raises SIGINT) or cannot map
 * its 128 MB GEMM buffer and retries forever, spinning on a core, and the process hangs at
 * exit joining it. Only OPENBLAS_NUM_THREADS=1 in the environment the constructor reads
 * prevents the workers, and the executable's .preinit_array is the one place that runs before
 * it. A setenv there does not last (glibc 2.36 resets environ after the preinit array), so
 * under a finite limit the process replaces itself, before any library has started, with the
 * same program, arguments and environment plus OPENBLAS_NUM_THREADS=1 and MALLOC_ARENA_MAX=1:
 * glibc would otherwise give each thread a malloc arena of its own, each reserving 64 MB of
 * address space that the tools' memory checks cannot foresee (an allocation then fails after
 * the check passed, and Swift aborts). The Swift side (F2ACore's BLASAddressSpace) keeps
 * OpenBLAS single-threaded, runs one GEMM at a time and maps its buffer before the model is
 * loaded. */
static int adapted;

/* Room the Swift runtime needs after the libraries are mapped to reach the tools' own check
 * of the limit (F2ACore's BLASAddressSpace), which explains it. With less, its first
 * allocations fail and it aborts with a stack trace instead (a limit 0.5 MB above what the
 * dynamic loader needs, where the loader itself still succeeds). Any limit this tight fails
 * that check anyway: OpenBLAS alone needs ~145 MB. */
#define STARTUP_ROOM ((unsigned long long) 8 << 20)

/* Bytes of address space mapped now (/proc/self/statm's first field), or 0 if unknown.
 * No stdio: nothing here may allocate. */
static unsigned long long mapped_bytes(void) {
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char buf[64];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    unsigned long long pages = 0;
    for (ssize_t i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; i++) pages = pages * 10 + (unsigned) (buf[i] - '0');
    return pages * (unsigned long long) sysconf(_SC_PAGESIZE);
}

/* To stderr without stdio, which may allocate: a string, a decimal number. */
static void say(const char *s) { (void) !write(2, s, strlen(s)); }
static void say_number(unsigned long long v) {
    char d[24];
    int i = sizeof d;
    d[--i] = 0;
    do d[--i] = (char) ('0' + v % 10); while ((v /= 10) && i > 0);
    say(d + i);
}

static const char *value(char **envp, const char *name) {
    size_t n = strlen(name);
    for (char **e = envp; e && *e; e++)
        if (strncmp(*e, name, n) == 0 && (*e)[n] == '=') return *e + n + 1;
    return NULL;
}

static void f2a_startup(int argc, char **argv, char **envp) {
    (void) argc;
    struct rlimit limit;
    if (getrlimit(RLIMIT_AS, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return;
    adapted = 1;
    const unsigned long long used = mapped_bytes();
    if (used && limit.rlim_cur < used + STARTUP_ROOM) {
        say("Error: the address-space limit (ulimit -v ");
        say_number((unsigned long long) limit.rlim_cur >> 10);
        say(" KB) leaves ");
        say_number(limit.rlim_cur > used ? (limit.rlim_cur - used) >> 10 : 0);
        say(" KB once the program is loaded, too little to start: raise the limit (ulimit -v)\n");
        _exit(2);
    }
    const char *threads = value(envp, "OPENBLAS_NUM_THREADS");
    if (threads && strcmp(threads, "1") == 0) {
        /* Already set (by the restart below, or by the user): no restart, which would loop. */
        mallopt(M_ARENA_MAX, 1);
        return;
    }
    size_t count = 0;
    while (envp[count]) count++;
    char **env = malloc((count + 3) * sizeof *env);
    if (!env) return;
    size_t k = 0;
    for (size_t i = 0; i < count; i++)
        if (strncmp(envp[i], "OPENBLAS_NUM_THREADS=", 21) != 0) env[k++] = envp[i];
    env[k++] = "OPENBLAS_NUM_THREADS=1";
    if (!value(envp, "MALLOC_ARENA_MAX")) env[k++] = "MALLOC_ARENA_MAX=1";
    env[k] = NULL;
    execve("/proc/self/exe", argv, env);
    /* The restart failed (no /proc): carry on, as before. */
    free(env);
    mallopt(M_ARENA_MAX, 1);
}

__attribute__((section(".preinit_array"), used))
static void (*const f2a_startup_entry)(int, char **, char **) = f2a_startup;

int f2a_startup_adapted(void) { return adapted; }

void f2a_retain_freed_blocks(void) {
    mallopt(M_MMAP_THRESHOLD, INT_MAX);
    mallopt(M_TRIM_THRESHOLD, INT_MAX);
}
