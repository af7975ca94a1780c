/* A reusable scratch buffer for the kernels. Internal to CKernels. */
#ifndef F2A_WORKSPACE_H
#define F2A_WORKSPACE_H

#include <stddef.h>

/* At least `floats` floats of uninitialised, 64-byte aligned scratch, or NULL
 * if out of memory. Pair with workspace_release. */
float *workspace_acquire(size_t floats);
void workspace_release(float *buffer);

#endif
