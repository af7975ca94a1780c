/* Concurrency test of libflash2ambient: THREADS threads x REPEATS applies on
 * one shared model give bit-identical outputs.
 *
 * Usage: concurrency BUILD_DIR [THREADS REPEATS]   (default 8 x 50)
 *
 * Each thread cycles through the f32 and u8 entry points and the full,
 * guided and tiled modes (a 300x24 strip: guided at working size 64, tiled
 * with 256-pixel tiles, so all three really differ) and compares every
 * output byte with a reference computed on the main thread before the
 * threads start. The model is loaded once and shared; each call allocates
 * its own scratch memory (flash2ambient.h).
 */
#include <flash2ambient.h>

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { W = 300, H = 24, KINDS = 6 };

static f2a_model *model;
static float input_f32[W * H * 3];
static uint8_t input_u8[W * H * 3];
static float reference_f32[KINDS][W * H * 3];
static uint8_t reference_u8[KINDS][W * H * 3];
static int repeats = 50;

static f2a_params params_for(int kind) {
    f2a_params p = f2a_default_params();
    p.strength = 0.9f;
    switch (kind % 3) {
    case 0: p.mode = F2A_MODE_FULL; break;
    case 1: p.mode = F2A_MODE_GUIDED; p.working_size = 64; break;
    default: p.mode = F2A_MODE_TILED; p.tile_size = 256; break;
    }
    return p;
}

/* kind < 3: f32 in mode kind; kind >= 3: u8 in mode kind - 3 */
static f2a_status apply(int kind, void *out) {
    f2a_params p = params_for(kind);
    if (kind < 3)
        return f2a_apply_f32(model, input_f32, W * 12, out, W * 12, W, H, &p);
    return f2a_apply_u8(model, input_u8, W * 3, out, W * 3, W, H, &p);
}

struct worker {
    int index;
    int applies, mismatches, failures;
};

static void *worker_main(void *arg) {
    struct worker *wk = arg;
    float *out = malloc(sizeof reference_f32[0]);
    for (int r = 0; r < repeats; r++) {
        int kind = (wk->index + r) % KINDS;
        memset(out, 0xA5, sizeof reference_f32[0]);
        if (apply(kind, out) != F2A_OK) {
            wk->failures++;
            continue;
        }
        wk->applies++;
        const void *ref = kind < 3 ? (const void *) reference_f32[kind] : (const void *) reference_u8[kind];
        size_t n = kind < 3 ? sizeof reference_f32[0] : sizeof reference_u8[0];
        if (memcmp(out, ref, n) != 0) wk->mismatches++;
    }
    free(out);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s BUILD_DIR [THREADS REPEATS]\n", argv[0]);
        return 2;
    }
    int threads = argc > 2 ? atoi(argv[2]) : 8;
    repeats = argc > 3 ? atoi(argv[3]) : 50;
    if (threads < 1 || threads > 256 || repeats < 1) {
        fprintf(stderr, "bad THREADS or REPEATS\n");
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/share/flash2ambient/weights/default.f2aw", argv[1]);
    if (f2a_model_load(path, &model) != F2A_OK) {
        fprintf(stderr, "cannot load %s: %s\n", path, f2a_last_error());
        return 1;
    }
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W * 3; x++) {
            int v = (x * 7 + y * 13 + (x / 3) * (y % 5)) % 256;
            input_u8[y * W * 3 + x] = (uint8_t) v;
            input_f32[y * W * 3 + x] = (float) v / 255.0f;
        }
    int passed = 0, failed = 0;
    for (int k = 0; k < KINDS; k++) {
        void *ref = k < 3 ? (void *) reference_f32[k] : (void *) reference_u8[k];
        if (apply(k, ref) != F2A_OK) {
            fprintf(stderr, "FAIL reference %d: %s\n", k, f2a_last_error());
            return 1;
        }
    }
    /* the three modes really give different results (else the test proves less) */
    if (memcmp(reference_f32[0], reference_f32[1], sizeof reference_f32[0]) != 0 &&
        memcmp(reference_f32[0], reference_f32[2], sizeof reference_f32[0]) != 0) {
        passed++;
        printf("ok    full, guided and tiled references differ\n");
    } else {
        failed++;
        printf("FAIL  modes give identical references\n");
    }

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pthread_t *tids = calloc((size_t) threads, sizeof *tids);
    struct worker *workers = calloc((size_t) threads, sizeof *workers);
    for (int i = 0; i < threads; i++) {
        workers[i].index = i;
        if (pthread_create(&tids[i], NULL, worker_main, &workers[i]) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            return 1;
        }
    }
    int applies = 0, mismatches = 0, failures = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(tids[i], NULL);
        applies += workers[i].applies;
        mismatches += workers[i].mismatches;
        failures += workers[i].failures;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double) (t1.tv_sec - t0.tv_sec) + (double) (t1.tv_nsec - t0.tv_nsec) / 1e9;
    if (failures == 0 && applies == threads * repeats) {
        passed++;
        printf("ok    %d threads x %d applies on one shared model succeeded (%.1f s)\n", threads, repeats, secs);
    } else {
        failed++;
        printf("FAIL  %d of %d applies failed: %s\n", failures, threads * repeats, f2a_last_error());
    }
    if (mismatches == 0) {
        passed++;
        printf("ok    all %d outputs bit-identical to the single-threaded reference (f32 and u8; full, guided, tiled)\n",
               applies);
    } else {
        failed++;
        printf("FAIL  %d of %d outputs differ from the single-threaded reference\n", mismatches, applies);
    }
    free(tids);
    free(workers);
    f2a_model_free(model);
    printf("concurrency: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
