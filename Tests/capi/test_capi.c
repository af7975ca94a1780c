/* C ABI tests for libflash2ambient, compiled with plain cc against the
 * installed-style header and .so (see `make test-capi`).
 * Usage: test_capi BUILD_DIR   (uses BUILD_DIR/share/flash2ambient/weights/default.f2aw) */
#include <flash2ambient.h>

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int passed, failed;

#define CHECK(cond, ...)                                                     \
    do {                                                                     \
        if (cond) {                                                          \
            passed++;                                                        \
        } else {                                                             \
            failed++;                                                        \
            fprintf(stderr, "FAIL %s:%d: %s — ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                    \
            fprintf(stderr, "\n");                                           \
        }                                                                    \
    } while (0)

static char model_path[4096];

static float *test_image(int w, int h, size_t stride_floats) {
    float *p = calloc((size_t) h * stride_floats, sizeof(float));
    for (int y = 0; y < h; y++)
        for (int x = 0; x < 3 * w; x++)
            p[(size_t) y * stride_floats + x] = (float) ((x * 7 + y * 13) % 256) / 255.0f;
    return p;
}

static void test_basics(void) {
    CHECK(strcmp(f2a_version(), "0.1.0") == 0, "version %s", f2a_version());
    CHECK(strcmp(f2a_status_string(F2A_OK), "ok") == 0, "ok string");
    CHECK(strcmp(f2a_status_string(F2A_ERR_FORMAT), "invalid weights file") == 0, "format string");
    CHECK(strcmp(f2a_status_string((f2a_status) 999), "unknown status") == 0, "unknown status string");
    f2a_params p = f2a_default_params();
    CHECK(p.strength == 1.0f && p.progress == NULL && p.progress_user_data == NULL, "defaults");
    f2a_model_free(NULL); /* must accept NULL */
    passed++;
}

static void test_load_errors(void) {
    f2a_model *m = (f2a_model *) 0x1;
    CHECK(f2a_model_load("/nonexistent/model.f2aw", &m) == F2A_ERR_IO, "missing file");
    CHECK(m == NULL, "out_model reset on failure");
    CHECK(strstr(f2a_last_error(), "/nonexistent/model.f2aw") != NULL, "message names the path: %s", f2a_last_error());

    CHECK(f2a_model_load(model_path, NULL) == F2A_ERR_INVALID_ARGUMENT, "NULL out_model");

    const char *corrupt = "/tmp/f2a-capi-corrupt.f2aw";
    FILE *f = fopen(corrupt, "wb");
    fputs("this is not a model", f);
    fclose(f);
    CHECK(f2a_model_load(corrupt, &m) == F2A_ERR_FORMAT, "corrupt file");
    CHECK(strstr(f2a_last_error(), "magic") != NULL, "message says why: %s", f2a_last_error());

    /* A truncated copy of the real model. */
    FILE *in = fopen(model_path, "rb");
    CHECK(in != NULL, "open %s", model_path);
    if (!in) return;
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf, in);
    fclose(in);
    f = fopen(corrupt, "wb");
    fwrite(buf, 1, n / 2, f);
    fclose(f);
    CHECK(f2a_model_load(corrupt, &m) == F2A_ERR_FORMAT, "truncated file");
    CHECK(strstr(f2a_last_error(), "truncated") != NULL, "message: %s", f2a_last_error());
    remove(corrupt);
}

static void test_info(f2a_model *m) {
    f2a_model_info info;
    CHECK(f2a_model_get_info(m, &info) == F2A_OK, "info");
    CHECK(info.levels >= 1 && info.levels <= 5 && info.width > 0, "levels %d width %g", info.levels, info.width);
    CHECK(info.size_multiple == 1 << (info.levels - 1), "size multiple %d", info.size_multiple);
    CHECK(info.parameter_count > 0 && info.upsample && info.activation && info.formulation && info.description,
          "fields");
    CHECK(f2a_model_get_info(NULL, &info) == F2A_ERR_INVALID_ARGUMENT, "NULL model");
    CHECK(f2a_model_get_info(m, NULL) == F2A_ERR_INVALID_ARGUMENT, "NULL info");
}

static void test_invalid_arguments(f2a_model *m) {
    float *img = test_image(4, 4, 12);
    float out[48];
    size_t s = 12 * sizeof(float);
    f2a_params p = f2a_default_params();
    CHECK(f2a_apply_f32(NULL, img, s, out, s, 4, 4, NULL) == F2A_ERR_INVALID_ARGUMENT, "NULL model");
    CHECK(f2a_apply_f32(m, NULL, s, out, s, 4, 4, NULL) == F2A_ERR_INVALID_ARGUMENT, "NULL in");
    CHECK(f2a_apply_f32(m, img, s, NULL, s, 4, 4, NULL) == F2A_ERR_INVALID_ARGUMENT, "NULL out");
    CHECK(f2a_apply_f32(m, img, s, out, s, 0, 4, NULL) == F2A_ERR_INVALID_ARGUMENT, "zero width");
    CHECK(f2a_apply_f32(m, img, s, out, s, 4, -1, NULL) == F2A_ERR_INVALID_ARGUMENT, "negative height");
    CHECK(f2a_apply_f32(m, img, s, out, s, INT32_MAX, INT32_MAX, NULL) == F2A_ERR_INVALID_ARGUMENT, "huge");
    CHECK(strstr(f2a_last_error(), "exceeds") != NULL, "message: %s", f2a_last_error());
    CHECK(f2a_apply_f32(m, img, s - 4, out, s, 4, 4, NULL) == F2A_ERR_INVALID_ARGUMENT, "short in stride");
    CHECK(f2a_apply_f32(m, img, s, out, 3, 4, 4, NULL) == F2A_ERR_INVALID_ARGUMENT, "short out stride");
    CHECK(f2a_apply_f32(m, img, SIZE_MAX, out, s, 4, 4, NULL) == F2A_ERR_INVALID_ARGUMENT, "overflowing stride");
    CHECK(f2a_apply_f32(m, img, s + 2, out, s, 4, 4, NULL) == F2A_ERR_INVALID_ARGUMENT, "misaligned stride");
    p.strength = 1.5f;
    CHECK(f2a_apply_f32(m, img, s, out, s, 4, 4, &p) == F2A_ERR_INVALID_ARGUMENT, "strength > 1");
    p.strength = NAN;
    CHECK(f2a_apply_f32(m, img, s, out, s, 4, 4, &p) == F2A_ERR_INVALID_ARGUMENT, "strength NaN");
    CHECK(strstr(f2a_last_error(), "strength") != NULL, "message: %s", f2a_last_error());
    uint8_t b[48];
    CHECK(f2a_apply_u8(m, b, 2, b, 12, 4, 4, NULL) == F2A_ERR_INVALID_ARGUMENT, "u8 short stride");
    free(img);
}

static void test_sizes_and_strides(f2a_model *m) {
    static const int sizes[][2] = { { 1, 1 }, { 3, 5 }, { 16, 16 }, { 37, 21 } };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        int w = sizes[i][0], h = sizes[i][1];
        size_t tight = (size_t) 3 * w, wide = tight + 5;
        float *a = test_image(w, h, tight), *b = test_image(w, h, wide);
        float *oa = calloc((size_t) h * tight, sizeof(float)), *ob = calloc((size_t) h * (wide + 2), sizeof(float));
        CHECK(f2a_apply_f32(m, a, tight * 4, oa, tight * 4, w, h, NULL) == F2A_OK, "%dx%d: %s", w, h, f2a_last_error());
        CHECK(f2a_apply_f32(m, b, wide * 4, ob, (wide + 2) * 4, w, h, NULL) == F2A_OK, "strided %dx%d", w, h);
        int same = 1, in_range = 1;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < 3 * w; x++) {
                float va = oa[(size_t) y * tight + x], vb = ob[(size_t) y * (wide + 2) + x];
                same &= va == vb;
                in_range &= va >= 0 && va <= 1;
            }
        CHECK(same, "%dx%d: strided output equals tight output", w, h);
        CHECK(in_range, "%dx%d: output in [0, 1]", w, h);
        /* In place. */
        CHECK(f2a_apply_f32(m, a, tight * 4, a, tight * 4, w, h, NULL) == F2A_OK, "in place");
        CHECK(memcmp(a, oa, (size_t) h * tight * 4) == 0, "%dx%d: in-place equals out-of-place", w, h);
        free(a); free(b); free(oa); free(ob);
    }
}

static void test_u8(f2a_model *m) {
    int w = 9, h = 7;
    uint8_t in[9 * 7 * 3], out[9 * 7 * 3];
    float fin[9 * 7 * 3], fout[9 * 7 * 3];
    for (int i = 0; i < w * h * 3; i++) { in[i] = (uint8_t) (i * 11); fin[i] = in[i] / 255.0f; }
    CHECK(f2a_apply_u8(m, in, (size_t) w * 3, out, (size_t) w * 3, w, h, NULL) == F2A_OK, "u8");
    CHECK(f2a_apply_f32(m, fin, (size_t) w * 12, fout, (size_t) w * 12, w, h, NULL) == F2A_OK, "f32");
    int max_diff = 0;
    for (int i = 0; i < w * h * 3; i++) {
        int d = abs((int) out[i] - (int) lrintf(fout[i] * 255.0f));
        if (d > max_diff) max_diff = d;
    }
    CHECK(max_diff == 0, "u8 equals rounded f32 (max diff %d)", max_diff);
    f2a_params p = f2a_default_params();
    p.strength = 0;
    CHECK(f2a_apply_u8(m, in, (size_t) w * 3, out, (size_t) w * 3, w, h, &p) == F2A_OK, "strength 0");
    CHECK(memcmp(in, out, sizeof in) == 0, "strength 0 returns the input exactly");
}

struct progress_log { int calls; float last; int monotonic; int cancel_after; };

static int on_progress(float fraction, void *user) {
    struct progress_log *log = user;
    if (fraction < log->last) log->monotonic = 0;
    log->last = fraction;
    log->calls++;
    return log->cancel_after > 0 && log->calls >= log->cancel_after;
}

static void test_progress(f2a_model *m) {
    float *img = test_image(20, 20, 60);
    float out[20 * 20 * 3];
    struct progress_log log = { 0, 0, 1, 0 };
    f2a_params p = f2a_default_params();
    p.progress = on_progress;
    p.progress_user_data = &log;
    CHECK(f2a_apply_f32(m, img, 240, out, 240, 20, 20, &p) == F2A_OK, "with progress");
    CHECK(log.calls > 3 && log.monotonic && log.last == 1.0f, "calls %d last %g", log.calls, log.last);
    struct progress_log cancel = { 0, 0, 1, 2 };
    p.progress_user_data = &cancel;
    CHECK(f2a_apply_f32(m, img, 240, out, 240, 20, 20, &p) == F2A_ERR_CANCELLED, "cancel");
    CHECK(cancel.calls == 2, "stopped at the cancelling call (%d)", cancel.calls);
    free(img);
}

struct worker { f2a_model *model; float *out; f2a_status status; };
enum { W = 24, H = 19, THREADS = 4, REPEATS = 5 };

static void *worker_main(void *arg) {
    struct worker *wk = arg;
    float *img = test_image(W, H, 3 * W);
    for (int r = 0; r < REPEATS && wk->status == F2A_OK; r++)
        wk->status = f2a_apply_f32(wk->model, img, 12 * W, wk->out, 12 * W, W, H, NULL);
    free(img);
    return NULL;
}

static void test_threads(f2a_model *m) {
    pthread_t threads[THREADS];
    struct worker workers[THREADS];
    for (int i = 0; i < THREADS; i++) {
        workers[i] = (struct worker) { m, calloc(W * H * 3, sizeof(float)), F2A_OK };
        pthread_create(&threads[i], NULL, worker_main, &workers[i]);
    }
    for (int i = 0; i < THREADS; i++) pthread_join(threads[i], NULL);
    for (int i = 0; i < THREADS; i++) {
        CHECK(workers[i].status == F2A_OK, "thread %d", i);
        CHECK(memcmp(workers[i].out, workers[0].out, W * H * 3 * sizeof(float)) == 0, "thread %d bit-identical", i);
    }
    for (int i = 0; i < THREADS; i++) free(workers[i].out);
}

static void *error_thread(void *arg) {
    (void) arg;
    f2a_model *m;
    f2a_model_load("/nonexistent/other-thread.f2aw", &m);
    return NULL;
}

static void test_thread_local_error(void) {
    f2a_model *m;
    f2a_model_load("/nonexistent/this-thread.f2aw", &m);
    pthread_t t;
    pthread_create(&t, NULL, error_thread, NULL);
    pthread_join(t, NULL);
    CHECK(strstr(f2a_last_error(), "this-thread") != NULL, "error message is per thread: %s", f2a_last_error());
}

/* Run with F2A_MAX_MEMORY_MB=100: a large image is refused before any
 * allocation, a small one still works. */
static void test_memory_limit(void) {
    f2a_model *m = NULL;
    CHECK(f2a_model_load(model_path, &m) == F2A_OK, "load");
    if (!m) return;
    float *tiny = test_image(8, 8, 24);
    /* The input pointer is never read when the call is refused. */
    CHECK(f2a_apply_f32(m, tiny, 4000 * 12, tiny, 4000 * 12, 4000, 3000, NULL) == F2A_ERR_OUT_OF_MEMORY, "refused");
    CHECK(strstr(f2a_last_error(), "F2A_MAX_MEMORY_MB") != NULL, "message: %s", f2a_last_error());
    CHECK(f2a_apply_u8(m, (uint8_t *) tiny, 4000 * 3, (uint8_t *) tiny, 4000 * 3, 4000, 3000, NULL)
          == F2A_ERR_OUT_OF_MEMORY, "u8 refused");
    CHECK(f2a_apply_f32(m, tiny, 96, tiny, 96, 8, 8, NULL) == F2A_OK, "small image: %s", f2a_last_error());
    free(tiny);
    f2a_model_free(m);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s BUILD_DIR [--memory-limit]\n", argv[0]);
        return 2;
    }
    snprintf(model_path, sizeof model_path, "%s/share/flash2ambient/weights/default.f2aw", argv[1]);
    if (argc == 3 && strcmp(argv[2], "--memory-limit") == 0) {
        test_memory_limit();
        printf("capi-memory: %d passed, %d failed\n", passed, failed);
        return failed == 0 ? 0 : 1;
    }
    test_basics();
    test_load_errors();
    test_thread_local_error();

    f2a_model *m = NULL;
    f2a_status st = f2a_model_load(model_path, &m);
    CHECK(st == F2A_OK && m != NULL, "load %s: %s", model_path, f2a_last_error());
    if (m) {
        /* The default path resolves next to the library: the same file. */
        CHECK(strstr(f2a_default_model_path(), "share/flash2ambient/weights/default.f2aw") != NULL, "default %s",
              f2a_default_model_path());
        f2a_model *d = NULL;
        CHECK(f2a_model_load(NULL, &d) == F2A_OK, "load default: %s", f2a_last_error());
        f2a_model_free(d);
        test_info(m);
        test_invalid_arguments(m);
        test_sizes_and_strides(m);
        test_u8(m);
        test_progress(m);
        test_threads(m);
        f2a_model_free(m);
    }
    printf("capi: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
