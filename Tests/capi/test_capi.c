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
    char version[32];
    snprintf(version, sizeof version, "%d.%d.%d", F2A_VERSION_MAJOR, F2A_VERSION_MINOR, F2A_VERSION_PATCH);
    CHECK(strcmp(f2a_version(), version) == 0, "version %s, header %s", f2a_version(), version);
    CHECK(strcmp(f2a_status_string(F2A_OK), "ok") == 0, "ok string");
    CHECK(strcmp(f2a_status_string(F2A_ERR_FORMAT), "invalid weights file") == 0, "format string");
    CHECK(strcmp(f2a_status_string((f2a_status) 999), "unknown status") == 0, "unknown status string");
    f2a_params p = f2a_default_params();
    CHECK(p.strength == 1.0f && p.progress == NULL && p.progress_user_data == NULL, "defaults");
    CHECK(p.struct_size == sizeof(f2a_params), "struct_size %zu", p.struct_size);
    /* The header's macros state the library's defaults (ApplyOptions owns them). */
    CHECK(p.mode == F2A_MODE_AUTO && p.working_size == F2A_DEFAULT_WORKING_SIZE && p.tile_size == F2A_DEFAULT_TILE_SIZE,
          "defaults: mode %d, working_size %d, tile_size %d", (int) p.mode, p.working_size, p.tile_size);
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

static void test_memory_setting(void) {
    uint64_t bytes = 0;
    CHECK(f2a_memory_limit_parse("F2A_X_MB", "512", &bytes) == F2A_OK && bytes == (uint64_t) 512 << 20,
          "512 MB: %llu", (unsigned long long) bytes);
    CHECK(f2a_memory_limit_parse("F2A_X_MB", NULL, &bytes) == F2A_OK && bytes > 0, "unset: the default");
    uint64_t unset = bytes;
    CHECK(f2a_memory_limit_parse("F2A_X_MB", "", &bytes) == F2A_OK && bytes == unset, "empty: the default");
    const char *invalid[] = { "abc", "-5", "1e3", "0", "512M", " 5", "+5", "0x10", "99999999999999999999", "1073741825" };
    for (size_t i = 0; i < sizeof invalid / sizeof *invalid; i++) {
        CHECK(f2a_memory_limit_parse("F2A_X_MB", invalid[i], &bytes) == F2A_ERR_INVALID_ARGUMENT, "'%s' refused", invalid[i]);
        CHECK(strstr(f2a_last_error(), "F2A_X_MB") && strstr(f2a_last_error(), invalid[i]),
              "message names the setting and the value: %s", f2a_last_error());
    }
    CHECK(f2a_memory_limit_parse(NULL, "5", &bytes) == F2A_ERR_INVALID_ARGUMENT, "NULL name");
    CHECK(f2a_memory_limit_parse("F2A_X_MB", "5", NULL) == F2A_ERR_INVALID_ARGUMENT, "NULL out_bytes");
}

static void test_info(f2a_model *m) {
    f2a_model_info info = { .struct_size = sizeof info };
    CHECK(f2a_model_get_info(m, &info) == F2A_OK, "info: %s", f2a_last_error());
    CHECK(info.struct_size == sizeof info, "struct_size left as set: %zu", info.struct_size);
    CHECK(info.levels >= 1 && info.levels <= 5 && info.width > 0, "levels %d width %g", info.levels, info.width);
    /* The shipped model: encoder and decoder at width 0.125. */
    CHECK(info.decoder_width > 0 && info.decoder_width <= 1, "decoder width %g", info.decoder_width);
    CHECK(info.size_multiple == 1 << (info.levels - 1), "size multiple %d", info.size_multiple);
    CHECK(info.parameter_count > 0 && info.upsample && info.activation && info.formulation && info.description,
          "fields");
    CHECK(f2a_model_get_info(NULL, &info) == F2A_ERR_INVALID_ARGUMENT, "NULL model");
    CHECK(f2a_model_get_info(m, NULL) == F2A_ERR_INVALID_ARGUMENT, "NULL info");
    /* struct_size unset or too small: refused, nothing written. */
    f2a_model_info small;
    memset(&small, 0x5a, sizeof small);
    small.struct_size = 0;
    CHECK(f2a_model_get_info(m, &small) == F2A_ERR_INVALID_ARGUMENT, "struct_size 0");
    CHECK(strstr(f2a_last_error(), "struct_size") != NULL, "message: %s", f2a_last_error());
    small.struct_size = sizeof small - 1;
    CHECK(f2a_model_get_info(m, &small) == F2A_ERR_INVALID_ARGUMENT, "struct_size too small");
    CHECK(small.levels == 0x5a5a5a5a, "refused call wrote nothing");
    /* A newer caller's larger struct: the known prefix filled, the rest untouched. */
    struct { f2a_model_info info; unsigned char future[32]; } bigger;
    memset(&bigger, 0x7f, sizeof bigger);
    bigger.info.struct_size = sizeof bigger;
    CHECK(f2a_model_get_info(m, &bigger.info) == F2A_OK, "larger struct: %s", f2a_last_error());
    CHECK(bigger.info.levels == info.levels && bigger.info.decoder_width == info.decoder_width, "prefix filled");
    int untouched = 1;
    for (size_t i = 0; i < sizeof bigger.future; i++) untouched &= bigger.future[i] == 0x7f;
    CHECK(untouched, "bytes past the known fields untouched");
}

static f2a_mode resolved(f2a_model *m, int w, int h, f2a_mode mode, int tile_size) {
    f2a_params p = f2a_default_params();
    p.mode = mode;
    p.tile_size = tile_size;
    f2a_mode out = (f2a_mode) 99;
    return f2a_resolve_mode(m, w, h, &p, &out) == F2A_OK ? out : (f2a_mode) 99;
}

static uint64_t estimate(f2a_model *m, int w, int h, f2a_mode mode) {
    f2a_params p = f2a_default_params();
    p.mode = mode;
    uint64_t bytes = 0;
    CHECK(f2a_estimate_bytes(m, w, h, &p, &bytes) == F2A_OK && bytes > 0, "estimate %dx%d mode %d: %s", w, h, (int) mode,
          f2a_last_error());
    return bytes;
}

/* The library's own rules for callers that take their own path per mode (the vips operation). */
static void test_policy(f2a_model *m) {
    f2a_mode mode = (f2a_mode) 99;
    CHECK(f2a_resolve_mode(m, 4000, 3000, NULL, &mode) == F2A_OK && mode == F2A_MODE_GUIDED, "auto: %d", (int) mode);
    CHECK(resolved(m, 5, 3, F2A_MODE_AUTO, 512) == F2A_MODE_GUIDED, "auto on a tiny image is guided too");
    CHECK(resolved(m, 4000, 3000, F2A_MODE_FULL, 512) == F2A_MODE_FULL, "full");
    CHECK(resolved(m, 4000, 3000, F2A_MODE_GUIDED, 512) == F2A_MODE_GUIDED, "guided");
    CHECK(resolved(m, 512, 300, F2A_MODE_TILED, 512) == F2A_MODE_FULL, "tiled: one tile covers the image");
    CHECK(resolved(m, 513, 300, F2A_MODE_TILED, 512) == F2A_MODE_TILED, "tiled: two tiles across");
    CHECK(resolved(m, 300, 600, F2A_MODE_TILED, 600) == F2A_MODE_FULL, "tiled: tile_size 600 covers 300x600");

    /* Full mode grows with the area, guided stays at the working size's cost. */
    uint64_t full1 = estimate(m, 1000, 1000, F2A_MODE_FULL), full2 = estimate(m, 2000, 2000, F2A_MODE_FULL);
    CHECK(full2 > 3 * (full1 - (64u << 20)), "full: 4x the pixels, %llu vs %llu bytes", (unsigned long long) full2,
          (unsigned long long) full1);
    uint64_t guided1 = estimate(m, 4000, 3000, F2A_MODE_AUTO), guided2 = estimate(m, 8000, 6000, F2A_MODE_GUIDED);
    CHECK(guided2 - guided1 < (1u << 20) && guided1 < full1, "guided: %llu and %llu bytes", (unsigned long long) guided1,
          (unsigned long long) guided2);
    CHECK(estimate(m, 4000, 3000, F2A_MODE_TILED) < estimate(m, 4000, 3000, F2A_MODE_FULL), "tiled below full");

    /* Arguments: the same rules as f2a_apply_f32. */
    uint64_t bytes;
    f2a_params p = f2a_default_params();
    CHECK(f2a_resolve_mode(NULL, 8, 8, NULL, &mode) == F2A_ERR_INVALID_ARGUMENT, "NULL model");
    CHECK(f2a_resolve_mode(m, 8, 8, NULL, NULL) == F2A_ERR_INVALID_ARGUMENT, "NULL out_mode");
    CHECK(f2a_estimate_bytes(NULL, 8, 8, NULL, &bytes) == F2A_ERR_INVALID_ARGUMENT, "estimate: NULL model");
    CHECK(f2a_estimate_bytes(m, 8, 8, NULL, NULL) == F2A_ERR_INVALID_ARGUMENT, "estimate: NULL out_bytes");
    CHECK(f2a_resolve_mode(m, 0, 8, NULL, &mode) == F2A_ERR_INVALID_ARGUMENT, "zero width");
    CHECK(f2a_estimate_bytes(m, INT32_MAX, INT32_MAX, NULL, &bytes) == F2A_ERR_INVALID_ARGUMENT, "huge");
    CHECK(strstr(f2a_last_error(), "f2a_estimate_bytes") && strstr(f2a_last_error(), "exceeds"), "message: %s",
          f2a_last_error());
    p.mode = (f2a_mode) 4;
    CHECK(f2a_resolve_mode(m, 8, 8, &p, &mode) == F2A_ERR_INVALID_ARGUMENT, "mode 4");
    CHECK(strstr(f2a_last_error(), "unknown mode 4") != NULL, "message: %s", f2a_last_error());
    p = f2a_default_params();
    p.struct_size = 0;
    CHECK(f2a_estimate_bytes(m, 8, 8, &p, &bytes) == F2A_ERR_INVALID_ARGUMENT, "struct_size 0");
    /* The header's range macros are the library's ranges. */
    p = f2a_default_params();
    p.tile_size = F2A_TILE_SIZE_MIN - 1;
    CHECK(f2a_resolve_mode(m, 8, 8, &p, &mode) == F2A_ERR_INVALID_ARGUMENT, "tile_size below the minimum");
    CHECK(strstr(f2a_last_error(), "tile_size") != NULL, "message: %s", f2a_last_error());
    p.tile_size = F2A_TILE_SIZE_MAX + 1;
    CHECK(f2a_resolve_mode(m, 8, 8, &p, &mode) == F2A_ERR_INVALID_ARGUMENT, "tile_size above the maximum");
    p.tile_size = F2A_TILE_SIZE_MIN;
    CHECK(f2a_resolve_mode(m, 8, 8, &p, &mode) == F2A_OK, "tile_size at the minimum: %s", f2a_last_error());
    p.tile_size = F2A_TILE_SIZE_MAX;
    CHECK(f2a_resolve_mode(m, 8, 8, &p, &mode) == F2A_OK, "tile_size at the maximum: %s", f2a_last_error());
    p = f2a_default_params();
    p.working_size = F2A_WORKING_SIZE_MAX;
    CHECK(f2a_estimate_bytes(m, 8, 8, &p, &bytes) == F2A_OK, "working_size at the maximum: %s", f2a_last_error());
    p.working_size = F2A_WORKING_SIZE_MAX + 1;
    CHECK(f2a_estimate_bytes(m, 8, 8, &p, &bytes) == F2A_ERR_INVALID_ARGUMENT, "working_size above the maximum");
    p = f2a_default_params();
    p.strength = 2;
    CHECK(f2a_resolve_mode(m, 8, 8, &p, &mode) == F2A_ERR_INVALID_ARGUMENT, "strength 2");
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
    /* A struct not set up by f2a_default_params() (or from a future,
     * smaller layout) is refused, never read past its end. */
    p = f2a_default_params();
    p.struct_size = 0;
    CHECK(f2a_apply_f32(m, img, s, out, s, 4, 4, &p) == F2A_ERR_INVALID_ARGUMENT, "struct_size 0");
    CHECK(strstr(f2a_last_error(), "struct_size") != NULL, "message: %s", f2a_last_error());
    p.struct_size = sizeof(f2a_params) - 1;
    CHECK(f2a_apply_f32(m, img, s, out, s, 4, 4, &p) == F2A_ERR_INVALID_ARGUMENT, "struct_size too small");
    /* A larger struct (a newer caller) is fine: the library reads its prefix. */
    struct { f2a_params p; char future[64]; } bigger;
    memset(&bigger, 0x7f, sizeof bigger);
    bigger.p = f2a_default_params();
    bigger.p.struct_size = sizeof bigger;
    CHECK(f2a_apply_f32(m, img, s, out, s, 4, 4, &bigger.p) == F2A_OK, "larger struct: %s", f2a_last_error());
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

/* in and out may be one buffer with equal strides (in place) or disjoint; any other overlap
 * used to return F2A_OK with wrong pixels in guided mode. */
static void test_overlap(f2a_model *m) {
    int w = 24, h = 16;
    size_t row = (size_t) 3 * w;
    float *buf = test_image(w, 3 * h, row); /* room for shifted and wider views */
    float *ref = calloc((size_t) h * row, sizeof(float));
    f2a_params p = f2a_default_params();
    p.mode = F2A_MODE_GUIDED;
    p.working_size = 16;
    CHECK(f2a_apply_f32(m, buf, row * 4, ref, row * 4, w, h, &p) == F2A_OK, "reference: %s", f2a_last_error());
    CHECK(f2a_apply_f32(m, buf, row * 4, buf + 3, row * 4, w, h, &p) == F2A_ERR_INVALID_ARGUMENT, "out one pixel on");
    CHECK(strstr(f2a_last_error(), "overlap") != NULL, "message: %s", f2a_last_error());
    CHECK(f2a_apply_f32(m, buf + 3, row * 4, buf, row * 4, w, h, &p) == F2A_ERR_INVALID_ARGUMENT, "out one pixel back");
    CHECK(f2a_apply_f32(m, buf, row * 4, buf + row, row * 4, w, h, &p) == F2A_ERR_INVALID_ARGUMENT, "out one row on");
    CHECK(f2a_apply_f32(m, buf, row * 4, buf + (h - 1) * row, row * 4, w, h, &p) == F2A_ERR_INVALID_ARGUMENT,
          "last input row is the first output row");
    CHECK(f2a_apply_f32(m, buf, row * 4, buf, row * 8, w, h, &p) == F2A_ERR_INVALID_ARGUMENT, "same start, other stride");
    p.mode = F2A_MODE_FULL;
    CHECK(f2a_apply_f32(m, buf, row * 4, buf + 3, row * 4, w, h, &p) == F2A_ERR_INVALID_ARGUMENT, "full mode too");
    p.mode = F2A_MODE_GUIDED;
    /* Adjacent but disjoint: fine, and equal to the reference. */
    CHECK(f2a_apply_f32(m, buf, row * 4, buf + h * row, row * 4, w, h, &p) == F2A_OK, "adjacent: %s", f2a_last_error());
    CHECK(memcmp(buf + h * row, ref, (size_t) h * row * 4) == 0, "adjacent output equals the reference");
    /* Interleaved rows (in: even rows, out: odd rows, stride two rows) never touch each other's bytes,
     * but the spans overlap: refused too, as the header allows only disjoint or identical buffers. */
    CHECK(f2a_apply_f32(m, buf, row * 8, buf + row, row * 8, w, h, &p) == F2A_ERR_INVALID_ARGUMENT, "interleaved rows");
    /* u8 converts the whole input first: an overlap stays allowed there. */
    uint8_t *b8 = calloc((size_t) 2 * h * row, 1);
    CHECK(f2a_apply_u8(m, b8, row, b8 + 3, row, w, h, &p) == F2A_OK, "u8 overlap: %s", f2a_last_error());
    free(b8);
    free(buf);
    free(ref);
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

/* Guided mode in two passes: rows fed in uneven chunks, rectangles applied
 * in any order, equal bit for bit to f2a_apply_f32 in guided mode. */
enum { GW = 211, GH = 97 };

struct rect_job { const f2a_guide *g; const float *in; float *out; int y0, y1; f2a_status status; };

static void *rect_worker(void *arg) {
    struct rect_job *j = arg;
    /* Column strips of varying width: rectangles that don't span the row. */
    for (int y = j->y0; y < j->y1 && j->status == F2A_OK; y += 7) {
        int h = y + 7 <= j->y1 ? 7 : j->y1 - y;
        for (int x = 0, step = 5; x < GW && j->status == F2A_OK; x += step, step = step * 3 % 61 + 1) {
            int w = x + step <= GW ? step : GW - x;
            size_t o = ((size_t) y * GW + x) * 3;
            j->status = f2a_guide_apply_f32(j->g, j->in + o, GW * 12, j->out + o, GW * 12, x, y, w, h);
        }
    }
    return NULL;
}

static void test_guide(f2a_model *m) {
    float *img = test_image(GW, GH, 3 * GW);
    float *whole = calloc((size_t) GW * GH * 3, sizeof(float));
    float *parts = calloc((size_t) GW * GH * 3, sizeof(float));
    f2a_params p = f2a_default_params();
    p.mode = F2A_MODE_GUIDED;
    p.working_size = 64;
    p.strength = 0.75f;
    CHECK(f2a_apply_f32(m, img, GW * 12, whole, GW * 12, GW, GH, &p) == F2A_OK, "whole: %s", f2a_last_error());

    f2a_guide *g = NULL;
    struct progress_log log = { 0, 0, 1, 0 };
    p.progress = on_progress;
    p.progress_user_data = &log;
    CHECK(f2a_guide_begin(m, GW, GH, &p, &g) == F2A_OK && g, "begin: %s", f2a_last_error());
    if (!g) goto done;
    float px[3] = { 0, 0, 0 };
    CHECK(f2a_guide_apply_f32(g, px, 12, px, 12, 0, 0, 1, 1) == F2A_ERR_INVALID_ARGUMENT, "apply before finish");
    CHECK(strstr(f2a_last_error(), "f2a_guide_finish") != NULL, "message: %s", f2a_last_error());
    CHECK(f2a_guide_add_rows(g, img, GW * 12, 3) == F2A_OK, "rows 0-2");
    CHECK(f2a_guide_finish(g) == F2A_ERR_INVALID_ARGUMENT, "finish with rows missing");
    CHECK(strstr(f2a_last_error(), "3 of the photo's 97 rows") != NULL, "message: %s", f2a_last_error());
    CHECK(f2a_guide_add_rows(g, img + 3 * GW * 3, GW * 12 - 4, 1) == F2A_ERR_INVALID_ARGUMENT, "short stride");
    for (int y = 3, n = 1; y < GH; y += n, n = n % 13 + 4) {
        int k = y + n <= GH ? n : GH - y;
        CHECK(f2a_guide_add_rows(g, img + (size_t) y * GW * 3, GW * 12, k) == F2A_OK, "rows %d+%d", y, k);
    }
    CHECK(f2a_guide_add_rows(g, img, GW * 12, 1) == F2A_ERR_INVALID_ARGUMENT, "a row too many");
    CHECK(f2a_guide_finish(g) == F2A_OK, "finish: %s", f2a_last_error());
    CHECK(log.calls > 1 && log.monotonic && log.last == 1.0f, "progress calls %d last %g", log.calls, log.last);
    CHECK(f2a_guide_finish(g) == F2A_ERR_INVALID_ARGUMENT, "finish twice");
    CHECK(f2a_guide_add_rows(g, img, GW * 12, 1) == F2A_ERR_INVALID_ARGUMENT, "rows after finish");

    CHECK(f2a_guide_apply_f32(g, px, 12, px, 12, GW, 0, 1, 1) == F2A_ERR_INVALID_ARGUMENT, "x outside");
    CHECK(f2a_guide_apply_f32(g, px, 12, px, 12, 0, GH - 1, 1, 2) == F2A_ERR_INVALID_ARGUMENT, "y + h outside");
    CHECK(f2a_guide_apply_f32(g, px, 12, px, 12, -1, 0, 1, 1) == F2A_ERR_INVALID_ARGUMENT, "negative x");
    CHECK(f2a_guide_apply_f32(g, px, 12, px, 12, 0, 0, 0, 1) == F2A_ERR_INVALID_ARGUMENT, "zero width");
    CHECK(f2a_guide_apply_f32(g, px, 12, px, 12, INT32_MAX, 0, INT32_MAX, 1) == F2A_ERR_INVALID_ARGUMENT, "overflow");
    CHECK(f2a_guide_apply_f32(g, NULL, 12, px, 12, 0, 0, 1, 1) == F2A_ERR_INVALID_ARGUMENT, "NULL in");
    CHECK(f2a_guide_apply_f32(g, px, 8, px, 12, 0, 0, 1, 1) == F2A_ERR_INVALID_ARGUMENT, "short stride");
    CHECK(f2a_guide_apply_f32(NULL, px, 12, px, 12, 0, 0, 1, 1) == F2A_ERR_INVALID_ARGUMENT, "NULL guide");

    /* Four threads, each a band of rows cut into odd rectangles. */
    pthread_t threads[4];
    struct rect_job jobs[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (struct rect_job) { g, img, parts, GH * i / 4, GH * (i + 1) / 4, F2A_OK };
        pthread_create(&threads[i], NULL, rect_worker, &jobs[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(threads[i], NULL);
        CHECK(jobs[i].status == F2A_OK, "rectangles of thread %d: %s", i, f2a_last_error());
    }
    CHECK(memcmp(whole, parts, (size_t) GW * GH * 3 * sizeof(float)) == 0, "rectangles equal the whole-image call");
    /* In place on one rectangle. */
    memcpy(parts, img, (size_t) GW * GH * 3 * sizeof(float));
    size_t o = ((size_t) 10 * GW + 20) * 3;
    CHECK(f2a_guide_apply_f32(g, parts + o, GW * 12, parts + o, GW * 12, 20, 10, 30, 40) == F2A_OK, "in place");
    CHECK(memcmp(parts + o, whole + o, 30 * 3 * sizeof(float)) == 0, "in place equals");
    CHECK(f2a_guide_apply_f32(g, parts + o, GW * 12, parts + o + 3, GW * 12, 20, 10, 30, 40) == F2A_ERR_INVALID_ARGUMENT,
          "partly overlapping rectangle");
    f2a_guide_free(g);

    /* Cancelling the network run. */
    struct progress_log cancel = { 0, 0, 1, 1 };
    p.progress_user_data = &cancel;
    g = NULL;
    CHECK(f2a_guide_begin(m, GW, GH, &p, &g) == F2A_OK, "begin");
    CHECK(f2a_guide_add_rows(g, img, GW * 12, GH) == F2A_OK, "all rows");
    CHECK(f2a_guide_finish(g) == F2A_ERR_CANCELLED, "cancelled");
    f2a_guide_free(g);

    /* Arguments of begin. */
    g = (f2a_guide *) 1;
    CHECK(f2a_guide_begin(NULL, GW, GH, NULL, &g) == F2A_ERR_INVALID_ARGUMENT && g == NULL, "NULL model");
    CHECK(f2a_guide_begin(m, 0, GH, NULL, &g) == F2A_ERR_INVALID_ARGUMENT, "zero width");
    CHECK(f2a_guide_begin(m, INT32_MAX, INT32_MAX, NULL, &g) == F2A_ERR_INVALID_ARGUMENT, "huge");
    CHECK(f2a_guide_begin(m, GW, GH, NULL, NULL) == F2A_ERR_INVALID_ARGUMENT, "NULL out_guide");
    p = f2a_default_params();
    p.working_size = F2A_WORKING_SIZE_MIN - 1;
    CHECK(f2a_guide_begin(m, GW, GH, &p, &g) == F2A_ERR_INVALID_ARGUMENT, "working_size below the minimum");
    p.working_size = F2A_WORKING_SIZE_MAX + 1;
    CHECK(f2a_guide_begin(m, GW, GH, &p, &g) == F2A_ERR_INVALID_ARGUMENT, "working_size above the maximum");
    p.working_size = F2A_WORKING_SIZE_MIN;
    CHECK(f2a_guide_begin(m, GW, GH, &p, &g) == F2A_OK, "working_size at the minimum: %s", f2a_last_error());
    f2a_guide_free(g);
    p = f2a_default_params();
    p.struct_size = 4;
    CHECK(f2a_guide_begin(m, GW, GH, &p, &g) == F2A_ERR_INVALID_ARGUMENT, "struct_size 4");
    CHECK(f2a_guide_add_rows(NULL, img, GW * 12, 1) == F2A_ERR_INVALID_ARGUMENT, "rows to NULL guide");
    CHECK(f2a_guide_finish(NULL) == F2A_ERR_INVALID_ARGUMENT, "finish NULL");
    f2a_guide_free(NULL);
done:
    free(img); free(whole); free(parts);
}

/* f2a_guide_apply_u8: bytes in and out, equal to converting them to float as
 * libvips does (u * (float) (1 / 255.0)), f2a_guide_apply_f32, and back
 * ((uint8_t) clamp(v * 255 + 0.5, 0, 255), truncated, no fused multiply-add),
 * on odd rectangles, in place, and its argument checks. */
static uint8_t to_byte(float v) {
    volatile float t = v * 255.0f;
    t = t + 0.5f;
    return t <= 0 ? 0 : (t >= 255 ? 255 : (uint8_t) t);
}

static void test_guide_u8(f2a_model *m) {
    enum { UW = 301, UH = 77 };
    uint8_t *bytes = malloc((size_t) UW * UH * 3), *out = calloc((size_t) UW * UH * 3, 1);
    uint8_t *expect = malloc((size_t) UW * UH * 3), *inplace = malloc((size_t) UW * UH * 3);
    float *rgb = malloc((size_t) UW * UH * 3 * sizeof(float)), *mapped = malloc((size_t) UW * UH * 3 * sizeof(float));
    for (size_t i = 0; i < (size_t) UW * UH * 3; i++) bytes[i] = (uint8_t) ((i * 2654435761u) >> 13);
    for (int y = 0; y < UH; y++) /* a smooth part, so the network's output varies too */
        for (int x = 0; x < UW / 2; x++)
            for (int c = 0; c < 3; c++) bytes[((size_t) y * UW + x) * 3 + c] = (uint8_t) ((x * (c + 1) + 3 * y) & 255);
    for (size_t i = 0; i < (size_t) UW * UH * 3; i++) rgb[i] = (float) bytes[i] * (float) (1.0 / 255.0);
    f2a_params p = f2a_default_params();
    p.working_size = 64;
    p.strength = 0.8f;
    f2a_guide *g = NULL;
    CHECK(f2a_guide_begin(m, UW, UH, &p, &g) == F2A_OK && g, "u8 begin: %s", f2a_last_error());
    if (!g) goto done;
    uint8_t px[3] = { 1, 2, 3 };
    CHECK(f2a_guide_apply_u8(g, px, 3, px, 3, 0, 0, 1, 1) == F2A_ERR_INVALID_ARGUMENT, "u8 apply before finish");
    CHECK(f2a_guide_add_rows(g, rgb, (size_t) UW * 12, UH) == F2A_OK, "u8 rows");
    CHECK(f2a_guide_finish(g) == F2A_OK, "u8 finish: %s", f2a_last_error());
    CHECK(f2a_guide_apply_f32(g, rgb, (size_t) UW * 12, mapped, (size_t) UW * 12, 0, 0, UW, UH) == F2A_OK, "f32 map");
    for (size_t i = 0; i < (size_t) UW * UH * 3; i++) expect[i] = to_byte(mapped[i]);
    f2a_status st = F2A_OK;
    for (int y = 0; y < UH && st == F2A_OK; y += 5)
        for (int x = 0, step = 3; x < UW && st == F2A_OK; x += step, step = step * 5 % 83 + 1) {
            int w = x + step <= UW ? step : UW - x, h = y + 5 <= UH ? 5 : UH - y;
            size_t o = ((size_t) y * UW + x) * 3;
            st = f2a_guide_apply_u8(g, bytes + o, UW * 3, out + o, UW * 3, x, y, w, h);
        }
    CHECK(st == F2A_OK, "u8 rectangles: %s", f2a_last_error());
    size_t differ = 0;
    for (size_t i = 0; i < (size_t) UW * UH * 3; i++) differ += out[i] != expect[i];
    CHECK(differ == 0, "u8 equals the f32 map converted (%zu values differ)", differ);
    memcpy(inplace, bytes, (size_t) UW * UH * 3);
    CHECK(f2a_guide_apply_u8(g, inplace, UW * 3, inplace, UW * 3, 0, 0, UW, UH) == F2A_OK, "u8 in place");
    CHECK(memcmp(inplace, expect, (size_t) UW * UH * 3) == 0, "u8 in place equals");
    CHECK(f2a_guide_apply_u8(g, bytes, UW * 3, bytes + 3, UW * 3, 0, 0, 10, 2) == F2A_ERR_INVALID_ARGUMENT,
          "u8 partly overlapping");
    CHECK(strstr(f2a_last_error(), "f2a_guide_apply_u8") != NULL, "u8 message: %s", f2a_last_error());
    CHECK(f2a_guide_apply_u8(g, px, 2, out, 3, 0, 0, 1, 1) == F2A_ERR_INVALID_ARGUMENT, "u8 short stride");
    CHECK(f2a_guide_apply_u8(g, px, 3, out, 3, UW, 0, 1, 1) == F2A_ERR_INVALID_ARGUMENT, "u8 x outside");
    CHECK(f2a_guide_apply_u8(g, px, 3, out, 3, 0, UH - 1, 1, 2) == F2A_ERR_INVALID_ARGUMENT, "u8 y + h outside");
    CHECK(f2a_guide_apply_u8(g, px, 3, out, 3, 0, 0, 0, 1) == F2A_ERR_INVALID_ARGUMENT, "u8 zero width");
    CHECK(f2a_guide_apply_u8(g, NULL, 3, out, 3, 0, 0, 1, 1) == F2A_ERR_INVALID_ARGUMENT, "u8 NULL in");
    CHECK(f2a_guide_apply_u8(g, px, 3, NULL, 3, 0, 0, 1, 1) == F2A_ERR_INVALID_ARGUMENT, "u8 NULL out");
    CHECK(f2a_guide_apply_u8(NULL, px, 3, out, 3, 0, 0, 1, 1) == F2A_ERR_INVALID_ARGUMENT, "u8 NULL guide");
    CHECK(f2a_guide_apply_u8(g, px, SIZE_MAX / 2, out, 3, 0, 0, 1, 4) == F2A_ERR_INVALID_ARGUMENT, "u8 stride overflow");
    f2a_guide_free(g);

    /* Pass 1 fed a smaller copy (a decoder's shrink on load): the bounds of
     * f2a_guide_min_source, the photo's own size equal to f2a_guide_begin,
     * a half-size copy close to it. */
    int32_t mw = 0, mh = 0;
    CHECK(f2a_guide_min_source(UW, UH, &p, &mw, &mh) == F2A_OK && mw == 128 && mh == 32,
          "min source of %dx%d at 64: %dx%d", UW, UH, mw, mh);
    CHECK(f2a_guide_min_source(UW, UH, &p, NULL, &mh) == F2A_ERR_INVALID_ARGUMENT, "min source NULL out");
    CHECK(f2a_guide_min_source(0, UH, &p, &mw, &mh) == F2A_ERR_INVALID_ARGUMENT, "min source zero width");
    CHECK(f2a_guide_min_source(UW, UH, &p, &mw, &mh) == F2A_OK, "min source again");
    g = (f2a_guide *) 1;
    CHECK(f2a_guide_begin_source(m, UW, UH, mw - 1, mh, &p, &g) == F2A_ERR_INVALID_ARGUMENT && g == NULL,
          "source below the minimum");
    CHECK(strstr(f2a_last_error(), "f2a_guide_min_source") != NULL, "message: %s", f2a_last_error());
    CHECK(f2a_guide_begin_source(m, UW, UH, UW + 1, UH, &p, &g) == F2A_ERR_INVALID_ARGUMENT, "source above the photo");
    CHECK(f2a_guide_begin_source(NULL, UW, UH, UW, UH, &p, &g) == F2A_ERR_INVALID_ARGUMENT, "source NULL model");
    CHECK(f2a_guide_begin_source(m, UW, UH, UW, UH, &p, &g) == F2A_OK, "source = photo: %s", f2a_last_error());
    CHECK(f2a_guide_add_rows(g, rgb, (size_t) UW * 12, UH) == F2A_OK && f2a_guide_finish(g) == F2A_OK, "source = photo rows");
    CHECK(f2a_guide_apply_u8(g, bytes, UW * 3, inplace, UW * 3, 0, 0, UW, UH) == F2A_OK &&
          memcmp(inplace, expect, (size_t) UW * UH * 3) == 0, "source = photo equals f2a_guide_begin");
    f2a_guide_free(g);
    enum { SW = (UW + 1) / 2, SH = (UH + 1) / 2 };
    float *half = malloc((size_t) SW * SH * 3 * sizeof(float));
    for (int y = 0; y < SH; y++)
        for (int x = 0; x < SW; x++)
            for (int c = 0; c < 3; c++) {
                int x1 = 2 * x + 1 < UW ? 2 * x + 1 : UW - 1, y1 = 2 * y + 1 < UH ? 2 * y + 1 : UH - 1;
                half[((size_t) y * SW + x) * 3 + c] =
                    (rgb[((size_t) 2 * y * UW + 2 * x) * 3 + c] + rgb[((size_t) 2 * y * UW + x1) * 3 + c] +
                     rgb[((size_t) y1 * UW + 2 * x) * 3 + c] + rgb[((size_t) y1 * UW + x1) * 3 + c]) / 4;
            }
    CHECK(f2a_guide_begin_source(m, UW, UH, SW, SH, &p, &g) == F2A_OK, "half source: %s", f2a_last_error());
    CHECK(f2a_guide_add_rows(g, half, (size_t) SW * 12 - 4, 1) == F2A_ERR_INVALID_ARGUMENT, "half source short stride");
    CHECK(f2a_guide_add_rows(g, half, (size_t) SW * 12, SH) == F2A_OK, "half source rows: %s", f2a_last_error());
    CHECK(f2a_guide_add_rows(g, half, (size_t) SW * 12, 1) == F2A_ERR_INVALID_ARGUMENT, "half source: a row too many");
    CHECK(f2a_guide_finish(g) == F2A_OK, "half source finish: %s", f2a_last_error());
    CHECK(f2a_guide_apply_u8(g, bytes, UW * 3, inplace, UW * 3, 0, 0, UW, UH) == F2A_OK, "half source map");
    /* The smooth part (left half, away from the noise): a photo's case. The noise
     * averages differently over the half-size copy's 2x2 blocks (mean 4.7/255 over all). */
    int worst = 0;
    double total = 0;
    for (int y = 0; y < UH; y++)
        for (int x = 0; x < UW; x++)
            for (int c = 0; c < 3; c++) {
                size_t i = ((size_t) y * UW + x) * 3 + c;
                int d = abs((int) inplace[i] - (int) expect[i]);
                total += d;
                if (x < UW / 2 - 24 && d > worst) worst = d;
            }
    CHECK(worst <= 8, "half source close to the whole photo's (smooth part max %d, "
          "mean %.2f /255)", worst, total / (3.0 * UW * UH));
    printf("note: half-size pass 1 vs the whole photo: smooth part max %d/255, mean over all %.2f/255\n", worst,
           total / (3.0 * UW * UH));
    free(half);
    f2a_guide_free(g);
done:
    free(bytes); free(out); free(expect); free(inplace); free(rgb); free(mapped);
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
    /* Full mode's memory grows with the image (guided at the default working
     * size needs little more than the caller's buffers at any size). The
     * input pointer is never read when the call is refused. */
    f2a_params full = f2a_default_params();
    full.mode = F2A_MODE_FULL;
    /* f2a_estimate_bytes is the figure compared with the limit. */
    uint64_t limit = 0, big = 0, small = 0;
    CHECK(f2a_memory_limit_parse("F2A_MAX_MEMORY_MB", getenv("F2A_MAX_MEMORY_MB"), &limit) == F2A_OK, "limit");
    CHECK(f2a_estimate_bytes(m, 4000, 3000, &full, &big) == F2A_OK && big > limit, "estimate over the limit: %llu",
          (unsigned long long) big);
    CHECK(f2a_estimate_bytes(m, 8, 8, NULL, &small) == F2A_OK && small <= limit, "estimate under the limit: %llu",
          (unsigned long long) small);
    CHECK(f2a_apply_f32(m, tiny, 4000 * 12, tiny, 4000 * 12, 4000, 3000, &full) == F2A_ERR_OUT_OF_MEMORY, "refused");
    CHECK(strstr(f2a_last_error(), "F2A_MAX_MEMORY_MB") != NULL, "message: %s", f2a_last_error());
    CHECK(f2a_apply_u8(m, (uint8_t *) tiny, 4000 * 3, (uint8_t *) tiny, 4000 * 3, 4000, 3000, &full)
          == F2A_ERR_OUT_OF_MEMORY, "u8 refused");
    CHECK(f2a_apply_f32(m, tiny, 96, tiny, 96, 8, 8, NULL) == F2A_OK, "small image: %s", f2a_last_error());
    /* The two-pass guided plan needs nothing per full-resolution pixel: a
     * 12000x9000 photo fits where a 4000x3000 full-mode call did not. */
    f2a_params p = f2a_default_params();
    p.working_size = 256;
    f2a_guide *g = NULL;
    CHECK(f2a_guide_begin(m, 12000, 9000, &p, &g) == F2A_OK, "guide under the limit: %s", f2a_last_error());
    f2a_guide_free(g);
    CHECK(f2a_estimate_bytes(m, 12000, 9000, &p, &small) == F2A_OK && small <= limit, "guided estimate %llu",
          (unsigned long long) small);
    p.working_size = 8192;
    CHECK(f2a_guide_begin(m, 12000, 9000, &p, &g) == F2A_ERR_OUT_OF_MEMORY, "guide at working size 8192 refused");
    CHECK(f2a_estimate_bytes(m, 12000, 9000, &p, &big) == F2A_OK && big > limit, "guided estimate at 8192 %llu",
          (unsigned long long) big);
    free(tiny);
    f2a_model_free(m);
}

/* Run by Tests/hardening/reliability.py under an address-space limit too small for the
 * weights file: the load must fail with F2A_ERR_OUT_OF_MEMORY, not abort the process. */
static void test_load_out_of_memory(const char *path) {
    f2a_model *m = NULL;
    f2a_status st = f2a_model_load(path, &m);
    CHECK(st == F2A_ERR_OUT_OF_MEMORY && m == NULL && strstr(f2a_last_error(), "not enough memory"),
          "load %s under the address-space limit: status %d: %s", path, st, f2a_last_error());
    printf("%s\n", f2a_last_error());
    f2a_model_free(m);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s BUILD_DIR [--memory-limit | --load-out-of-memory MODEL]\n", argv[0]);
        return 2;
    }
    if (argc == 4 && strcmp(argv[2], "--load-out-of-memory") == 0) {
        test_load_out_of_memory(argv[3]);
        printf("capi-load: %d passed, %d failed\n", passed, failed);
        return failed == 0 ? 0 : 1;
    }
    snprintf(model_path, sizeof model_path, "%s/share/flash2ambient/weights/default.f2aw", argv[1]);
    if (argc == 3 && strcmp(argv[2], "--memory-limit") == 0) {
        test_memory_limit();
        printf("capi-memory: %d passed, %d failed\n", passed, failed);
        return failed == 0 ? 0 : 1;
    }
    test_basics();
    test_load_errors();
    test_memory_setting();
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
        test_policy(m);
        test_invalid_arguments(m);
        test_sizes_and_strides(m);
        test_overlap(m);
        test_u8(m);
        test_progress(m);
        test_threads(m);
        test_guide(m);
        test_guide_u8(m);
        f2a_model_free(m);
    }
    printf("capi: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
