#!/usr/bin/env bash
# K-fold cross-validation of the shipped recipe on faid32: every pair is held
# out exactly once, so the model card can quote the gain over the flash image
# on all 32 scenes instead of the 6 of the fixed validation split.
#
#   tools/crossval.sh [OUT] [STEPS] [f2a-train options...]     (after `make`)
#
# Options after STEPS are appended to the recipe and override it (the last
# value of an option wins), e.g. `tools/crossval.sh runs/cv-w025 2000 --width 0.25`.
# Fold k holds out the pairs whose index in name order is k mod K (each fold
# mixes the categories). Each fold trains from the identity start with the
# shipped recipe for a fixed STEPS (no checkpoint selection on the held-out
# pairs), exports the last step as f16, and runs `f2a eval` in the default
# mode on its held-out pairs at their native 720x540 and downscaled to 320x240.
# Prints one line per pair and the means; everything else lands in OUT.
# Environment: DATA (faid32 directory), K (folds, default 4), F2A_THREADS.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/crossval}
steps=${2:-2000}
shift $(($# < 2 ? $# : 2))
data=${DATA:-../shared/data/faid32}
k=${K:-4}
threads=${F2A_THREADS:-2}
bin=build/bin
[ -x $bin/f2a-train ] && [ -x $bin/f2a ] || { echo "crossval: run make first" >&2; exit 1; }
[ -d "$data/flash" ] || { echo "crossval: no pairs in $data (set DATA)" >&2; exit 1; }
mkdir -p "$out"
mapfile -t names < <(ls "$data/flash" | sed -n 's/\.png$//p' | sort)

for ((fold = 0; fold < k; fold++)); do
  held=()
  for i in "${!names[@]}"; do ((i % k == fold)) && held+=("${names[$i]}"); done
  dir=$out/fold$fold
  mkdir -p "$dir/pairs720/flash" "$dir/pairs720/ambient" "$dir/pairs320/flash" "$dir/pairs320/ambient"
  for n in "${held[@]}"; do
    for side in flash ambient; do
      ln -sfn "$(realpath "$data/$side/$n.png")" "$dir/pairs720/$side/$n.png"
      # 720 -> 320 px on the long side, as the training resize.
      [ -f "$dir/pairs320/$side/$n.png" ] || vips resize "$data/$side/$n.png" "$dir/pairs320/$side/$n.png" 0.444444444
    done
  done
  if [ ! -f "$dir/model.f2aw" ]; then
    echo "fold $fold: holding out ${held[*]}"
    $bin/f2a-train train --data "$data" --out "$dir/run" --val-names "$(IFS=,; echo "${held[*]}")" \
      --width 0.125 --formulation ratio-log --init-final-scale 0 --reconstruction mse --rec-weight 100 \
      --match-exposure --crop 128 --resize 320 --scale-min 1 --scale-max 1.5 --batch 4 --steps "$steps" \
      --lr-g 3e-4 --adv-weight 0 --synth-ratio 0.3 --synth-pool 256 --synth-flash-mode only \
      --validate-every "$steps" --log-every 100 --threads "$threads" "$@" $([ -f "$dir/run/checkpoint" ] && echo --resume)
    $bin/f2a-train export "$dir/run" "$dir/model.f2aw.tmp" --f16
    mv "$dir/model.f2aw.tmp" "$dir/model.f2aw"
  fi
  for size in 720 320; do
    $bin/f2a eval --pairs "$dir/pairs$size" --out "$dir/out$size" --model "$dir/model.f2aw" > "$dir/eval$size.txt"
  done
done

# f2a eval's pair lines: NAME psnr ssim | identity-psnr identity-ssim
for size in 720 320; do
  echo "== held-out pairs, $size px (default mode): model psnr ssim | identity psnr ssim"
  cat "$out"/fold*/eval$size.txt | awk '$4 == "|" && $1 != "name" {
      print; n++; p += $2; s += $3; ip += $5; is += $6; if ($2 > $5) better++ }
    END { printf "mean over %d pairs: model %.2f dB / %.4f, identity %.2f dB / %.4f, gain %+.2f dB / %+.4f; model better on %d\n",
          n, p / n, s / n, ip / n, is / n, (p - ip) / n, (s - is) / n, better }'
done
