#!/usr/bin/env python3
"""The Markdown table of scripts/bench/gpu.sh's results.jsonl, for docs/benchmarks.md:
the tests' outcome; per preset and batch the median images/s of Quorum (the step as a CUDA
graph, and op by op), PyTorch eager
(channels_last, bf16 autocast) and torch.compile, Quorum's ratio to each (the issue's
targets: ≥ 2× eager, ≥ 1.3× compile on cifar), and the device-to-device copy bandwidth
PyTorch measured; and the whole command's seconds and balanced accuracy."""
import json
import statistics
import sys
from collections import defaultdict


def main(path):
    rows = [json.loads(line) for line in open(path) if line.strip()]
    out = []
    for test in (r for r in rows if r.get("check") == "tests"):
        out.append(f"Tests on {test['device']} ({test['filter']}): {test['executed']} executed, "
                   f"{test['failures']} failures, {test['seconds']} s.\n")
    speeds = defaultdict(list)
    copies = []
    devices = set()
    for r in rows:
        if "images_per_second" not in r:
            continue
        engine = "quorum-op-by-op" if r["engine"] == "quorum" and r.get("cuda_graph") is False else r["engine"]
        speeds[(r["preset"], r["width"], r["batch"], engine)].append(r["images_per_second"])
        devices.add(r.get("device", "?"))
        if r.get("copy_bytes_per_second"):
            copies.append(r["copy_bytes_per_second"])
    if speeds:
        out.append("Devices: " + "; ".join(sorted(devices)) + ".\n")
        out.append("| preset | width | batch | Quorum img/s | Quorum op by op img/s | PyTorch eager img/s | torch.compile img/s | × eager | × compile |")
        out.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for preset, width, batch in sorted({key[:3] for key in speeds}):
            def median(engine):
                values = speeds.get((preset, width, batch, engine))
                return statistics.median(values) if values else None
            ours, eager, compiled = median("quorum"), median("pytorch-eager"), median("pytorch-compile")
            op_by_op = median("quorum-op-by-op")
            cell = lambda v: f"{v:,.0f}" if v else "—"
            ratio = lambda a, b: f"{a / b:.2f}" if a and b else "—"
            out.append(f"| {preset} | {width} | {batch} | {cell(ours)} | {cell(op_by_op)} | {cell(eager)} | {cell(compiled)} | "
                       f"{ratio(ours, eager)} | {ratio(ours, compiled)} |")
        if copies:
            out.append(f"\nDevice-to-device copy (read + write, PyTorch's process): {statistics.median(copies) / 1e9:,.0f} GB/s.")
    whole = [r for r in rows if r.get("check") == "whole-command"]
    if whole:
        out.append("\n| whole command (FMNIST-LT-100, reference recipe) | median seconds | balanced accuracy |")
        out.append("| --- | ---: | ---: |")
        for engine in sorted({r["engine"] for r in whole}):
            runs = [r for r in whole if r["engine"] == engine]
            accuracy = [r["balanced_accuracy"] for r in runs if r.get("balanced_accuracy") is not None]
            out.append(f"| {engine} on {runs[0]['device']} | {statistics.median(r['seconds'] for r in runs):.1f} | "
                       f"{statistics.median(accuracy) if accuracy else float('nan'):.4f} |")
    print("\n".join(out))


if __name__ == "__main__":
    main(sys.argv[1])
