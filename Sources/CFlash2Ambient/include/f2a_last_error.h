/* Internal to libflash2ambient: the per-thread error message behind
 * f2a_last_error(). Not part of the public header. */
#ifndef F2A_LAST_ERROR_H
#define F2A_LAST_ERROR_H
/** Copy `message` (truncated to 1023 bytes) into the calling thread's slot. */
void f2a__set_last_error(const char *message);
#endif
