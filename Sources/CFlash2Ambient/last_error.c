#include "flash2ambient.h"
#include "f2a_last_error.h"

#include <string.h>

/* Thread-local so that concurrent callers never see each other's messages;
 * a fixed buffer so that reporting an error can never itself fail. */
static _Thread_local char last_error[1024];

void f2a__set_last_error(const char *message) {
    if (message == NULL) message = "";
    size_t n = strlen(message);
    if (n >= sizeof(last_error)) n = sizeof(last_error) - 1;
    memcpy(last_error, message, n);
    last_error[n] = '\0';
}

const char *f2a_last_error(void) { return last_error; }
