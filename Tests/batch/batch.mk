# Tests/batch/batch.mk — end-to-end tests of `f2a batch` on the built binary.
# Included by the main Makefile (-include Tests/batch/batch.mk); adds itself to test.
#
#   make test-batch    Tests/batch/test_batch.py build/bin/f2a (python3 standard library + vips tools)
#   make bench-batch   images/s of f2a batch for --jobs 1, 2, 3, 4, auto (Tests/batch/bench.sh)

.PHONY: test-batch bench-batch

test: test-batch

test-batch: all
	python3 Tests/batch/test_batch.py $(BUILD)/bin/f2a $(WEIGHTS)

bench-batch: all
	Tests/batch/bench.sh $(BUILD)/bin/f2a 3
