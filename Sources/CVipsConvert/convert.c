#include "f2a_vipsconvert.h"

#include <string.h>

static int
colour_bands(VipsInterpretation interpretation)
{
	switch (interpretation) {
	case VIPS_INTERPRETATION_B_W:
	case VIPS_INTERPRETATION_GREY16:
		return 1;

	case VIPS_INTERPRETATION_CMYK:
		return 4;

	default:
		return 3;
	}
}

int
f2aconv_colour_bands(VipsImage *source)
{
	return VIPS_MIN(colour_bands(vips_image_guess_interpretation(source)),
		source->Bands);
}

/* 8-bit sources work in sRGB uchar; anything with more precision (16-bit,
 * float, LAB, ...) in RGB16, so the model gets more than 8 bits from it.
 */
static gboolean
is_deep(VipsImage *source)
{
	return source->BandFmt != VIPS_FORMAT_UCHAR &&
		source->BandFmt != VIPS_FORMAT_CHAR;
}

/* Makes `next`, the result of the step that just ran on *image, the
 * current image. Each step's output holds a reference to its input.
 */
static void
advance(VipsImage **image, VipsImage *next)
{
	g_object_unref(*image);
	*image = next;
}

int
f2aconv_to_model(VipsImage *source, VipsImage **out)
{
	gboolean deep = is_deep(source);
	int n_colour = f2aconv_colour_bands(source);
	VipsImage *image = source;
	VipsImage *next;

	g_object_ref(image);
	if (n_colour < image->Bands) {
		if (vips_extract_band(image, &next, 0, "n", n_colour, NULL))
			goto fail;
		advance(&image, next);
	}

	/* CMYK goes through its embedded ICC profile (libvips's fallback
	 * profile when there is none).
	 */
	if (vips_colourspace(image, &next, deep ?
		VIPS_INTERPRETATION_RGB16 : VIPS_INTERPRETATION_sRGB, NULL))
		goto fail;
	advance(&image, next);

	/* Grey gives one band; an interpretation libvips converts without
	 * dropping bands may give more.
	 */
	if (image->Bands == 1) {
		VipsImage *grey[3] = { image, image, image };

		if (vips_bandjoin(grey, &next, 3, NULL))
			goto fail;
		advance(&image, next);
	}
	else if (image->Bands > 3) {
		if (vips_extract_band(image, &next, 0, "n", 3, NULL))
			goto fail;
		advance(&image, next);
	}

	if (vips_linear1(image, &next,
		deep ? 1.0 / 65535.0 : 1.0 / 255.0, 0.0, NULL))
		goto fail;
	advance(&image, next);
	if (vips_cast(image, &next, VIPS_FORMAT_FLOAT, NULL))
		goto fail;
	advance(&image, next);

	*out = image;
	return 0;

fail:
	g_object_unref(image);
	return -1;
}

int
f2aconv_from_model(VipsImage *source, VipsImage *rgb, VipsImage **out)
{
	gboolean deep = is_deep(source);
	int n_colour = f2aconv_colour_bands(source);
	VipsInterpretation wanted = vips_image_guess_interpretation(source);
	VipsImage *image = rgb;
	VipsImage *next;

	/* Round to the working format, then back to the source's
	 * interpretation and band format. The source's ICC profile rides
	 * along, so CMYK goes back through the profile it came in with.
	 */
	g_object_ref(image);
	if (vips_linear1(image, &next, deep ? 65535.0 : 255.0, 0.5, NULL))
		goto fail;
	advance(&image, next);
	if (vips_cast(image, &next, deep ?
		VIPS_FORMAT_USHORT : VIPS_FORMAT_UCHAR, NULL))
		goto fail;
	advance(&image, next);
	if (vips_copy(image, &next, "interpretation", deep ?
		VIPS_INTERPRETATION_RGB16 : VIPS_INTERPRETATION_sRGB, NULL))
		goto fail;
	advance(&image, next);

	if (image->Type != wanted) {
		if (vips_colourspace(image, &next, wanted, NULL))
			goto fail;
		advance(&image, next);
	}
	if (image->BandFmt != source->BandFmt) {
		if (vips_cast(image, &next, source->BandFmt, NULL))
			goto fail;
		advance(&image, next);
	}

	if (n_colour < source->Bands) {
		VipsImage *extra;
		int result;

		if (vips_extract_band(source, &extra, n_colour,
			"n", source->Bands - n_colour, NULL))
			goto fail;
		result = vips_bandjoin2(image, extra, &next, NULL);
		g_object_unref(extra);
		if (result)
			goto fail;
		advance(&image, next);
	}

	*out = image;
	return 0;

fail:
	g_object_unref(image);
	return -1;
}

/* Header fields describe the pixels, not the photograph.
 */
static gboolean
is_pixel_field(const char *name)
{
	static const char *fields[] = {
		"width", "height", "bands", "format", "coding",
		"interpretation", "xoffset", "yoffset", "xres", "yres",
		"filename", "mode", NULL
	};
	int i;

	for (i = 0; fields[i]; i++)
		if (strcmp(name, fields[i]) == 0)
			return TRUE;

	return FALSE;
}

void
f2aconv_copy_metadata(VipsImage *from, VipsImage *to)
{
	gchar **names = vips_image_get_fields(from);
	int i;

	for (i = 0; names[i]; i++) {
		GValue value = { 0 };

		if (is_pixel_field(names[i]))
			continue;
		if (!vips_image_get(from, names[i], &value)) {
			vips_image_set(to, names[i], &value);
			g_value_unset(&value);
		}
	}
	g_strfreev(names);
}
