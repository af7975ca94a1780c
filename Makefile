# flash2ambient — build, test, install.
#   make            release build into build/ (f2a, libflash2ambient.so, header, pkg-config, vips module)
#   make test       everything CI runs
#   make demo       the shipped model on the bundled example
#   make install    PREFIX=/usr/local (DESTDIR honoured; writes nothing outside PREFIX), make uninstall
#   make install-system-module   also the libvips module into libvips's own module directory (root)
#   make dist       relocatable binary tarball build/flash2ambient-VERSION-linux-ARCH.tar.gz; make test-dist
#   make bench      speed benchmarks

PREFIX      ?= /usr/local
BUILD       := build
SWIFT       ?= swift
SWIFTFLAGS  := -c release -Xswiftc -static-stdlib
SWIFTBIN     = $(shell $(SWIFT) build $(SWIFTFLAGS) --show-bin-path 2>/dev/null)
WEIGHTS     := weights/default.f2aw
CC          ?= cc
# The header's F2A_VERSION_* macros, which f2a_version() and Flash2AmbientVersion spell out too.
VERSION     := $(shell sed -n 's/^\#define F2A_VERSION_[A-Z]* \([0-9]*\)$$/\1/p' Sources/CFlash2Ambient/include/flash2ambient.h | paste -sd.)
# Every Debian package the build and `make test` use (besides Swift and make): gcc for the C
# tests and the vips module, valgrind for test-leaks, python3-venv for the ONNX and pyvips tests.
DEB_PACKAGES := gcc libvips-dev libvips-tools libopenblas-dev pkg-config python3-venv valgrind

.PHONY: all deps swift-build test test-swift test-capi test-onnx test-fuzz fuzz demo install uninstall clean bench

all: $(BUILD)/.stamp

# Installs the Debian packages the build needs when run as root and any is missing.
deps:
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "missing Debian packages:$$missing (run as root, or: sudo apt-get install$$missing)"; exit 1; fi; \
	fi

SOURCES := $(shell find Sources -type f) Package.swift

# Copy then rename: a running process that has the old file mapped (a loaded
# libflash2ambient.so) keeps its inode instead of crashing with SIGBUS.
publish = cp $(1) $(2).tmp && mv -f $(2).tmp $(2)

$(BUILD)/.stamp: $(SOURCES) $(WEIGHTS) | deps
	$(SWIFT) build $(SWIFTFLAGS)
	mkdir -p $(BUILD)/bin $(BUILD)/lib/pkgconfig $(BUILD)/include $(BUILD)/share/flash2ambient/weights
	$(call publish,$(SWIFTBIN)/f2a,$(BUILD)/bin/f2a)
	$(call publish,$(SWIFTBIN)/f2a-train,$(BUILD)/bin/f2a-train)
	$(call publish,$(SWIFTBIN)/libflash2ambient.so,$(BUILD)/lib/libflash2ambient.so)
	@# Programs linked with -lflash2ambient record the SONAME and load libflash2ambient.so.0.
	ln -sfn libflash2ambient.so $(BUILD)/lib/libflash2ambient.so.0
	$(call publish,Sources/CFlash2Ambient/include/flash2ambient.h,$(BUILD)/include/flash2ambient.h)
	$(call publish,$(WEIGHTS),$(BUILD)/share/flash2ambient/weights/default.f2aw)
	sed -e 's|@PREFIX@|$(abspath $(BUILD))|' -e 's|@VERSION@|$(VERSION)|' flash2ambient.pc.in > $(BUILD)/lib/pkgconfig/flash2ambient.pc
	touch $@

test: all test-swift test-capi test-onnx test-fuzz

# A failed run ends with the failed tests' issues: a CI log is often read from its tail only.
test-swift: | deps
	$(SWIFT) test 2>&1 | tee $(BUILD)/swift-test.log | grep -vE '^\[[0-9]+/[0-9]+\]'; status=$${PIPESTATUS[0]}; \
	if [ $$status -ne 0 ]; then \
	  echo "== the Swift tests' issues ($(BUILD)/swift-test.log):"; \
	  grep -E '^✘ Test .* recorded an issue' $(BUILD)/swift-test.log | cut -c1-400 | tail -12; \
	fi; exit $$status

test-capi: all
	@# The Swift runtime is linked statically: the .so needs only system libraries and OpenBLAS.
	@if ldd $(BUILD)/lib/libflash2ambient.so | grep -i swift; then echo "FAIL: libflash2ambient.so links the Swift runtime dynamically"; exit 1; fi
	CC=$(CC) Tests/capi/check_exports.sh $(BUILD)/lib/libflash2ambient.so $(BUILD)/include/flash2ambient.h
	$(CC) -std=c11 -Wall -Wextra -Werror -o $(BUILD)/test_capi Tests/capi/test_capi.c \
	  -I$(BUILD)/include -L$(BUILD)/lib -lflash2ambient -Wl,-rpath,$(abspath $(BUILD))/lib -lpthread -lm
	$(BUILD)/test_capi $(BUILD)
	F2A_MAX_MEMORY_MB=100 $(BUILD)/test_capi $(BUILD) --memory-limit

VENV := $(BUILD)/venv
$(VENV)/.stamp: tools/requirements.txt | deps
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r tools/requirements.txt
	touch $@

test-onnx: all $(VENV)/.stamp
	$(VENV)/bin/python Tests/onnx/test_against_onnxruntime.py $(BUILD)

demo: all
	mkdir -p $(BUILD)/demo
	$(BUILD)/bin/f2a apply examples/flash.jpg $(BUILD)/demo/ambient.jpg --verbose
	@echo "wrote $(BUILD)/demo/ambient.jpg (input: examples/flash.jpg)"

# ---- install, uninstall, dist ----------------------------------------------------------------
# Layout under PREFIX, the same in the binary tarball (`make dist`); nothing is written outside
# $(DESTDIR)$(PREFIX), so `make install PREFIX=$HOME/.local` needs no root:
#   bin/f2a, bin/f2a-train
#   lib/libflash2ambient.so.$(VERSION), .so.$(SOMAJOR) -> it (the SONAME), .so -> .so.$(SOMAJOR)
#   lib/pkgconfig/flash2ambient.pc             (variable vipshome)
#   lib/flash2ambient/vipshome/<libvips libdir name>/vips-modules-X.Y/vips-flash2ambient.so
#                                              + links to libvips's stock modules: VIPSHOME=lib/flash2ambient/vipshome
#   lib/flash2ambient/link-vips-modules        (re)makes those links (plugin/plugin.mk)
#   include/flash2ambient.h, include/vips-flash2ambient.h
#   share/flash2ambient/weights/default.f2aw
#   share/man/man1/f2a.1, f2a-train.1
#   share/bash-completion/completions/, share/zsh/site-functions/, share/fish/vendor_completions.d/
#   share/doc/flash2ambient/                   README, model card (licence of the weights), docs, examples
# `make install-system-module` (plugin/plugin.mk) is the opt-in for libvips's own module directory.

SOMAJOR     := $(firstword $(subst ., ,$(VERSION)))
LIBREAL     := libflash2ambient.so.$(VERSION)
LIBSONAME   := libflash2ambient.so.$(SOMAJOR)
TOOLS       := f2a f2a-train
MAN_PAGES   := $(foreach t,$(TOOLS),share/man/man1/$(t).1)
COMPLETIONS := $(foreach t,$(TOOLS),share/bash-completion/completions/$(t) share/zsh/site-functions/_$(t) \
                 share/fish/vendor_completions.d/$(t).fish)
# Installed under share/doc/flash2ambient/ with their repository paths, so relative links still work.
DOC_FILES   := README.md SECURITY.md docs/BATCH.md docs/WEIGHTS_FORMAT.md docs/example-before-after.jpg \
               weights/MODEL_CARD.md weights/recipe.json weights/validation-samples.jpg plugin/README.md \
               examples/ATTRIBUTION.md examples/flash.jpg examples/ambient.jpg examples/vips/flash2ambient_example.c
# The manual's date: the last commit's (reproducible), else today.
MAN_DATE    := $(shell git log -1 --format=%cs 2>/dev/null || date -u +%F)

.PHONY: man completions install-files install-system-module uninstall-system-module dist test-dist

# Man pages and completions are part of the build (build/share/...), so `sudo make install` after
# `make` only copies. Man pages from the tools' own help, by swift-argument-parser's generate-manual
# (a product of the package graph: no extra download).
all: man completions

man: $(addprefix $(BUILD)/,$(MAN_PAGES))

$(BUILD)/share/man/man1/%.1: $(BUILD)/.stamp
	$(SWIFT) build $(SWIFTFLAGS) --product generate-manual
	mkdir -p $(@D)
	$(SWIFTBIN)/generate-manual $(BUILD)/bin/$* --date $(MAN_DATE) --output-directory $(@D)

completions: $(addprefix $(BUILD)/,$(COMPLETIONS))

$(BUILD)/share/bash-completion/completions/%: $(BUILD)/.stamp
	mkdir -p $(@D) && $(BUILD)/bin/$* --generate-completion-script bash > $@.tmp && mv -f $@.tmp $@
$(BUILD)/share/zsh/site-functions/_%: $(BUILD)/.stamp
	mkdir -p $(@D) && $(BUILD)/bin/$* --generate-completion-script zsh > $@.tmp && mv -f $@.tmp $@
$(BUILD)/share/fish/vendor_completions.d/%.fish: $(BUILD)/.stamp
	mkdir -p $(@D) && $(BUILD)/bin/$* --generate-completion-script fish > $@.tmp && mv -f $@.tmp $@

# plugin/plugin.mk adds install-plugin (the module into PREFIX/lib/flash2ambient/vipshome).
install: all
	@$(MAKE) --no-print-directory install-files
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ]; then ldconfig 2>/dev/null || true; fi

# Copies only (install(1) replaces a file rather than writing into it, so running programs keep
# their copy); no build step, so it also runs as another user than the build.
install-files:
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include \
	  $(DESTDIR)$(PREFIX)/share/flash2ambient/weights $(DESTDIR)$(PREFIX)/share/man/man1
	$(foreach t,$(TOOLS),install -m 755 $(BUILD)/bin/$(t) $(DESTDIR)$(PREFIX)/bin/$(t) &&) true
	install -m 755 $(BUILD)/lib/libflash2ambient.so $(DESTDIR)$(PREFIX)/lib/$(LIBREAL)
	ln -sfn $(LIBREAL) $(DESTDIR)$(PREFIX)/lib/$(LIBSONAME)
	ln -sfn $(LIBSONAME) $(DESTDIR)$(PREFIX)/lib/libflash2ambient.so
	install -m 644 $(BUILD)/include/flash2ambient.h $(DESTDIR)$(PREFIX)/include/flash2ambient.h
	install -m 644 $(WEIGHTS) $(DESTDIR)$(PREFIX)/share/flash2ambient/weights/default.f2aw
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' flash2ambient.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/flash2ambient.pc.tmp
	mv -f $(DESTDIR)$(PREFIX)/lib/pkgconfig/flash2ambient.pc.tmp $(DESTDIR)$(PREFIX)/lib/pkgconfig/flash2ambient.pc
	$(foreach f,$(MAN_PAGES) $(COMPLETIONS),install -D -m 644 $(BUILD)/$(f) $(DESTDIR)$(PREFIX)/$(f) &&) true
	$(foreach f,$(DOC_FILES),install -D -m 644 $(f) $(DESTDIR)$(PREFIX)/share/doc/flash2ambient/$(f) &&) true

# plugin/plugin.mk adds uninstall-plugin. Shared directories (bin, lib, share/man, ...) stay.
uninstall:
	rm -f $(foreach t,$(TOOLS),$(DESTDIR)$(PREFIX)/bin/$(t)) \
	  $(DESTDIR)$(PREFIX)/lib/libflash2ambient.so $(DESTDIR)$(PREFIX)/lib/$(LIBSONAME) $(DESTDIR)$(PREFIX)/lib/$(LIBREAL) \
	  $(DESTDIR)$(PREFIX)/include/flash2ambient.h $(DESTDIR)$(PREFIX)/lib/pkgconfig/flash2ambient.pc \
	  $(DESTDIR)$(PREFIX)/share/flash2ambient/weights/default.f2aw \
	  $(foreach f,$(MAN_PAGES) $(COMPLETIONS),$(DESTDIR)$(PREFIX)/$(f))
	rm -rf $(DESTDIR)$(PREFIX)/share/doc/flash2ambient
	-rmdir $(DESTDIR)$(PREFIX)/share/flash2ambient/weights $(DESTDIR)$(PREFIX)/share/flash2ambient 2>/dev/null

# Binary tarball: `make install` into a staging directory, with a relocatable pkg-config file
# (prefix=${pcfiledir}/../..). The programs, the library and the vips module find each other and
# the weights relative to themselves; only Debian's libvips 8.14 and OpenBLAS (and glibc >= 2.35)
# are needed on the target. Reproducible: sorted, owner 0, mtimes and gzip header from the last commit.
DIST_NAME    := flash2ambient-$(VERSION)-linux-$(shell uname -m)
DIST_STAGE   := $(BUILD)/dist
DIST_TARBALL := $(BUILD)/$(DIST_NAME).tar.gz
DIST_EPOCH   := $(shell git log -1 --format=%ct 2>/dev/null || date +%s)

dist: all
	rm -rf $(DIST_STAGE)
	@$(MAKE) --no-print-directory install-files install-plugin-files DESTDIR=$(abspath $(DIST_STAGE)) PREFIX=/$(DIST_NAME)
	sed -i 's|^prefix=.*|prefix=$${pcfiledir}/../..|' $(DIST_STAGE)/$(DIST_NAME)/lib/pkgconfig/flash2ambient.pc
	install -m 644 packaging/Containerfile $(DIST_STAGE)/$(DIST_NAME)/share/doc/flash2ambient/Containerfile
	tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@$(DIST_EPOCH) \
	  -C $(DIST_STAGE) -cf - $(DIST_NAME) | gzip -n > $(DIST_TARBALL).tmp
	mv -f $(DIST_TARBALL).tmp $(DIST_TARBALL)
	@echo "wrote $(DIST_TARBALL) ($$(du -k $(DIST_TARBALL) | cut -f1) KiB)"

# Unpacks the tarball elsewhere and uses it as a cluster node would (packaging/test-dist.sh);
# also installs with PREFIX and DESTDIR into temporary directories and uninstalls.
test-dist: dist
	packaging/test-dist.sh $(DIST_TARBALL) $(VERSION)

test: test-dist

clean:
	rm -rf $(BUILD) .build

# Fuzzing (libFuzzer + AddressSanitizer). SwiftPM links executables with its
# own main, so the targets run libFuzzer through LLVMFuzzerRunDriver from the
# no-main runtime. Two targets: the weights reader (f2a-fuzz-weights) and the
# C ABI entry points (f2a-fuzz-capi, Tests/fuzz/FuzzCAPI). FUZZ_SECONDS per
# target; CI runs test-fuzz (60 s each). Corpora grow in build/fuzz/<target>,
# seeded from Tests/fuzz/corpus/<target>; the final stats go to build/fuzz/<target>.log.
# SWIFT_BACKTRACE=enable=no: Swift's crash backtracer and ASan fight over a trap
# (it hangs); libFuzzer prints the stack instead.
FUZZ_SECONDS ?= 60
FUZZER_LIB = $(shell find $$(dirname $$(readlink -f $$(command -v swiftc)))/../lib/clang -name 'libclang_rt.fuzzer_no_main-x86_64.a' | head -1)
FUZZ_BUILD = $(SWIFT) build -c debug --scratch-path .build-fuzz \
  -Xswiftc -sanitize=address -Xswiftc -sanitize-coverage=edge,inline-8bit-counters,pc-table,trace-cmp \
  -Xswiftc -DFUZZING -Xlinker $(FUZZER_LIB) -Xlinker -lstdc++
# fuzz_run NAME FLAGS ENV: run .build-fuzz/debug/f2a-fuzz-NAME on its corpus for FUZZ_SECONDS
fuzz_run = mkdir -p $(BUILD)/fuzz/$(1) && cp -n Tests/fuzz/corpus/$(1)/* $(BUILD)/fuzz/$(1)/ && \
  SWIFT_BACKTRACE=enable=no $(3) .build-fuzz/debug/f2a-fuzz-$(1) $(BUILD)/fuzz/$(1) -max_total_time=$(FUZZ_SECONDS) \
  -rss_limit_mb=2048 -print_final_stats=1 $(2) >$(BUILD)/fuzz/$(1).log 2>&1; \
  status=$$?; grep -vE '^("|\#\#\#\#\#\#|\#[0-9]+)' $(BUILD)/fuzz/$(1).log | tail -12; exit $$status

fuzz: | deps
	$(FUZZ_BUILD) --product f2a-fuzz-weights
	$(FUZZ_BUILD) --product f2a-fuzz-capi
	$(call fuzz_run,weights,-max_len=16384)
	$(call fuzz_run,capi,-max_len=1024 -timeout=20,F2A_FUZZ_MODELS=Tests/fuzz/models)

test-fuzz: fuzz

SHELL := /bin/bash

-include plugin/plugin.mk

-include bench/bench.mk
-include Tests/batch/batch.mk
-include Tests/cli/cli.mk
-include Tests/hardening/hardening.mk
-include Tests/import_vgg/import_vgg.mk
