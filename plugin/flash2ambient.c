/* flash2ambient: turn a flash photograph into an ambient-light photograph
 *
 * A libvips operation (nickname "flash2ambient") around libflash2ambient's
 * learned generator, in a libvips module (module.c registers it). Structure
 * follows libvips's convolution/sharpen.c.
 *
 * The pipeline built in _build():
 *
 *   in -> decode (LABQ/RAD) ("source") -> the model's float sRGB (colour
 *   bands only) -> the network (network.c, in the mode the library
 *   resolves) -> back to source's interpretation and band format with its
 *   alpha/extra bands re-attached -> re-encode LABQ/RAD -> in's header and
 *   metadata -> out
 *
 * Guided mode (what auto runs) streams in two passes and holds nothing per
 * pixel: pass 1 reads in's file a second time where in comes straight from
 * a file loader (a JPEG or WebP shrunk on load, as f2a apply reads it; else
 * in itself, when it is not sequential), pass 2 reads in; an 8-bit sRGB source is mapped on its bytes (f2a_guide_apply_u8)
 * with no float conversion. Full and tiled mode, and guided mode on a
 * sequential input from elsewhere, copy the decoded input to memory first
 * (one pass over in, so sequential inputs work).
 *
 * The conversions to and from the model's pixels are f2a's own
 * (Sources/CVipsConvert, compiled into both), so `vips flash2ambient` and
 * `f2a apply` give the same pixels (f2a also applies the EXIF orientation;
 * an operation must not change geometry, so run vips autorot first if you
 * want that).
 *
 * Memory: the library's estimate for the mode (f2a_estimate_bytes()) plus
 * what the operation holds itself is checked before any pixel is computed,
 * against max_mb, else $F2A_VIPS_MAX_MB, else half the physical RAM.
 *
 * Threads: libvips worker threads convert the image in and out; the network
 * runs on the calling thread, where the library uses its own convolution
 * threads and OpenBLAS's pool, one run at a time process-wide (network.c).
 */

#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <string.h>

#include <vips/vips.h>

#include <flash2ambient.h>

#include "f2a_vipsconvert.h"
#include "vips-flash2ambient.h"
#include "pflash2ambient.h"

#define _(S) (S)

typedef struct _VipsFlash2Ambient {
	VipsOperation parent_instance;

	VipsImage *in;
	VipsImage *out;

	char *model;
	double strength;
	int mode;		/* an f2a_mode, vips_flash2ambient_mode_get_type() */
	int working_size;
	int tile_size;
	int max_mb;
	VipsFailOn fail_on;
} VipsFlash2Ambient;

typedef VipsOperationClass VipsFlash2AmbientClass;

G_DEFINE_TYPE(VipsFlash2Ambient, vips_flash2ambient, VIPS_TYPE_OPERATION);

/* The library's f2a_mode as a GEnum, so the CLI and pyvips take names:
 * --mode tiled, mode="guided".
 */
static GType
vips_flash2ambient_mode_get_type(void)
{
	static gsize type = 0;

	if (g_once_init_enter(&type)) {
		static const GEnumValue values[] = {
			{ F2A_MODE_AUTO, "F2A_MODE_AUTO", "auto" },
			{ F2A_MODE_FULL, "F2A_MODE_FULL", "full" },
			{ F2A_MODE_GUIDED, "F2A_MODE_GUIDED", "guided" },
			{ F2A_MODE_TILED, "F2A_MODE_TILED", "tiled" },
			/* libvips's usage text skips an enum's last value
			 * (its enums end with a _LAST marker).
			 */
			{ F2A_MODE_TILED + 1, "F2A_MODE_LAST", "last" },
			{ 0, NULL, NULL }
		};

		g_once_init_leave(&type, g_enum_register_static(
			VIPS_FLASH2AMBIENT_MODE_TYPE_NAME, values));
	}

	return type;
}

static int
vips_flash2ambient_check_input(const char *domain, VipsImage *in)
{
	if (in->Coding != VIPS_CODING_NONE &&
		in->Coding != VIPS_CODING_LABQ &&
		in->Coding != VIPS_CODING_RAD) {
		vips_error(domain, "%s", _("unsupported image coding"));
		return -1;
	}

	return vips_check_noncomplex(domain, in);
}

/* What the operation holds itself besides the library's own allocations:
 * the decoded copy of the input when it makes one (`copy`), and in full and
 * tiled mode the whole image as float (tiled writes a second one, see
 * network.c). Guided mode streams, with nothing per pixel held as float,
 * and without the copy when it can read the input twice.
 */
static guint64
vips_flash2ambient_own_bytes(VipsImage *in, f2a_mode mode, gboolean copy)
{
	guint64 pixels = VIPS_IMAGE_N_PELS(in);
	/* LABQ and RAD decode to 3 floats per pixel.
	 */
	guint64 source = !copy ? 0 : in->Coding == VIPS_CODING_NONE ?
		VIPS_IMAGE_SIZEOF_PEL(in) : 12;

	switch (mode) {
	case F2A_MODE_FULL:
		return (source + 12) * pixels;

	case F2A_MODE_TILED:
		return (source + 24) * pixels;

	default:
		return source * pixels;
	}
}

/* Refuses, before any pixel is computed, an image whose working memory
 * would exceed the limit: max_mb, else $F2A_VIPS_MAX_MB through the
 * library's parser (so it accepts and refuses exactly what
 * $F2A_MAX_MEMORY_MB does; an invalid value is an error, not the default),
 * else half the physical memory. The estimate is the library's, for the
 * mode it resolved; `copy`: the operation holds a decoded copy of the input.
 */
static int
vips_flash2ambient_check_memory(const char *domain, VipsFlash2Ambient *f2a,
	const f2a_model *model, const f2a_params *params, f2a_mode mode,
	gboolean copy)
{
	VipsImage *in = f2a->in;
	uint64_t need;
	uint64_t limit;

	if (f2a_estimate_bytes(model, in->Xsize, in->Ysize, params, &need)) {
		vips_error(domain, "%s", f2a_last_error());
		return -1;
	}
	need += vips_flash2ambient_own_bytes(in, mode, copy);

	if (f2a->max_mb > 0)
		limit = (uint64_t) f2a->max_mb << 20;
	else if (f2a_memory_limit_parse("F2A_VIPS_MAX_MB",
		g_getenv("F2A_VIPS_MAX_MB"), &limit)) {
		vips_error(domain, "%s", f2a_last_error());
		return -1;
	}

	if (need > limit) {
		vips_error(domain,
			_("%dx%d image in %s mode needs about %" G_GUINT64_FORMAT
			" MiB of working memory, over the limit of %"
			G_GUINT64_FORMAT " MiB (%s, set max_mb or "
			"$F2A_VIPS_MAX_MB, or downsize first)"),
			in->Xsize, in->Ysize,
			vips_enum_nick(vips_flash2ambient_mode_get_type(), mode),
			(guint64) need >> 20, (guint64) limit >> 20,
			mode == F2A_MODE_GUIDED ?
				_("lower working_size") :
				_("use mode=guided"));
		return -1;
	}

	return 0;
}

/* Decodes and drops pixels. (vips_avg() would fail on a float file holding
 * NaN: GObject refuses a NaN double result.)
 */
static int
vips_flash2ambient_discard(VipsRegion *region, VipsRect *area, void *a)
{
	return 0;
}

/* Loaders only warn about a truncated file by default (fail_on=none) and
 * return grey for the missing part; the operation can't see those
 * warnings. When in comes straight from a file loader, decode the file
 * once more at the requested fail_on level (streamed, nothing kept) before
 * spending minutes on the network. The pixels used are always in's.
 */
static int
vips_flash2ambient_check_file(const char *domain, VipsImage *in,
	VipsFailOn fail_on)
{
	const char *loader;
	VipsImage *check;
	int result;

	if (fail_on == VIPS_FAIL_ON_NONE ||
		!in->filename ||
		vips_image_get_typeof(in, VIPS_META_LOADER) == 0 ||
		vips_image_get_string(in, VIPS_META_LOADER, &loader) ||
		!g_file_test(in->filename, G_FILE_TEST_IS_REGULAR))
		return 0;

	if (!(check = vips_image_new_from_file(in->filename,
		"access", VIPS_ACCESS_SEQUENTIAL,
		"fail_on", fail_on,
		NULL))) {
		vips_error(domain, _("cannot read \"%s\""), in->filename);
		return -1;
	}
	result = vips_sink_disc(check, vips_flash2ambient_discard, NULL);
	g_object_unref(check);
	if (result)
		vips_error(domain, _("\"%s\" is damaged or truncated "
			"(%s failed; fail_on=none skips this check)"),
			in->filename, loader);

	return result;
}

/* in's file opened again, sequentially, at the fail_on level; shrunk on
 * load by `factor` (JPEG's DCT scaling, libwebp's rescaler) when it is
 * above 1. NULL, with no error, when it cannot be opened.
 */
static VipsImage *
vips_flash2ambient_load(const char *filename, const char *loader,
	VipsFailOn fail_on, int factor)
{
	VipsImage *image = NULL;

	vips_error_freeze();
	if (factor == 1)
		image = vips_image_new_from_file(filename,
			"access", VIPS_ACCESS_SEQUENTIAL,
			"fail_on", fail_on,
			NULL);
	else if (g_str_has_prefix(loader, "jpegload")) {
		if (vips_jpegload(filename, &image, "shrink", factor,
			"access", VIPS_ACCESS_SEQUENTIAL,
			"fail_on", fail_on,
			NULL))
			image = NULL;
	}
	else if (vips_webpload(filename, &image, "scale", 1.0 / factor,
		"access", VIPS_ACCESS_SEQUENTIAL,
		"fail_on", fail_on,
		NULL))
		image = NULL;
	vips_error_thaw();

	return image;
}

/* again has in's layout (bands, format, coding, interpretation).
 */
static gboolean
vips_flash2ambient_same_layout(VipsImage *in, VipsImage *again)
{
	return again->Bands == in->Bands &&
		again->BandFmt == in->BandFmt &&
		again->Coding == in->Coding &&
		again->Type == in->Type;
}

/* Where in comes straight from a file loader: a second, independent reading
 * of that file (sequential, at the fail_on level) for guided mode's first
 * pass, so that neither pass needs the input held in memory and the
 * operation's memory does not grow with the photo. NULL, with no error,
 * when in is not from a file or the file does not read back as in: a
 * loader option may have changed what it gives (shrink, scale, page, n,
 * autorotate...), and then the header differs; a multi-page file is never
 * read again, since which page in holds is not known.
 *
 * Pass 1 only feeds the network's working-size copy, so a JPEG or WebP is
 * read shrunk on load, at the largest factor (8, 4, 2) that keeps it at
 * least f2a_guide_min_source(): as f2a apply reads it (vipsio.c), for a
 * fraction of the decoding.
 */
static VipsImage *
vips_flash2ambient_reopen(VipsImage *in, VipsFailOn fail_on,
	const f2a_params *params)
{
	const char *loader;
	const char *again_loader;
	VipsImage *again;
	int32_t min_width;
	int32_t min_height;
	int factor;

	if (!in->filename ||
		vips_image_get_typeof(in, VIPS_META_LOADER) == 0 ||
		vips_image_get_string(in, VIPS_META_LOADER, &loader) ||
		!g_file_test(in->filename, G_FILE_TEST_IS_REGULAR))
		return NULL;

	/* A file that does not open now is reported by
	 * vips_flash2ambient_check_file() on the fallback path.
	 */
	if (!(again = vips_flash2ambient_load(in->filename, loader, fail_on,
		1)))
		return NULL;

	if (vips_image_get_typeof(again, VIPS_META_LOADER) == 0 ||
		vips_image_get_string(again, VIPS_META_LOADER,
			&again_loader) ||
		strcmp(loader, again_loader) != 0 ||
		again->Xsize != in->Xsize ||
		again->Ysize != in->Ysize ||
		!vips_flash2ambient_same_layout(in, again) ||
		vips_image_get_n_pages(again) != 1 ||
		vips_image_get_n_pages(in) != 1 ||
		vips_image_get_page_height(in) != in->Ysize ||
		vips_image_get_orientation(again) !=
			vips_image_get_orientation(in)) {
		g_object_unref(again);
		return NULL;
	}

	if ((!g_str_has_prefix(loader, "jpegload") &&
		!g_str_has_prefix(loader, "webpload")) ||
		f2a_guide_min_source(in->Xsize, in->Ysize, params,
			&min_width, &min_height))
		return again;

	for (factor = 8; factor >= 2; factor /= 2) {
		VipsImage *shrunk;

		/* The loaders round the shrunk size up at most.
		 */
		if ((in->Xsize + factor - 1) / factor < min_width ||
			(in->Ysize + factor - 1) / factor < min_height)
			continue;
		if (!(shrunk = vips_flash2ambient_load(in->filename, loader,
			fail_on, factor)))
			break;
		if (shrunk->Xsize >= min_width &&
			shrunk->Ysize >= min_height &&
			shrunk->Xsize <= in->Xsize &&
			shrunk->Ysize <= in->Ysize &&
			vips_flash2ambient_same_layout(in, shrunk)) {
			g_object_unref(again);
			return shrunk;
		}
		g_object_unref(shrunk);
	}

	return again;
}

/* image as in was: the same coding, the interpretation label (when the
 * layout matches), resolution, offsets and every metadata item.
 */
static int
vips_flash2ambient_like_input(VipsImage *in, VipsImage *image,
	VipsImage **out)
{
	VipsImage *coded;
	int result;

	if (in->Coding == VIPS_CODING_LABQ) {
		if (vips_Lab2LabQ(image, &coded, NULL))
			return -1;
	}
	else if (in->Coding == VIPS_CODING_RAD) {
		if (vips_float2rad(image, &coded, NULL))
			return -1;
	}
	else {
		coded = image;
		g_object_ref(coded);
	}

	if (coded->Bands == in->Bands &&
		coded->BandFmt == in->BandFmt &&
		coded->Coding == in->Coding)
		result = vips_copy(coded, out,
			"interpretation", in->Type,
			"xres", in->Xres, "yres", in->Yres,
			"xoffset", in->Xoffset, "yoffset", in->Yoffset,
			NULL);
	else
		result = vips_copy(coded, out,
			"xres", in->Xres, "yres", in->Yres,
			"xoffset", in->Xoffset, "yoffset", in->Yoffset,
			NULL);
	g_object_unref(coded);
	if (result)
		return -1;

	f2aconv_copy_metadata(in, *out);

	return 0;
}

static int
vips_flash2ambient_build(VipsObject *object)
{
	VipsObjectClass *class = VIPS_OBJECT_GET_CLASS(object);
	VipsFlash2Ambient *f2a = (VipsFlash2Ambient *) object;
	const char *domain = class->nickname;

	const f2a_model *model;
	f2a_params params;
	f2a_mode mode;
	VipsImage *again;
	VipsImage *decoded;
	VipsImage *source;
	VipsImage *first;
	VipsImage *rgb;
	VipsImage *ambient;
	VipsImage *restored;
	VipsImage *result;
	gboolean copy;

	if (VIPS_OBJECT_CLASS(vips_flash2ambient_parent_class)->build(object))
		return -1;

	if (vips_flash2ambient_check_input(domain, f2a->in))
		return -1;

	/* The model first: a bad path fails before any pixel is computed.
	 */
	if (!(model = vips_flash2ambient_model_get(domain,
		f2a->model && f2a->model[0] ?
			f2a->model : f2a_default_model_path())))
		return -1;

	params = f2a_default_params();
	params.strength = f2a->strength;
	params.mode = (f2a_mode) f2a->mode;
	params.working_size = f2a->working_size;
	params.tile_size = f2a->tile_size;
	if (f2a_resolve_mode(model, f2a->in->Xsize, f2a->in->Ysize, &params,
		&mode)) {
		vips_error(domain, "%s", f2a_last_error());
		return -1;
	}

	/* Guided mode reads the input twice: pass 1 for the network's
	 * working-size copy, pass 2 for the output. Pass 1 reads the input's
	 * file again where it can (it then also makes the fail_on check), or
	 * the input itself when that can be read twice (not sequential);
	 * only a sequential input from elsewhere is copied to memory. Full
	 * and tiled mode hold the whole image anyway and read one copy.
	 */
	again = NULL;
	if (mode == F2A_MODE_GUIDED &&
		(again = vips_flash2ambient_reopen(f2a->in, f2a->fail_on,
			&params)))
		vips_object_local(object, again);
	copy = mode != F2A_MODE_GUIDED ||
		(!again && vips_image_is_sequential(f2a->in));

	if (vips_flash2ambient_check_memory(domain, f2a, model, &params,
		mode, copy) ||
		(!again && vips_flash2ambient_check_file(domain, f2a->in,
			f2a->fail_on)))
		return -1;

	if (vips_image_decode(f2a->in, &decoded))
		return -1;
	vips_object_local(object, decoded);
	if (copy) {
		/* Every later step reads this one copy of the decoded
		 * input, so a sequential input is read only once.
		 */
		if (!(source = vips_image_copy_memory(decoded)))
			return -1;
		vips_object_local(object, source);
	}
	else
		source = decoded;

	if (mode == F2A_MODE_GUIDED) {
		VipsImage *pass1;
		f2a_guide *guide;

		if (again) {
			if (vips_image_decode(again, &pass1))
				return -1;
			vips_object_local(object, pass1);
		}
		else
			pass1 = source;
		if (f2aconv_to_model(pass1, &first))
			return -1;
		vips_object_local(object, first);
		if (vips_flash2ambient_guide(domain, model, f2a->in, first,
			again != NULL, &params, &guide))
			return -1;

		if (vips_flash2ambient_is_srgb8(source)) {
			/* The bytes through f2a_guide_apply_u8(): the
			 * output f2aconv_from_model() would make of the
			 * float route, with no float copy.
			 */
			if (vips_flash2ambient_guided_map(source, guide,
				&restored))
				return -1;
			vips_object_local(object, restored);
		}
		else {
			if (f2aconv_to_model(source, &rgb))
				return -1;
			vips_object_local(object, rgb);
			if (vips_flash2ambient_guided_map(rgb, guide,
				&ambient))
				return -1;
			vips_object_local(object, ambient);
			if (f2aconv_from_model(source, ambient, &restored))
				return -1;
			vips_object_local(object, restored);
		}
	}
	else {
		if (f2aconv_to_model(source, &rgb))
			return -1;
		vips_object_local(object, rgb);
		if (vips_flash2ambient_run(domain, model, f2a->in, rgb,
			mode, &params, &ambient))
			return -1;
		vips_object_local(object, ambient);
		if (f2aconv_from_model(source, ambient, &restored))
			return -1;
		vips_object_local(object, restored);
	}

	if (vips_flash2ambient_like_input(f2a->in, restored, &result))
		return -1;
	vips_object_local(object, result);

	g_object_set(object, "out", vips_image_new(), NULL);

	if (vips_image_write(result, f2a->out))
		return -1;

	return 0;
}

static void
vips_flash2ambient_class_init(VipsFlash2AmbientClass *class)
{
	GObjectClass *gobject_class = G_OBJECT_CLASS(class);
	VipsObjectClass *object_class = (VipsObjectClass *) class;
	VipsOperationClass *operation_class = VIPS_OPERATION_CLASS(class);

	gobject_class->set_property = vips_object_set_property;
	gobject_class->get_property = vips_object_get_property;

	object_class->nickname = VIPS_FLASH2AMBIENT_NICKNAME;
	object_class->description =
		_("turn a flash photograph into an ambient-light photograph");
	object_class->build = vips_flash2ambient_build;

	/* We read the input once, top to bottom.
	 */
	operation_class->flags = VIPS_OPERATION_SEQUENTIAL;

	VIPS_ARG_IMAGE(class, "in", 1,
		_("Input"),
		_("Input image (any interpretation; alpha is kept)"),
		VIPS_ARGUMENT_REQUIRED_INPUT,
		G_STRUCT_OFFSET(VipsFlash2Ambient, in));

	VIPS_ARG_IMAGE(class, "out", 2,
		_("Output"),
		_("Output image, same size, bands, format and interpretation"),
		VIPS_ARGUMENT_REQUIRED_OUTPUT,
		G_STRUCT_OFFSET(VipsFlash2Ambient, out));

	VIPS_ARG_STRING(class, "model", 3,
		_("Model"),
		_("Weights file (.f2aw); default $F2A_MODEL, else "
		  "PREFIX/share/flash2ambient/weights/default.f2aw"),
		VIPS_ARGUMENT_OPTIONAL_INPUT,
		G_STRUCT_OFFSET(VipsFlash2Ambient, model),
		NULL);

	VIPS_ARG_DOUBLE(class, "strength", 4,
		_("Strength"),
		_("Blend with the input: 0 = input, 1 = full effect"),
		VIPS_ARGUMENT_OPTIONAL_INPUT,
		G_STRUCT_OFFSET(VipsFlash2Ambient, strength),
		0.0, 1.0, 1.0);

	VIPS_ARG_ENUM(class, "mode", 5,
		_("Mode"),
		_("How the image goes through the network: auto (guided), "
		  "full, guided (network at working_size or the image's size "
		  "if smaller, guided-filter upsampling) or "
		  "tiled (overlapping tile_size tiles)"),
		VIPS_ARGUMENT_OPTIONAL_INPUT,
		G_STRUCT_OFFSET(VipsFlash2Ambient, mode),
		vips_flash2ambient_mode_get_type(), F2A_MODE_AUTO);

	VIPS_ARG_INT(class, "working_size", 6,
		_("Working size"),
		_("Long side in pixels at which guided mode runs the network"),
		VIPS_ARGUMENT_OPTIONAL_INPUT,
		G_STRUCT_OFFSET(VipsFlash2Ambient, working_size),
		F2A_WORKING_SIZE_MIN, F2A_WORKING_SIZE_MAX,
		F2A_DEFAULT_WORKING_SIZE);

	VIPS_ARG_INT(class, "tile_size", 7,
		_("Tile size"),
		_("Tile side in pixels for tiled mode"),
		VIPS_ARGUMENT_OPTIONAL_INPUT,
		G_STRUCT_OFFSET(VipsFlash2Ambient, tile_size),
		F2A_TILE_SIZE_MIN, F2A_TILE_SIZE_MAX, F2A_DEFAULT_TILE_SIZE);

	VIPS_ARG_INT(class, "max_mb", 8,
		_("Memory limit"),
		_("Refuse images needing more working memory (MiB); "
		  "0 = $F2A_VIPS_MAX_MB or half the RAM"),
		VIPS_ARGUMENT_OPTIONAL_INPUT,
		G_STRUCT_OFFSET(VipsFlash2Ambient, max_mb),
		0, G_MAXINT, 0);

	VIPS_ARG_ENUM(class, "fail_on", 9,
		_("Fail on"),
		_("When in is a file, first check it decodes at this error "
		  "level (loaders only warn about truncation)"),
		VIPS_ARGUMENT_OPTIONAL_INPUT,
		G_STRUCT_OFFSET(VipsFlash2Ambient, fail_on),
		VIPS_TYPE_FAIL_ON, VIPS_FAIL_ON_TRUNCATED);
}

static void
vips_flash2ambient_init(VipsFlash2Ambient *f2a)
{
	f2a_params defaults = f2a_default_params();

	f2a->strength = defaults.strength;
	f2a->mode = defaults.mode;
	f2a->working_size = defaults.working_size;
	f2a->tile_size = defaults.tile_size;
	f2a->max_mb = 0;
	f2a->fail_on = VIPS_FAIL_ON_TRUNCATED;
}
