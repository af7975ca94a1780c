/* Start-up of the f2a command-line tools (f2a, f2a-train) under an address-space limit.
 * Linked into the executables only: a .preinit_array entry is not allowed in a shared
 * library, and libflash2ambient's hosts choose their own OpenBLAS and malloc settings. */
#ifndef F2A_STARTUP_H
#define F2A_STARTUP_H

/** 1 when the process started under a finite RLIMIT_AS and was adapted to it (OpenBLAS on
 *  the calling thread only, one malloc arena), else 0. */
int f2a_startup_adapted(void);

#endif
