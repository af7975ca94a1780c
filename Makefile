# flash2ambient — build, test, install.
#   make            release build into build/ (f2a, libflash2ambient.so, header, pkg-config, vips module)
#   make test       everything CI runs
#   make demo       the shipped model on the bundled example
#   make install    PREFIX=/usr/local (also the libvips module), make uninstall
#   make bench      speed benchmarks

PREFIX      ?= /usr/local
BUILD       := build
SWIFT       ?= swift
SWIFTFLAGS  := -c release -Xswiftc -static-stdlib
SWIFTBIN     = $(shell $(SWIFT) build $(SWIFTFLAGS) --show-bin-path 2>/dev/null)
WEIGHTS     := weights/default.f2aw
CC          ?= cc
# The header's F2A_VERSION_* macros (Sources/F2AModel/Version.swift is checked against them).
VERSION     := $(shell sed -n 's/^\#define F2A_VERSION_[A-Z]* \([0-9]*\)$$/\1/p' Sources/CFlash2Ambient/include/flash2ambient.h | paste -sd.)
DEB_PACKAGES := libvips-dev libvips-tools libopenblas-dev pkg-config python3-venv

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
	$(call publish,Sources/CFlash2Ambient/include/flash2ambient.h,$(BUILD)/include/flash2ambient.h)
	$(call publish,$(WEIGHTS),$(BUILD)/share/flash2ambient/weights/default.f2aw)
	sed -e 's|@PREFIX@|$(abspath $(BUILD))|' -e 's|@VERSION@|$(VERSION)|' flash2ambient.pc.in > $(BUILD)/lib/pkgconfig/flash2ambient.pc
	touch $@

test: all test-swift test-capi test-onnx test-fuzz

test-swift: | deps
	$(SWIFT) test 2>&1 | tee $(BUILD)/swift-test.log | grep -vE '^\[[0-9]+/[0-9]+\]'; exit $${PIPESTATUS[0]}

test-capi: all
	@# The Swift runtime is linked statically: the .so needs only system libraries and OpenBLAS.
	@if ldd $(BUILD)/lib/libflash2ambient.so | grep -i swift; then echo "FAIL: libflash2ambient.so links the Swift runtime dynamically"; exit 1; fi
	@if nm -D --defined-only $(BUILD)/lib/libflash2ambient.so | awk '$$2 == "T" && $$3 !~ /^f2a_/' | grep .; then \
	  echo "FAIL: functions other than f2a_* are exported"; exit 1; fi
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

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include \
	  $(DESTDIR)$(PREFIX)/share/flash2ambient/weights
	install -m 755 $(BUILD)/bin/f2a $(DESTDIR)$(PREFIX)/bin/f2a
	install -m 755 $(BUILD)/lib/libflash2ambient.so $(DESTDIR)$(PREFIX)/lib/libflash2ambient.so
	install -m 644 $(BUILD)/include/flash2ambient.h $(DESTDIR)$(PREFIX)/include/flash2ambient.h
	install -m 644 $(WEIGHTS) $(DESTDIR)$(PREFIX)/share/flash2ambient/weights/default.f2aw
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' flash2ambient.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/flash2ambient.pc
	-ldconfig 2>/dev/null

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/f2a $(DESTDIR)$(PREFIX)/lib/libflash2ambient.so \
	  $(DESTDIR)$(PREFIX)/include/flash2ambient.h $(DESTDIR)$(PREFIX)/lib/pkgconfig/flash2ambient.pc \
	  $(DESTDIR)$(PREFIX)/share/flash2ambient/weights/default.f2aw
	-rmdir $(DESTDIR)$(PREFIX)/share/flash2ambient/weights $(DESTDIR)$(PREFIX)/share/flash2ambient 2>/dev/null

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
