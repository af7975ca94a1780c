#include "workspace.h"

#include <pthread.h>
#include <stdlib.h>

/* Every layer needs a few MB of scratch. Allocating it per call costs page
 * faults (glibc returns big blocks to the kernel) on every layer; this keeps
 * one grow-only buffer for the process instead. A caller that finds it in
 * use (concurrent forward passes) gets a private allocation. */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static float *cached;
static size_t cached_floats;

float *workspace_acquire(size_t floats) {
    if (floats == 0) floats = 1;
    if (pthread_mutex_trylock(&lock) == 0) {
        if (cached_floats >= floats) return cached;
        free(cached);
        cached = NULL;
        cached_floats = 0;
        void *p = NULL;
        if (posix_memalign(&p, 64, floats * sizeof(float)) == 0) {
            cached = p;
            cached_floats = floats;
            return cached;
        }
        pthread_mutex_unlock(&lock);
        return NULL;
    }
    void *p = NULL;
    return posix_memalign(&p, 64, floats * sizeof(float)) == 0 ? p : NULL;
}

void workspace_release(float *buffer) {
    if (buffer && buffer == cached) pthread_mutex_unlock(&lock);
    else free(buffer);
}
