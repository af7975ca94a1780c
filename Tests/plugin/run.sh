#!/usr/bin/env bash
# Tests of the libvips operation "flash2ambient" (plugin/), run by `make test-plugin`.
# Uses the build tree only: VIPSHOME=build/vipshome, build/bin/f2a, build/lib.
# Prints one line per check and a final "plugin: N passed, M failed" (Tests/lib/checks.sh); exits 1
# on failures. The work directory is removed unless a check failed.
# F2A_SKIP_PYVIPS=1 skips the pyvips part (it needs PyPI the first time).
set -u

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="${BUILD:-$ROOT/build}"
[[ "$BUILD" = /* ]] || BUILD="$ROOT/$BUILD"
export VIPSHOME="$BUILD/vipshome"
unset F2A_MODEL
F2A="$BUILD/bin/f2a"
MODEL="$BUILD/share/flash2ambient/weights/default.f2aw"
. "$ROOT/Tests/lib/checks.sh"
checks_workdir f2a-test-plugin
cd "$W" || exit 1

# "width height bands format coding interpretation" of an image file
layout() {
	vipsheader -a "$1" | awk -F': ' '$1 ~ /^(width|height|bands|format|coding|interpretation)$/ { printf "%s ", $2 }'
}
# maximum absolute difference between two images (same layout), as an integer
maxdiff() {
	local d
	d="$(vips subtract "$1" "$2" "$W/d.v" && vips abs "$W/d.v" "$W/a.v" && vips max "$W/a.v")" || return 1
	printf '%.0f\n' "$d"
}
# band $3 of $1 and $2 are bit-identical
same_band() {
	vips extract_band "$1" "$W/b1.v" "$3" && vips extract_band "$2" "$W/b2.v" "$3" &&
	[ "$(maxdiff "$W/b1.v" "$W/b2.v")" = 0 ]
}
meta_md5() { vipsheader -f "$2" "$1" 2>/dev/null | md5sum | cut -c1-32; }

# --- module discovery ------------------------------------------------------------------
check "vips -l lists flash2ambient" bash -c 'vips -l | grep -q "(flash2ambient)"'
check "vips flash2ambient prints usage" bash -c 'vips flash2ambient 2>&1 | grep -q "usage:" && vips flash2ambient 2>&1 | grep -q strength'
check "stock modules still load (heif saver present)" bash -c 'vips -l | grep -q heifsave'

# --- inputs, made with vips itself -------------------------------------------------------
# 97x65: odd sizes, not a multiple of the model's 16. A smooth 3-band pattern.
vips xyz xy.v 97 65 &&
	vips linear xy.v xy8.v "2.5 3.5" "10 20" --uchar &&
	vips sines sn.v 97 65 --uchar &&
	vips bandjoin "xy8.v sn.v" rgb0.v &&
	vips copy rgb0.v rgb.v --interpretation srgb &&
	vips extract_band xy8.v alpha.v 0 &&
	vips linear alpha.v alpha16.v 257 0 &&
	vips cast alpha16.v alpha16u.v ushort || { echo "cannot make test inputs"; exit 1; }

make_inputs() {
	vips copy rgb.v in-srgb.jpg &&
	vips copy rgb.v in-srgb.png &&
	vips icc_transform rgb.v in-srgb-icc.jpg srgb &&
	vips colourspace rgb.v rgb16.v rgb16 && vips copy rgb16.v in-rgb16.png && vips copy rgb16.v in-rgb16.tif &&
	vips colourspace rgb.v in-bw.png b-w &&
	vips colourspace rgb.v in-grey16.png grey16 &&
	vips icc_transform rgb.v in-cmyk.jpg cmyk && vips copy in-cmyk.jpg in-cmyk.tif &&
	vips colourspace rgb.v in-scrgb.tif scrgb &&
	vips colourspace rgb.v in-lab.v lab &&
	vips colourspace rgb.v in-labq.v labq &&
	vips colourspace rgb.v sc.v scrgb && vips float2rad sc.v in-rad.v &&
	vips colourspace rgb.v bw.v b-w && vips bandjoin "bw.v alpha.v" in-bwa.png &&
	vips bandjoin "rgb.v alpha.v" in-rgba.png &&
	vips bandjoin "rgb16.v alpha16u.v" in-rgba16.png &&
	vips crop rgb.v in-1x1.png 10 10 1 1 &&
	vips crop rgb.v in-3x5.png 10 10 3 5 &&
	vips crop in-rgba.png in-1x1a.png 20 20 1 1 &&
	vips bandjoin "rgb.v alpha.v sn.v" in-5band.v
}
make_inputs >inputs.log 2>&1 || { echo "cannot make test inputs:"; cat inputs.log; exit 1; }

# --- each input kind: layout kept, alpha bit-exact -------------------------------------
for f in in-srgb.jpg in-srgb.png in-srgb-icc.jpg in-rgb16.png in-rgb16.tif in-bw.png in-grey16.png \
	in-cmyk.jpg in-cmyk.tif in-scrgb.tif in-lab.v in-labq.v in-rad.v in-bwa.png in-rgba.png \
	in-rgba16.png in-1x1.png in-3x5.png in-1x1a.png in-5band.v; do
	out="out-${f#in-}"
	if ! vips flash2ambient "$f" "$out" >run.log 2>&1; then
		fail "$f: vips flash2ambient failed" run.log; continue
	fi
	a="$(layout "$f")"; b="$(layout "$out")"
	if [ "$a" = "$b" ]; then pass "$f -> $out: same layout ($a)"; else fail "$f -> $out: layout '$a' became '$b'"; fi
	case "$f" in
	in-bwa.png|in-rgba.png|in-rgba16.png|in-1x1a.png)
		bands=$(vipsheader -f bands "$f")
		check "$f: alpha band bit-exact" same_band "$f" "$out" $((bands - 1)) ;;
	in-5band.v)
		check "$f: extra bands 3 and 4 bit-exact" bash -c "$(declare -f maxdiff same_band); W=$W; same_band $f $out 3 && same_band $f $out 4" ;;
	esac
done

# the result is not just the input again (strength 1 changes pixels), and strength 0 is ~identity
check "strength 1 changes the image" bash -c "[ \"\$(vips avg out-srgb.png)\" != \"\$(vips avg in-srgb.png)\" ]"
vips flash2ambient in-srgb.png s0.png --strength 0 >/dev/null 2>&1
check "strength 0 returns the input (within 1/255)" test "$(maxdiff s0.png in-srgb.png)" -le 1

# --- metadata ------------------------------------------------------------------------
check "ICC profile kept (sRGB jpeg)" bash -c "[ -n \"\$(vipsheader -f icc-profile-data in-srgb-icc.jpg)\" ] &&
	[ \"\$(vipsheader -f icc-profile-data in-srgb-icc.jpg | md5sum)\" = \"\$(vipsheader -f icc-profile-data out-srgb-icc.jpg | md5sum)\" ]"
check "ICC profile kept (CMYK tiff)" bash -c "[ \"\$(vipsheader -f icc-profile-data in-cmyk.tif | md5sum)\" = \"\$(vipsheader -f icc-profile-data out-cmyk.tif | md5sum)\" ]"
check "resolution kept" bash -c "vips copy in-srgb.png res.v --xres 11.811 --yres 11.811 && vips flash2ambient res.v res-out.v &&
	[ \"\$(vipsheader -f xres res-out.v)\" = \"\$(vipsheader -f xres res.v)\" ]"

# --- same pixels as f2a apply ----------------------------------------------------------
# in-*: synthetic; flash.jpg: the bundled photograph (540x720, no EXIF rotation)
cp "$ROOT/examples/flash.jpg" in-photo.jpg 2>/dev/null
for f in in-srgb.png in-srgb.jpg in-rgba.png in-photo.jpg; do
	[ -f "$f" ] || continue
	if "$F2A" apply "$f" "f2a-${f#in-}.png" >f2a.log 2>&1 && vips flash2ambient "$f" "vips-${f#in-}.png" >>f2a.log 2>&1; then
		d="$(maxdiff "f2a-${f#in-}.png" "vips-${f#in-}.png")"
		if [ "$d" -le 1 ] 2>/dev/null; then pass "$f: equals f2a apply (max diff $d/255)"; else fail "$f: differs from f2a apply by $d/255"; fi
	else
		fail "$f: f2a apply / vips flash2ambient failed" f2a.log
	fi
done
# one conversion for both (Sources/CVipsConvert): CMYK, CMYK + alpha and extra bands give f2a apply
# and the operation the same layout and pixels (f2a apply used to drop all but the last extra band)
vips bandjoin "in-cmyk.tif alpha.v" in-cmyka.tif >/dev/null 2>&1 && vips copy in-5band.v in-5band.tif >/dev/null 2>&1
for f in in-cmyk.jpg in-cmyk.tif in-cmyka.tif in-5band.tif; do
	o="${f#in-}"
	if "$F2A" apply "$f" "f2a-$o" >f2a.log 2>&1 && vips flash2ambient "$f" "vips-$o" >>f2a.log 2>&1; then
		a="$(layout "$f")"; b="$(layout "f2a-$o")"; c="$(layout "vips-$o")"
		d="$(maxdiff "f2a-$o" "vips-$o")"
		if [ "$a" = "$b" ] && [ "$b" = "$c" ] && [ "$d" = 0 ]; then
			pass "$f: f2a apply and vips flash2ambient agree ($a, max diff $d)"
		else
			fail "$f: in '$a', f2a apply '$b', vips flash2ambient '$c', max diff ${d:-?}"
		fi
	else
		fail "$f: f2a apply / vips flash2ambient failed" f2a.log
	fi
done
check "in-cmyka.tif: alpha band bit-exact through f2a apply" same_band in-cmyka.tif f2a-cmyka.tif 4
check "in-5band.tif: extra bands 3 and 4 bit-exact through f2a apply" bash -c \
	"$(declare -f maxdiff same_band); W=$W; same_band in-5band.tif f2a-5band.tif 3 && same_band in-5band.tif f2a-5band.tif 4"
# the library's full-resolution modes, exercised on small images: guided at working size 48 on
# 97x65, tiled with 256-pixel tiles on a 300x40 strip (two overlapping tiles)
vips replicate rgb.v wide.v 4 1 >/dev/null 2>&1 && vips crop wide.v in-wide.png 0 0 300 40 >/dev/null 2>&1
for spec in "in-srgb.png guided --working-size 48" "in-wide.png tiled --tile-size 256" "in-wide.png guided --working-size 100"; do
	set -- $spec
	f=$1; mode=$2; shift 2
	if "$F2A" apply "$f" "f2a-$mode.png" --mode "$mode" "$@" >f2a.log 2>&1 &&
		vips flash2ambient "$f" "vips-$mode.png" --mode "$mode" "$@" >>f2a.log 2>&1; then
		d="$(maxdiff "f2a-$mode.png" "vips-$mode.png")"
		if [ "$d" -le 1 ] 2>/dev/null; then pass "$f --mode $mode $*: equals f2a apply (max diff $d/255)"; else fail "$f --mode $mode: differs from f2a apply by $d/255"; fi
	else
		fail "$f --mode $mode: f2a apply / vips flash2ambient failed" f2a.log
	fi
done
set --
# guided on a photo-sized image streams (f2a_guide_*): no whole-image float copy, so it fits a
# limit that the whole-image modes exceed; the result is independent of vips's thread count
vips resize "$ROOT/examples/flash.jpg" in-12mp.jpg 5.6 >/dev/null 2>&1
check "guided streams a 12 MP photo within max_mb=200 (tiled refused)" bash -c \
	'vips flash2ambient in-12mp.jpg g1.png --max-mb 200 && ! vips flash2ambient in-12mp.jpg x.png --mode tiled --max-mb 200 2>/dev/null'
VIPS_CONCURRENCY=8 vips flash2ambient in-12mp.jpg g8.png >/dev/null 2>&1
check "guided, 12 MP: VIPS_CONCURRENCY=8 equals VIPS_CONCURRENCY=1" bash -c \
	'VIPS_CONCURRENCY=1 vips flash2ambient in-12mp.jpg gc1.png && [ "$(vips max g8.png)" ] && cmp -s gc1.png g8.png'
# a JPEG at least four times the working size: pass 1 reads the file again shrunk on load (DCT
# scaling), as f2a apply does, so the two are equal; the whole-image path (F2A_NO_STREAM=1, and
# the operation on an image that is not a file) averages the full decode instead: close, not
# equal (measured max 9/255, mean 0.06/255)
"$F2A" apply in-12mp.jpg f2a-12mp-st.png >/dev/null 2>&1
d="$(maxdiff f2a-12mp-st.png g1.png)"
if [ "$d" -le 1 ] 2>/dev/null; then pass "guided, 12 MP: equals f2a apply, pass 1 shrunk on load (max diff $d/255)"; else fail "guided, 12 MP: differs from f2a apply by $d/255"; fi
F2A_NO_STREAM=1 "$F2A" apply in-12mp.jpg f2a-12mp.png >/dev/null 2>&1
d="$(maxdiff f2a-12mp.png g1.png)"
m="$(vips avg "$W/a.v" 2>/dev/null)"
if [ "$d" -le 16 ] 2>/dev/null && awk -v m="$m" 'BEGIN { exit !(m != "" && m <= 0.5) }'; then
	pass "guided, 12 MP: within 16/255 (mean 0.5/255) of f2a apply's whole-image path (max $d, mean $m)"
else fail "guided, 12 MP: f2a apply's whole-image path differs by max $d, mean $m (/255)"; fi
head -c $(( $(stat -c %s in-12mp.jpg) / 2 )) in-12mp.jpg > truncated-12mp.jpg
expect_error "truncated 12 MP JPEG: pass 1, shrunk on load, is the fail_on check" 'damaged or truncated' \
	vips flash2ambient truncated-12mp.jpg x.png
check "truncated 12 MP JPEG: fail_on=none processes it" vips flash2ambient truncated-12mp.jpg x.png --fail-on none
vips copy in-12mp.jpg in-12mp.v >/dev/null 2>&1
check "guided, 12 MP: a .v file (read again at full size) equals f2a apply's whole-image path (max 1/255)" bash -c \
	"$(declare -f maxdiff); W=$W; vips flash2ambient in-12mp.v g-v.png && [ \"\$(maxdiff f2a-12mp.png g-v.png)\" -le 1 ]"
# guided mode holds no copy of the input: pass 1 reads the file again, pass 2 the input, so the
# peak memory does not grow with the photo (with a decoded copy, 3 bytes/pixel, 12 MP needed
# 29 MB more than 3 MP; now 4-15 MB, the wider rows' buffers; the lower of two runs each)
vips crop in-12mp.jpg in-3mp.jpg 0 0 1512 2016 >/dev/null 2>&1
peak_kb() {
	local a b
	a="$(VIPS_CONCURRENCY=2 /usr/bin/time -f %M vips flash2ambient "$1" "$W/peak.jpg" 2>&1 >/dev/null | tail -1)" &&
	b="$(VIPS_CONCURRENCY=2 /usr/bin/time -f %M vips flash2ambient "$1" "$W/peak.jpg" 2>&1 >/dev/null | tail -1)" &&
	echo $((a < b ? a : b))
}
p3="$(peak_kb in-3mp.jpg)"; p12="$(peak_kb in-12mp.jpg)"
if [ -n "$p3" ] && [ -n "$p12" ] && [ $((p12 - p3)) -lt 20480 ]; then
	pass "guided: peak RSS 3 MP ${p3} KB, 12 MP ${p12} KB (grows < 20 MiB)"
else fail "guided: peak RSS 3 MP ${p3:-?} KB, 12 MP ${p12:-?} KB: grows with the photo"; fi
# 8-bit sRGB is mapped on its bytes (f2a_guide_apply_u8); RGBA goes the float route: the same colour
vips bandjoin_const in-wide.png wide-a.png 255 >/dev/null 2>&1
check "guided: 8-bit sRGB bytes equal the float route (RGBA's colour bands, max diff 0)" bash -c \
	"$(declare -f maxdiff same_band); W=$W; vips flash2ambient in-wide.png u8.png --working-size 48 &&
	 vips flash2ambient wide-a.png f32.png --working-size 48 && same_band u8.png f32.png 0 &&
	 same_band u8.png f32.png 1 && same_band u8.png f32.png 2"
if "$F2A" apply in-rgb16.png f2a-rgb16.png >f2a.log 2>&1; then
	d="$(maxdiff f2a-rgb16.png out-rgb16.png)"
	if [ "$d" -le 257 ] 2>/dev/null; then pass "in-rgb16.png: equals f2a apply (max diff $d/65535)"; else fail "in-rgb16.png: differs from f2a apply by $d/65535"; fi
else fail "in-rgb16.png: f2a apply failed" f2a.log; fi

# --- options, errors, progress -----------------------------------------------------------
head -c 4000 "$MODEL" > truncated.f2aw
printf 'this is not a weights file\n' > text.f2aw
: > empty.jpg
vips copy in-srgb.png big.v && vips replicate big.v big2.v 4 4 && vips copy big2.v big.jpg
head -c $(( $(stat -c %s big.jpg) / 2 )) big.jpg > truncated.jpg
expect_error "missing model path" 'cannot load model.*(no such file|cannot read)' vips flash2ambient in-srgb.png x.png --model "$W/does-not-exist.f2aw"
expect_error "truncated model file" 'cannot load model.*truncated' vips flash2ambient in-srgb.png x.png --model truncated.f2aw
expect_error "corrupt model file" 'cannot load model' vips flash2ambient in-srgb.png x.png --model text.f2aw
expect_error "0-byte image" 'not a known file format|empty' vips flash2ambient empty.jpg x.png
expect_error "truncated JPEG" 'damaged or truncated|premature' vips flash2ambient truncated.jpg x.png
expect_error "memory limit refuses clearly (full)" 'full mode needs about .* MiB of working memory, over the limit .*use mode=guided' vips flash2ambient in-srgb.png x.png --mode full --max-mb 1
expect_error "memory limit refuses clearly (auto = guided)" 'guided mode needs about .* MiB of working memory, over the limit .*lower working_size' vips flash2ambient in-srgb.png x.png --max-mb 1
expect_error "mode must be a real mode (the library checks)" 'unknown mode 4' vips flash2ambient in-srgb.png x.png --mode last
check "F2A_MODEL selects the default model" bash -c "F2A_MODEL=$W/text.f2aw vips flash2ambient in-srgb.png x.png 2>&1 | grep -q text.f2aw"
check "explicit --model works" vips flash2ambient in-srgb.png x.png --model "$MODEL"
check "--vips-progress reports the model run" bash -c 'vips --vips-progress flash2ambient in-srgb.png x.png | tr "\r" "\n" | grep -q "flash2ambient: 100% complete"'
VIPS_CONCURRENCY=1 vips flash2ambient in-srgb.png c1.png >/dev/null 2>&1
check "VIPS_CONCURRENCY=1 gives the same pixels" test "$(maxdiff c1.png out-srgb.png)" = 0
check "shell pipeline: thumbnail | flash2ambient | save" bash -c "vips thumbnail in-srgb.jpg th.v 48 && vips flash2ambient th.v th-out.jpg[Q=90] && [ \"\$(vipsheader -f width th-out.jpg)\" = 48 ]"

# --- C program: vips_call and the varargs wrapper ------------------------------------------
if ${CC:-cc} -std=gnu11 -Wall -Wextra -Werror -o example "$ROOT/examples/vips/flash2ambient_example.c" \
	-I"$ROOT/plugin" $(pkg-config --cflags --libs vips) >cc.log 2>&1; then
	pass "examples/vips/flash2ambient_example.c compiles"
	check "C example: vips_call and vips_flash2ambient() agree, output written" bash -c \
		"./example in-rgba.png c-out.png 0.8 && [ \"\$(vipsheader -f bands c-out.png)\" = 4 ]"
	check "C example without the module fails cleanly" bash -c \
		"out=\$(VIPSHOME=$W/no-such-home ./example in-srgb.png x.png 2>&1); rc=\$?; [ \$rc -ne 0 ] && [ \$rc -lt 128 ] && echo \"\$out\" | grep -q 'not installed'"
else
	fail "examples/vips/flash2ambient_example.c compiles" cc.log
fi

# --- install / uninstall into a DESTDIR (the whole install and the tarball: packaging/test-dist.sh) ---
D="$W/destdir"
MODDIR="$(pkg-config --variable=libdir vips)/vips-modules-$(pkg-config --modversion vips | cut -d. -f1,2)"
HOMEDIR="/opt/f2a/lib/flash2ambient/vipshome/$(basename "$(pkg-config --variable=libdir vips)")/$(basename "$MODDIR")"
check "install-plugin: module in PREFIX/lib/flash2ambient/vipshome with stock links, header; nothing in libvips's dir" bash -c \
	"make -s -C '$ROOT' install-plugin DESTDIR='$D' PREFIX=/opt/f2a PLUGIN_LIBDEP= BUILD='$BUILD' >/dev/null &&
	 test -f '$D$HOMEDIR/vips-flash2ambient.so' && test -f '$D/opt/f2a/include/vips-flash2ambient.h' &&
	 test -x '$D/opt/f2a/lib/flash2ambient/link-vips-modules' &&
	 test \"\$(readlink '$D$HOMEDIR/vips-heif.so')\" = '$MODDIR/vips-heif.so' &&
	 ! test -e '$D$MODDIR/vips-flash2ambient.so'"
check "install-system-module-files: module in libvips's dir, rpath PREFIX/lib" bash -c \
	"make -s -C '$ROOT' install-system-module-files DESTDIR='$D' PREFIX=/opt/f2a BUILD='$BUILD' >/dev/null &&
	 readelf -d '$D$MODDIR/vips-flash2ambient.so' | grep -q 'path: \[/opt/f2a/lib\]'"
check "uninstall-plugin removes them (the system module too: its rpath is this PREFIX's)" bash -c \
	"make -s -C '$ROOT' uninstall-plugin DESTDIR='$D' PREFIX=/opt/f2a BUILD='$BUILD' >/dev/null &&
	 ! test -e '$D$MODDIR/vips-flash2ambient.so' && ! test -e '$D/opt/f2a/include/vips-flash2ambient.h' &&
	 ! test -e '$D/opt/f2a/lib/flash2ambient'"

# --- pyvips from PyPI ------------------------------------------------------------------------
if [ "${F2A_SKIP_PYVIPS:-0}" = 1 ]; then
	echo "skip  pyvips (F2A_SKIP_PYVIPS=1)"
else
	VENV="$BUILD/venv-plugin"
	PYVIPS="pyvips==3.2.0"
	if [ "$(cat "$VENV/.stamp" 2>/dev/null)" != "$PYVIPS" ]; then
		rm -rf "$VENV"
		if python3 -m venv "$VENV" >venv.log 2>&1 && "$VENV/bin/pip" install -q "$PYVIPS" >>venv.log 2>&1; then
			echo "$PYVIPS" > "$VENV/.stamp"
		fi
	fi
	if [ -f "$VENV/.stamp" ]; then
		"$VENV/bin/python" "$ROOT/Tests/plugin/test_pyvips.py" "$VIPSHOME" "$W" >py.log 2>&1
		rc=$?
		cat py.log
		checks_count_output pyvips py.log $rc
	else
		fail "pyvips venv ($VENV): pip install $PYVIPS failed" venv.log
	fi
fi

checks_summary plugin
