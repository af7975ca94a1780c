#include <cblas.h>
// Declared by OpenBLAS but not in the reference cblas.h on every distribution.
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
