/* Start-up of the f2a command-line tools (f2a, f2a-train) under an address-space limit.
 * Linked into the executables only: a .preinit_array entry is not allowed in a shared
 * library, and libflash2ambient's hosts choose their own OpenBLAS and malloc settings. */
#ifndef F2A_STARTUP_H
#define F2A_STARTUP_H

/** 1 when the process started under a finite RLIMIT_AS and was adapted to it (OpenBLAS on
 *  the calling thread only, one malloc arena), else 0. */
int f2a_startup_adapted(void);

/** For f2a-train: keep the memory a training step frees for the next step. A step allocates
 *  the same large tensors every time; with glibc's defaults a freed block above the mmap
 *  threshold (128 KB, rising to at most 32 MB) goes back to the kernel and the next step
 *  faults every page in again, zero-filled (perf, PatchGAN configuration: 7.7 % of the
 *  process in page faults, 6.7 % in memset). Served from the heap and never trimmed, the
 *  pages are reused; peak RSS stays that of the largest step. */
void f2a_retain_freed_blocks(void);

#endif
