# bench/bench.mk — `make bench` (included at the end of the Makefile).
#
#   make bench                        engine speed vs onnxruntime and OpenVINO + photo level vs vips copy
#   make bench BENCH_RUNS=7           timed runs per engine and cell (default 5)
#   make bench BENCH_CELLS="w1@256 default@256x192"   other cells (MODEL@SIZE, see bench/bench.py)
#   make bench BENCH_PEERS=ort        compare with onnxruntime only (ort, ov or both)
#   make bench BENCH_PHOTO_RUNS=7     timed runs per command and photo size (default 5)
#   make bench BENCH_PHOTO_SIZES="12" photo sizes in MP (default 12 24 48); BENCH_PHOTO_SRC=FILE
#   make bench BENCH_LAYERS=1         also per-layer times at 512² (ours and onnxruntime)
#   make bench BENCH_PHOTO=0 / BENCH_SPEED=0   skip a part
# Results: printed, and in build/bench/results.json. See bench/README.md.
#
#   make bench-train                  training throughput: f2a-train bench vs PyTorch (not part of make bench)
#   make bench-train BENCH_TRAIN_ARGS="--rounds 5 --only w1.0"   options of bench/train/bench_train.py
# Results: printed, and in build/bench-train/results.json.

BENCH_ENV := $(foreach v,BENCH_QUICK BENCH_RUNS BENCH_WARMUP BENCH_CELLS BENCH_PEERS BENCH_WIDTHS BENCH_SIZES BENCH_SPEED BENCH_PHOTO BENCH_PHOTO_RUNS BENCH_PHOTO_WARMUP BENCH_PHOTO_SIZES BENCH_PHOTO_SRC BENCH_LAYERS BENCH_LAYER_RUNS BENCH_OUT BENCH_SETTLE_MS BENCH_ISA,$(if $(value $(v)),$(v)='$($(v))'))

.PHONY: bench bench-tool bench-train

# f2a-bench (per-layer timings) beside f2a; `make all` builds every product, so this only copies.
bench-tool: all
	$(SWIFT) build $(SWIFTFLAGS) --product f2a-bench
	mkdir -p $(BUILD)/bin
	cp $(SWIFTBIN)/f2a-bench $(BUILD)/bin/f2a-bench

# OpenVINO (bench/requirements.txt) goes into the tools venv beside onnxruntime: only make bench uses it.
$(VENV)/.stamp-bench: bench/requirements.txt $(VENV)/.stamp
	$(VENV)/bin/pip install -q --disable-pip-version-check -r bench/requirements.txt
	touch $@

bench: all bench-tool $(VENV)/.stamp-bench
	$(BENCH_ENV) $(VENV)/bin/python bench/bench.py $(BUILD)

# PyTorch gets its own venv: it is large (~5 GB with the CUDA libraries PyPI's wheel pulls in)
# and only this benchmark needs it.
TORCH_VENV := $(BUILD)/venv-torch
$(TORCH_VENV)/.stamp: bench/train/requirements.txt | deps
	python3 -m venv $(TORCH_VENV)
	$(TORCH_VENV)/bin/pip install -q --disable-pip-version-check -r bench/train/requirements.txt
	touch $@

bench-train: all $(TORCH_VENV)/.stamp
	$(TORCH_VENV)/bin/python bench/train/bench_train.py $(BUILD) $(BENCH_TRAIN_ARGS)
