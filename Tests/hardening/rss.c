/* Memory growth over many applies in one process.
 *
 * Usage: rss BUILD_DIR [APPLIES [BOUND_KB]]   (default 1000 applies, bound 2048 KiB)
 *
 * Loads the shipped model once, then applies it APPLIES times to a 64x64
 * image, alternating f2a_apply_f32 and f2a_apply_u8, with some calls
 * refused (invalid arguments) and some cancelled by the progress callback in
 * between, and reads VmRSS from /proc/self/status after 100 applies and at
 * the end. Fails when the resident set grew by more than BOUND_KB between
 * the two: a leak of 2.3 KB or more per call would exceed it (smaller leaks are
 * LeakSanitizer's job, leaks.sh); a leak of the image-sized scratch (48 KiB
 * per call) would show as ~43 MiB.
 */
#include <flash2ambient.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { W = 64, H = 64 };

static long rss_kb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) kb = strtol(line + 6, NULL, 10);
    if (f) fclose(f);
    return kb;
}

static int cancel_at_second_call(float fraction, void *user) {
    (void) fraction;
    return ++*(int *) user >= 2;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s BUILD_DIR [APPLIES [BOUND_KB]]\n", argv[0]);
        return 2;
    }
    int applies = argc > 2 ? atoi(argv[2]) : 1000;
    long bound_kb = argc > 3 ? atol(argv[3]) : 2048;
    if (applies < 200) applies = 200;
    char path[4096];
    snprintf(path, sizeof path, "%s/share/flash2ambient/weights/default.f2aw", argv[1]);
    f2a_model *m = NULL;
    if (f2a_model_load(path, &m) != F2A_OK) {
        fprintf(stderr, "cannot load %s: %s\n", path, f2a_last_error());
        return 1;
    }
    static float fin[W * H * 3], fout[W * H * 3];
    static uint8_t bin[W * H * 3], bout[W * H * 3];
    for (int i = 0; i < W * H * 3; i++) {
        bin[i] = (uint8_t) ((i * 7) % 251);
        fin[i] = bin[i] / 255.0f;
    }
    long at100 = 0, start = rss_kb();
    int failures = 0;
    for (int i = 1; i <= applies; i++) {
        f2a_status st = i % 2 ? f2a_apply_f32(m, fin, W * 12, fout, W * 12, W, H, NULL)
                              : f2a_apply_u8(m, bin, W * 3, bout, W * 3, W, H, NULL);
        if (st != F2A_OK) failures++;
        if (i % 10 == 0) { /* a refused call: records an error message */
            if (f2a_apply_f32(m, fin, 4, fout, W * 12, W, H, NULL) != F2A_ERR_INVALID_ARGUMENT) failures++;
        }
        if (i % 25 == 0) { /* a cancelled call: the network stops half way */
            int calls = 0;
            f2a_params p = f2a_default_params();
            p.progress = cancel_at_second_call;
            p.progress_user_data = &calls;
            if (f2a_apply_f32(m, fin, W * 12, fout, W * 12, W, H, &p) != F2A_ERR_CANCELLED) failures++;
        }
        if (i == 100) at100 = rss_kb();
    }
    long end = rss_kb();
    f2a_model_free(m);
    int passed = 0, failed = 0;
    printf("VmRSS: %ld KiB after loading, %ld KiB after 100 applies, %ld KiB after %d applies: "
           "growth %+ld KiB (bound %ld KiB)\n", start, at100, end, applies, end - at100, bound_kb);
    if (failures == 0) { passed++; printf("ok    every apply returned the expected status\n"); }
    else { failed++; printf("FAIL  %d applies returned an unexpected status\n", failures); }
    if (at100 > 0 && end - at100 <= bound_kb) { passed++; printf("ok    RSS growth from apply 100 to %d within %ld KiB\n", applies, bound_kb); }
    else { failed++; printf("FAIL  RSS grew by %ld KiB from apply 100 to %d (bound %ld KiB)\n", end - at100, applies, bound_kb); }
    printf("rss: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
