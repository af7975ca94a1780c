# plugin/plugin.mk — the libvips operation "flash2ambient" as a libvips module.
# Included by the main Makefile (-include plugin/plugin.mk); adds itself to
# all / test / install / uninstall.
#
#   make plugin            build/vipshome/<multiarch>/vips-modules-X.Y/vips-flash2ambient.so
#                          (+ links to the stock modules): use with VIPSHOME=$PWD/build/vipshome
#   make test-plugin       Tests/plugin/run.sh
#   make install-plugin    module into $(pkg-config --variable=libdir vips)/vips-modules-X.Y,
#                          header into PREFIX/include (run by make install)
#   make uninstall-plugin  (run by make uninstall)

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
PLUGIN_INSTALL_DIR  = $(PLUGIN_VIPS_LIBDIR)/$(PLUGIN_MODDIR_NAME)
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

.PHONY: plugin plugin-build test-plugin install-plugin install-plugin-files uninstall-plugin clean-plugin

all: plugin
test: test-plugin
install: install-plugin
uninstall: uninstall-plugin

# The PLUGIN_* paths come from pkg-config when make reads this file; on a fresh machine
# libvips-dev only arrives with `deps`, so the real work happens in a sub-make that
# re-reads them afterwards.
plugin: $(PLUGIN_LIBDEP) | deps
	@$(MAKE) --no-print-directory plugin-build

plugin-build: $(PLUGIN_MODULE) $(BUILD)/include/vips-flash2ambient.h

$(BUILD)/include/vips-flash2ambient.h: plugin/vips-flash2ambient.h
	mkdir -p $(BUILD)/include
	cp $< $@

# Build-tree module: finds build/lib/libflash2ambient.so through an $ORIGIN rpath,
# so build/ can be moved as a whole.
$(PLUGIN_MODULE): $(PLUGIN_SRC) $(PLUGIN_LIBDEP) plugin/plugin.mk
	@test -n "$(PLUGIN_VIPS_MINOR)" || { echo "pkg-config cannot find vips (apt-get install libvips-dev)"; exit 1; }
	mkdir -p $(PLUGIN_MODDIR)
	$(CC) $(PLUGIN_CFLAGS) -shared -o $@.tmp $(PLUGIN_C) $(PLUGIN_LIBS) \
	  -Wl,-rpath,'$$ORIGIN/../../../lib'
	mv -f $@.tmp $@
	@# VIPSHOME replaces the system module path: link the stock modules (heif, jxl, magick, ...)
	@# so their loaders stay available. Never link an installed copy of ourselves.
	find $(PLUGIN_MODDIR) -maxdepth 1 -type l -delete
	for m in $(PLUGIN_INSTALL_DIR)/*.so; do \
	  [ -e "$$m" ] || continue; \
	  [ "$$(basename $$m)" = vips-flash2ambient.so ] && continue; \
	  ln -sfn "$$m" $(PLUGIN_MODDIR)/; \
	done

test-plugin: plugin
	Tests/plugin/run.sh

# The installed module gets an absolute rpath to PREFIX/lib (where `make install`
# puts libflash2ambient.so), so it works with a plain environment.
install-plugin: plugin
	@$(MAKE) --no-print-directory install-plugin-files

install-plugin-files:
	@test -n "$(PLUGIN_VIPS_LIBDIR)" || { echo "pkg-config cannot find vips"; exit 1; }
	@if [ -z "$(DESTDIR)" ] && [ ! -w "$(PLUGIN_INSTALL_DIR)" ] && [ -e "$(PLUGIN_INSTALL_DIR)" ]; then \
	  echo "install-plugin: $(PLUGIN_INSTALL_DIR) is not writable (run as root, or set DESTDIR)"; exit 1; fi
	mkdir -p $(BUILD)/plugin-install
	$(CC) $(PLUGIN_CFLAGS) -shared -o $(BUILD)/plugin-install/vips-flash2ambient.so $(PLUGIN_C) \
	  $(PLUGIN_LIBS) -Wl,-rpath,$(PREFIX)/lib
	install -d $(DESTDIR)$(PLUGIN_INSTALL_DIR) $(DESTDIR)$(PREFIX)/include
	install -m 755 $(BUILD)/plugin-install/vips-flash2ambient.so $(DESTDIR)$(PLUGIN_INSTALL_DIR)/vips-flash2ambient.so
	install -m 644 plugin/vips-flash2ambient.h $(DESTDIR)$(PREFIX)/include/vips-flash2ambient.h

uninstall-plugin:
	rm -f $(DESTDIR)$(PLUGIN_INSTALL_DIR)/vips-flash2ambient.so $(DESTDIR)$(PREFIX)/include/vips-flash2ambient.h

clean-plugin:
	rm -rf $(PLUGIN_VIPSHOME) $(BUILD)/plugin-install $(BUILD)/plugin-test $(BUILD)/venv-plugin
