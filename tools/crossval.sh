#!/usr/bin/env bash
# K-fold cross-validation of the shipped recipe (weights/recipe.json) on all
# real FAID pairs: every pair is held out exactly once, so the model card can
# quote the gain over the flash image on every scene.
#
#   tools/crossval.sh [OUT] [STEPS] [f2a-train options...]     (after `make`)
#
# Options after STEPS are appended to the recipe and override it, e.g.
# `tools/crossval.sh runs/cv-w025 3000 --width 0.25`. Fold k holds out the
# pairs whose index in name order over all DATA directories is k mod K (each
# fold mixes the categories and sources). Each fold trains from the identity
# start for a fixed STEPS (no checkpoint selection on the held-out pairs),
# exports the last step as f16, and runs `f2a eval` in the default mode on its
# held-out pairs at their native size, downscaled to 320 px on the long side,
# and as flash photos as shot (`f2a-train as-shot`, native size). Prints one
# line per pair and the means; everything else lands in OUT.
# Environment: DATA (pair directories held out in turn; default faid32 and
# faid-extra20 beside the repository), EXTRA (pair directories always trained
# on, never held out; default none), K (folds, default 4), FOLDS (the folds to
# run, e.g. "0" for a quick comparison; default all), SUBSET (train on a fixed
# random draw of N of the fold's training pairs, for a learning curve; EXTRA is
# still added whole), F2A_THREADS.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/crossval}
steps=${2:-2000}
shift $(($# < 2 ? $# : 2))
read -r -a data <<< "${DATA:-../shared/data/faid32 ../shared/data/faid-extra20}"
read -r -a extra <<< "${EXTRA:-}"
k=${K:-4}
threads=${F2A_THREADS:-2}
bin=build/bin
[ -x $bin/f2a-train ] && [ -x $bin/f2a ] || { echo "crossval: run make first" >&2; exit 1; }
declare -A path
for d in "${data[@]}"; do
  [ -d "$d/flash" ] || { echo "crossval: no pairs in $d (set DATA)" >&2; exit 1; }
  for f in "$d"/flash/*.png; do n=$(basename "$f" .png); path[$n]=$d; done
done
mapfile -t names < <(printf '%s\n' "${!path[@]}" | sort)
datargs=(); for d in "${data[@]}" "${extra[@]}"; do datargs+=(--data "$d"); done
mkdir -p "$out"

read -r -a folds <<< "${FOLDS:-$(seq -s ' ' 0 $((k - 1)))}"
for fold in "${folds[@]}"; do
  held=()
  for i in "${!names[@]}"; do ((i % k == fold)) && held+=("${names[$i]}"); done
  dir=$out/fold$fold
  mkdir -p "$dir/pairsnative/flash" "$dir/pairsnative/ambient" "$dir/pairs320/flash" "$dir/pairs320/ambient"
  for n in "${held[@]}"; do
    for side in flash ambient; do
      src=${path[$n]}/$side/$n.png
      ln -sfn "$(realpath "$src")" "$dir/pairsnative/$side/$n.png"
      [ -f "$dir/pairs320/$side/$n.png" ] || vips thumbnail "$src" "$dir/pairs320/$side/$n.png" 320 --size both
    done
  done
  [ -d "$dir/pairsasshot" ] || $bin/f2a-train as-shot --pairs "$dir/pairsnative" --out "$dir/pairsasshot" > /dev/null
  foldargs=("${datargs[@]}")
  if [ -n "${SUBSET:-}" ]; then
    # One directory of links: the held-out pairs and SUBSET of the others, drawn by shuf
    # from a constant random source so that the draw is the same every time.
    mkdir -p "$dir/data/flash" "$dir/data/ambient"
    mapfile -t drawn < <(for n in "${names[@]}"; do printf '%s\n' " ${held[*]} " | grep -q " $n " || echo "${path[$n]}/flash/$n.png"; done \
                         | sort | shuf -n "$SUBSET" --random-source=<(yes))
    for f in "${drawn[@]}" "${held[@]/#/held:}"; do
      case $f in held:*) n=${f#held:}; f=${path[$n]}/flash/$n.png ;; esac
      ln -sfn "$(realpath "$f")" "$dir/data/flash/$(basename "$f")"
      ln -sfn "$(realpath "${f%/flash/*}/ambient/$(basename "$f")")" "$dir/data/ambient/$(basename "$f")"
    done
    foldargs=(--data "$dir/data"); for d in "${extra[@]}"; do foldargs+=(--data "$d"); done
  fi
  if [ ! -f "$dir/model.f2aw" ]; then
    echo "fold $fold: holding out ${held[*]}${SUBSET:+; training on $SUBSET of the others}"
    $bin/f2a-train train --config weights/recipe.json "${foldargs[@]}" --out "$dir/run" \
      --val-names "$(IFS=,; echo "${held[*]}")" --steps "$steps" \
      --validate-every "$steps" --log-every 100 --threads "$threads" "$@" $([ -f "$dir/run/checkpoint" ] && echo --resume)
    $bin/f2a-train export "$dir/run" "$dir/model.f2aw.tmp" --f16
    mv "$dir/model.f2aw.tmp" "$dir/model.f2aw"
  fi
  for set in native 320 asshot; do
    $bin/f2a eval --pairs "$dir/pairs$set" --out "$dir/out$set" --model "$dir/model.f2aw" > "$dir/eval$set.txt"
  done
done

# f2a eval's pair lines: NAME psnr ssim ea | identity-psnr identity-ssim identity-ea
for set in native 320 asshot; do
  echo "== held-out pairs, $set (default mode): model psnr ssim ea | identity psnr ssim ea"
  cat "$out"/fold*/eval$set.txt | awk '$5 == "|" && $1 != "name" {
      print; n++; p += $2; s += $3; e += $4; ip += $6; is += $7; ie += $8; if ($2 > $6) better++; if ($4 > $8) ebetter++ }
    END { printf "mean over %d pairs: model %.2f dB / %.4f / EA %.2f dB, identity %.2f dB / %.4f / EA %.2f dB\n", n, p / n, s / n, e / n, ip / n, is / n, ie / n
          printf "gain %+.2f dB / %+.4f / EA %+.2f dB; model better on %d (PSNR), %d (EA-PSNR) of %d\n", (p - ip) / n, (s - is) / n, (e - ie) / n, better, ebetter, n }'
done
