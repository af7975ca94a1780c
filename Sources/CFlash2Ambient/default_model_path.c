#define _GNU_SOURCE
#include "flash2ambient.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The shipped model lives at LIBDIR/../share/flash2ambient/weights/ in both
 * the installed tree (PREFIX/lib) and the build tree (build/lib). Locating it
 * from the library's own path keeps the installation relocatable. */
static char default_path[4096];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void find_default_path(void) {
    Dl_info info;
    const char *fallback = "/usr/local/share/flash2ambient/weights/default.f2aw";
    if (dladdr((void *) f2a_default_model_path, &info) == 0 || info.dli_fname == NULL) {
        snprintf(default_path, sizeof default_path, "%s", fallback);
        return;
    }
    const char *slash = strrchr(info.dli_fname, '/');
    if (slash == NULL) {
        snprintf(default_path, sizeof default_path, "%s", fallback);
        return;
    }
    int n = snprintf(default_path, sizeof default_path, "%.*s/../share/flash2ambient/weights/default.f2aw",
                     (int) (slash - info.dli_fname), info.dli_fname);
    if (n < 0 || (size_t) n >= sizeof default_path) snprintf(default_path, sizeof default_path, "%s", fallback);
}

const char *f2a_default_model_path(void) {
    const char *env = getenv("F2A_MODEL");
    if (env != NULL && env[0] != '\0') return env;
    pthread_once(&once, find_default_path);
    return default_path;
}
