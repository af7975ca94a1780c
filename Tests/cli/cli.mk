# Tests/cli/cli.mk — end-to-end tests of f2a apply, eval and info on the built binary.
# Included by the main Makefile (-include Tests/cli/cli.mk); adds itself to test.
#
#   make test-cli    Tests/cli/test_cli.py build/bin/f2a (python3 standard library + vips tools)

.PHONY: test-cli

test: test-cli

test-cli: all
	python3 Tests/cli/test_cli.py $(BUILD)/bin/f2a $(WEIGHTS)
