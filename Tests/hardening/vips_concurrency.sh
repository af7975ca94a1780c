#!/usr/bin/env bash
# vips flash2ambient under VIPS_CONCURRENCY=8 equals VIPS_CONCURRENCY=1, pixel for pixel,
# on a large image (3000x2000, guided mode) and, in tiled mode (slower: the network at full
# resolution), on a 16-bit 1100x600 crop of it (3x2 tiles).
# Usage: vips_concurrency.sh BUILD_DIR   Prints one line per check and "N passed, M failed".
set -u
BUILD="$(cd "${1:-build}" && pwd)"
export VIPSHOME="$BUILD/vipshome"
unset F2A_MODEL
W="$BUILD/hardening/vips-concurrency"
rm -rf "$W" && mkdir -p "$W" && cd "$W" || exit 1
passed=0 failed=0
maxdiff() { vips subtract "$1" "$2" d.v && vips abs d.v a.v && printf '%.0f\n' "$(vips max a.v)"; }

vips xyz xy.v 3000 2000 && vips linear xy.v xy8.v "0.085 0.12" "10 5" --uchar &&
	vips sines sn.v 3000 2000 --hfreq 7 --vfreq 3 --uchar && vips bandjoin "xy8.v sn.v" rgb0.v &&
	vips copy rgb0.v big.v --interpretation srgb &&
	vips colourspace big.v big16a.v rgb16 && vips crop big16a.v big16.v 1000 700 1100 600 || { echo "cannot make the input"; exit 1; }

for spec in "big.v guided" "big16.v tiled"; do
	set -- $spec
	f=$1 mode=$2
	for c in 1 8; do
		start=$(date +%s%N)
		if ! VIPS_CONCURRENCY=$c vips flash2ambient "$f" "out-$c-$f" --mode "$mode" >run.log 2>&1; then
			echo "FAIL  $f $mode VIPS_CONCURRENCY=$c: $(tail -1 run.log)"; failed=$((failed + 1)); continue 2
		fi
		echo "      $f ($(vipsheader "$f" | cut -d, -f1 | sed 's/.*: //')) --mode $mode, VIPS_CONCURRENCY=$c: $(( ($(date +%s%N) - start) / 1000000 )) ms"
	done
	d="$(maxdiff "out-1-$f" "out-8-$f")"
	if [ "$d" = 0 ]; then
		echo "ok    $f --mode $mode: VIPS_CONCURRENCY=8 output identical to VIPS_CONCURRENCY=1"; passed=$((passed + 1))
	else
		echo "FAIL  $f --mode $mode: VIPS_CONCURRENCY=8 differs from 1 by up to $d"; failed=$((failed + 1))
	fi
done
echo "vips-concurrency: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
