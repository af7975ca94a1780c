# Tests/hardening/hardening.mk — hostile inputs, concurrency, leaks and memory growth (issue #9).
# Included by the main Makefile (-include Tests/hardening/hardening.mk); adds itself to test.
# Fuzzing is `make fuzz` / `make test-fuzz` in the main Makefile. See SECURITY.md.
#
#   make test-hardening     all of the below (about 3-4 minutes on 2 cores)
#   make test-hostile       Tests/hardening/hostile.py: hostile images through f2a apply and vips
#                           flash2ambient under a 4 GiB address-space cap (MEMORY_CAP_MB)
#   make test-concurrency   8 threads x 50 applies on one model bit-identical (concurrency.c);
#                           vips flash2ambient VIPS_CONCURRENCY=8 == 1 on 3000x2000 (vips_concurrency.sh);
#                           the pool's workers wake on another CPU than the caller's (pool_wake.c)
#   make test-leaks         test_capi under ASan+LSan; vips flash2ambient under valgrind (leaks.sh)
#   make test-rss           RSS growth from apply 100 to 1000 in one process <= RSS_BOUND_KB (rss.c)
#   make test-reliability   Tests/hardening/reliability.py: inputs never overwritten, whatever path spells them;
#                           weights too large for ulimit -v, PNG bombs, SVG includes, non-UTF-8 names, pages

HARDENING_DIR := $(BUILD)/hardening
RSS_BOUND_KB  ?= 2048
HARDENING_CC   = $(CC) -std=gnu11 -O2 -Wall -Wextra -Werror -I$(BUILD)/include -L$(BUILD)/lib \
                 -Wl,-rpath,$(abspath $(BUILD))/lib

.PHONY: test-hardening test-hostile test-concurrency test-leaks test-rss test-reliability hardening-deps

test: test-hardening

test-hardening: test-hostile test-concurrency test-leaks test-rss test-reliability

# valgrind is the only extra Debian package (installed when run as root, like `deps`).
hardening-deps:
	@command -v valgrind >/dev/null || { if [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null; \
	  else echo "valgrind missing (sudo apt-get install valgrind)"; exit 1; fi; }

test-hostile: plugin
	python3 Tests/hardening/hostile.py $(BUILD)

test-concurrency: plugin
	mkdir -p $(HARDENING_DIR)
	$(HARDENING_CC) -o $(HARDENING_DIR)/concurrency Tests/hardening/concurrency.c -lflash2ambient -lpthread
	$(HARDENING_DIR)/concurrency $(BUILD) 8 50
	Tests/hardening/vips_concurrency.sh $(BUILD)
	$(CC) -std=gnu11 -O2 -Wall -Wextra -Werror -ISources/CKernels/include -o $(HARDENING_DIR)/pool_wake \
	  Tests/hardening/pool_wake.c Sources/CKernels/pool.c Sources/CKernels/cpu.c -lpthread
	$(HARDENING_DIR)/pool_wake

test-leaks: plugin | hardening-deps
	Tests/hardening/leaks.sh $(BUILD)

# test_capi --load-out-of-memory: f2a_model_load under an address-space limit.
test-reliability: plugin
	mkdir -p $(HARDENING_DIR)
	$(HARDENING_CC) -o $(HARDENING_DIR)/test_capi Tests/capi/test_capi.c -lflash2ambient -lpthread -lm
	python3 Tests/hardening/reliability.py $(BUILD)

test-rss: all
	mkdir -p $(HARDENING_DIR)
	$(HARDENING_CC) -o $(HARDENING_DIR)/rss Tests/hardening/rss.c -lflash2ambient
	$(HARDENING_DIR)/rss $(BUILD) 1000 $(RSS_BOUND_KB)
