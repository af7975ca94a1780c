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
 * variable so an idle library costs no CPU. One caller at a time uses the
 * pool; a concurrent caller runs its items on its own thread. */

#define MAX_THREADS 16
#define SPIN_ROUNDS 20000 /* ~0.1 ms of pause instructions before sleeping */

static pthread_mutex_t caller_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t sleep_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static int nworkers; /* started so far; guarded by caller_lock */

static _Atomic unsigned generation;
static _Atomic int next_item, done_items, active_workers;
/* The current job; written only while no worker is active. */
static f2a_task_fn job_fn;
static void *job_ctx;
static int job_items, job_threads;

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void run_items(int thread) {
    int i;
    while ((i = atomic_fetch_add_explicit(&next_item, 1, memory_order_relaxed)) < job_items) {
        job_fn(job_ctx, i, thread);
        atomic_fetch_add_explicit(&done_items, 1, memory_order_release);
    }
}

static unsigned start_generation[MAX_THREADS];

static void *worker(void *arg) {
    int id = (int) (intptr_t) arg;
    /* The generation when this worker was created (it may start running
     * only after the job it was created for has been published). */
    unsigned seen = start_generation[id];
    for (;;) {
        unsigned g;
        int spins = 0;
        while ((g = atomic_load_explicit(&generation, memory_order_acquire)) == seen) {
            if (++spins < SPIN_ROUNDS) { cpu_relax(); continue; }
            pthread_mutex_lock(&sleep_lock);
            while (atomic_load(&generation) == seen) pthread_cond_wait(&wake, &sleep_lock);
            pthread_mutex_unlock(&sleep_lock);
        }
        seen = g;
        if (id < job_threads) run_items(id);
        atomic_fetch_sub_explicit(&active_workers, 1, memory_order_release);
    }
    return NULL;
}

/* Spins, then yields: the thread we wait for may need this core. */
static void wait_until_zero(_Atomic int *value, int target_is_items) {
    int spins = 0;
    for (;;) {
        int v = atomic_load_explicit(value, memory_order_acquire);
        if (target_is_items ? v >= job_items : v == 0) return;
        if (++spins < SPIN_ROUNDS) cpu_relax(); else sched_yield();
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
        start_generation[nworkers + 1] = atomic_load(&generation);
        int ok = pthread_create(&tid, &attr, worker, (void *) (intptr_t) (nworkers + 1)) == 0;
        pthread_attr_destroy(&attr);
        if (!ok) break; /* fewer threads than asked: the caller does more */
        nworkers++;
    }
    /* Workers still leaving the previous job may read its fields. */
    wait_until_zero(&active_workers, 0);
    job_fn = fn;
    job_ctx = ctx;
    job_items = items;
    job_threads = threads;
    atomic_store_explicit(&next_item, 0, memory_order_relaxed);
    atomic_store_explicit(&done_items, 0, memory_order_relaxed);
    atomic_store_explicit(&active_workers, nworkers, memory_order_relaxed);
    pthread_mutex_lock(&sleep_lock);
    atomic_fetch_add_explicit(&generation, 1, memory_order_release);
    pthread_cond_broadcast(&wake);
    pthread_mutex_unlock(&sleep_lock);
    run_items(0);
    /* Done when every item has finished, not when every worker has woken:
     * a late worker finds no item left and only decrements active_workers. */
    wait_until_zero(&done_items, 1);
    pthread_mutex_unlock(&caller_lock);
}
