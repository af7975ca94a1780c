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
