#define _GNU_SOURCE /* sched_getcpu, sched_setaffinity */
#include "f2a_kernels.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

/* A persistent pool of worker threads shared by every kernel call.
 *
 * Why: a forward pass makes a few hundred parallel dispatches (three per
 * Winograd band); creating and joining pthreads for each cost tens of
 * microseconds idle and whole scheduler slices on a loaded machine.
 *
 * Work is handed out from both ends of an atomic range in shrinking claims
 * (run_items), so a thread that gets descheduled (the machine is shared) simply
 * takes fewer items and both cores finish together. Workers spin briefly after a job (the next
 * dispatch usually follows within microseconds), then sleep on a condition
 * variable so an idle library costs no CPU. The caller never waits for a
 * sleeping worker to wake: it runs items itself and returns once all are
 * done. One caller at a time uses the pool; a concurrent caller runs its
 * items on its own thread. */

#define MAX_THREADS 16
#define CYCLES_PER_US 2400ULL /* TSC ticks, roughly (2.3-2.5 GHz on the machines measured) */
#define SPIN_CYCLES (25 * CYCLES_PER_US) /* ~25 us of spinning before sleeping */
#define HELD_SPIN_US 1000 /* while held (f2a_pool_hold); $F2A_POOL_HOLD_US overrides, 0: off */
#define ITEM_BITS 20         /* items per dispatch < 2^20 (larger jobs are split) */
#define GEN_SHIFT (2 * ITEM_BITS)
#define ITEM_MASK ((1ULL << ITEM_BITS) - 1)

static pthread_mutex_t caller_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t sleep_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static int nworkers; /* started so far; guarded by caller_lock */

/* The whole job state in one word: generation | end | front, the items not yet
 * claimed being front ..< end (published as 0 ..< items). An item is claimed
 * by a compare-and-swap of the word, which fails if the job has been replaced,
 * so a worker that wakes up late can never run an item of a job it did not see
 * published - and the caller never has to wait for sleeping workers to
 * acknowledge a job before publishing the next. */
static _Atomic unsigned long long state;
static _Atomic int done_items;
/* f2a_pool_hold: while > 0, idle workers keep polling (yielding) for up to
 * HELD_SPIN_US before they sleep; hold_epoch (guarded by sleep_lock) counts
 * the holds begun. */
static _Atomic int holds;
static unsigned hold_epoch;
static _Atomic unsigned long long held_spin_cycles; /* 0 until the first hold; 1: holding off */
/* Published with the state word; read only after claiming an item of that job. */
static f2a_task_fn job_fn;
static void *job_ctx;
static int job_first, job_threads;
static int job_avx512; /* the caller's f2a_kernels_avx512(): workers run its items with it */

static inline unsigned job_generation(unsigned long long s) { return (unsigned) (s >> GEN_SHIFT); }
static inline int job_end(unsigned long long s) { return (int) ((s >> ITEM_BITS) & ITEM_MASK); }
static inline int job_front(unsigned long long s) { return (int) (s & ITEM_MASK); }

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static inline unsigned long long cycles(void) {
#if defined(__x86_64__) || defined(__i386__)
    return __builtin_ia32_rdtsc();
#else
    return 0; /* spins end on the iteration bound instead */
#endif
}

/* A claim takes 1 / (CLAIM_SHARE x threads) of the items left, at least one: few
 * claims while many are left, single items at the end, so that the threads still finish
 * together. One item per claim made two contended atomics per item; with a Winograd
 * band's ~3000 small items per phase (input rows, GEMM blocks, output rows of a 512 x 512
 * layer at 32 x 24) the threads spent a quarter of the layer in them (perf): 5.3 -> 3.6
 * ms for that layer (shares of 4, 8, 16: 3.55, 3.62, 3.82 ms). */
#define CLAIM_SHARE 8

/* Claims and runs items of job `generation` until none is left. Thread 1 claims from the
 * back of the range, the others from the front: the kernels number their items in image
 * order (bands, rows), so each core keeps to its end of the image from one layer to the
 * next and reads what it wrote from its own L2, where claims from one end interleaved the
 * two cores' items differently in every layer. The shipped model at 256 x 192 (f2a-bench,
 * 10 alternating processes of 51 passes, medians sorted, ms): 6.1 6.3 6.5 6.6 6.9 6.9 6.9
 * 7.1 7.3 7.3 -> 6.1 6.2 6.2 6.3 6.5 6.6 6.6 6.8 7.2 7.4; width 0.125 at 512^2 27.6-34.0
 * -> 26.9-33.6; width 1.0 at 256^2 unchanged. */
static void run_items(unsigned generation, int thread) {
    const int from_back = thread == 1;
    unsigned long long s = atomic_load_explicit(&state, memory_order_acquire);
    while (job_generation(s) == generation && job_front(s) < job_end(s)) {
        /* job_threads may already be the next job's; then the exchange below fails. */
        int take = (job_end(s) - job_front(s)) / (CLAIM_SHARE * (job_threads > 0 ? job_threads : 1));
        if (take < 1) take = 1;
        const unsigned long long claimed =
            from_back ? s - ((unsigned long long) take << ITEM_BITS) : s + (unsigned long long) take;
        if (!atomic_compare_exchange_weak_explicit(&state, &s, claimed, memory_order_acquire, memory_order_acquire))
            continue; /* s now holds the current word */
        const int first = job_first + (from_back ? job_end(s) - take : job_front(s));
        if (thread != 0) f2a_kernels_adopt_avx512(job_avx512);
        for (int i = 0; i < take; i++) job_fn(job_ctx, first + i, thread);
        atomic_fetch_add_explicit(&done_items, take, memory_order_release);
        s = atomic_load_explicit(&state, memory_order_acquire);
    }
}

static unsigned start_generation[MAX_THREADS];

/* Where a worker wakes up.
 *
 * The caller's CPU as of its latest dispatch or hold (-1: none yet); workers read it
 * before they sleep and when they wake. */
static _Atomic int caller_cpu = -1;

static void note_caller_cpu(void) { atomic_store_explicit(&caller_cpu, sched_getcpu(), memory_order_relaxed); }

/* A worker woken from sleep may be placed on the CPU of the thread that woke it, the
 * caller, which is about to run items too; the two then share one core until the load
 * balancer moves one of them. On the machines measured (VMs with 2 vCPUs whose kernel has
 * a kernel.sched_vcpu_pack setting) that happened 49 times in 50 after a 100 ms pause, for
 * ~4 ms: the shipped model's pass at 256x192 took 11.7-12.4 ms after a 100 ms pause against
 * 6.5-7.5 back to back, with the same CPU time. So a worker about to sleep takes the
 * caller's CPU out of its affinity mask, which makes the kernel send its wake-up to another
 * CPU (~0.1 ms there), and puts the mask back when it wakes: 9.5-11.0 -> 6.6-7.8 ms after
 * the pause (interleaved processes, 40 passes each). Should it wake on the caller's CPU
 * all the same (the caller has moved there meanwhile), it leaves by the same means: a
 * migration, ~4 ms on that VM, still before the balancer would have moved it. Either costs a worker three system calls
 * per sleep, none while it spins; a thread whose mask allows only the caller's CPU, or
 * where the calls fail, stays as it is. */
struct affinity {
    cpu_set_t saved, narrowed_to;
    int narrowed;
};

static int without_cpu(struct affinity *a, int cpu) {
    if (cpu < 0 || sched_getaffinity(0, sizeof a->saved, &a->saved) != 0 || !CPU_ISSET(cpu, &a->saved)) return 0;
    a->narrowed_to = a->saved;
    CPU_CLR(cpu, &a->narrowed_to);
    return CPU_COUNT(&a->narrowed_to) > 0 && sched_setaffinity(0, sizeof a->narrowed_to, &a->narrowed_to) == 0;
}

/* Unless the mask was changed from outside meanwhile (sched_setaffinity on this thread,
 * taskset -p): that one stays. */
static void restore_affinity(struct affinity *a) {
    cpu_set_t now;
    if (a->narrowed && sched_getaffinity(0, sizeof now, &now) == 0 && CPU_EQUAL(&now, &a->narrowed_to))
        sched_setaffinity(0, sizeof a->saved, &a->saved);
    a->narrowed = 0;
}

static void before_sleep(struct affinity *a) {
    a->narrowed = without_cpu(a, atomic_load_explicit(&caller_cpu, memory_order_relaxed));
}

static void after_wake(struct affinity *a) {
    restore_affinity(a);
    const int cpu = atomic_load_explicit(&caller_cpu, memory_order_relaxed);
    if (cpu >= 0 && sched_getcpu() == cpu) {
        struct affinity away;
        away.narrowed = without_cpu(&away, cpu); /* moves this thread now */
        restore_affinity(&away);
    }
}

static void *worker(void *arg) {
    int id = (int) (intptr_t) arg;
    unsigned seen = start_generation[id]; /* jobs up to this one are not ours */
    for (;;) {
        unsigned long long t0 = cycles();
        unsigned g;
        long spins = 0;
        while ((g = job_generation(atomic_load_explicit(&state, memory_order_acquire))) == seen) {
            if (cycles() - t0 < SPIN_CYCLES && ++spins < 1000000) { cpu_relax(); continue; }
            if (atomic_load_explicit(&holds, memory_order_relaxed) > 0 &&
                cycles() - t0 < atomic_load_explicit(&held_spin_cycles, memory_order_relaxed) && ++spins < 10000000) {
                /* Held: stay runnable, but let whatever else is runnable here (the caller, when the
                 * two share a core) go first: a pure spin cost +50 % CPU and wall at 256x192 when
                 * the pass had one core to itself. */
                sched_yield();
                continue;
            }
            struct affinity affinity;
            before_sleep(&affinity);
            pthread_mutex_lock(&sleep_lock);
            unsigned epoch = hold_epoch; /* a new hold wakes us too */
            while (job_generation(atomic_load(&state)) == seen && hold_epoch == epoch)
                pthread_cond_wait(&wake, &sleep_lock);
            pthread_mutex_unlock(&sleep_lock);
            after_wake(&affinity);
            t0 = cycles();
            spins = 0;
        }
        seen = g;
        /* job_threads belongs to job g if an item of g is still unclaimed;
         * if not, run_items finds nothing whatever we read. */
        if (id < job_threads) run_items(g, id);
    }
    return NULL;
}

/* Spins, then yields: the thread we wait for may need this core. */
static void wait_for_items(int items) {
    unsigned long long t0 = cycles();
    long spins = 0;
    while (atomic_load_explicit(&done_items, memory_order_acquire) < items) {
        if (cycles() - t0 < SPIN_CYCLES && ++spins < 1000000) cpu_relax(); else sched_yield();
    }
}

void f2a_parallel(f2a_task_fn fn, void *ctx, int items, int threads) {
    if (items <= 0) return;
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    if (threads > items) threads = items;
    if (threads <= 1 || pthread_mutex_trylock(&caller_lock) != 0) {
        for (int i = 0; i < items; i++) fn(ctx, i, 0);
        return;
    }
    while (nworkers < threads - 1) {
        pthread_t tid;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        start_generation[nworkers + 1] = job_generation(atomic_load(&state));
        int ok = pthread_create(&tid, &attr, worker, (void *) (intptr_t) (nworkers + 1)) == 0;
        pthread_attr_destroy(&attr);
        if (!ok) break; /* fewer threads than asked: the caller does more */
        nworkers++;
    }
    for (int first = 0; first < items; first += (int) ITEM_MASK) { /* one round unless huge */
        int n = items - first < (int) ITEM_MASK ? items - first : (int) ITEM_MASK;
        job_fn = fn;
        job_ctx = ctx;
        job_first = first;
        job_threads = threads;
        job_avx512 = f2a_kernels_avx512();
        atomic_store_explicit(&done_items, 0, memory_order_relaxed);
        unsigned g = (job_generation(atomic_load(&state)) + 1) & ((1u << (64 - GEN_SHIFT)) - 1);
        unsigned long long s = ((unsigned long long) g << GEN_SHIFT) | ((unsigned long long) n << ITEM_BITS);
        note_caller_cpu();
        pthread_mutex_lock(&sleep_lock);
        atomic_store_explicit(&state, s, memory_order_release);
        pthread_cond_broadcast(&wake);
        pthread_mutex_unlock(&sleep_lock);
        run_items(g, 0);
        /* Done when every item has finished, not when every worker has woken. */
        wait_for_items(n);
    }
    pthread_mutex_unlock(&caller_lock);
}

/* Between the dispatches of a forward pass a worker used to run out of its
 * spin (25 us) while the caller finished its last item (a Winograd band
 * takes up to ~0.5 ms), go to sleep and need a wake-up for the next layer:
 * on this VM (2 vCPUs) the issue-19 bench saw ~1.05 cores busy at 512^2,
 * width 0.125, though the items split evenly (a per-item CPU profile of the
 * pass models 1.96 cores). While held, a worker polls for ~1 ms (spinning
 * 25 us, then yielding), longer than any item of the narrow models plus the
 * glue between layers, so it stays awake through a pass on an idle machine;
 * yielding lets the caller run first where the two share a core, and a wait
 * longer than that (a loaded machine) still ends in sleep. The first hold
 * also wakes the sleeping workers, so they are up by the first layer. */
void f2a_pool_hold(int delta) {
    if (atomic_fetch_add(&holds, delta) == 0 && delta > 0) {
        note_caller_cpu();
        pthread_mutex_lock(&sleep_lock);
        if (!atomic_load_explicit(&held_spin_cycles, memory_order_relaxed)) {
            const char *env = getenv("F2A_POOL_HOLD_US");
            long us = env ? atol(env) : HELD_SPIN_US;
            atomic_store_explicit(&held_spin_cycles, us > 0 ? (unsigned long long) us * CYCLES_PER_US : 1,
                                  memory_order_relaxed);
        }
        hold_epoch++;
        pthread_cond_broadcast(&wake);
        pthread_mutex_unlock(&sleep_lock);
    }
}
