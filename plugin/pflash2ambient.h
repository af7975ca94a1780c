/* Private to the flash2ambient vips module: what its files share. Only the
 * module's entry point is visible outside it (built with
 * -fvisibility=hidden, see plugin.mk).
 */
#ifndef PFLASH2AMBIENT_H
#define PFLASH2AMBIENT_H

#include <vips/vips.h>

#include <flash2ambient.h>

/* flash2ambient.c */
GType vips_flash2ambient_get_type(void);

/* network.c */
const f2a_model *vips_flash2ambient_model_get(const char *domain,
	const char *path);
gboolean vips_flash2ambient_is_srgb8(VipsImage *image);
int vips_flash2ambient_guide(const char *domain, const f2a_model *model,
	VipsImage *in, VipsImage *first, gboolean first_is_file,
	const f2a_params *params, f2a_guide **out_guide);
int vips_flash2ambient_guided_map(VipsImage *source, f2a_guide *guide,
	VipsImage **out);
int vips_flash2ambient_run(const char *domain, const f2a_model *model,
	VipsImage *in, VipsImage *rgb, f2a_mode mode, const f2a_params *params,
	VipsImage **out);

/* progress.c */
typedef struct _VipsFlash2AmbientProgress {
	/* Gets the signals: the progress_signal image of a header-only image
	 * downstream of the operation's input; NULL when nobody listens.
	 */
	VipsImage *image;
	VipsImage *target;
	VipsProgress progress;
} VipsFlash2AmbientProgress;

void vips_flash2ambient_progress_begin(VipsFlash2AmbientProgress *progress,
	VipsImage *in);
int vips_flash2ambient_progress_cb(float fraction, void *user_data);
void vips_flash2ambient_progress_end(VipsFlash2AmbientProgress *progress,
	f2a_status status);

#endif /*PFLASH2AMBIENT_H*/
