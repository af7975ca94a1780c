#include "f2a_kernels.h"

#include <malloc.h>

int f2a_set_malloc_arena_max(int n) { return mallopt(M_ARENA_MAX, n); }
