/* Progress of a network run as libvips progress. libvips reports progress by
 * emitting "preeval"/"eval"/"posteval" on an image's progress_signal image;
 * the functions that do that are internal, so emit the same signals with our
 * own VipsProgress.
 *
 * The target is a small header-only image called "flash2ambient" that
 * inherits the input's progress_signal (pyvips set_progress() upstream) or
 * gets its own when global progress is on (--vips-progress, VIPS_PROGRESS),
 * so the CLI prints "vips flash2ambient: 42% complete". vips_image_set_kill()
 * on the target cancels the network run.
 */

#include <string.h>

#include <vips/vips.h>

#include "pflash2ambient.h"

static void
vips_flash2ambient_progress_emit(VipsFlash2AmbientProgress *progress,
	const char *signal)
{
	if (progress->target)
		g_signal_emit_by_name(progress->target, signal,
			&progress->progress);
}

/* Starts reporting on behalf of `in`, with "preeval". Progress is a
 * courtesy: if the target cannot be made, nothing is reported.
 */
void
vips_flash2ambient_progress_begin(VipsFlash2AmbientProgress *progress,
	VipsImage *in)
{
	VipsImage *image;

	memset(progress, 0, sizeof(*progress));
	image = VIPS_IMAGE(g_object_new(VIPS_TYPE_IMAGE, NULL));
	g_object_set(image, "filename", "flash2ambient", "mode", "p", NULL);
	if (vips_object_build(VIPS_OBJECT(image)) ||
		vips_image_pipelinev(image, VIPS_DEMAND_STYLE_ANY, in, NULL)) {
		g_object_unref(image);
		vips_error_clear();
		return;
	}

	progress->image = image;
	progress->target = image->progress_signal;
	progress->progress.im = progress->target;
	progress->progress.tpels = VIPS_IMAGE_N_PELS(in);
	progress->progress.start = g_timer_new();
	vips_flash2ambient_progress_emit(progress, "preeval");
}

/* An f2a_progress_fn: user_data is the VipsFlash2AmbientProgress.
 */
int
vips_flash2ambient_progress_cb(float fraction, void *user_data)
{
	VipsFlash2AmbientProgress *progress =
		(VipsFlash2AmbientProgress *) user_data;
	VipsProgress *p = &progress->progress;
	int percent;

	if (!progress->target)
		return 0;

	percent = VIPS_CLIP(0, (int) (100 * fraction), 100);
	p->run = g_timer_elapsed(p->start, NULL);
	p->npels = (gint64) (fraction * p->tpels);
	if (fraction > 0.1)
		p->eta = p->run / fraction - p->run;
	if (percent != p->percent) {
		p->percent = percent;
		vips_flash2ambient_progress_emit(progress, "eval");
	}

	/* vips_image_iskilled() sets a vips error when it returns TRUE.
	 */
	return vips_image_iskilled(progress->target) ? 1 : 0;
}

/* 100% on success, then "posteval" whatever the outcome.
 */
void
vips_flash2ambient_progress_end(VipsFlash2AmbientProgress *progress,
	f2a_status status)
{
	VipsProgress *p = &progress->progress;

	if (!progress->image)
		return;

	if (status == F2A_OK) {
		p->run = g_timer_elapsed(p->start, NULL);
		p->npels = p->tpels;
		p->percent = 100;
		p->eta = 0;
	}
	vips_flash2ambient_progress_emit(progress, "posteval");

	g_timer_destroy(p->start);
	VIPS_UNREF(progress->image);
	progress->target = NULL;
}
