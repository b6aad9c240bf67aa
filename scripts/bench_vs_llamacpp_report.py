#!/usr/bin/env python3
"""bench_vs_llamacpp_report.py — the table of scripts/bench_vs_llamacpp.sh: per-round ratios
(vlm.c speed / llama.cpp speed; for RSS vlm.c / llama.cpp) with the load average of each round,
their medians, and each of issue 12's targets met or missed by how much.

Usage: bench_vs_llamacpp_report.py ROUNDS.txt RESULTS.json
"""
import json
import statistics
import sys
from collections import defaultdict

TARGETS = {  # (metric, file): minimum median ratio
    ("decode", "text-q8_0"): 1.25, ("decode", "text-q4_k_m"): 1.25,
    ("prefill", "text-bf16"): 1.0, ("prefill", "text-q8_0"): 1.0, ("prefill", "text-q4_k_m"): 1.0,
    ("tile_ms", "mmproj-f16"): 1.25, ("tile_ms", "mmproj-bf16"): 1.25,
}


def main():
    src, dst = sys.argv[1], sys.argv[2]
    val = defaultdict(dict)   # (round, side, file, key) -> value
    load = {}
    for line in open(src):
        f = line.split()
        if f[0] == "round":
            if f[2] == "loadavg":
                load[int(f[1])] = " ".join(f[3:6])
            continue
        r, side, file, key, v = int(f[0]), f[1], f[2], f[3], float(f[4])
        val[(r, file, key)][side] = v
    rounds = sorted(load)
    files = sorted({k[1] for k in val}, key=lambda s: (s.startswith("mmproj"), s))
    ratios = defaultdict(list)
    print(f"{'round':>5} {'loadavg':>16}  " + "  ".join(f"{fi}" for fi in files))
    for r in rounds:
        cells = []
        for fi in files:
            parts = []
            for key, name in (("decode", "dec"), ("prefill", "pp"), ("tile_ms", "tile"), ("rss_mib", "rss")):
                d = val.get((r, fi, key), {})
                if "vlm" in d and "llama" in d and d["vlm"] > 0 and d["llama"] > 0:
                    x = d["llama"] / d["vlm"] if key == "tile_ms" else d["vlm"] / d["llama"]
                    ratios[(key, fi)].append(x)
                    parts.append(f"{name} {x:.2f}x")
                elif "llama" in d:
                    parts.append(f"{name} llama {d['llama']:.1f}")
            cells.append(" ".join(parts))
        print(f"{r:>5} {load[r]:>16}  " + "  |  ".join(cells))
    print("\nmedians (vlm.c / llama.cpp speed; rss: vlm.c / llama.cpp memory)")
    out = {"rounds": [], "medians": {}, "values": {}}
    for (key, fi), xs in sorted(ratios.items()):
        m = statistics.median(xs)
        t = TARGETS.get((key, fi))
        verdict = "" if t is None else (f"  target >= {t:.2f}x: met" if m >= t else f"  target >= {t:.2f}x: MISSED by {t - m:.2f} ({100 * (t - m) / t:.0f}%)")
        print(f"  {key:8} {fi:14} {m:6.2f}x  (rounds: {', '.join(f'{x:.2f}' for x in xs)}){verdict}")
        out["medians"][f"{key}/{fi}"] = m
    print("\nmedian absolute values")
    agg = defaultdict(lambda: defaultdict(list))
    for (r, fi, key), d in val.items():
        for side, v in d.items():
            agg[(key, fi)][side].append(v)
    for (key, fi), d in sorted(agg.items()):
        cells = "  ".join(f"{side} {statistics.median(v):.2f}" for side, v in sorted(d.items()))
        print(f"  {key:14} {fi:14} {cells}")
        out["values"][f"{key}/{fi}"] = {side: statistics.median(v) for side, v in d.items()}
    for fi in ("text-bf16", "text-q8_0", "text-q4_k_m"):
        d = agg.get(("decode_bw_pct", fi))
        if d and "vlm" in d:
            m = statistics.median(d["vlm"])
            print(f"  vlm.c decode {fi}: {m:.0f}% of the measured memory bandwidth (target >= 80%: "
                  f"{'met' if m >= 80 else f'MISSED by {80 - m:.0f} points'})")
    out["rounds"] = [{"round": r, "loadavg": load[r]} for r in rounds]
    json.dump(out, open(dst, "w"), indent=1)


if __name__ == "__main__":
    main()
