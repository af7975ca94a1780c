#!/usr/bin/env bash
# A labelled comparison grid for the model card: one row per pair, titled
# with the pair's name, columns "flash (input)", "model output" and
# "ambient (target)".
#
#   tools/sample_grid.sh PAIRS OUTPUTS GRID.jpg [CELL_PX]
#
# PAIRS holds flash/NAME.* + ambient/NAME.*; OUTPUTS the NAME.png that
# `f2a eval --pairs PAIRS --out OUTPUTS` wrote. Needs the vips command.
set -euo pipefail
[ $# -ge 3 ] || { sed -n 2,9p "$0" >&2; exit 64; }
pairs=$1 outputs=$2 grid=$3 px=${4:-360}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
shim=6 row=$((3 * px + 2 * shim))
# label TEXT WIDTH OUT: dark text on white, WIDTH x 28
label() {
  vips text "$tmp/t.v" "$1" --dpi 100 --font "sans 11"
  vips invert "$tmp/t.v" "$tmp/i.v"
  vips gravity "$tmp/i.v" "$3" centre "$2" 28 --extend white
}
strips=()
for col in flash-input model-output ambient-target; do
  label "<b>${col/-/ (})</b>" "$px" "$tmp/head-$col.v"
done
vips arrayjoin "$tmp/head-flash-input.v $tmp/head-model-output.v $tmp/head-ambient-target.v" "$tmp/head.v" --shim $shim --background 255
strips+=("$tmp/head.v")
k=0
for out in "$outputs"/*.png; do
  n=$(basename "$out" .png)
  label "$n" "$row" "$tmp/name$k.v"
  cells=()
  # The pair's own files may be any format libvips reads (NAME.png, NAME.jpg, ...).
  flash=$(ls "$pairs/flash/$n".* | head -1) ambient=$(ls "$pairs/ambient/$n".* | head -1)
  for src in "$flash" "$out" "$ambient"; do
    c=$tmp/cell$k-${#cells[@]}.v
    vips thumbnail "$src" "$tmp/t.v" "$px" --height "$px"
    vips colourspace "$tmp/t.v" "$tmp/s.v" srgb
    vips gravity "$tmp/s.v" "$c" centre "$px" "$px" --extend white
    cells+=("$c")
  done
  vips arrayjoin "${cells[*]}" "$tmp/row$k.v" --shim $shim --background 255
  strips+=("$tmp/name$k.v" "$tmp/row$k.v")
  k=$((k + 1))
done
# One band for the labels, three for the photos: make every strip sRGB, then
# stack them (join, not arrayjoin: strips differ in height).
acc=""
for i in "${!strips[@]}"; do
  vips colourspace "${strips[$i]}" "$tmp/strip$i.v" srgb
  if [ -z "$acc" ]; then acc=$tmp/strip$i.v; else
    vips join "$acc" "$tmp/strip$i.v" "$tmp/acc$i.v" vertical --expand --background 255
    acc=$tmp/acc$i.v
  fi
done
case $grid in *.jpg|*.jpeg) save="$grid[Q=88,strip]" ;; *) save=$grid ;; esac
vips copy "$acc" "$save"
echo "wrote $grid"
