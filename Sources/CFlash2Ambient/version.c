#include "flash2ambient.h"

/* Spelled from the header's macros, so the string a program gets at run time
 * and the F2A_VERSION_* it was compiled against come from one place. */
#define F2A_STRINGIFY_(x) #x
#define F2A_STRINGIFY(x) F2A_STRINGIFY_(x)

const char *f2a_version(void) {
    return F2A_STRINGIFY(F2A_VERSION_MAJOR) "." F2A_STRINGIFY(F2A_VERSION_MINOR) "." F2A_STRINGIFY(F2A_VERSION_PATCH);
}
