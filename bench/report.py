#!/usr/bin/env python3
"""Render build/bench/results.json (written by bench/bench.py) as Markdown tables.

    python3 bench/report.py [build/bench/results.json] > results.md

bench.py also writes this next to results.json (results.md) at the end of a run.
"""

import json
import sys


def fmt_mb(v):
    return "–" if v != v else f"{v:.0f} MB"


def render(r):
    out = []
    la = " ".join(r.get("load_start", []))
    le = " ".join(r.get("load_end", []))
    out.append(f"Run {r.get('date', '?')} on {r.get('machine', '?')}; load average (1/5/15 min) "
               f"{la} at start, {le} at end; bench took {r.get('seconds', 0) / 60:.0f} min.")
    if r.get("busy_start"):
        out.append(f"Busy at start: {', '.join(r['busy_start'])}.")
    if r.get("busy_end"):
        out.append(f"Busy at end: {', '.join(r['busy_end'])}.")
    s = r.get("speed")
    if s:
        out.append("")
        out.append(f"Engine speed ({s['warmup']} warm-up + {s['runs']} timed runs per engine and cell, "
                   f"alternating; median, min–max in brackets):")
        out.append("")
        out.append("| width | size | GFLOP | ours s | ours GFLOP/s | ort s | ort GFLOP/s | ratio ort/ours "
                   "| max abs diff | peak RSS ours | peak RSS ort |")
        out.append("|---|---|---|---|---|---|---|---|---|---|---|")
        for c in s["cells"]:
            g = c["gflop"]
            out.append(f"| {c['width']:g} | {c['size']}² | {g:.1f} "
                       f"| {c['ours_s']:.3f} ({min(c['ours_times']):.3f}–{max(c['ours_times']):.3f}) "
                       f"| {g / c['ours_s']:.1f} "
                       f"| {c['ort_s']:.3f} ({min(c['ort_times']):.3f}–{max(c['ort_times']):.3f}) "
                       f"| {g / c['ort_s']:.1f} | {c['ratio']:.2f} | {c['max_abs_diff']:.1e} "
                       f"| {fmt_mb(c['ours_peak_rss_mb'])} | {fmt_mb(c['ort_peak_rss_mb'])} |")
        out.append("")
        out.append(f"    speed ratio vs onnxruntime: {s['geomean_ratio']:.2f}")
        if s["cells"] and "ours_cpu_s" in s["cells"][0]:
            out.append("")
            out.append("Process CPU time per pass (all threads, median; less sensitive to other load than wall "
                       "time — on an idle 2-core machine wall ≈ CPU / 2):")
            out.append("")
            out.append("| width | size | ours CPU s | ort CPU s | ratio ort/ours |")
            out.append("|---|---|---|---|---|")
            for c in s["cells"]:
                out.append(f"| {c['width']:g} | {c['size']}² | {c['ours_cpu_s']:.3f} | {c['ort_cpu_s']:.3f} "
                           f"| {c['ort_cpu_s'] / c['ours_cpu_s']:.2f} |")
            out.append("")
            out.append(f"Geometric mean of the CPU-time ratios: {s['geomean_cpu_ratio']:.2f}.")
        if "peak_rss_mb" in s:
            out.append("")
            out.append(f"Peak RSS, max over cells (whole worker process): ours {s['peak_rss_mb']['ours']:.0f} MB, "
                       f"onnxruntime {s['peak_rss_mb']['ort']:.0f} MB.")
    p = r.get("photo")
    if p:
        d = p["12MP_default"]
        out.append("")
        out.append("Photo level (`f2a apply`, shipped model):")
        out.append("")
        out.append("| case | wall | peak RSS | target | result | f2a --verbose |")
        out.append("|---|---|---|---|---|---|")
        ok = d["wall_s"] <= 1.5
        out.append(f"| 12 MP default (guided), median of 3 | {d['wall_s']:.2f} s | {fmt_mb(d['peak_rss_mb'])} "
                   f"| ≤ 1.5 s | {'PASS' if ok else 'MISS'} | {d['log']} |")
        for mode in ("tiled", "guided"):
            d = p[f"24MP_{mode}"]
            ok = d["peak_rss_mb"] <= 1024
            out.append(f"| 24 MP --mode {mode} | {d['wall_s']:.1f} s | {fmt_mb(d['peak_rss_mb'])} | ≤ 1 GB RSS "
                       f"| {'PASS' if ok else 'MISS'} | {d['log']} |")
    layers = r.get("layers")
    if layers:
        for tag, L in layers.items():
            out.append("")
            out.append(f"Per-layer times at 512², width {tag[1:]}: ours {L['ours_total_ms']:.0f} ms, "
                       f"onnxruntime {L['ort_total_ms']:.0f} ms (sum of node kernel times; "
                       f"{L['ort_other_ms']:.0f} ms of it in reorders/concat/pool/other):")
            out.append("")
            out.append("| layer | shape | GFLOP | ours ms | ours GFLOP/s | % of ours | ours CPU ms | ort ms "
                       "| ort GFLOP/s | ort/ours |")
            out.append("|---|---|---|---|---|---|---|---|---|---|")
            for row in L["rows"]:
                g, ms, o = row["gflop"], row["ours_ms"], row["ort_ms"]
                cms = row.get("ours_cpu_ms", float("nan"))
                ort_cells = f"{o:.1f} | {g / o * 1e3:.0f} | {o / ms:.2f}" if o else "– | – | –"
                out.append(f"| {row['layer']} | {row['shape']} | {g:.2f} | {ms:.1f} | {g / ms * 1e3:.0f} "
                           f"| {100 * ms / L['ours_total_ms']:.1f} | {cms:.1f} | {ort_cells} |")
    return "\n".join(out) + "\n"


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "build/bench/results.json"
    with open(path) as f:
        sys.stdout.write(render(json.load(f)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
