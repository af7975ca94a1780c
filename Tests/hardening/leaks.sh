#!/usr/bin/env bash
# Memory errors and leaks:
#  1. Tests/capi/test_capi.c built with AddressSanitizer + LeakSanitizer (the Swift toolchain's
#     clang) against the release libflash2ambient.so, both of its runs (all tests; memory limit).
#     The library itself is not instrumented, but its malloc/free go through ASan's allocator,
#     so LSan sees every block it leaks and ASan every double or mismatched free.
#  2. `vips flash2ambient` (full, guided and tiled modes) under valgrind memcheck:
#     0 errors, 0 bytes definitely lost.
# Usage: leaks.sh BUILD_DIR   Prints one line per check and "N passed, M failed".
set -u
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="$(cd "${1:-build}" && pwd)"
W="$BUILD/hardening/leaks"
rm -rf "$W" && mkdir -p "$W" && cd "$W" || exit 1
unset F2A_MODEL
passed=0 failed=0
pass() { passed=$((passed + 1)); echo "ok    $*"; }
fail() { failed=$((failed + 1)); echo "FAIL  $*"; }
CLANG="${ASAN_CC:-$(dirname "$(readlink -f "$(command -v swiftc)")")/clang}"

# --- 1. ASan + LSan on the C API test program --------------------------------------------------
if "$CLANG" -std=c11 -g -O1 -fno-omit-frame-pointer -fsanitize=address -o test_capi_asan \
	"$ROOT/Tests/capi/test_capi.c" -I"$BUILD/include" -L"$BUILD/lib" -lflash2ambient \
	-Wl,-rpath,"$BUILD/lib" -lpthread -lm >cc.log 2>&1; then
	for args in "" "--memory-limit"; do
		env=""; [ -n "$args" ] && env="F2A_MAX_MEMORY_MB=100"
		# LSan runs at exit and turns any leak into exit code 23; ASan errors abort at once.
		if env $env ASAN_OPTIONS=detect_leaks=1:exitcode=23:halt_on_error=1 LSAN_OPTIONS=exitcode=23 \
			SWIFT_BACKTRACE=enable=no ./test_capi_asan "$BUILD" $args >asan.log 2>&1; then
			pass "test_capi $args under ASan+LSan: $(grep -E 'passed' asan.log | tail -1), 0 errors, 0 leaks"
		else
			fail "test_capi $args under ASan+LSan (exit $?)"; grep -E 'ERROR|SUMMARY|#[0-9] ' asan.log | head -20 | sed 's/^/      /'
		fi
	done
else
	fail "cannot build test_capi with $CLANG -fsanitize=address"; tail -5 cc.log | sed 's/^/      /'
fi

# --- 2. valgrind memcheck on vips flash2ambient ---------------------------------------------------
if ! command -v valgrind >/dev/null; then
	fail "valgrind is not installed (apt-get install valgrind)"
else
	export VIPSHOME="$BUILD/vipshome"
	# valgrind 3.19 (Debian 12) cannot read the DWARF 5 forms clang emits (it gives up on the
	# whole run): use a copy of the library without debug sections (symbols stay), found first
	# through LD_LIBRARY_PATH (the module's rpath is a RUNPATH) under the SONAME the module needs.
	mkdir -p lib && objcopy --strip-debug "$BUILD/lib/libflash2ambient.so" lib/libflash2ambient.so.0 || exit 1
	MODEL="$BUILD/share/flash2ambient/weights/default.f2aw"
	vips xyz xy.v 40 33 && vips linear xy.v xy8.v "5 6" "10 20" --uchar && vips sines sn.v 40 33 --uchar &&
		vips bandjoin "xy8.v sn.v" rgb0.v && vips copy rgb0.v small.png --interpretation srgb &&
		vips replicate small.png wide0.v 8 1 && vips crop wide0.v wide.png 0 0 300 20 &&
		vips replicate small.png big0.v 8 3 && vips crop big0.v big.jpg 0 0 320 96 || { echo "cannot make inputs"; exit 1; }
	# big.jpg guided at 16: pass 1 reads the file again shrunk on load (by 8), pass 2 maps its bytes.
	# 320x96, whole 8x8 blocks at 1/8: libjpeg's scaled decode of a partial edge block reads
	# buffer memory it never wrote, as memcheck sees it (300x80: `vips copy "big.jpg[shrink=8]"`
	# alone reports 306 errors), which then flows into every later step; not this code's.
	for spec in "small.png full" "small.png guided --working-size 24" "wide.png tiled --tile-size 256" \
		"big.jpg guided --working-size 16"; do
		set -- $spec
		f=$1 mode=$2; shift 2
		# One suppression (valgrind.supp): the dynamic loader's own strncmp over RPATH strings.
		# The glib/libvips type system, OpenBLAS's thread pool and the Swift runtime keep one-time
		# allocations reachable until exit ("still reachable" / "possibly lost"); those are not
		# counted, only definite leaks and memory errors are.
		if LD_LIBRARY_PATH="$W/lib" valgrind --tool=memcheck --suppressions="$ROOT/Tests/hardening/valgrind.supp" --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite \
			--error-exitcode=99 --num-callers=30 --log-file=vg-$mode-$f.log \
			vips flash2ambient "$f" "out-$mode.png" --model "$MODEL" --mode "$mode" "$@" >run.log 2>&1; then
			summary="$(grep -E 'ERROR SUMMARY' vg-$mode-$f.log | sed 's/.*ERROR SUMMARY: //')"
			lost="$(grep -E 'definitely lost:' vg-$mode-$f.log | sed 's/.*definitely lost: //' || true)"
			pass "valgrind vips flash2ambient $f --mode $mode: $summary, definitely lost: ${lost:-0 bytes (no leaks possible)}"
		else
			fail "valgrind vips flash2ambient $f --mode $mode (exit $?)"
			# The first report with its innermost frames, so a CI log alone says where it is.
			grep -m1 -A8 -E 'Invalid|uninitialised|Mismatched|definitely lost in' vg-$mode-$f.log | sed 's/^/      /'
			grep -E 'ERROR SUMMARY' vg-$mode-$f.log | sed 's/^/      /'
			tail -3 run.log | sed 's/^/      /'
		fi
	done
fi

echo "leaks: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
