/* The network side of the operation: loaded models, and the two ways the
 * float sRGB image goes through the network in the mode the library
 * resolved (f2a_resolve_mode()):
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

/* vips_sink_disc() hands over strips top to bottom, as the plan needs.
 */
static int
vips_flash2ambient_feed(VipsRegion *region, VipsRect *area, void *a)
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

/* The plan is owned by the output image and freed with it.
 */
static int
vips_flash2ambient_guided(const char *domain, const f2a_model *model,
	VipsImage *in, VipsImage *rgb, f2a_params *params, VipsImage **out)
{
	VipsFlash2AmbientProgress progress;
	f2a_guide *guide;
	f2a_status status;

	params->progress = vips_flash2ambient_progress_cb;
	params->progress_user_data = &progress;
	if (f2a_guide_begin(model, rgb->Xsize, rgb->Ysize, params, &guide) !=
		F2A_OK) {
		vips_error(domain, "%s", f2a_last_error());
		return -1;
	}

	if (vips_sink_disc(rgb, vips_flash2ambient_feed, guide)) {
		f2a_guide_free(guide);
		return -1;
	}

	g_mutex_lock(&apply_lock);
	vips_flash2ambient_progress_begin(&progress, in);
	status = f2a_guide_finish(guide);
	vips_flash2ambient_progress_end(&progress, status);
	g_mutex_unlock(&apply_lock);
	if (status != F2A_OK) {
		vips_error(domain, "%s", f2a_last_error());
		f2a_guide_free(guide);
		return -1;
	}

	*out = vips_image_new();
	g_object_set_data_full(G_OBJECT(*out), "flash2ambient-guide",
		guide, (GDestroyNotify) f2a_guide_free);
	if (vips_image_pipelinev(*out, VIPS_DEMAND_STYLE_THINSTRIP, rgb, NULL) ||
		vips_image_generate(*out,
			vips_start_one, vips_flash2ambient_guided_gen,
			vips_stop_one, rgb, guide)) {
		VIPS_UNREF(*out);
		return -1;
	}

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
 * the resolved `mode`, as a new 3-band float image. Progress is reported
 * on behalf of `in`, the operation's input.
 */
int
vips_flash2ambient_run(const char *domain, const f2a_model *model,
	VipsImage *in, VipsImage *rgb, f2a_mode mode, const f2a_params *params,
	VipsImage **out)
{
	f2a_params run = *params;

	return mode == F2A_MODE_GUIDED ?
		vips_flash2ambient_guided(domain, model, in, rgb, &run, out) :
		vips_flash2ambient_whole(domain, model, in, rgb, mode, &run, out);
}
