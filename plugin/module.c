/* The flash2ambient libvips module: vips_init() dlopens every *.so in its
 * module directory and GModule calls g_module_check_init(), which registers
 * the operation (flash2ambient.c). As in libvips's own modules, nothing else
 * happens here.
 */

#include <gmodule.h>
#include <vips/vips.h>

#include "vips-flash2ambient.h"
#include "pflash2ambient.h"

G_MODULE_EXPORT const gchar *
g_module_check_init(GModule *module)
{
	/* Registering twice (module both linked in and loaded from the module
	 * directory) would fail inside GType: refuse the second load instead.
	 */
	if (g_type_from_name(VIPS_FLASH2AMBIENT_TYPE_NAME))
		return "flash2ambient: operation already registered";

	vips_flash2ambient_get_type();

	/* GTypes can't be unregistered: we must never be unloaded.
	 */
	g_module_make_resident(module);

	return NULL;
}
