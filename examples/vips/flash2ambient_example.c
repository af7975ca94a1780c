/* flash2ambient_example.c — call the libvips operation "flash2ambient" from C.
 *
 * Build (after `make install`; the program does not link the module, libvips
 * loads it at VIPS_INIT time):
 *   cc flash2ambient_example.c -o flash2ambient_example \
 *      -I/usr/local/include $(pkg-config --cflags --libs vips)
 * Run:
 *   ./flash2ambient_example flash.jpg ambient.jpg 0.8
 * With the build tree instead of an install: VIPSHOME=$PWD/build/vipshome and
 * -I$PWD/build/include.
 */
#include <stdio.h>
#include <stdlib.h>

#include <vips/vips.h>
#include <vips-flash2ambient.h>

int
main(int argc, char **argv)
{
	VipsImage *in, *out, *again, *diff, *absdiff;
	double strength = argc > 3 ? g_ascii_strtod(argv[3], NULL) : 1.0;
	double max_diff;

	if (VIPS_INIT(argv[0]))
		vips_error_exit(NULL);
	if (argc < 3)
		vips_error_exit("usage: %s IN OUT [STRENGTH]", argv[0]);
	if (!vips_flash2ambient_available())
		vips_error_exit("the flash2ambient module is not installed "
			"(make install, or set VIPSHOME=.../build/vipshome)");

	if (!(in = vips_image_new_from_file(argv[1], NULL)))
		vips_error_exit(NULL);

	/* 1. The generic entry point, by nickname. */
	if (vips_call("flash2ambient", in, &out, "strength", strength, NULL))
		vips_error_exit(NULL);

	/* 2. The varargs wrapper from vips-flash2ambient.h (libvips's
	 * operation cache returns the same result for the same arguments).
	 */
	if (vips_flash2ambient(in, &again, "strength", strength, NULL) ||
		vips_subtract(out, again, &diff, NULL) ||
		vips_abs(diff, &absdiff, NULL) ||
		vips_max(absdiff, &max_diff, NULL))
		vips_error_exit(NULL);
	printf("%s: %dx%d, %d bands -> %s (vips_call and wrapper differ by %g)\n",
		argv[1], out->Xsize, out->Ysize, out->Bands, argv[2], max_diff);

	if (vips_image_write_to_file(out, argv[2], NULL))
		vips_error_exit(NULL);

	g_object_unref(absdiff);
	g_object_unref(diff);
	g_object_unref(again);
	g_object_unref(out);
	g_object_unref(in);
	vips_shutdown();

	return max_diff == 0 ? 0 : 1;
}
