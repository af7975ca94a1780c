/* flash2ambient: turn a flash photograph into an ambient-light photograph
 *
 * A libvips operation (nickname "flash2ambient") around libflash2ambient's
 * learned generator, built as a libvips module: vips_init() dlopens every
 * *.so in its module directory and GModule calls g_module_check_init()
 * below, which registers the type.
 *
 * Structure follows libvips's convolution/sharpen.c (build/class_init/init,
 * VIPS_ARG_* declarations, local arrays for temporaries) and, for handing
 * the whole image to an external library, freqfilt/fwfft.c.
 *
 * Pipeline built in _build():
 *
 *   in -> decode (LABQ/RAD) -> copy to memory ("src": one pass over in, so
 *   sequential inputs work) -> set alpha and extra bands aside -> sRGB
 *   (8-bit sources) or RGB16 (deeper ones) -> float [0,1] -> model ->
 *   round to uchar/ushort -> back to the input's interpretation -> cast to
 *   the input's band format -> rejoin the original alpha/extra bands ->
 *   re-encode LABQ/RAD -> input's metadata -> out
 *
 * "model" depends on the mode the library resolves for the image size:
 *
 *   guided      streamed, nothing per pixel is held as float: one pass of
 *               vips_sink_disc() feeds the float rows to f2a_guide_add_rows()
 *               (the library area-averages them to working size), the
 *               network runs once in f2a_guide_finish(), and the output is
 *               an ordinary lazy image whose regions f2a_guide_apply_f32()
 *               computes on vips's worker threads, like any point operation
 *               (no margins: each output pixel needs only its input pixel)
 *   full/tiled  the float image is rendered to memory and handed to
 *               f2a_apply_f32() whole
 *
 * The conversions to and from the model's pixels are f2a's own
 * (Sources/CVipsConvert, compiled into both), so `vips flash2ambient` and
 * `f2a apply` give the same pixels (f2a also
 * applies the EXIF orientation; an operation must not change geometry, so
 * run vips autorot first if you want that).
 *
 * Memory: the source copy at its own band format, plus, in full and tiled
 * mode, the whole image as one float buffer; how much the network needs on
 * top depends on the mode. Working memory is estimated before anything is
 * computed (the library's f2a_estimate_bytes() plus f2a_own_bytes()) and the
 * operation fails with a vips error above the limit (optional max_mb, else
 * $F2A_VIPS_MAX_MB, else half the physical RAM).
 *
 * Threads: libvips worker threads convert the image in and out; the model
 * runs on the calling thread, where the library uses its own convolution
 * threads and OpenBLAS's pool (OPENBLAS_NUM_THREADS, default: all cores),
 * layer after layer. The vips and network phases never overlap inside one
 * call, and network runs are serialised process-wide (apply_lock) so that
 * concurrent pipelines don't multiply threads or peak memory. The guided
 * pass over full-resolution regions is single-threaded per call and runs
 * on vips's workers (VIPS_CONCURRENCY), outside the lock.
 */

#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gmodule.h>
#include <vips/vips.h>

#include <flash2ambient.h>

#include "f2a_vipsconvert.h"
#include "vips-flash2ambient.h"

#define _(S) (S)

typedef struct _VipsFlash2Ambient {
	VipsOperation parent_instance;

	VipsImage *in;
	VipsImage *out;

	char *model;
	double strength;
	int mode;		/* an f2a_mode, VIPS_TYPE_FLASH2AMBIENT_MODE */
	int working_size;
	int tile_size;
	int max_mb;
	VipsFailOn fail_on;
} VipsFlash2Ambient;

typedef VipsOperationClass VipsFlash2AmbientClass;

G_DEFINE_TYPE(VipsFlash2Ambient, vips_flash2ambient_op, VIPS_TYPE_OPERATION);

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

/* ------------------------------------------------------------------------
 * Model cache: loaded models by (canonical path, size, mtime). A model is
 * immutable and thread-safe, so one instance serves every pipeline; entries
 * live until the process exits (the module is resident).
 */

static GMutex model_lock;
static GHashTable *model_cache = NULL;

/* Serialises f2a_apply_f32() calls, see the header comment. */
static GMutex apply_lock;

static const f2a_model *
f2a_model_get(const char *domain, const char *path)
{
	struct stat st;
	char *canonical;
	char *key;
	f2a_model *model;

	/* Key on the file's identity so that a rewritten weights file is
	 * reloaded. A missing file gets a key too: the load below fails and
	 * reports the library's message.
	 */
	canonical = realpath(path, NULL);
	if (canonical && stat(canonical, &st) == 0)
		key = g_strdup_printf("%s\n%lld\n%lld.%09ld", canonical,
			(long long) st.st_size, (long long) st.st_mtim.tv_sec,
			st.st_mtim.tv_nsec);
	else
		key = g_strdup(path);
	free(canonical);

	g_mutex_lock(&model_lock);

	if (!model_cache)
		model_cache = g_hash_table_new_full(g_str_hash, g_str_equal,
			g_free, (GDestroyNotify) f2a_model_free);

	if (!(model = g_hash_table_lookup(model_cache, key))) {
		if (f2a_model_load(path, &model) != F2A_OK) {
			vips_error(domain, _("cannot load model \"%s\": %s"),
				path, f2a_last_error());
			model = NULL;
		}
		else {
			g_hash_table_insert(model_cache, key, model);
			key = NULL;
		}
	}

	g_mutex_unlock(&model_lock);
	g_free(key);

	return model;
}

/* ------------------------------------------------------------------------
 * Memory. The library owns the rules: the mode it runs for this size
 * (f2a_resolve_mode()) and what its own allocations need
 * (f2a_estimate_bytes()). The operation adds what it holds itself: the
 * decoded copy of the input, and in full and tiled mode the whole image as
 * float (tiled writes a second one, see the build function); guided mode
 * streams, with nothing per pixel held as float.
 */
static guint64
f2a_own_bytes(VipsImage *in, f2a_mode mode)
{
	guint64 pixels = VIPS_IMAGE_N_PELS(in);
	/* LABQ and RAD decode to 3 floats per pixel. */
	guint64 source = in->Coding == VIPS_CODING_NONE ?
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

/* max_mb, else $F2A_VIPS_MAX_MB, else half the physical memory. The
 * variable goes through the library's parser so that it accepts and refuses
 * exactly what $F2A_MAX_MEMORY_MB does; an invalid value is an error, not
 * the default.
 */
static int
f2a_memory_limit(const char *domain, int max_mb, guint64 *limit)
{
	uint64_t bytes;

	if (max_mb > 0) {
		*limit = (guint64) max_mb << 20;
		return 0;
	}
	if (f2a_memory_limit_parse("F2A_VIPS_MAX_MB",
		g_getenv("F2A_VIPS_MAX_MB"), &bytes) != F2A_OK) {
		vips_error(domain, "%s", f2a_last_error());
		return -1;
	}
	*limit = bytes;
	return 0;
}

/* ------------------------------------------------------------------------
 * Progress. libvips reports progress by emitting "preeval"/"eval"/
 * "posteval" on an image's progress_signal image; the functions that do
 * that are internal, so emit the same signals with our own VipsProgress.
 *
 * The target is a small header-only image called "flash2ambient" that
 * inherits the input's progress_signal (pyvips set_progress() upstream) or
 * gets its own when global progress is on (--vips-progress, VIPS_PROGRESS),
 * so the CLI prints "vips flash2ambient: 42% complete". vips_image_set_kill()
 * on the target cancels the model run.
 */

typedef struct {
	const char *domain;
	VipsImage *target;
	VipsProgress progress;
} F2aProgress;

static void
f2a_progress_emit(F2aProgress *p, const char *signal)
{
	if (p->target)
		g_signal_emit_by_name(p->target, signal, &p->progress);
}

static int
f2a_progress_cb(float fraction, void *user_data)
{
	F2aProgress *p = (F2aProgress *) user_data;
	int percent;

	if (!p->target)
		return 0;

	percent = VIPS_CLIP(0, (int) (100 * fraction), 100);
	p->progress.run = g_timer_elapsed(p->progress.start, NULL);
	p->progress.npels = (gint64) (fraction * p->progress.tpels);
	if (fraction > 0.1)
		p->progress.eta = p->progress.run / fraction - p->progress.run;
	if (percent != p->progress.percent) {
		p->progress.percent = percent;
		f2a_progress_emit(p, "eval");
	}

	/* vips_image_iskilled() sets a vips error when it returns TRUE.
	 */
	return vips_image_iskilled(p->target) ? 1 : 0;
}

/* The final "eval" at 100% and "posteval", whatever the outcome.
 */
static void
f2a_progress_done(F2aProgress *p, f2a_status status)
{
	if (status == F2A_OK) {
		p->progress.run = g_timer_elapsed(p->progress.start, NULL);
		p->progress.npels = p->progress.tpels;
		p->progress.percent = 100;
		p->progress.eta = 0;
	}
	f2a_progress_emit(p, "posteval");
}

static VipsImage *
f2a_progress_image(VipsImage *in)
{
	VipsImage *image;

	image = VIPS_IMAGE(g_object_new(VIPS_TYPE_IMAGE, NULL));
	g_object_set(image, "filename", "flash2ambient", "mode", "p", NULL);
	if (vips_object_build(VIPS_OBJECT(image)) ||
		vips_image_pipelinev(image, VIPS_DEMAND_STYLE_ANY, in, NULL)) {
		g_object_unref(image);
		return NULL;
	}

	return image;
}

/* ------------------------------------------------------------------------
 * Damaged files. Loaders only warn about a truncated file by default
 * (fail_on=none) and return grey for the missing part; the operation can't
 * see those warnings. When @in comes straight from a file loader, decode
 * the file once more with the requested fail_on level (streamed, nothing
 * kept) before spending minutes on the model. The pixels the operation
 * uses are always @in's.
 */

/* Decodes and drops pixels. (vips_avg() would fail on a float file holding
 * NaN: GObject refuses a NaN double result.)
 */
static int
f2a_discard(VipsRegion *region, VipsRect *area, void *a)
{
	return 0;
}

static int
f2a_check_file(const char *domain, VipsImage *in, VipsFailOn fail_on)
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
	result = vips_sink_disc(check, f2a_discard, NULL);
	g_object_unref(check);
	if (result)
		vips_error(domain, _("\"%s\" is damaged or truncated "
			"(%s failed; fail_on=none skips this check)"),
			in->filename, loader);

	return result;
}

/* ------------------------------------------------------------------------
 * Guided mode, streamed (see the top of the file).
 */

/* vips_sink_disc() hands over strips top to bottom, as the plan needs.
 */
static int
f2a_guide_feed(VipsRegion *region, VipsRect *area, void *a)
{
	f2a_guide *guide = (f2a_guide *) a;

	if (f2a_guide_add_rows(guide,
		(const float *) VIPS_REGION_ADDR(region, area->left, area->top),
		VIPS_REGION_LSKIP(region), area->height) != F2A_OK) {
		vips_error("flash2ambient", "%s", f2a_last_error());
		return -1;
	}

	return 0;
}

static int
f2a_guide_gen(VipsRegion *out_region, void *seq, void *a, void *b,
	gboolean *stop)
{
	VipsRegion *ir = (VipsRegion *) seq;
	const f2a_guide *guide = (const f2a_guide *) b;
	VipsRect *r = &out_region->valid;

	if (vips_region_prepare(ir, r))
		return -1;
	if (f2a_guide_apply_f32(guide,
		(const float *) VIPS_REGION_ADDR(ir, r->left, r->top),
		VIPS_REGION_LSKIP(ir),
		(float *) VIPS_REGION_ADDR(out_region, r->left, r->top),
		VIPS_REGION_LSKIP(out_region),
		r->left, r->top, r->width, r->height) != F2A_OK) {
		vips_error("flash2ambient", "%s", f2a_last_error());
		return -1;
	}

	return 0;
}

/* The model's output for the float sRGB image `x` as a lazy image. The plan
 * is owned by the output image and freed with it.
 */
static int
f2a_guided(const char *domain, const f2a_model *model, VipsImage *x,
	f2a_params *params, F2aProgress *progress, VipsImage **out)
{
	f2a_guide *guide;
	f2a_status status;

	if (f2a_guide_begin(model, x->Xsize, x->Ysize, params, &guide) !=
		F2A_OK) {
		vips_error(domain, "%s", f2a_last_error());
		return -1;
	}

	if (vips_sink_disc(x, f2a_guide_feed, guide)) {
		f2a_guide_free(guide);
		return -1;
	}

	g_mutex_lock(&apply_lock);
	f2a_progress_emit(progress, "preeval");
	status = f2a_guide_finish(guide);
	f2a_progress_done(progress, status);
	g_mutex_unlock(&apply_lock);
	if (status != F2A_OK) {
		vips_error(domain, "%s", f2a_last_error());
		f2a_guide_free(guide);
		return -1;
	}

	*out = vips_image_new();
	g_object_set_data_full(G_OBJECT(*out), "flash2ambient-guide",
		guide, (GDestroyNotify) f2a_guide_free);
	if (vips_image_pipelinev(*out, VIPS_DEMAND_STYLE_THINSTRIP, x, NULL) ||
		vips_image_generate(*out,
			vips_start_one, f2a_guide_gen, vips_stop_one, x, guide)) {
		VIPS_UNREF(*out);
		return -1;
	}

	return 0;
}

/* ------------------------------------------------------------------------
 * The operation.
 */

static int
vips_flash2ambient_build(VipsObject *object)
{
	VipsObjectClass *class = VIPS_OBJECT_GET_CLASS(object);
	VipsFlash2Ambient *f2a = (VipsFlash2Ambient *) object;
	VipsImage **t = (VipsImage **) vips_object_local_array(object, 20);

	const char *domain = class->nickname;
	const char *path;
	const f2a_model *model;
	VipsImage *in;
	VipsImage *src;
	VipsImage *x;
	uint64_t need;
	guint64 limit;
	f2a_mode mode;
	VipsImage *result;
	f2a_params params;
	F2aProgress progress = { 0 };
	f2a_status status;

	if (VIPS_OBJECT_CLASS(vips_flash2ambient_op_parent_class)->
		build(object))
		return -1;

	in = f2a->in;
	if (in->Coding != VIPS_CODING_NONE &&
		in->Coding != VIPS_CODING_LABQ &&
		in->Coding != VIPS_CODING_RAD) {
		vips_error(domain, "%s", _("unsupported image coding"));
		return -1;
	}
	if (vips_check_noncomplex(domain, in))
		return -1;

	/* Load (or reuse) the model first: a bad path fails before any
	 * pixel is computed.
	 */
	path = f2a->model && f2a->model[0] ?
		f2a->model : f2a_default_model_path();
	if (!(model = f2a_model_get(domain, path)))
		return -1;

	params = f2a_default_params();
	params.strength = f2a->strength;
	params.mode = (f2a_mode) f2a->mode;
	params.working_size = f2a->working_size;
	params.tile_size = f2a->tile_size;

	if (f2a_resolve_mode(model, in->Xsize, in->Ysize, &params, &mode) ||
		f2a_estimate_bytes(model, in->Xsize, in->Ysize, &params,
			&need)) {
		vips_error(domain, "%s", f2a_last_error());
		return -1;
	}
	need += f2a_own_bytes(in, mode);
	if (f2a_memory_limit(domain, f2a->max_mb, &limit))
		return -1;
	if (need > limit) {
		vips_error(domain,
			_("%dx%d image in %s mode needs about %" G_GUINT64_FORMAT
			" MiB of working memory, over the limit of %"
			G_GUINT64_FORMAT " MiB (%s, set max_mb or "
			"$F2A_VIPS_MAX_MB, or downsize first)"),
			in->Xsize, in->Ysize,
			vips_enum_nick(vips_flash2ambient_mode_get_type(), mode),
			need >> 20, limit >> 20,
			mode == F2A_MODE_GUIDED ?
				_("lower working_size") :
				_("use mode=guided"));
		return -1;
	}

	if (f2a_check_file(domain, in, f2a->fail_on))
		return -1;

	/* Decode LABQ/RAD, then render the input once into memory: every
	 * later step reads this copy, so a sequential input is read only
	 * once and the alpha band can be taken from it afterwards.
	 */
	if (vips_image_decode(in, &t[0]))
		return -1;
	if (!(t[1] = vips_image_copy_memory(t[0])))
		return -1;
	src = t[1];

	/* To the model's float sRGB: the conversion f2a makes too
	 * (Sources/CVipsConvert).
	 */
	if (f2aconv_to_model(src, &t[6]))
		return -1;

	params.progress = f2a_progress_cb;
	params.progress_user_data = &progress;

	progress.domain = domain;
	if (!(t[8] = f2a_progress_image(in)))
		return -1;
	progress.target = t[8]->progress_signal;
	progress.progress.im = progress.target;
	progress.progress.tpels = VIPS_IMAGE_N_PELS(in);
	progress.progress.start = g_timer_new();

	if (mode == F2A_MODE_GUIDED) {
		int fail = f2a_guided(domain, model, t[6], &params, &progress,
			&t[7]);

		g_timer_destroy(progress.progress.start);
		if (fail)
			return -1;
		result = t[7];
	}
	else {
		t[7] = vips_image_new_memory();
		if (vips_image_write(t[6], t[7])) {
			g_timer_destroy(progress.progress.start);
			return -1;
		}
		if (t[7]->Bands != 3 ||
			t[7]->BandFmt != VIPS_FORMAT_FLOAT ||
			!t[7]->data) {
			vips_error(domain, "%s",
				_("unexpected working image layout"));
			g_timer_destroy(progress.progress.start);
			return -1;
		}

		/* In place, except in tiled mode, where later tiles read
		 * input rows that earlier bands have already written (the
		 * library would make the copy itself).
		 */
		result = t[7];
		if (mode == F2A_MODE_TILED) {
			t[18] = vips_image_new_memory();
			vips_image_init_fields(t[18], t[7]->Xsize, t[7]->Ysize,
				3, VIPS_FORMAT_FLOAT, VIPS_CODING_NONE,
				VIPS_INTERPRETATION_sRGB, 1.0, 1.0);
			if (vips_image_write_prepare(t[18])) {
				g_timer_destroy(progress.progress.start);
				return -1;
			}
			result = t[18];
		}

		g_mutex_lock(&apply_lock);
		f2a_progress_emit(&progress, "preeval");
		status = f2a_apply_f32(model,
			(const float *) t[7]->data, VIPS_IMAGE_SIZEOF_LINE(t[7]),
			(float *) result->data, VIPS_IMAGE_SIZEOF_LINE(result),
			t[7]->Xsize, t[7]->Ysize, &params);
		f2a_progress_done(&progress, status);
		g_mutex_unlock(&apply_lock);
		g_timer_destroy(progress.progress.start);

		if (status != F2A_OK) {
			/* A kill from the progress callback has already set
			 * a vips error; add the library's message.
			 */
			vips_error(domain, "%s", f2a_last_error());
			return -1;
		}
	}

	/* Back to the input's interpretation and band format, its alpha and
	 * extra bands re-attached.
	 */
	if (f2aconv_from_model(src, result, &t[15]))
		return -1;
	x = t[15];

	/* Same coding as the input.
	 */
	if (in->Coding == VIPS_CODING_LABQ) {
		if (vips_Lab2LabQ(x, &t[16], NULL))
			return -1;
		x = t[16];
	}
	else if (in->Coding == VIPS_CODING_RAD) {
		if (vips_float2rad(x, &t[16], NULL))
			return -1;
		x = t[16];
	}

	/* Same header as the input: interpretation label (when the layout
	 * matches), resolution, offsets and every metadata item.
	 */
	if (x->Bands == in->Bands &&
		x->BandFmt == in->BandFmt &&
		x->Coding == in->Coding) {
		if (vips_copy(x, &t[17],
			"interpretation", in->Type,
			"xres", in->Xres, "yres", in->Yres,
			"xoffset", in->Xoffset, "yoffset", in->Yoffset,
			NULL))
			return -1;
	}
	else if (vips_copy(x, &t[17],
		"xres", in->Xres, "yres", in->Yres,
		"xoffset", in->Xoffset, "yoffset", in->Yoffset,
		NULL))
		return -1;
	f2aconv_copy_metadata(in, t[17]);

	g_object_set(object, "out", vips_image_new(), NULL);

	if (vips_image_write(t[17], f2a->out))
		return -1;

	return 0;
}

static void
vips_flash2ambient_op_class_init(VipsFlash2AmbientClass *class)
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
		F2A_WORKING_SIZE_MIN, F2A_WORKING_SIZE_MAX, F2A_DEFAULT_WORKING_SIZE);

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
vips_flash2ambient_op_init(VipsFlash2Ambient *f2a)
{
	f2a_params defaults = f2a_default_params();

	f2a->strength = 1.0;
	f2a->mode = defaults.mode;
	f2a->working_size = defaults.working_size;
	f2a->tile_size = defaults.tile_size;
	f2a->max_mb = 0;
	f2a->fail_on = VIPS_FAIL_ON_TRUNCATED;
}

/* Called by GModule when libvips loads the module.
 */
G_MODULE_EXPORT const gchar *
g_module_check_init(GModule *module)
{
	/* Registering twice (module both linked in and loaded from the module
	 * directory) would fail inside GType: refuse the second load instead.
	 */
	if (g_type_from_name(VIPS_FLASH2AMBIENT_TYPE_NAME))
		return "flash2ambient: operation already registered";

	vips_flash2ambient_op_get_type();

	/* GTypes can't be unregistered: we must never be unloaded.
	 */
	g_module_make_resident(module);

	return NULL;
}
