# plugin/plugin.mk — the libvips operation "flash2ambient" as a libvips module.
# Included by the main Makefile (-include plugin/plugin.mk); adds itself to
# all / test / install / uninstall.
#
#   make plugin            build/vipshome/<multiarch>/vips-modules-X.Y/vips-flash2ambient.so
#                          (+ links to the stock modules): use with VIPSHOME=$PWD/build/vipshome
#   make test-plugin       Tests/plugin/run.sh
#   make install-plugin    module into the private libvips home PREFIX/lib/flash2ambient/vipshome
#                          (<multiarch>/vips-modules-X.Y, with links to libvips's stock modules made by
#                          PREFIX/lib/flash2ambient/link-vips-modules): use with
#                          VIPSHOME=PREFIX/lib/flash2ambient/vipshome; header into PREFIX/include.
#                          Nothing outside PREFIX (run by make install; DESTDIR honoured)
#   make install-system-module   opt-in, as root: also a copy with rpath PREFIX/lib into libvips's own
#                          module directory, $(pkg-config --variable=libdir vips)/vips-modules-X.Y, so plain
#                          `vips flash2ambient` works for every user without VIPSHOME (runs make install)
#   make uninstall-plugin  (run by make uninstall; also removes the system module if its rpath is PREFIX/lib)
#   make uninstall-system-module   only the system module

PLUGIN_PKGS        := vips gmodule-2.0
PLUGIN_VIPS_LIBDIR := $(shell pkg-config --variable=libdir vips 2>/dev/null)
PLUGIN_VIPS_MINOR  := $(shell pkg-config --modversion vips 2>/dev/null | cut -d. -f1,2)
PLUGIN_MODDIR_NAME := vips-modules-$(PLUGIN_VIPS_MINOR)
# With VIPSHOME, libvips 8.14 looks in $VIPSHOME/<basename of its libdir>/vips-modules-X.Y
# (x86_64-linux-gnu on Debian): see /work/shared/notes/libvips-plugins.md.
PLUGIN_MULTIARCH   := $(notdir $(PLUGIN_VIPS_LIBDIR))
PLUGIN_VIPSHOME    := $(BUILD)/vipshome
PLUGIN_MODDIR      := $(PLUGIN_VIPSHOME)/$(PLUGIN_MULTIARCH)/$(PLUGIN_MODDIR_NAME)
PLUGIN_MODULE      := $(PLUGIN_MODDIR)/vips-flash2ambient.so
# libvips's own module directory: the stock modules, and install-system-module's target.
PLUGIN_SYSTEM_DIR   = $(PLUGIN_VIPS_LIBDIR)/$(PLUGIN_MODDIR_NAME)
# The installed private libvips home (same relative layout in the binary tarball).
PLUGIN_INSTALL_VIPSHOME = $(PREFIX)/lib/flash2ambient/vipshome
PLUGIN_INSTALL_MODDIR   = $(PLUGIN_INSTALL_VIPSHOME)/$(PLUGIN_MULTIARCH)/$(PLUGIN_MODDIR_NAME)
# The module's C files, plus the photo <-> model conversions it shares with the f2a tools.
PLUGIN_C           := $(wildcard plugin/*.c) Sources/CVipsConvert/convert.c
PLUGIN_SRC         := $(PLUGIN_C) $(wildcard plugin/*.h) Sources/CVipsConvert/include/f2a_vipsconvert.h
# What the module needs from the main build (override with PLUGIN_LIBDEP= to relink
# against an existing build/lib without rebuilding the Swift code).
PLUGIN_LIBDEP      ?= $(BUILD)/.stamp
# Hidden by default: only g_module_check_init is exported, so the module's helpers and the
# shared conversions can never bind to (or be bound by) another copy in the host process.
PLUGIN_CFLAGS      := -std=gnu11 -O2 -g -fPIC -fvisibility=hidden -Wall -Wextra -Werror -Wno-unused-parameter \
                      -Iplugin -ISources/CVipsConvert/include -I$(BUILD)/include \
                      $(shell pkg-config --cflags $(PLUGIN_PKGS) 2>/dev/null)
PLUGIN_LIBS        := -L$(BUILD)/lib -lflash2ambient $(shell pkg-config --libs $(PLUGIN_PKGS) 2>/dev/null) \
                      -Wl,--no-undefined -Wl,--as-needed

.PHONY: plugin plugin-build test-plugin install-plugin install-plugin-files uninstall-plugin clean-plugin \
        install-system-module install-system-module-files uninstall-system-module

all: plugin
test: test-plugin
install: install-plugin
uninstall: uninstall-plugin

# The PLUGIN_* paths come from pkg-config when make reads this file; on a fresh machine
# libvips-dev only arrives with `deps`, so the real work happens in a sub-make that
# re-reads them afterwards.
plugin: $(PLUGIN_LIBDEP) | deps
	@$(MAKE) --no-print-directory plugin-build

plugin-build: $(PLUGIN_MODULE) $(BUILD)/include/vips-flash2ambient.h $(BUILD)/lib/flash2ambient/vipshome

# build/lib/flash2ambient/vipshome -> build/vipshome: the place the installed layout (and the
# pkg-config variable vipshome) has it.
$(BUILD)/lib/flash2ambient/vipshome:
	mkdir -p $(@D)
	ln -sfn ../../vipshome $@

$(BUILD)/include/vips-flash2ambient.h: plugin/vips-flash2ambient.h
	mkdir -p $(BUILD)/include
	cp $< $@

# One module binary for the build tree and every installed copy: it finds libflash2ambient.so
# through $ORIGIN, in build/lib from build/vipshome/<multiarch>/vips-modules-X.Y (../../../lib) and in
# PREFIX/lib from PREFIX/lib/flash2ambient/vipshome/<multiarch>/vips-modules-X.Y (../../../..), so
# build/, an installed tree and the binary tarball can be moved as a whole.
$(PLUGIN_MODULE): $(PLUGIN_SRC) $(PLUGIN_LIBDEP) plugin/plugin.mk
	@test -n "$(PLUGIN_VIPS_MINOR)" || { echo "pkg-config cannot find vips (apt-get install libvips-dev)"; exit 1; }
	mkdir -p $(PLUGIN_MODDIR)
	$(CC) $(PLUGIN_CFLAGS) -shared -o $@.tmp $(PLUGIN_C) $(PLUGIN_LIBS) \
	  -Wl,-rpath,'$$ORIGIN/../../../lib:$$ORIGIN/../../../..'
	mv -f $@.tmp $@
	@# VIPSHOME replaces the system module path: link the stock modules (heif, jxl, magick, ...)
	@# so their loaders stay available. Never link an installed copy of ourselves.
	find $(PLUGIN_MODDIR) -maxdepth 1 -type l -delete
	for m in $(PLUGIN_SYSTEM_DIR)/*.so; do \
	  [ -e "$$m" ] || continue; \
	  [ "$$(basename $$m)" = vips-flash2ambient.so ] && continue; \
	  ln -sfn "$$m" $(PLUGIN_MODDIR)/; \
	done

test-plugin: plugin
	Tests/plugin/run.sh

# The installed module is the build tree's (its $ORIGIN rpath finds PREFIX/lib); the stock
# modules are linked beside it by link-vips-modules (links to the real, not the DESTDIR, paths).
install-plugin: plugin
	@$(MAKE) --no-print-directory install-plugin-files

install-plugin-files:
	@test -n "$(PLUGIN_MODDIR_NAME)" -a -n "$(PLUGIN_MULTIARCH)" || { echo "pkg-config cannot find vips"; exit 1; }
	install -d $(DESTDIR)$(PLUGIN_INSTALL_MODDIR) $(DESTDIR)$(PREFIX)/include
	install -m 755 $(PLUGIN_MODULE) $(DESTDIR)$(PLUGIN_INSTALL_MODDIR)/vips-flash2ambient.so
	install -m 755 packaging/link-vips-modules.sh $(DESTDIR)$(PREFIX)/lib/flash2ambient/link-vips-modules
	install -m 644 plugin/vips-flash2ambient.h $(DESTDIR)$(PREFIX)/include/vips-flash2ambient.h
	$(DESTDIR)$(PREFIX)/lib/flash2ambient/link-vips-modules $(PLUGIN_SYSTEM_DIR)

# Opt-in: libvips has no search path besides its module directory (and VIPSHOME, which replaces
# it), so this is the one way to a plain `vips flash2ambient` for every user. The copy there is
# relinked with an absolute rpath PREFIX/lib ($ORIGIN would be the system directory).
install-system-module: install
	@$(MAKE) --no-print-directory install-system-module-files

install-system-module-files:
	@test -n "$(PLUGIN_VIPS_LIBDIR)" || { echo "pkg-config cannot find vips"; exit 1; }
	@if [ -z "$(DESTDIR)" ] && [ ! -w "$(PLUGIN_SYSTEM_DIR)" ]; then \
	  echo "install-system-module: $(PLUGIN_SYSTEM_DIR) is not writable (run as root, or set DESTDIR)"; exit 1; fi
	mkdir -p $(BUILD)/plugin-install
	$(CC) $(PLUGIN_CFLAGS) -shared -o $(BUILD)/plugin-install/vips-flash2ambient.so $(PLUGIN_C) \
	  $(PLUGIN_LIBS) -Wl,-rpath,$(PREFIX)/lib
	install -d $(DESTDIR)$(PLUGIN_SYSTEM_DIR)
	install -m 755 $(BUILD)/plugin-install/vips-flash2ambient.so $(DESTDIR)$(PLUGIN_SYSTEM_DIR)/vips-flash2ambient.so

uninstall-plugin: uninstall-system-module
	rm -rf $(DESTDIR)$(PREFIX)/lib/flash2ambient
	rm -f $(DESTDIR)$(PREFIX)/include/vips-flash2ambient.h

# Removes the system module only when it is this PREFIX's (its rpath is PREFIX/lib).
uninstall-system-module:
	@m=$(DESTDIR)$(PLUGIN_SYSTEM_DIR)/vips-flash2ambient.so; \
	if [ -e "$$m" ]; then \
	  if readelf -d "$$m" | grep -qF 'path: [$(PREFIX)/lib]'; then echo "rm -f $$m"; rm -f "$$m"; \
	  else echo "uninstall: $$m is not from PREFIX=$(PREFIX) (rpath), left alone"; fi; \
	fi

clean-plugin:
	rm -rf $(PLUGIN_VIPSHOME) $(BUILD)/plugin-install $(BUILD)/venv-plugin
