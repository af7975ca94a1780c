/* The conversions between a photograph and the model's pixels, shared by the
 * f2a tools (Sources/CVipsIO) and the libvips operation (plugin/): compiled
 * into both, so `f2a apply` and `vips flash2ambient` treat every
 * interpretation, alpha and extra band the same way.
 *
 * A photo's bands are its colour bands (1 for B_W and GREY16, 4 for CMYK,
 * else 3) followed by extra bands (alpha, other channels), which pass
 * through bit-exactly. The model sees the colour as sRGB float in [0, 1],
 * 3 bands: 8-bit sources by way of sRGB uchar, deeper ones of RGB16.
 *
 * Functions return 0 on success and -1 with a vips error on failure; output
 * images are new references. `source` must be uncoded (vips_image_decode). */
#ifndef F2A_VIPSCONVERT_H
#define F2A_VIPSCONVERT_H

#include <vips/vips.h>

/** Number of leading colour bands of `source`; the rest are extra bands. */
int f2aconv_colour_bands(VipsImage *source);

/** `source`'s colour as 3-band float sRGB in [0, 1] (lazy). */
int f2aconv_to_model(VipsImage *source, VipsImage **out);

/** The model's 3-band float output `rgb` ([0, 1], `source`'s size) as
 *  `source` was: its interpretation and band format, the extra bands of
 *  `source` re-attached. Metadata is not copied (f2aconv_copy_metadata). */
int f2aconv_from_model(VipsImage *source, VipsImage *rgb, VipsImage **out);

/** Copy the photograph's metadata items (EXIF, ICC, XMP, IPTC, ...) from
 *  `from` to `to`, but not the header fields that describe the pixels. */
void f2aconv_copy_metadata(VipsImage *from, VipsImage *to);

#endif
