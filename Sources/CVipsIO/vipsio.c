#include "f2a_vipsio.h"
#include "f2a_vipsconvert.h"

#include <vips/vips.h>
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* An encoded image in memory (standard input), shared by every loader reading it: a
 * loader reads its bytes lazily for as long as any image made from it lives, and a
 * streamed image is decoded twice. Freed with the last reference. */
typedef struct {
    void *data; /* from malloc */
    size_t length;
    gint refs;
} f2aio_bytes;

static f2aio_bytes *bytes_ref(f2aio_bytes *bytes) {
    g_atomic_int_inc(&bytes->refs);
    return bytes;
}

static void bytes_unref(f2aio_bytes *bytes) {
    if (bytes && g_atomic_int_dec_and_test(&bytes->refs)) {
        free(bytes->data);
        g_free(bytes);
    }
}

static void bytes_unref_on_close(VipsImage *image, void *bytes) {
    (void) image;
    bytes_unref(bytes);
}

struct f2aio_image {
    VipsImage *source; /* autorotated, decoded (uncoded) source: metadata, alpha, formats */
    VipsImage *pending; /* the RGB float pipeline until f2aio_decode runs it; NULL after */
    float *rgb;
    int width, height;
    int has_extra_bands;
    /* Streamed images (f2aio_open_stream*): what the second pass decodes again. */
    char *path;
    f2aio_bytes *bytes;
    int sequential; /* the loader reads once, top to bottom: the second pass opens the input again */
    int rows_read;  /* the first pass is done */
    VipsImage *first_pass; /* the first pass's RGB float pipeline when shrunk on load (f2aio_stream_shrink) */
};

/* Images handed to the tools are untrusted uploads as often as photographs: the loaders
 * libvips marks untrusted (SVG and PDF, which can pull in other files such as a sibling of
 * the input, ImageMagick, and the unfuzzed CSV, matrix, PPM, Radiance, FITS, OpenEXR, JPEG
 * 2000, JPEG XL, OpenSlide, Analyze, raw and .v loaders) are blocked, leaving JPEG, PNG,
 * WebP, TIFF, GIF and HEIF. F2A_UNTRUSTED_LOADERS=allow lifts it for trusted files; any
 * other value is an error rather than ignored. */
static int set_loader_policy(void) {
    const char *value = getenv("F2A_UNTRUSTED_LOADERS");
    if (value && *value && strcmp(value, "allow") != 0 && strcmp(value, "block") != 0) {
        vips_error("f2a", "F2A_UNTRUSTED_LOADERS='%s' is not a loader policy: give 'allow' or 'block', "
                   "or unset it (block)", value);
        return -1;
    }
    vips_block_untrusted_set(!(value && strcmp(value, "allow") == 0));
    return 0;
}

int f2aio_init(const char *argv0) {
    if (VIPS_INIT(argv0 ? argv0 : "f2a")) return -1;
    /* The tools run each operation on a file once: a cached operation would only keep its
     * images alive after the file is done (a random-access loader's decoded pixels, a
     * sequential loader's open file and buffers), so memory would grow from file to file. */
    vips_cache_set_max(0);
    return set_loader_policy();
}

const char *f2aio_take_error(void) {
    static __thread char message[2048];
    g_strlcpy(message, vips_error_buffer(), sizeof(message));
    vips_error_clear();
    size_t n = strlen(message);
    while (n > 0 && message[n - 1] == '\n') message[--n] = '\0';
    return message;
}

/* A loader's image as the tools see it: *source the autorotated, decoded source (metadata,
 * alpha, formats) and *rgb its colour as RGB float (lazy); new references. */
static int model_pipeline(VipsImage *loaded, VipsImage **source, VipsImage **rgb) {
    VipsObject *scope = VIPS_OBJECT(vips_image_new());
    VipsImage **t = (VipsImage **) vips_object_local_array(scope, 3);
    int status = -1;

    /* After vips_autorot the pixels are upright, but the EXIF orientation tag
     * can survive into a saved result and make viewers rotate it a second
     * time: mark the (copied) source upright for every caller. */
    if (vips_autorot(loaded, &t[0], NULL) || vips_copy(t[0], &t[1], NULL)) goto done;
    vips_image_set_int(t[1], VIPS_META_ORIENTATION, 1);
    if (vips_image_get_typeof(t[1], "exif-ifd0-Orientation")) (void) vips_image_remove(t[1], "exif-ifd0-Orientation");
    VipsImage *in = t[1];
    if (in->Coding != VIPS_CODING_NONE) {
        if (vips_image_decode(in, &t[2])) goto done;
        in = t[2];
    }
    /* The conversion the vips operation makes too (Sources/CVipsConvert). */
    if (f2aconv_to_model(in, rgb)) goto done;
    *source = in;
    g_object_ref(in);
    status = 0;
done:
    g_object_unref(scope);
    return status;
}

/* Sets image's source and pending pipeline (and their size) from a loader's image. */
static int build_pipeline(f2aio_image *image, VipsImage *loaded) {
    VipsImage *source, *rgb;
    if (model_pipeline(loaded, &source, &rgb)) return -1;
    image->source = source;
    image->pending = rgb;
    image->width = rgb->Xsize;
    image->height = rgb->Ysize;
    image->has_extra_bands = f2aconv_colour_bands(source) < source->Bands;
    return 0;
}

static f2aio_image *from_vips(VipsImage *loaded) {
    f2aio_image *image = g_new0(f2aio_image, 1);
    if (build_pipeline(image, loaded)) {
        g_free(image);
        return NULL;
    }
    return image;
}

int f2aio_decode(f2aio_image *image) {
    if (!image->pending) return 0;
    size_t size = 0;
    float *pixels = vips_image_write_to_memory(image->pending, &size);
    if (!pixels) return -1;
    if (size != (size_t) image->width * image->height * 3 * sizeof(float)) {
        g_free(pixels);
        vips_error("f2a", "unexpected decoded size");
        return -1;
    }
    image->rgb = pixels;
    VIPS_UNREF(image->pending);
    return 0;
}

/* A loader gives only the first page of a multi-page TIFF or an animated GIF or WebP
 * unless asked: processing it would drop every other page without a word. */
static int refuse_pages(VipsImage *loaded) {
    int pages = vips_image_get_n_pages(loaded);
    if (pages <= 1) return 0;
    vips_error("f2a", "the file has %d pages (a multi-page or animated image); only single images are "
               "processed: extract each page first (e.g. vips copy 'in.tif[page=1]' page2.png)", pages);
    return -1;
}

/* The image from a loader, header only; NULL (with the reason) when there is none. */
static f2aio_image *opened(VipsImage *loaded) {
    if (!loaded) {
        if (strstr(vips_error_buffer(), "operation is blocked"))
            vips_error("f2a", "loaders that can read other files or are not hardened (SVG, PDF, ImageMagick …) "
                       "are blocked for untrusted input; F2A_UNTRUSTED_LOADERS=allow lifts it for files you trust");
        return NULL;
    }
    f2aio_image *image = refuse_pages(loaded) ? NULL : from_vips(loaded);
    g_object_unref(loaded);
    return image;
}

/* fail_on=truncated: by default loaders only warn about a truncated or
 * damaged file and return grey for the missing part; fail instead, like the
 * vips operation (plugin/flash2ambient.c) does. */
f2aio_image *f2aio_open(const char *path) {
    return opened(vips_image_new_from_file(path, "fail_on", VIPS_FAIL_ON_TRUNCATED, NULL));
}

static f2aio_image *decoded(f2aio_image *image) {
    if (image && f2aio_decode(image)) {
        f2aio_free(image);
        return NULL;
    }
    return image;
}

f2aio_image *f2aio_load(const char *path) { return decoded(f2aio_open(path)); }

static f2aio_bytes *bytes_new(void *data, size_t length) {
    f2aio_bytes *bytes = g_new(f2aio_bytes, 1);
    bytes->data = data;
    bytes->length = length;
    bytes->refs = 1;
    return bytes;
}

/* The loaders that decode at a fraction of the size for a fraction of the cost. */
typedef enum { SHRINK_NONE, SHRINK_JPEG, SHRINK_WEBP } shrink_kind;

/* A loader on `bytes` (or on `path` when bytes is NULL), shrinking by `factor` when
 * `kind` is not SHRINK_NONE; the loader's image holds a reference to the bytes until it
 * closes. */
static VipsImage *load_shrunk(const char *path, f2aio_bytes *bytes, VipsAccess access, shrink_kind kind,
                              int factor) {
    VipsImage *loaded = NULL;
    int failed;
    switch (kind) {
    case SHRINK_JPEG: /* DCT scaling: each output pixel from the block's low frequencies only */
        failed = bytes ? vips_jpegload_buffer(bytes->data, bytes->length, &loaded, "shrink", factor, "access", access,
                                              "fail_on", VIPS_FAIL_ON_TRUNCATED, NULL)
                       : vips_jpegload(path, &loaded, "shrink", factor, "access", access,
                                       "fail_on", VIPS_FAIL_ON_TRUNCATED, NULL);
        break;
    case SHRINK_WEBP: /* libwebp's rescaler, area-averaging while it decodes */
        failed = bytes ? vips_webpload_buffer(bytes->data, bytes->length, &loaded, "scale", 1.0 / factor,
                                              "access", access, "fail_on", VIPS_FAIL_ON_TRUNCATED, NULL)
                       : vips_webpload(path, &loaded, "scale", 1.0 / factor, "access", access,
                                       "fail_on", VIPS_FAIL_ON_TRUNCATED, NULL);
        break;
    default:
        loaded = bytes ? vips_image_new_from_buffer(bytes->data, bytes->length, "", "access", access,
                                                    "fail_on", VIPS_FAIL_ON_TRUNCATED, NULL)
                       : vips_image_new_from_file(path, "access", access, "fail_on", VIPS_FAIL_ON_TRUNCATED, NULL);
        failed = loaded == NULL;
    }
    if (failed) {
        VIPS_UNREF(loaded);
        return NULL;
    }
    if (bytes) g_signal_connect(loaded, "postclose", G_CALLBACK(bytes_unref_on_close), bytes_ref(bytes));
    return loaded;
}

static VipsImage *load(const char *path, f2aio_bytes *bytes, VipsAccess access) {
    return load_shrunk(path, bytes, access, SHRINK_NONE, 1);
}

f2aio_image *f2aio_open_buffer(void *data, size_t length) {
    f2aio_bytes *bytes = bytes_new(data, length);
    VipsImage *loaded = load(NULL, bytes, VIPS_ACCESS_RANDOM);
    bytes_unref(bytes);
    return opened(loaded);
}

int f2aio_width(const f2aio_image *image) { return image->width; }
int f2aio_height(const f2aio_image *image) { return image->height; }
int f2aio_has_alpha(const f2aio_image *image) { return image->has_extra_bands; }
float *f2aio_pixels(f2aio_image *image) { return image->rgb; }

void f2aio_free(f2aio_image *image) {
    if (!image) return;
    g_free(image->rgb);
    VIPS_UNREF(image->first_pass);
    VIPS_UNREF(image->pending);
    VIPS_UNREF(image->source);
    g_free(image->path);
    bytes_unref(image->bytes);
    g_free(image);
}

char *f2aio_temporary_path(const char *path, int pid) {
    const char *slash = strrchr(path, '/');
    const char *name = slash ? slash + 1 : path;
    const char *dot = strrchr(name, '.');
    if (!dot) return NULL;
    /* Short, so that a valid output name near NAME_MAX (255 bytes) still
     * has a valid temporary name; the hash of the final name lets f2a batch
     * tell its own leftovers from another shard's files in flight. */
    uint64_t hash = 14695981039346656037ull; /* FNV-1a */
    for (const char *c = name; *c; c++) hash = (hash ^ (unsigned char) *c) * 1099511628211ull;
    return g_strdup_printf("%.*s.f2a-tmp-%d-%016" G_GINT64_MODIFIER "x%s", (int) (name - path), path, pid,
                           (guint64) hash, dot);
}

/* The temporary file of the save in progress, for the signal handler below.
 * Set only by processes that save one file at a time (f2a apply, eval,
 * synth); f2a batch handles its signals itself. */
static char pending_path[4096];
static volatile sig_atomic_t pending;
static volatile sig_atomic_t cleanup_installed;

static void remove_pending_and_die(int sig) {
    if (pending) unlink(pending_path);
    signal(sig, SIG_DFL);
    raise(sig);
}

void f2aio_remove_temporary_on_signal(void) {
    /* SIGXFSZ: a save over the file size limit (ulimit -f) kills the process in the middle of the write. */
    static const int signals[] = { SIGINT, SIGTERM, SIGHUP, SIGXFSZ };
    struct sigaction action = { 0 };
    action.sa_handler = remove_pending_and_die;
    sigemptyset(&action.sa_mask);
    for (size_t i = 0; i < sizeof signals / sizeof *signals; i++) {
        struct sigaction old;
        /* A signal the caller's parent ignored (nohup) stays ignored. */
        if (sigaction(signals[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN) continue;
        sigaction(signals[i], &action, NULL);
    }
    cleanup_installed = 1;
}

/* The temporary name is an implementation detail: a failed save's messages name the
 * output the user asked for instead. */
static void name_output_not_temporary(const char *tmp, const char *path) {
    char *message = vips_error_buffer_copy();
    gchar **parts = g_strsplit(message, tmp, -1);
    gchar *renamed = g_strjoinv(path, parts);
    size_t n = strlen(renamed);
    while (n > 0 && renamed[n - 1] == '\n') renamed[--n] = '\0';
    vips_error(NULL, "%s", renamed);
    g_free(renamed);
    g_strfreev(parts);
    g_free(message);
}

/* Write to a temporary name with the same suffix, then rename into place. */
static int save_atomically(VipsImage *image, const char *path, int quality) {
    char *tmp = f2aio_temporary_path(path, (int) getpid());
    if (!tmp) {
        vips_error("f2a", "%s: cannot tell the output format (no file suffix)", path);
        return -1;
    }
    int track = cleanup_installed && strlen(tmp) < sizeof pending_path;
    if (track) {
        strcpy(pending_path, tmp);
        pending = 1;
    }
    int status = quality > 0
        ? vips_image_write_to_file(image, tmp, "Q", quality, NULL)
        : vips_image_write_to_file(image, tmp, NULL);
    if (status == 0 && rename(tmp, path) != 0) {
        vips_error_system(errno, "f2a", "cannot move the written image into place as %s", path);
        status = -1;
    }
    if (status != 0) {
        unlink(tmp);
        name_output_not_temporary(tmp, path);
    }
    if (track) pending = 0;
    g_free(tmp);
    return status;
}

/* The model's float RGB image `rgb` as `src` was (interpretation, band format, alpha,
 * metadata): a new reference for the caller, NULL on error. */
static VipsImage *like(VipsImage *src, VipsImage *rgb) {
    VipsImage *restored, *final = NULL;
    /* Back to the source's interpretation and band format, its extra bands re-attached
     * (the conversion the vips operation makes too). */
    if (f2aconv_from_model(src, rgb, &restored)) return NULL;
    if (vips_copy(restored, &final, "xres", src->Xres, "yres", src->Yres, NULL) == 0)
        /* The output carries no fields yet: copy the photograph's metadata. */
        f2aconv_copy_metadata(src, final);
    g_object_unref(restored);
    return final;
}

/* `rgb` as the source was. Reads `rgb` in place until unreferenced. */
static VipsImage *like_source(const f2aio_image *source, const float *rgb) {
    VipsImage *memory = vips_image_new_from_memory(rgb, (size_t) source->width * source->height * 3 * sizeof(float),
                                                   source->width, source->height, 3, VIPS_FORMAT_FLOAT);
    if (!memory) return NULL;
    VipsImage *final = like(source->source, memory);
    g_object_unref(memory);
    return final;
}

/* Encodes `final` into memory in the format of `suffix`. */
static int save_to_buffer(VipsImage *final, const char *suffix, int quality, void **data, size_t *length) {
    *data = NULL;
    *length = 0;
    return quality > 0
        ? vips_image_write_to_buffer(final, suffix, data, length, "Q", quality, NULL)
        : vips_image_write_to_buffer(final, suffix, data, length, NULL);
}

int f2aio_save_like(const f2aio_image *source, const float *rgb, const char *path, int quality) {
    VipsImage *final = like_source(source, rgb);
    if (!final) return -1;
    int status = save_atomically(final, path, quality);
    g_object_unref(final);
    return status;
}

int f2aio_save_like_buffer(const f2aio_image *source, const float *rgb, const char *suffix, int quality,
                           void **data, size_t *length) {
    VipsImage *final = like_source(source, rgb);
    if (!final) {
        *data = NULL;
        *length = 0;
        return -1;
    }
    int status = save_to_buffer(final, suffix, quality, data, length);
    g_object_unref(final);
    return status;
}

int f2aio_save_rgb8(const float *rgb, int width, int height, const char *path) {
    VipsObject *scope = VIPS_OBJECT(vips_image_new());
    VipsImage **t = (VipsImage **) vips_object_local_array(scope, 4);
    int status = -1;
    t[0] = vips_image_new_from_memory(rgb, (size_t) width * height * 3 * sizeof(float), width, height, 3,
                                      VIPS_FORMAT_FLOAT);
    if (!t[0]) goto done;
    if (vips_linear1(t[0], &t[1], 255.0, 0.5, NULL)) goto done;
    if (vips_cast(t[1], &t[2], VIPS_FORMAT_UCHAR, NULL)) goto done;
    if (vips_copy(t[2], &t[3], "interpretation", VIPS_INTERPRETATION_sRGB, NULL)) goto done;
    status = save_atomically(t[3], path, 0);
done:
    g_object_unref(scope);
    return status;
}

void f2aio_free_string(char *string) { g_free(string); }
void f2aio_free_buffer(void *data) { g_free(data); }

unsigned char *f2aio_text(const char *text, const char *font, int *width, int *height) {
    VipsImage *mask = NULL;
    /* vips_text reads Pango markup: escaped, a '<' or '&' in a name is drawn as it is. */
    gchar *escaped = g_markup_escape_text(text, -1);
    int failed = vips_text(&mask, escaped, "font", font, "dpi", 72, NULL);
    g_free(escaped);
    if (failed) return NULL;
    size_t size = 0;
    unsigned char *pixels = vips_image_write_to_memory(mask, &size);
    if (pixels) {
        *width = mask->Xsize;
        *height = mask->Ysize;
    }
    g_object_unref(mask);
    return pixels;
}

char *f2aio_sha256_file(const char *path) {
    FILE *file = fopen(path, "rb");
    if (!file) {
        vips_error_system(errno, "f2a", "cannot read %s", path);
        return NULL;
    }
    GChecksum *checksum = g_checksum_new(G_CHECKSUM_SHA256);
    unsigned char chunk[1 << 16];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, file)) > 0) g_checksum_update(checksum, chunk, n);
    int failed = ferror(file);
    fclose(file);
    char *hex = failed ? NULL : g_strdup(g_checksum_get_string(checksum));
    if (failed) vips_error("f2a", "cannot read %s", path);
    g_checksum_free(checksum);
    return hex;
}

/* ---- Streamed images: two passes over the rows, never the whole image -------------------- */

/* vips_autorot reorders rows for every orientation but 1 and 2 (a mirror within each row):
 * a sequential loader cannot serve that, so those images are read with random access
 * (the loader then holds the decoded source, in its own format, for both passes). */
static int needs_random_access(VipsImage *loaded) {
    int orientation = 1;
    if (vips_image_get_typeof(loaded, VIPS_META_ORIENTATION) &&
        vips_image_get_int(loaded, VIPS_META_ORIENTATION, &orientation)) {
        vips_error_clear();
        return 0;
    }
    return orientation > 2 && orientation <= 8;
}

static f2aio_image *open_stream(const char *path, f2aio_bytes *bytes) {
    VipsImage *loaded = load(path, bytes, VIPS_ACCESS_SEQUENTIAL);
    int sequential = 1;
    if (loaded && needs_random_access(loaded)) {
        g_object_unref(loaded);
        loaded = load(path, bytes, VIPS_ACCESS_RANDOM);
        sequential = 0;
    }
    f2aio_image *image = opened(loaded);
    if (image) {
        image->path = path ? g_strdup(path) : NULL;
        image->bytes = bytes ? bytes_ref(bytes) : NULL;
        image->sequential = sequential;
    }
    return image;
}

f2aio_image *f2aio_open_stream(const char *path) { return open_stream(path, NULL); }

f2aio_image *f2aio_open_stream_buffer(void *data, size_t length) {
    f2aio_bytes *bytes = bytes_new(data, length);
    f2aio_image *image = open_stream(NULL, bytes);
    bytes_unref(bytes);
    return image;
}

typedef struct {
    f2aio_rows_fn fn;
    void *user;
} rows_sink;

/* vips_sink_disc hands over the strips in order, one at a time. */
static int feed_rows(VipsRegion *region, VipsRect *area, void *a) {
    rows_sink *sink = (rows_sink *) a;
    return sink->fn(sink->user, (const float *) VIPS_REGION_ADDR(region, area->left, area->top),
                    VIPS_REGION_LSKIP(region) / sizeof(float), area->height) ? -1 : 0;
}

static shrink_kind shrink_kind_of(VipsImage *source) {
    const char *loader = NULL;
    /* The type checked first, so that get_string cannot fail: the error buffer is shared by
     * every thread of the process. */
    GType type = vips_image_get_typeof(source, VIPS_META_LOADER);
    if ((type != VIPS_TYPE_REF_STRING && type != G_TYPE_STRING) ||
        vips_image_get_string(source, VIPS_META_LOADER, &loader))
        return SHRINK_NONE;
    return g_str_has_prefix(loader, "jpegload") ? SHRINK_JPEG
         : g_str_has_prefix(loader, "webpload") ? SHRINK_WEBP : SHRINK_NONE;
}

int f2aio_stream_shrink(f2aio_image *image, int min_width, int min_height, int *width, int *height) {
    *width = image->width;
    *height = image->height;
    if (image->rows_read || !image->pending || image->first_pass || !image->source) {
        vips_error("f2a", "the first pass can be shrunk only once, before it is read");
        return -1;
    }
    shrink_kind kind = shrink_kind_of(image->source);
    if (kind == SHRINK_NONE) return 0;
    /* Rows the EXIF orientation reorders need random access to the shrunk image too. */
    VipsAccess access = image->sequential ? VIPS_ACCESS_SEQUENTIAL : VIPS_ACCESS_RANDOM;
    for (int factor = 8; factor >= 2; factor /= 2) {
        /* The loaders round the shrunk size up at most: skip what cannot be large enough
         * without opening the file again. */
        if ((image->width + factor - 1) / factor < min_width || (image->height + factor - 1) / factor < min_height)
            continue;
        VipsImage *loaded = load_shrunk(image->path, image->bytes, access, kind, factor);
        if (!loaded) return -1;
        VipsImage *source, *rgb;
        int status = model_pipeline(loaded, &source, &rgb);
        g_object_unref(loaded);
        if (status) return -1;
        g_object_unref(source);
        if (rgb->Xsize < min_width || rgb->Ysize < min_height || rgb->Xsize > image->width ||
            rgb->Ysize > image->height) {
            g_object_unref(rgb);
            continue;
        }
        image->first_pass = rgb;
        *width = rgb->Xsize;
        *height = rgb->Ysize;
        /* The full-size loader is then only for the second pass: a sequential one is
         * opened again then, so close it now. */
        if (image->sequential) {
            VIPS_UNREF(image->pending);
            VIPS_UNREF(image->source);
        }
        return 0;
    }
    return 0;
}

int f2aio_stream_rows(f2aio_image *image, f2aio_rows_fn fn, void *user) {
    VipsImage *in = image->first_pass ? image->first_pass : image->pending;
    if (image->rows_read || !in) {
        vips_error("f2a", "the image's rows were read already");
        return -1;
    }
    rows_sink sink = { fn, user };
    int status = vips_sink_disc(in, feed_rows, &sink);
    if (status == 0) image->rows_read = 1;
    if (image->first_pass)
        VIPS_UNREF(image->first_pass);
    else if (image->sequential) {
        /* Spent: the second pass decodes the input again. Dropping the loader now closes
         * the file and frees the decoder before the network runs. */
        VIPS_UNREF(image->pending);
        VIPS_UNREF(image->source);
    }
    return status;
}

/* The second pass's pipeline: for a sequential loader, the input opened and decoded
 * again; it must give the image the first pass read. */
static int reopen(f2aio_image *image) {
    if (!image->rows_read) {
        vips_error("f2a", "the image's rows must be read (f2aio_stream_rows) before it is saved");
        return -1;
    }
    if (image->pending) return 0;
    if (!image->sequential) {
        vips_error("f2a", "the image was saved already");
        return -1;
    }
    VipsImage *loaded = load(image->path, image->bytes, VIPS_ACCESS_SEQUENTIAL);
    if (!loaded) return -1;
    int width = image->width, height = image->height, extra = image->has_extra_bands;
    int status = build_pipeline(image, loaded);
    g_object_unref(loaded);
    if (status == 0 && (image->width != width || image->height != height || image->has_extra_bands != extra)) {
        vips_error("f2a", "the image changed while it was processed (%dx%d, now %dx%d)", width, height,
                   image->width, image->height);
        image->width = width;
        image->height = height;
        image->has_extra_bands = extra;
        VIPS_UNREF(image->pending);
        VIPS_UNREF(image->source);
        status = -1;
    }
    return status;
}

typedef struct {
    f2aio_map_fn fn;
    f2aio_map8_fn fn8;
    void *user;
} region_map;

/* Any region, on any of libvips's worker threads: the input's float RGB for the same
 * rectangle, mapped into the output region. */
static int map_region(VipsRegion *out, void *seq, void *a, void *b, gboolean *stop) {
    (void) a;
    (void) stop;
    VipsRegion *in = (VipsRegion *) seq;
    region_map *map = (region_map *) b;
    VipsRect *r = &out->valid;
    if (vips_region_prepare(in, r)) return -1;
    return map->fn(map->user, (const float *) VIPS_REGION_ADDR(in, r->left, r->top),
                   VIPS_REGION_LSKIP(in) / sizeof(float), (float *) VIPS_REGION_ADDR(out, r->left, r->top),
                   VIPS_REGION_LSKIP(out) / sizeof(float), r->left, r->top, r->width, r->height) ? -1 : 0;
}

/* 8-bit sRGB sources, 3 bands (most JPEGs): the map gets the source's bytes and writes
 * the output's (f2aio_map8_fn), converting on the fly as f2aconv would, instead of three
 * libvips passes over float pixels (linear to float, linear back, cast to uchar), which
 * cost more than the map itself on a large photo. */
static int is_srgb8(VipsImage *source) {
    return source->Coding == VIPS_CODING_NONE && source->BandFmt == VIPS_FORMAT_UCHAR && source->Bands == 3 &&
           vips_image_guess_interpretation(source) == VIPS_INTERPRETATION_sRGB;
}

static int map8_region(VipsRegion *out, void *seq, void *a, void *b, gboolean *stop) {
    (void) a;
    (void) stop;
    VipsRegion *in = (VipsRegion *) seq;
    region_map *map = (region_map *) b;
    VipsRect *r = &out->valid;
    if (vips_region_prepare(in, r)) return -1;
    return map->fn8(map->user, VIPS_REGION_ADDR(in, r->left, r->top), VIPS_REGION_LSKIP(in),
                    VIPS_REGION_ADDR(out, r->left, r->top), VIPS_REGION_LSKIP(out), r->left, r->top, r->width,
                    r->height) ? -1 : 0;
}

/* The second pass as an image like the source, computed as it is written. */
static VipsImage *mapped_like_source(f2aio_image *image, f2aio_map_fn fn, f2aio_map8_fn fn8, void *user) {
    if (reopen(image)) return NULL;
    /* Owned by the mapped image: libvips's operation cache may keep the images made
     * from it alive after the save (the map is never called again then). */
    region_map *map = g_new(region_map, 1);
    map->fn = fn;
    map->fn8 = fn8;
    map->user = user;
    VipsImage *mapped = vips_image_new();
    g_object_set_data_full(G_OBJECT(mapped), "f2a-region-map", map, g_free);
    int bytes = fn8 && is_srgb8(image->source);
    VipsImage *in = bytes ? image->source : image->pending;
    /* No margins: each output pixel needs only its own input pixel. */
    if (vips_image_pipelinev(mapped, VIPS_DEMAND_STYLE_THINSTRIP, in, NULL) ||
        vips_image_generate(mapped, vips_start_one, bytes ? map8_region : map_region, vips_stop_one, in, map)) {
        g_object_unref(mapped);
        return NULL;
    }
    if (!bytes) {
        VipsImage *final = like(image->source, mapped);
        g_object_unref(mapped);
        return final;
    }
    /* What like() makes of the float output of an 8-bit sRGB source. */
    VipsImage *final = NULL;
    if (vips_copy(mapped, &final, "interpretation", VIPS_INTERPRETATION_sRGB, "xres", image->source->Xres,
                  "yres", image->source->Yres, NULL) == 0)
        f2aconv_copy_metadata(image->source, final);
    g_object_unref(mapped);
    return final;
}

/* After the second pass: nothing more is read. */
static void release_pipeline(f2aio_image *image) {
    VIPS_UNREF(image->pending);
    if (image->sequential) VIPS_UNREF(image->source);
}

int f2aio_stream_save_like(f2aio_image *image, f2aio_map_fn fn, f2aio_map8_fn fn8, void *user, const char *path,
                           int quality) {
    VipsImage *final = mapped_like_source(image, fn, fn8, user);
    int status = final ? save_atomically(final, path, quality) : -1;
    VIPS_UNREF(final);
    release_pipeline(image);
    return status;
}

int f2aio_stream_save_like_buffer(f2aio_image *image, f2aio_map_fn fn, f2aio_map8_fn fn8, void *user,
                                  const char *suffix, int quality, void **data, size_t *length) {
    *data = NULL;
    *length = 0;
    VipsImage *final = mapped_like_source(image, fn, fn8, user);
    int status = final ? save_to_buffer(final, suffix, quality, data, length) : -1;
    VIPS_UNREF(final);
    release_pipeline(image);
    return status;
}

void f2aio_set_error(const char *message) { vips_error("f2a", "%s", message); }

void f2aio_release_free_memory(void) { malloc_trim(0); }
