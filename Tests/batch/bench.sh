#!/usr/bin/env bash
# Throughput of `f2a batch` for --jobs 1, 2, 3, 4 and auto on small synthetic photos
# (made from examples/flash.jpg). Usage: Tests/batch/bench.sh [F2A] [REPEATS]
# Prints per run: images/s from the summary line (wall clock, model load included) and
# CPU seconds per image (user + system: the cost, independent of other load on the machine).
set -u
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
F2A="${1:-$ROOT/build/bin/f2a}"
REPEATS="${2:-3}"
W="$(mktemp -d)"
trap 'rm -rf "$W"' EXIT
mkdir -p "$W/small" "$W/mid"
vips thumbnail "$ROOT/examples/flash.jpg" "$W/s.jpg" 64 || exit 1
vips thumbnail "$ROOT/examples/flash.jpg" "$W/m.jpg" 320 || exit 1
for i in $(seq -w 1 24); do cp "$W/s.jpg" "$W/small/s$i.jpg"; done
for i in $(seq -w 1 8); do cp "$W/m.jpg" "$W/mid/m$i.jpg"; done
echo "# $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for set in small mid; do
	echo "# $set: $(vipsheader "$(ls -d "$W/$set/"* | head -1)" | cut -d: -f2)"
	for r in $(seq "$REPEATS"); do
		for j in 1 2 3 4 auto; do
			rm -rf "$W/out"
			TIMEFORMAT='%R %U %S'
			{ time "$F2A" batch "$W/$set" -o "$W/out" -j "$j" --model "$ROOT/weights/default.f2aw" \
				>"$W/summary" 2>/dev/null; } 2>"$W/time"
			rate="$(head -1 "$W/summary" | sed -E 's/.*\(([0-9.]+) images\/s\).*/\1/')"
			n="$(ls "$W/$set" | wc -l)"
			cpu="$(awk -v n="$n" '{ printf "%.3f", ($2 + $3) / n }' "$W/time")"
			printf '%s\tjobs=%s\trun=%s\t%s images/s\t%s cpu-s/image\n' "$set" "$j" "$r" "$rate" "$cpu"
		done
	done
done
echo "# load $(cut -d' ' -f1-3 /proc/loadavg)"
