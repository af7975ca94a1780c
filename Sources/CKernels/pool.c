#include "f2a_kernels.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>

/* A persistent pool of worker threads shared by every kernel call.
 *
 * Why: a forward pass makes a few hundred parallel dispatches (three per
 * Winograd band); creating and joining pthreads for each cost tens of
 * microseconds idle and whole scheduler slices on a loaded machine.
 *
 * Work is handed out one item at a time from an atomic counter, so a thread
 * that gets descheduled (the machine is shared) simply takes fewer items and
 * both cores finish together. Workers spin briefly after a job (the next
 * dispatch usually follows within microseconds), then sleep on a condition
 * variable so an idle library costs no CPU. The caller never waits for a
 * sleeping worker to wake: it runs items itself and returns once all are
 * done. One caller at a time uses the pool; a concurrent caller runs its
 * items on its own thread. */

#define MAX_THREADS 16
#define SPIN_CYCLES 60000ULL /* ~25 us of spinning before sleeping */
#define ITEM_BITS 20         /* items per dispatch < 2^20 (larger jobs are split) */
#define GEN_SHIFT (2 * ITEM_BITS)
#define ITEM_MASK ((1ULL << ITEM_BITS) - 1)

static pthread_mutex_t caller_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t sleep_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static int nworkers; /* started so far; guarded by caller_lock */

/* The whole job state in one word: generation | item count | next item.
 * An item is claimed by a compare-and-swap of the word, which fails if the
 * job has been replaced, so a worker that wakes up late can never run an
 * item of a job it did not see published - and the caller never has to wait
 * for sleeping workers to acknowledge a job before publishing the next. */
static _Atomic unsigned long long state;
static _Atomic int done_items;
/* Published with the state word; read only after claiming an item of that job. */
static f2a_task_fn job_fn;
static void *job_ctx;
static int job_first, job_threads;

static inline unsigned job_generation(unsigned long long s) { return (unsigned) (s >> GEN_SHIFT); }
static inline int job_items(unsigned long long s) { return (int) ((s >> ITEM_BITS) & ITEM_MASK); }
static inline int job_next(unsigned long long s) { return (int) (s & ITEM_MASK); }

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

/* Claims and runs items of job `generation` until none is left. */
static void run_items(unsigned generation, int thread) {
    unsigned long long s = atomic_load_explicit(&state, memory_order_acquire);
    while (job_generation(s) == generation && job_next(s) < job_items(s)) {
        if (!atomic_compare_exchange_weak_explicit(&state, &s, s + 1, memory_order_acquire, memory_order_acquire))
            continue; /* s now holds the current word */
        job_fn(job_ctx, job_first + job_next(s), thread);
        atomic_fetch_add_explicit(&done_items, 1, memory_order_release);
        s = atomic_load_explicit(&state, memory_order_acquire);
    }
}

static unsigned start_generation[MAX_THREADS];

static void *worker(void *arg) {
    int id = (int) (intptr_t) arg;
    unsigned seen = start_generation[id]; /* jobs up to this one are not ours */
    for (;;) {
        unsigned long long t0 = cycles();
        unsigned g;
        long spins = 0;
        while ((g = job_generation(atomic_load_explicit(&state, memory_order_acquire))) == seen) {
            if (cycles() - t0 < SPIN_CYCLES && ++spins < 1000000) { cpu_relax(); continue; }
            pthread_mutex_lock(&sleep_lock);
            while (job_generation(atomic_load(&state)) == seen) pthread_cond_wait(&wake, &sleep_lock);
            pthread_mutex_unlock(&sleep_lock);
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
        atomic_store_explicit(&done_items, 0, memory_order_relaxed);
        unsigned g = (job_generation(atomic_load(&state)) + 1) & ((1u << (64 - GEN_SHIFT)) - 1);
        unsigned long long s = ((unsigned long long) g << GEN_SHIFT) | ((unsigned long long) n << ITEM_BITS);
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
