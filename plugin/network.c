/* The network side of the operation: loaded models, and the two ways the
 * image goes through the network in the mode the library resolved
 * (f2a_resolve_mode()):
 *
 *   guided      streamed, nothing per pixel is held: pass 1
 *               (vips_flash2ambient_guide()) feeds float rows to
 *               f2a_guide_add_rows() with vips_sink_disc() (the library
 *               area-averages them to working size) and runs the network
 *               once in f2a_guide_finish(); pass 2
 *               (vips_flash2ambient_guided_map()) is an ordinary lazy image
 *               whose regions f2a_guide_apply_f32(), or f2a_guide_apply_u8()
 *               on the bytes of an 8-bit sRGB image, computes on vips's
 *               worker threads, like any point operation (no margins: each
 *               output pixel needs only its input pixel)
 *   full/tiled  the float image is rendered to memory and handed to
 *               f2a_apply_f32() whole
 *
 * Network runs are serialised process-wide (apply_lock): the library runs
 * each on its own convolution threads and OpenBLAS's pool, so concurrent
 * pipelines would multiply threads and peak memory, not throughput. The
 * guided pass over full-resolution regions runs on vips's workers
 * (VIPS_CONCURRENCY), outside the lock.
 */

#include <stdlib.h>
#include <sys/stat.h>

#include <vips/vips.h>

#include "pflash2ambient.h"

/* Loaded models by (canonical path, size, mtime). A model is immutable and
 * thread-safe, so one instance serves every pipeline; entries live until the
 * process exits (the module is resident).
 */
static GMutex model_lock;
static GHashTable *model_cache = NULL;

static GMutex apply_lock;

const f2a_model *
vips_flash2ambient_model_get(const char *domain, const char *path)
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
			vips_error(domain, "cannot load model \"%s\": %s",
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

/* Pass 1's sink. vips_sink_disc() hands over strips top to bottom, as the
 * plan needs; a failure here is the plan's, not the decoder's.
 */
typedef struct _VipsFlash2AmbientFeed {
	f2a_guide *guide;
	gboolean failed;
} VipsFlash2AmbientFeed;

static int
vips_flash2ambient_feed(VipsRegion *region, VipsRect *area, void *a)
{
	VipsFlash2AmbientFeed *feed = (VipsFlash2AmbientFeed *) a;

	if (f2a_guide_add_rows(feed->guide,
		(const float *) VIPS_REGION_ADDR(region, area->left, area->top),
		VIPS_REGION_LSKIP(region), area->height) != F2A_OK) {
		vips_error("flash2ambient", "%s", f2a_last_error());
		feed->failed = TRUE;
		return -1;
	}

	return 0;
}

static int
vips_flash2ambient_guided_gen(VipsRegion *out_region,
	void *seq, void *a, void *b, gboolean *stop)
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

/* The same on the bytes of an 8-bit sRGB image: no float copy of it.
 */
static int
vips_flash2ambient_guided_gen_u8(VipsRegion *out_region,
	void *seq, void *a, void *b, gboolean *stop)
{
	VipsRegion *ir = (VipsRegion *) seq;
	const f2a_guide *guide = (const f2a_guide *) b;
	VipsRect *r = &out_region->valid;

	if (vips_region_prepare(ir, r))
		return -1;
	if (f2a_guide_apply_u8(guide,
		VIPS_REGION_ADDR(ir, r->left, r->top),
		VIPS_REGION_LSKIP(ir),
		VIPS_REGION_ADDR(out_region, r->left, r->top),
		VIPS_REGION_LSKIP(out_region),
		r->left, r->top, r->width, r->height) != F2A_OK) {
		vips_error("flash2ambient", "%s", f2a_last_error());
		return -1;
	}

	return 0;
}

gboolean
vips_flash2ambient_is_srgb8(VipsImage *image)
{
	return image->Coding == VIPS_CODING_NONE &&
		image->BandFmt == VIPS_FORMAT_UCHAR &&
		image->Bands == 3 &&
		vips_image_guess_interpretation(image) ==
			VIPS_INTERPRETATION_sRGB;
}

/* Pass 1 and the network: `first` (3-band float sRGB of the photo `in`, at
 * its size or shrunk on load to at least f2a_guide_min_source()) read once,
 * top to bottom, into a new plan, which f2a_guide_finish() then completes. `first_is_file`: first is a second reading of the input's file,
 * so a decoder failure there means the file is damaged (the check
 * vips_flash2ambient_check_file() would otherwise make).
 */
int
vips_flash2ambient_guide(const char *domain, const f2a_model *model,
	VipsImage *in, VipsImage *first, gboolean first_is_file,
	const f2a_params *params, f2a_guide **out_guide)
{
	VipsFlash2AmbientProgress progress;
	VipsFlash2AmbientFeed feed = { NULL, FALSE };
	f2a_params run = *params;
	f2a_status status;

	*out_guide = NULL;
	run.progress = vips_flash2ambient_progress_cb;
	run.progress_user_data = &progress;
	if ((first->Xsize == in->Xsize && first->Ysize == in->Ysize ?
		f2a_guide_begin(model, in->Xsize, in->Ysize, &run,
			&feed.guide) :
		f2a_guide_begin_source(model, in->Xsize, in->Ysize,
			first->Xsize, first->Ysize, &run,
			&feed.guide)) != F2A_OK) {
		vips_error(domain, "%s", f2a_last_error());
		return -1;
	}

	if (vips_sink_disc(first, vips_flash2ambient_feed, &feed)) {
		const char *loader;

		if (first_is_file && !feed.failed &&
			!vips_image_get_string(first, VIPS_META_LOADER, &loader))
			vips_error(domain, "\"%s\" is damaged or truncated "
				"(%s failed; fail_on=none skips this check)",
				in->filename, loader);
		f2a_guide_free(feed.guide);
		return -1;
	}

	g_mutex_lock(&apply_lock);
	vips_flash2ambient_progress_begin(&progress, in);
	status = f2a_guide_finish(feed.guide);
	vips_flash2ambient_progress_end(&progress, status);
	g_mutex_unlock(&apply_lock);
	if (status != F2A_OK) {
		vips_error(domain, "%s", f2a_last_error());
		f2a_guide_free(feed.guide);
		return -1;
	}

	*out_guide = feed.guide;
	return 0;
}

/* Pass 2: `source` mapped through the finished plan, region by region on
 * vips's worker threads like any point operation (no margins: each output
 * pixel needs only its own input pixel). `source` is 3-band float sRGB, or
 * 8-bit sRGB (vips_flash2ambient_is_srgb8()), mapped on its bytes into an
 * 8-bit sRGB output. The output owns the plan and frees it.
 */
int
vips_flash2ambient_guided_map(VipsImage *source, f2a_guide *guide,
	VipsImage **out)
{
	gboolean bytes = source->BandFmt == VIPS_FORMAT_UCHAR;

	*out = vips_image_new();
	g_object_set_data_full(G_OBJECT(*out), "flash2ambient-guide",
		guide, (GDestroyNotify) f2a_guide_free);
	if (vips_image_pipelinev(*out, VIPS_DEMAND_STYLE_THINSTRIP, source,
		NULL) ||
		vips_image_generate(*out,
			vips_start_one, bytes ?
				vips_flash2ambient_guided_gen_u8 :
				vips_flash2ambient_guided_gen,
			vips_stop_one, source, guide)) {
		VIPS_UNREF(*out);
		return -1;
	}
	if (bytes)
		(*out)->Type = VIPS_INTERPRETATION_sRGB;

	return 0;
}

static int
vips_flash2ambient_whole(const char *domain, const f2a_model *model,
	VipsImage *in, VipsImage *rgb, f2a_mode mode, f2a_params *params,
	VipsImage **out)
{
	VipsFlash2AmbientProgress progress;
	VipsImage *image;
	VipsImage *result;
	f2a_status status;

	/* A memory image, so that libvips's allocator tracks the buffer.
	 */
	image = vips_image_new_memory();
	if (vips_image_write(rgb, image)) {
		g_object_unref(image);
		return -1;
	}
	if (image->Bands != 3 ||
		image->BandFmt != VIPS_FORMAT_FLOAT ||
		!image->data) {
		vips_error(domain, "%s", "unexpected working image layout");
		g_object_unref(image);
		return -1;
	}

	/* In place, except in tiled mode, where later tiles read input rows
	 * that earlier bands have already written (the library would make
	 * the copy itself).
	 */
	if (mode == F2A_MODE_TILED) {
		result = vips_image_new_memory();
		vips_image_init_fields(result, image->Xsize, image->Ysize,
			3, VIPS_FORMAT_FLOAT, VIPS_CODING_NONE,
			VIPS_INTERPRETATION_sRGB, 1.0, 1.0);
		if (vips_image_write_prepare(result)) {
			g_object_unref(result);
			g_object_unref(image);
			return -1;
		}
	}
	else {
		result = image;
		g_object_ref(result);
	}

	params->progress = vips_flash2ambient_progress_cb;
	params->progress_user_data = &progress;
	g_mutex_lock(&apply_lock);
	vips_flash2ambient_progress_begin(&progress, in);
	status = f2a_apply_f32(model,
		(const float *) image->data, VIPS_IMAGE_SIZEOF_LINE(image),
		(float *) result->data, VIPS_IMAGE_SIZEOF_LINE(result),
		image->Xsize, image->Ysize, params);
	vips_flash2ambient_progress_end(&progress, status);
	g_mutex_unlock(&apply_lock);
	g_object_unref(image);

	if (status != F2A_OK) {
		/* A kill from the progress callback has already set a vips
		 * error; add the library's message.
		 */
		vips_error(domain, "%s", f2a_last_error());
		g_object_unref(result);
		return -1;
	}

	*out = result;
	return 0;
}

/* The network's output for the float sRGB image `rgb` (3 bands, [0, 1]) in
 * full or tiled mode, as a new 3-band float image held in memory. Progress
 * is reported on behalf of `in`, the operation's input. (Guided mode
 * streams: vips_flash2ambient_guide() and vips_flash2ambient_guided_map().)
 */
int
vips_flash2ambient_run(const char *domain, const f2a_model *model,
	VipsImage *in, VipsImage *rgb, f2a_mode mode, const f2a_params *params,
	VipsImage **out)
{
	f2a_params run = *params;

	return vips_flash2ambient_whole(domain, model, in, rgb, mode, &run,
		out);
}
