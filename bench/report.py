#!/usr/bin/env python3
"""Render build/bench/results.json (written by bench/bench.py) as Markdown tables.

    python3 bench/report.py [build/bench/results.json] > results.md

bench.py also writes this next to results.json (results.md) at the end of a run.
"""

import json
import sys


def fmt_mb(v):
    return "–" if v != v else f"{v:.0f} MB"


ENGINES = {"ours": "this engine", "ort": "onnxruntime", "ov": "OpenVINO"}
PHOTO_TOOLS = {"copy": "vips copy", "f2a": "f2a apply", "vfa": "vips flash2ambient"}


def render_speed(s):
    engines = s["engines"]
    peers = engines[1:]
    peak = (s.get("fma_peak_gflops") or {})
    peak2 = peak.get("2") or peak.get(2)
    v = s.get("versions", {})
    out = [""]
    out.append(f"Engine speed ({s['warmup']} warm-up + {s['runs']} timed runs per engine and cell"
               + (f", up to 25 where they take under {s['cell_ms']} ms" if "cell_ms" in s else "") + ", alternating, "
               f"{s.get('settle_ms', 0)} ms pause before each; median seconds of one forward pass, min–max in "
               f"brackets); peers: " + ", ".join(f"{ENGINES[e]} {v.get(e, '')}".strip() for e in peers) + ":")
    out.append("")
    out.append("| cell | size | GFLOP | " + " | ".join(f"{ENGINES[e]} s" for e in engines)
               + " | faster peer | ratio |")
    out.append("|---|---|---|" + "---|" * len(engines) + "---|---|")
    for c in s["cells"]:
        times = [c["engines"][e] for e in engines]
        out.append(f"| {c['model']} | {c['w']}×{c['h']} | {c['gflop']:.1f} | "
                   + " | ".join(f"{d['s']:.4f} ({min(d['times']):.4f}–{max(d['times']):.4f})" for d in times)
                   + f" | {ENGINES[c['best_peer']]} | {c['ratio_best']:.2f} |")
    out.append("")
    for e in peers:
        out.append(f"    speed ratio vs {ENGINES[e].lower()}: {s['geomean_ratios'][e]:.2f}")
    out.append(f"    speed ratio vs best peer: {s['geomean_ratio_best']:.2f}")
    out.append("")
    if peak:
        out.append("FMA peak measured in the run (bench/fma_peak.c): " + ", ".join(
            f"{t} thread(s) {g:.1f} GFLOP/s" for t, g in sorted(peak.items(), key=lambda kv: int(kv[0]))) + ".")
        out.append("")
    out.append("Effective GFLOP/s (direct-convolution FLOPs / median time)"
               + (" and % of the 2-thread FMA peak" if peak2 else "") + ", process CPU s per pass (all threads), "
               "peak RSS of the worker process, max |output − ours|:")
    out.append("")
    out.append("| cell | size | engine | GFLOP/s | % peak | CPU s | peak RSS | max abs diff |")
    out.append("|---|---|---|---|---|---|---|---|")
    for c in s["cells"]:
        for e in engines:
            d = c["engines"][e]
            pct = f"{100 * d['gflops'] / peak2:.0f} %" if peak2 else "–"
            diff = f"{d['max_abs_diff']:.1e}" if "max_abs_diff" in d else "–"
            out.append(f"| {c['model']} | {c['w']}×{c['h']} | {ENGINES[e]} | {d['gflops']:.1f} | {pct} "
                       f"| {d['cpu_s']:.3f} | {fmt_mb(d['peak_rss_mb'])} | {diff} |")
    if "geomean_cpu_ratios" in s:
        out.append("")
        out.append("Geometric mean of the CPU-time ratios (peer / ours): " + ", ".join(
            f"{ENGINES[e]} {x:.2f}" for e, x in s["geomean_cpu_ratios"].items()) + ".")
    return out


def render_photo(p, r):
    out = [""]
    src = p.get("source", "?")
    out.append(f"Photo level ({p['warmup']} warm-up + {p['runs']} timed runs per command and size, alternating; "
               f"median wall time, max peak RSS; photos made from {src}):")
    out.append("")
    tools = [t for t in PHOTO_TOOLS if any(t in s["tools"] for s in p["sizes"])]
    out.append("| photo | JPEG | " + " | ".join(f"{PHOTO_TOOLS[t]}" for t in tools)
               + " | " + " | ".join(f"RSS {PHOTO_TOOLS[t]}" for t in tools) + " |")
    out.append("|---|---|" + "---|" * (2 * len(tools)))
    for s in p["sizes"]:
        cells = []
        for t in tools:
            d = s["tools"].get(t)
            ratio = f" ({s['ratio_' + t]:.2f}×)" if f"ratio_{t}" in s else ""
            cells.append(f"{d['wall_s']:.3f} s{ratio}" if d else "failed")
        rss = [fmt_mb(s["tools"][t]["peak_rss_mb"]) if t in s["tools"] else "–" for t in tools]
        out.append(f"| {s['mp']:g} MP ({s['width']}×{s['height']}) | {s['bytes'] / 1e6:.1f} MB | "
                   + " | ".join(cells) + " | " + " | ".join(rss) + " |")
    try:
        from bench import photo_summary
        out.append("")
        out += ["    " + line.strip() for line in photo_summary(r)]
    except Exception:  # the lines are in bench.py's output too
        pass
    return out


def render_speed_legacy(s):
    """results.json of the two-engine bench (before OpenVINO was added)."""
    out = []
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
    return out


def render_photo_legacy(p):
    """results.json of the issue-7 photo level (synthetic 12 / 24 MP)."""
    out = []
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
    return out


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
    if s and "engines" in s:
        out += render_speed(s)
    elif s:
        out += render_speed_legacy(s)
    p = r.get("photo")
    if p and "sizes" in p:
        out += render_photo(p, r)
    elif p:
        out += render_photo_legacy(p)
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
