/*
 * flash2ambient.h — C interface of libflash2ambient.
 *
 * Turns a flash photograph into an ambient-light photograph with a learned
 * generator (a U-Net with a VGG-16 encoder). This header is the single source
 * of truth for the ABI: the Swift implementation is checked against it at
 * compile time (`@c @implementation`).
 *
 * Conventions
 *  - Every function that can fail returns an f2a_status. On failure, a
 *    human-readable message for the calling thread is available from
 *    f2a_last_error() until the next failing call on that thread.
 *  - Invalid arguments (NULL pointers, zero/negative/overflowing sizes,
 *    out-of-range parameters) return F2A_ERR_INVALID_ARGUMENT; the library
 *    never aborts the host process because of them.
 *  - Buffers are owned by the caller. The library never keeps a pointer to
 *    a caller buffer after a call returns.
 *  - A loaded model is immutable: one f2a_model may be used by any number of
 *    threads at once. Each call allocates its own scratch memory.
 *  - Memory of finished calls is kept for the next one: while calls repeat one
 *    model and image size, up to 1 GiB of their network activations (a pass's
 *    own working set: about 140 MB for the shipped model at 1024 x 1024 in
 *    full mode, under 10 MB in the default guided mode), so that they are not
 *    mapped and faulted in again every call; a call with another model or
 *    size first gives back all but 64 MiB of it.
 *  - Free functions accept NULL.
 */
#ifndef FLASH2AMBIENT_H
#define FLASH2AMBIENT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define F2A_VERSION_MAJOR 0
#define F2A_VERSION_MINOR 4
#define F2A_VERSION_PATCH 0

/** Status codes. Stable values: new codes are only ever appended. */
typedef enum f2a_status {
    F2A_OK = 0,                     /**< success */
    F2A_ERR_INVALID_ARGUMENT = 1,   /**< NULL pointer, bad size, stride or parameter */
    F2A_ERR_IO = 2,                 /**< a file could not be opened or read */
    F2A_ERR_FORMAT = 3,             /**< not a valid weights file (magic, version, truncation,
                                         checksum, tensor names or shapes) */
    F2A_ERR_OUT_OF_MEMORY = 4,      /**< an allocation failed or would exceed the size limit */
    F2A_ERR_CANCELLED = 5,          /**< the progress callback asked to stop */
    F2A_ERR_INTERNAL = 6            /**< a bug: please report with f2a_last_error() */
} f2a_status;

/** Opaque handle to a loaded, immutable model. */
typedef struct f2a_model f2a_model;

/**
 * Progress callback: `fraction` grows from 0 to 1 during one apply call.
 * Return 0 to continue, non-zero to cancel (the call then returns
 * F2A_ERR_CANCELLED and leaves the output buffer unspecified).
 * Called on the thread that called f2a_apply_*.
 */
typedef int (*f2a_progress_fn)(float fraction, void *user_data);

/** How a whole image goes through the network. */
typedef enum f2a_mode {
    /** guided, at every size: it measured better than full on held-out pairs
        even with the network at the image's own size (README, "Full-resolution
        modes"). */
    F2A_MODE_AUTO = 0,
    /** The whole image through the network: the raw network output; memory and
        time grow with the image (about 0.5 KB per pixel at width 0.25). */
    F2A_MODE_FULL = 1,
    /** The network at `working_size` on the long side (at the image's own size
        when that is smaller); its effect is carried to full resolution as a
        local affine colour transform (guided filter), keeping the photo's
        detail. Fixed network cost per photo. */
    F2A_MODE_GUIDED = 2,
    /** Overlapping `tile_size` tiles through the network, cross-faded over
        128 pixels: full-resolution network output, memory bounded by the
        tile size and the image width. */
    F2A_MODE_TILED = 3
} f2a_mode;

/** Defaults and ranges of f2a_params. The library owns them (f2a_default_params
    returns the defaults, f2a_apply_* check the ranges); these macros state the
    same numbers for C code (the vips operation's argument declarations) and
    are checked against the library by its tests. */
#define F2A_DEFAULT_WORKING_SIZE 256
#define F2A_WORKING_SIZE_MIN 16
#define F2A_WORKING_SIZE_MAX 8192
#define F2A_DEFAULT_TILE_SIZE 512
#define F2A_TILE_SIZE_MIN 256
#define F2A_TILE_SIZE_MAX 4096

/** Parameters of one apply call. Obtain defaults from f2a_default_params(). */
typedef struct f2a_params {
    /** sizeof(f2a_params) as the caller was compiled; set by
        f2a_default_params(). Lets later versions append fields: the library
        reads only what the caller's struct holds. */
    size_t struct_size;
    /** Blend between input (0) and generator output (1). Range [0, 1]. Default 1. */
    float strength;
    /** Optional progress callback; NULL for none. Default NULL. */
    f2a_progress_fn progress;
    /** Passed unchanged to `progress`. Default NULL. */
    void *progress_user_data;
    /** Full-resolution strategy. Default F2A_MODE_AUTO. */
    f2a_mode mode;
    /** Long side in pixels at which guided (and so auto) mode runs the
        network, F2A_WORKING_SIZE_MIN..F2A_WORKING_SIZE_MAX. Default
        F2A_DEFAULT_WORKING_SIZE (256: the scale the shipped model was trained
        at). */
    int32_t working_size;
    /** Tile side in pixels for tiled mode, F2A_TILE_SIZE_MIN..F2A_TILE_SIZE_MAX.
        Default F2A_DEFAULT_TILE_SIZE. */
    int32_t tile_size;
} f2a_params;

/** Information about a loaded model. Strings are owned by the model. */
typedef struct f2a_model_info {
    /** sizeof(f2a_model_info) as the caller was compiled: set it before
        calling f2a_model_get_info(). Lets later versions append fields: the
        library fills only what the caller's struct holds. */
    size_t struct_size;
    float width;                /**< encoder channel width multiplier (1.0 = VGG-16) */
    float decoder_width;        /**< decoder channel width multiplier (the same as width
                                     for a symmetric U-Net) */
    int32_t levels;             /**< encoder blocks used, 1..5 */
    const char *upsample;       /**< "transpose" or "unpool" */
    const char *activation;     /**< "sigmoid" or "tanh" */
    const char *formulation;    /**< "rgb" or "ratio-log" */
    const char *description;    /**< free text from the weights file */
    int64_t parameter_count;    /**< number of scalar parameters */
    int32_t size_multiple;      /**< inputs are padded (reflect) to a multiple of this */
} f2a_model_info;

/** Library version as "MAJOR.MINOR.PATCH". Static storage; never NULL. */
const char *f2a_version(void);

/** Short English description of a status code. Static storage; never NULL. */
const char *f2a_status_string(f2a_status status);

/**
 * Message describing the last failure on the calling thread ("" if none).
 * Valid until the next f2a_* call on the same thread.
 */
const char *f2a_last_error(void);

/** Default parameters: struct_size = sizeof(f2a_params), strength 1, no progress callback, F2A_MODE_AUTO, working size F2A_DEFAULT_WORKING_SIZE, tile size F2A_DEFAULT_TILE_SIZE. */
f2a_params f2a_default_params(void);

/**
 * Default weights path: $F2A_MODEL if set, else the shipped model beside the
 * library, LIBDIR/../share/flash2ambient/weights/default.f2aw, where LIBDIR
 * is the directory libflash2ambient.so was loaded from (so PREFIX/share/...
 * once installed). Static storage or the environment's; never NULL. The
 * file need not exist.
 */
const char *f2a_default_model_path(void);

/**
 * The one parser of memory-limit settings in megabytes (MiB): the library's
 * $F2A_MAX_MEMORY_MB and the libvips operation's $F2A_VIPS_MAX_MB, so that
 * both accept and refuse the same values. The caller passes the text; the
 * environment is not read here.
 *
 * @param name       the setting's name, used only in the error message
 * @param value      its text; NULL or "" (unset) gives the default, half the
 *                   physical memory
 * @param out_bytes  receives the limit in bytes on F2A_OK
 * @return F2A_OK, or F2A_ERR_INVALID_ARGUMENT (NULL name or out_bytes, or a
 *         value that is not decimal digits for 1 to 1073741824 MB: "abc",
 *         "-5", "1e3", "0", "512M"; f2a_last_error() names the setting and
 *         the value).
 */
f2a_status f2a_memory_limit_parse(const char *name, const char *value, uint64_t *out_bytes);

/**
 * Load a weights file. The file is fully verified (structure, checksums,
 * tensor names and shapes) before a model is returned.
 *
 * @param path       NUL-terminated path; NULL loads f2a_default_model_path().
 * @param out_model  receives the new model on F2A_OK (caller frees it with
 *                   f2a_model_free); set to NULL on failure.
 * @return F2A_OK, F2A_ERR_INVALID_ARGUMENT (out_model NULL), F2A_ERR_IO,
 *         F2A_ERR_FORMAT or F2A_ERR_OUT_OF_MEMORY.
 */
f2a_status f2a_model_load(const char *path, f2a_model **out_model);

/** Release a model. Accepts NULL. The model must not be in use by another thread. */
void f2a_model_free(f2a_model *model);

/**
 * Describe a loaded model.
 *
 *   f2a_model_info info = { .struct_size = sizeof info };
 *   f2a_model_get_info(model, &info);
 *
 * @param out_info  its struct_size set by the caller; the library leaves
 *                  struct_size and any bytes past the fields it knows as they are
 * @return F2A_OK or F2A_ERR_INVALID_ARGUMENT (NULL model or out_info,
 *         out_info->struct_size smaller than this header's
 *         sizeof(f2a_model_info); f2a_last_error() names struct_size).
 */
f2a_status f2a_model_get_info(const f2a_model *model, f2a_model_info *out_info);

/**
 * The mode f2a_apply_f32() runs for a width x height image with these
 * parameters, for callers that take their own path per mode (the vips
 * operation streams guided mode through f2a_guide_*): F2A_MODE_AUTO becomes
 * F2A_MODE_GUIDED, and F2A_MODE_TILED becomes F2A_MODE_FULL when one tile
 * covers the image. Never F2A_MODE_AUTO.
 *
 * @param params    NULL for f2a_default_params(); checked as f2a_apply_f32()
 *                  checks it (struct_size, mode, ranges, strength)
 * @param out_mode  receives the mode on F2A_OK
 * @return F2A_OK or F2A_ERR_INVALID_ARGUMENT (NULL model or out_mode, an image
 *         smaller than 1x1 or larger than 2^30 pixels, invalid params).
 */
f2a_status f2a_resolve_mode(const f2a_model *model, int32_t width, int32_t height,
                            const f2a_params *params, f2a_mode *out_mode);

/**
 * Upper estimate of the memory f2a_apply_f32() allocates for a width x height
 * image with these parameters, besides the caller's buffers: the figure it
 * compares with $F2A_MAX_MEMORY_MB before allocating anything. In guided mode
 * (and so auto) it is also what a f2a_guide_begin() plan needs; f2a_apply_u8()
 * adds 12 bytes per pixel for its float copy. Callers with their own memory
 * limit (the vips operation) add their own buffers to it.
 *
 * @param out_bytes  receives the estimate in bytes on F2A_OK
 * @return F2A_OK or F2A_ERR_INVALID_ARGUMENT, as f2a_resolve_mode().
 */
f2a_status f2a_estimate_bytes(const f2a_model *model, int32_t width, int32_t height,
                              const f2a_params *params, uint64_t *out_bytes);

/**
 * Apply the generator to an interleaved RGB float image.
 *
 * Pixels are sRGB-encoded values nominally in [0, 1], 3 floats per pixel;
 * values outside [0, 1] are clamped on input, NaN is treated as 0. The output
 * is in [0, 1]. Any size from 1x1 up works (the image is padded by
 * reflection to a multiple of f2a_model_info.size_multiple and cropped back).
 * `in` and `out` may be the same buffer (in-place) when the strides are equal;
 * otherwise the spans of bytes they cover may not overlap
 * (F2A_ERR_INVALID_ARGUMENT).
 *
 * @param model       a loaded model
 * @param in          width*height pixels; row y starts at (char *)in + y*in_stride
 * @param in_stride   bytes between rows of `in`, >= width*3*sizeof(float)
 * @param out         caller-owned output, same layout rules as `in`
 * @param out_stride  bytes between rows of `out`, >= width*3*sizeof(float)
 * @param width       pixels, >= 1
 * @param height      pixels, >= 1
 * @param params      NULL for f2a_default_params()
 * Memory: in full mode the whole image runs through the network at once,
 * which needs roughly 0.5 KB per pixel for a width-0.25 model (about 2 KB at
 * width 1.0); guided mode needs the network at working size plus about
 * 50 bytes per working-size pixel. Calls that would need more than
 * $F2A_MAX_MEMORY_MB (default: half the physical memory) fail with
 * F2A_ERR_OUT_OF_MEMORY instead of allocating (f2a_estimate_bytes() gives the
 * figure compared); an invalid $F2A_MAX_MEMORY_MB (see f2a_memory_limit_parse)
 * fails every apply with F2A_ERR_INVALID_ARGUMENT.
 *
 * @return F2A_OK, F2A_ERR_INVALID_ARGUMENT, F2A_ERR_OUT_OF_MEMORY or
 *         F2A_ERR_CANCELLED.
 */
f2a_status f2a_apply_f32(const f2a_model *model,
                         const float *in, size_t in_stride,
                         float *out, size_t out_stride,
                         int32_t width, int32_t height,
                         const f2a_params *params);

/**
 * Convenience: the same as f2a_apply_f32 on 8-bit interleaved sRGB
 * (3 bytes per pixel, value/255), rounding the result to the nearest byte.
 * Strides are in bytes, >= width*3. The whole input is converted before any
 * output is written, so here `in` and `out` may overlap in any way.
 */
f2a_status f2a_apply_u8(const f2a_model *model,
                        const uint8_t *in, size_t in_stride,
                        uint8_t *out, size_t out_stride,
                        int32_t width, int32_t height,
                        const f2a_params *params);

/* ------------------------------------------------------------------------
 * Guided mode in two passes, for callers that stream large images (the
 * libvips operation): the photo is never needed in memory at once.
 *
 *   f2a_guide_begin      -> plan for a width x height photo
 *   f2a_guide_add_rows   all rows, top to bottom, any number per call
 *   f2a_guide_finish     runs the network at params.working_size (at most
 *                        the photo's own size)
 *   f2a_guide_apply_f32  any rectangle, any order, from any number of
 *                        threads at once (the plan is read-only by then);
 *                        f2a_guide_apply_u8 on 8-bit sRGB pixels
 *   f2a_guide_free
 *
 * The output equals f2a_apply_f32 with F2A_MODE_GUIDED (or AUTO) on the whole
 * image bit for bit, at every size (photos smaller than working_size run
 * the network at their own size).
 * Pass 1 may also be fed a smaller copy of the photo (f2a_guide_begin_source,
 * at least f2a_guide_min_source): one a decoder makes for a fraction of the
 * cost while it decodes (JPEG's DCT scaling, libwebp's rescaler), as f2a
 * apply does. The output then differs from the whole image's by how the
 * decoder scaled (a few 8-bit codes at most).
 * Memory: the network at working size plus 48 bytes per working-size pixel;
 * nothing per full-resolution pixel.
 */

/** Opaque handle to one photo's guided-mode plan. */
typedef struct f2a_guide f2a_guide;

/**
 * Start a plan. Uses params->working_size and params->strength (mode and
 * tile_size are ignored) and keeps params->progress for f2a_guide_finish.
 * The model must outlive the plan.
 *
 * @param width, height  the full-resolution photo, >= 1 each
 * @param params         NULL for f2a_default_params()
 * @param out_guide      receives the plan on F2A_OK (free with
 *                       f2a_guide_free); set to NULL on failure
 * @return F2A_OK, F2A_ERR_INVALID_ARGUMENT or F2A_ERR_OUT_OF_MEMORY.
 */
f2a_status f2a_guide_begin(const f2a_model *model, int32_t width, int32_t height,
                           const f2a_params *params, f2a_guide **out_guide);

/**
 * The smallest copy of a width x height photo that pass 1 may be fed
 * instead of the photo (f2a_guide_begin_source): twice the working size
 * on both axes (params->working_size, long side), or the photo's own size
 * where that is smaller, so that each working-size pixel still averages
 * several of the copy's.
 * @param params      NULL for f2a_default_params()
 * @param out_width, out_height  receive the size on F2A_OK
 * @return F2A_OK or F2A_ERR_INVALID_ARGUMENT (NULL out_width or out_height,
 *         an image smaller than 1x1 or larger than 2^30 pixels, invalid params).
 */
f2a_status f2a_guide_min_source(int32_t width, int32_t height, const f2a_params *params,
                                int32_t *out_width, int32_t *out_height);

/**
 * f2a_guide_begin for a width x height photo whose pass 1 is fed a smaller
 * copy of it: f2a_guide_add_rows then takes source_height rows of
 * source_width pixels. The copy must cover the whole photo (a scaled
 * decode), between f2a_guide_min_source and the photo's own size on each
 * axis; pass 2 (f2a_guide_apply_*) maps the photo itself.
 * @return F2A_OK, F2A_ERR_INVALID_ARGUMENT (as f2a_guide_begin, or a source
 *         size outside that range) or F2A_ERR_OUT_OF_MEMORY.
 */
f2a_status f2a_guide_begin_source(const f2a_model *model, int32_t width, int32_t height,
                                  int32_t source_width, int32_t source_height,
                                  const f2a_params *params, f2a_guide **out_guide);

/**
 * Feed the next `count` rows of the photo: interleaved RGB floats as for
 * f2a_apply_f32, `width` pixels per row (source_width after
 * f2a_guide_begin_source), rows `stride` bytes apart.
 * @return F2A_OK or F2A_ERR_INVALID_ARGUMENT (NULL pointers, bad stride,
 *         more rows than the photo has, plan already finished).
 */
f2a_status f2a_guide_add_rows(f2a_guide *guide, const float *rows, size_t stride, int32_t count);

/**
 * Run the network on the collected working-size copy and fit the transform.
 * Calls the progress callback given to f2a_guide_begin.
 * @return F2A_OK, F2A_ERR_INVALID_ARGUMENT (rows missing, finished twice)
 *         or F2A_ERR_CANCELLED.
 */
f2a_status f2a_guide_finish(f2a_guide *guide);

/**
 * Output for the rectangle (x, y, width, height) of the photo. `in` points
 * at the rectangle's top-left input pixel, `out` at where its top-left
 * output pixel goes (they may be the same buffer when the strides are
 * equal, else they may not overlap). Thread-safe on a finished plan; runs
 * on the calling thread.
 * @return F2A_OK or F2A_ERR_INVALID_ARGUMENT (NULL pointers, bad strides,
 *         overlapping buffers, rectangle outside the photo, plan not finished).
 */
f2a_status f2a_guide_apply_f32(const f2a_guide *guide,
                               const float *in, size_t in_stride,
                               float *out, size_t out_stride,
                               int32_t x, int32_t y, int32_t width, int32_t height);

/**
 * f2a_guide_apply_f32 on 8-bit interleaved sRGB (3 bytes per pixel), with no
 * float copy of the pixels: each value u is read as u * (float) (1 / 255.0)
 * and each result v written as (uint8_t) clamp(v * 255 + 0.5, 0, 255),
 * truncated; the conversions libvips makes between uchar and float
 * (vips_linear1, vips_cast), so the output equals converting the bytes to
 * float, f2a_guide_apply_f32 and converting back. Strides are in bytes,
 * >= width*3; `in` and `out` as for f2a_guide_apply_f32 (the same buffer
 * with equal strides, else not overlapping). Thread-safe on a finished
 * plan; runs on the calling thread.
 * @return F2A_OK or F2A_ERR_INVALID_ARGUMENT (NULL pointers, bad strides,
 *         overlapping buffers, rectangle outside the photo, plan not finished).
 */
f2a_status f2a_guide_apply_u8(const f2a_guide *guide,
                              const uint8_t *in, size_t in_stride,
                              uint8_t *out, size_t out_stride,
                              int32_t x, int32_t y, int32_t width, int32_t height);

/** Release a plan. Accepts NULL. */
void f2a_guide_free(f2a_guide *guide);

#ifdef __cplusplus
}
#endif

#endif /* FLASH2AMBIENT_H */
