#!/bin/sh
# link-vips-modules — installed as PREFIX/lib/flash2ambient/link-vips-modules.
#
# flash2ambient's libvips operation lives in a private libvips home beside this script,
#     lib/flash2ambient/vipshome/<libvips libdir name>/vips-modules-X.Y/vips-flash2ambient.so
# which libvips uses when VIPSHOME points at lib/flash2ambient/vipshome. VIPSHOME *replaces*
# libvips's own module directory, so the stock modules (HEIF, JPEG XL, PDF, ImageMagick and
# OpenSlide loaders and savers) are linked into the same directory, or they would disappear.
#
# `make install` runs this; the binary tarball ships with the links of the machine it was
# built on (Debian bookworm: /usr/lib/x86_64-linux-gnu/vips-modules-8.14). Run it again after
# unpacking on a machine whose libvips lives elsewhere, or after adding a libvips module package.
#
# Usage: link-vips-modules [STOCK_MODULE_DIR]
#   STOCK_MODULE_DIR: default, the vips-modules-X.Y directory beside the libvips.so that the
#   dynamic linker resolves for vips-flash2ambient.so (as ldd shows it).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
module=
for m in "$here"/vipshome/*/vips-modules-*/vips-flash2ambient.so; do
	[ -e "$m" ] || continue
	[ -z "$module" ] || { echo "link-vips-modules: more than one module: $module $m" >&2; exit 1; }
	module=$m
done
[ -n "$module" ] || { echo "link-vips-modules: no vips-flash2ambient.so under $here/vipshome" >&2; exit 1; }
moddir=$(dirname "$module")

if [ $# -ge 1 ]; then
	stock=$1
else
	libvips=$(ldd "$module" 2>/dev/null | awk '$1 ~ /^libvips\.so/ && $3 ~ /^\// { print $3; exit }')
	[ -n "$libvips" ] || { echo "link-vips-modules: ldd $module does not resolve libvips (is libvips42 installed?)" >&2; exit 1; }
	stock=$(dirname "$(readlink -f "$libvips")")/$(basename "$moddir")
fi

# Only links are ours to replace; never a link to a copy of ourselves (a module registered twice
# makes libvips refuse the second one).
find "$moddir" -maxdepth 1 -type l -delete
count=0
for m in "$stock"/*.so; do
	[ -e "$m" ] || continue
	[ "$(basename "$m")" = vips-flash2ambient.so ] && continue
	ln -sfn "$m" "$moddir/"
	count=$((count + 1))
done
if [ "$count" = 0 ]; then
	echo "link-vips-modules: no stock libvips modules in $stock: only flash2ambient is added" >&2
else
	echo "link-vips-modules: $count stock libvips modules from $stock linked into $moddir"
fi
