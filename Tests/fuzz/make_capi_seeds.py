#!/usr/bin/env python3
"""Writes the seed corpus of the C ABI fuzz target (Tests/fuzz/corpus/capi).

Layout of an input (see Tests/fuzz/FuzzCAPI/FuzzCAPI.swift): flags, flags2, model,
width, height, in-stride, out-stride, mode, working_size (u16 LE), tile_size (u16 LE),
strength, cancel-after, then pixel bytes (cycled)."""
import os
import struct
import sys

F_U8, F_NULL_PARAMS, F_NULL_MODEL, F_NULL_IN, F_NULL_OUT, F_IN_PLACE, F_PROGRESS, F_MISALIGN = (1 << i for i in range(8))
G_LONG_W, G_LONG_H, G_RAW_FLOATS = 4, 8, 16


def seed(flags=0, flags2=0, model=0, w=7, h=7, ins=5, outs=5, mode=1, ws=0, ts=0, strength=239, cancel=0, pixels=b""):
    head = bytes([flags, flags2, model, w, h, ins, outs, mode]) + struct.pack("<HH", ws, ts) + bytes([strength, cancel])
    return head + (pixels or bytes((i * 37) & 255 for i in range(96)))


nan_inf = struct.pack("<8f", float("nan"), float("inf"), float("-inf"), -0.0, 1e-45, 2.0, -1.0, 0.5)
SEEDS = {
    "f32-8x8-full": seed(),
    "u8-13x5-auto-progress": seed(flags=F_U8 | F_PROGRESS, w=12, h=4, mode=0),
    "f32-300x2-tiled": seed(flags2=G_LONG_W, model=1, w=235, h=1, mode=3),
    "f32-5x128-guided": seed(flags2=G_LONG_H, model=2, w=4, h=100, mode=2, ws=16),
    "f32-nan-inf-pixels": seed(flags2=G_RAW_FLOATS, model=3, w=9, h=3, pixels=nan_inf),
    "f32-misaligned-null-params": seed(flags=F_MISALIGN | F_NULL_PARAMS, flags2=1),
    "u8-in-place-cancel": seed(flags=F_U8 | F_IN_PLACE | F_PROGRESS, w=20, h=20, mode=0, cancel=3),
    "f32-huge-size": seed(w=255, h=254),
    "f32-stride-size-max": seed(ins=1),
    "u8-strength-0-padded-strides": seed(flags=F_U8, w=30, h=9, ins=17, outs=44, strength=0),
    "f32-null-model": seed(flags=F_NULL_MODEL),
    "u8-null-out": seed(flags=F_U8 | F_NULL_OUT),
    "f32-bad-mode-ws-ts": seed(mode=241, ws=65001, ts=65003),
    "f32-strength-nan": seed(strength=240),
    "f32-1x1": seed(w=0, h=0, model=3),
}

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus", "capi")
os.makedirs(out, exist_ok=True)
for name, data in SEEDS.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
print(f"wrote {len(SEEDS)} seeds to {out}")
