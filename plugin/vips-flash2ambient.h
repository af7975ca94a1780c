/*
 * vips-flash2ambient.h — C interface of the libvips operation "flash2ambient".
 *
 * The operation lives in a libvips module (vips-flash2ambient.so) that
 * libvips loads at vips_init() time from its module directory
 * ($libdir/vips-modules-8.14, or $VIPSHOME/<multiarch>/vips-modules-8.14).
 * Programs therefore do NOT link against the module: this header only
 * provides the usual varargs wrapper on top of vips_call_split(), exactly
 * like libvips's own wrappers, so it works as soon as the module is loaded.
 *
 *   VipsImage *out;
 *   if (vips_flash2ambient(in, &out, "strength", 0.8, NULL))
 *       vips_error_exit(NULL);
 *
 * Optional arguments:
 *   model      (const char *) weights file; default $F2A_MODEL, else
 *              PREFIX/share/flash2ambient/weights/default.f2aw
 *   strength   (double) 0..1 blend with the input, default 1
 *   mode       (int, an f2a_mode: F2A_MODE_AUTO/FULL/GUIDED/TILED = 0..3)
 *              default auto (guided, at every size)
 *   working_size (int) F2A_WORKING_SIZE_MIN..MAX (16..8192), long side for
 *              guided mode, default F2A_DEFAULT_WORKING_SIZE (256)
 *   tile_size  (int) F2A_TILE_SIZE_MIN..MAX (256..4096), tile side for tiled
 *              mode, default F2A_DEFAULT_TILE_SIZE (512)
 *   max_mb     (int) refuse images whose estimated working memory exceeds
 *              this many MiB; 0 (default) = $F2A_VIPS_MAX_MB or half of RAM
 *   fail_on    (VipsFailOn) when in is a file, check it decodes at this
 *              level first; default VIPS_FAIL_ON_TRUNCATED
 *
 * See plugin/README.md for colour handling, memory and threading notes.
 */
#ifndef VIPS_FLASH2AMBIENT_H
#define VIPS_FLASH2AMBIENT_H

#include <stdarg.h>
#include <vips/vips.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Nickname and GType name of the operation. */
#define VIPS_FLASH2AMBIENT_NICKNAME "flash2ambient"
#define VIPS_FLASH2AMBIENT_TYPE_NAME "VipsFlash2Ambient"
/* GEnum of the "mode" argument: values are flash2ambient.h's f2a_mode,
 * nicks "auto", "full", "guided", "tiled". */
#define VIPS_FLASH2AMBIENT_MODE_TYPE_NAME "VipsFlash2AmbientMode"

/**
 * vips_flash2ambient: (method)
 * @in: input image (any interpretation / band format libvips produces)
 * @out: (out): output image, same size, bands, format and interpretation
 * @...: %NULL-terminated list of optional named arguments
 *
 * Returns: 0 on success, -1 on error (message in vips_error_buffer()).
 * Fails with "VipsOperation: class "flash2ambient" not found" when the
 * module is not installed.
 */
static inline int
vips_flash2ambient(VipsImage *in, VipsImage **out, ...)
{
	va_list ap;
	int result;

	va_start(ap, out);
	result = vips_call_split(VIPS_FLASH2AMBIENT_NICKNAME, ap, in, out);
	va_end(ap);

	return result;
}

/**
 * vips_flash2ambient_available:
 *
 * Returns: TRUE when libvips has loaded the flash2ambient module (call after
 * VIPS_INIT()).
 */
static inline gboolean
vips_flash2ambient_available(void)
{
	return vips_type_find("VipsOperation", VIPS_FLASH2AMBIENT_NICKNAME) != 0;
}

#ifdef __cplusplus
}
#endif

#endif /* VIPS_FLASH2AMBIENT_H */
