/* Image I/O for the f2a tools through libvips: decode any format libvips
 * reads into interleaved sRGB float RGB in [0, 1], and write a result back
 * in the source's interpretation, band format, alpha and metadata.
 * Internal to the flash2ambient command-line tools. */
#ifndef F2A_VIPSIO_H
#define F2A_VIPSIO_H

#include <stddef.h>

/** A decoded image: the autorotated source plus its RGB float pixels. */
typedef struct f2aio_image f2aio_image;

/** Start libvips once per process and block its untrusted loaders (unless
 *  $F2A_UNTRUSTED_LOADERS is "allow"). Returns 0 on success. */
int f2aio_init(const char *argv0);

/** The pending libvips error message (static per thread until the next call); "" if none. Clears it. */
const char *f2aio_take_error(void);

/** Load, autorotate (EXIF) and convert to RGB float. NULL on error (also for a
 *  file of more than one page). */
f2aio_image *f2aio_load(const char *path);

/** f2aio_load in two steps: the header only (width and height are known, no pixel
 *  is decoded), then f2aio_decode (0 on success) before f2aio_pixels. */
f2aio_image *f2aio_open(const char *path);
int f2aio_decode(f2aio_image *image);

/** f2aio_open on an encoded image in memory (any format f2aio_open reads). Takes
 *  ownership of `data`, which must come from malloc: it is freed with the image, or
 *  at once when NULL is returned. */
f2aio_image *f2aio_open_buffer(void *data, size_t length);

int f2aio_width(const f2aio_image *image);
int f2aio_height(const f2aio_image *image);
/** True if the source has bands besides its colour bands (alpha, extra channels:
 *  kept aside, passed through on save). */
int f2aio_has_alpha(const f2aio_image *image);
/** Interleaved RGB float pixels, width*height*3, values in [0, 1]. Owned by the image. */
float *f2aio_pixels(f2aio_image *image);

/**
 * Save `rgb` (interleaved, the image's size, [0, 1]) to `path` as the source
 * was: same interpretation and band format, alpha and extra bands re-attached, metadata
 * (ICC, EXIF, XMP) copied. The saver follows the file suffix. `quality` > 0
 * sets the JPEG/WebP/HEIF quality. Written to a temporary file beside
 * `path` then renamed, so no partial file ever has the final name.
 * Returns 0 on success.
 */
int f2aio_save_like(const f2aio_image *source, const float *rgb, const char *path, int quality);

/**
 * f2aio_save_like into memory: encoded in the format of `suffix` (".jpg", ".png" …).
 * On success (0) *data (free with f2aio_free_buffer) holds *length bytes.
 */
int f2aio_save_like_buffer(const f2aio_image *source, const float *rgb, const char *suffix, int quality,
                           void **data, size_t *length);
void f2aio_free_buffer(void *data);

/*
 * Streamed images: guided mode needs the photo only as two passes over its rows, so the
 * whole image is never held as float (nor, for most inputs, decoded at once):
 *
 *   f2aio_open_stream / f2aio_open_stream_buffer   header only, like f2aio_open
 *   f2aio_stream_shrink (optional)                 pass 1 may read the image shrunk on load
 *   f2aio_stream_rows                              pass 1: the RGB float rows, top to bottom
 *   f2aio_stream_save_like(_buffer)                pass 2: the input decoded again, every
 *                                                  region mapped, saved like f2aio_save_like
 *
 * The loader reads sequentially (an EXIF orientation that reorders rows needs random access:
 * then the loader holds the decoded source, in its own format, for both passes). Callbacks
 * return 0, or non-zero to stop after putting the reason in the error buffer
 * (f2aio_set_error); the failing call then returns -1. f2aio_pixels stays NULL.
 */
f2aio_image *f2aio_open_stream(const char *path);
/** f2aio_open_stream on an encoded image in memory; takes ownership of `data` as
 *  f2aio_open_buffer does (decoded from it twice, freed with the image). */
f2aio_image *f2aio_open_stream_buffer(void *data, size_t length);

/**
 * Lets pass 1 read the image shrunk on load, where its loader decodes at a fraction of the
 * size for a fraction of the cost (JPEG: DCT scaling by 2, 4 or 8; WebP: libwebp's
 * rescaler): at the largest such factor that keeps it at least min_width x min_height, its
 * own size otherwise. *width and *height get the size of the rows f2aio_stream_rows will
 * deliver. Once at most, before f2aio_stream_rows. Returns 0 on success.
 */
int f2aio_stream_shrink(f2aio_image *image, int min_width, int min_height, int *width, int *height);

/** Gets `count` rows of interleaved RGB float [0, 1], the first pass's width each, rows
 *  `row_stride` floats apart; rows arrive in order, top to bottom, one call at a time
 *  (not necessarily on the calling thread). */
typedef int (*f2aio_rows_fn)(void *user, const float *rows, size_t row_stride, int count);
/** Pass 1, once: every row of the image to `fn`. Returns 0 on success. */
int f2aio_stream_rows(f2aio_image *image, f2aio_rows_fn fn, void *user);

/** Writes the output for the rectangle (left, top, width, height) from the input's RGB float
 *  pixels there (rows `in_stride` and `out_stride` floats apart). Called from several threads
 *  at once, for rectangles in any order. */
typedef int (*f2aio_map_fn)(void *user, const float *in, size_t in_stride, float *out, size_t out_stride,
                            int left, int top, int width, int height);
/** f2aio_map_fn on 8-bit pixels (strides in bytes), for 3-band 8-bit sRGB images: the input's
 *  bytes in, the output's bytes out, converted as the float route converts them
 *  (u * (float) (1 / 255.) to the map, (uchar) clamp(v * 255.f + .5f, 0, 255) back, truncated,
 *  separate roundings), so either map gives the same output. */
typedef int (*f2aio_map8_fn)(void *user, const unsigned char *in, size_t in_stride, unsigned char *out,
                             size_t out_stride, int left, int top, int width, int height);
/** Pass 2, once, after pass 1: the image through `fn` (or `fn8`, when not NULL and the image
 *  is 3-band 8-bit sRGB: no float copy of the photo then), saved to `path` as
 *  f2aio_save_like saves (interpretation, band format, extra bands, metadata; temporary
 *  file then rename). */
int f2aio_stream_save_like(f2aio_image *image, f2aio_map_fn fn, f2aio_map8_fn fn8, void *user, const char *path,
                           int quality);
/** Pass 2 encoded in memory, as f2aio_save_like_buffer. */
int f2aio_stream_save_like_buffer(f2aio_image *image, f2aio_map_fn fn, f2aio_map8_fn fn8, void *user,
                                  const char *suffix, int quality, void **data, size_t *length);

/** Puts `message` in the error buffer (for callbacks that fail). */
void f2aio_set_error(const char *message);

/** Returns the heap's free pages to the system (malloc_trim). libvips's worker threads
 *  allocate a file's buffers from their own malloc arenas, which otherwise keep the pages
 *  of one file after another. */
void f2aio_release_free_memory(void);

/** Save interleaved RGB float [0, 1] as 8-bit sRGB (atomically). Returns 0 on success. */
int f2aio_save_rgb8(const float *rgb, int width, int height, const char *path);

void f2aio_free(f2aio_image *image);

/**
 * The temporary name the savers write `path` to before renaming it into
 * place: "<dir>/.f2a-tmp-<pid>-<16 hex digits: hash of the name><suffix>",
 * in the same directory, short whatever the length of the name. NULL when
 * `path` has no file suffix. Free with g_free (f2aio_free_string).
 */
char *f2aio_temporary_path(const char *path, int pid);

/** `text` rendered by libvips (vips_text, Pango) in `font` (a Pango description such as
 *  "sans 12", sizes in pixels): a width x height coverage mask, one byte per pixel, 0 for
 *  the background and 255 for ink. NULL with the reason in the error buffer. Free with
 *  f2aio_free_buffer. */
unsigned char *f2aio_text(const char *text, const char *font, int *width, int *height);

/** SHA-256 of the file's bytes as 64 lowercase hex digits (what sha256sum prints), or NULL
 *  with the reason in the error buffer. Free with f2aio_free_string. */
char *f2aio_sha256_file(const char *path);
void f2aio_free_string(char *string);

/**
 * From now on, SIGINT, SIGTERM, SIGHUP or SIGXFSZ during a save removes its
 * temporary file before the process dies of the signal. For processes that
 * save one file at a time; signals the process ignores stay ignored.
 */
void f2aio_remove_temporary_on_signal(void);


#endif
