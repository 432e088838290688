#!/usr/bin/env python3
"""Summarise a JSONL file of `quorum bench` and pytorch_peer.py results as markdown.

    python3 scripts/bench/summarize.py bench-results/cpu_training.jsonl --command "..."

Rows: one per (preset, width, input, mode); throughput is the median over repeats, ratio is
ours / pytorch (above 1: Quorum is faster). Footer: the GEMM library's sgemm GFLOP/s, the useful
GFLOP/s of training (3 x forward FLOPs per image: forward, input- and weight-gradient),
the machine, and last the exact command that produced the file.
"""
import argparse
import json
import os
import platform
import statistics
import sys
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

MIB = 1024 * 1024


def forward_flops(preset, width, size):
    import mobilenet_reference  # imports torch: only when there is something to count
    height, width_pixels, channels = (int(v) for v in size.split("x"))
    model = mobilenet_reference.build_preset(preset, width, input_channels=channels)
    return mobilenet_reference.forward_flops(model, input_shape=(1, channels, height, width_pixels))


def cpu_model():
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def median_or_none(values):
    return statistics.median(values) if values else None


def fmt(value, digits=0):
    return "—" if value is None else f"{value:,.{digits}f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", help="JSONL file, one result object per line")
    parser.add_argument("--command", default=None, help="the command that produced the results")
    args = parser.parse_args()

    speed = defaultdict(list)  # (preset, width, input, mode, engine) -> images/s over repeats
    rss = defaultdict(list)    # same key -> peak RSS bytes
    sgemm = []
    versions = set()
    with open(args.results) as results:
        for number, line in enumerate(results, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                sys.exit(f"{args.results}:{number}: not JSON ({error}): {line[:80]!r}")
            if record["engine"] == "sgemm":
                sgemm.append((record["library"], record["gflops"]))
                continue
            engine = "ours" if record["engine"] == "quorum" else record["engine"]
            # Results from before --input were all 28x28x1.
            key = (record["preset"], float(record["width"]), record.get("input", "28x28x1"), record["mode"], engine)
            speed[key].append(record["images_per_second"])
            rss[key].append(record["peak_rss_bytes"])
            if "torch_version" in record:
                versions.add("torch " + record["torch_version"])

    configurations = sorted({key[:4] for key in speed}, key=lambda k: (k[2], k[0] != "imagenet", k[0], -k[1], k[3] != "train"))
    print("| preset | width | input | mode | ours img/s | pytorch img/s | ratio | ours peak RSS MiB | pytorch peak RSS MiB |")
    print("| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for preset, width, size, mode in configurations:
        ours = median_or_none(speed[(preset, width, size, mode, "ours")])
        peer = median_or_none(speed[(preset, width, size, mode, "pytorch")])
        ratio = ours / peer if ours and peer else None
        ours_rss = median_or_none(rss[(preset, width, size, mode, "ours")])
        peer_rss = median_or_none(rss[(preset, width, size, mode, "pytorch")])
        print(f"| {preset} | {width} | {size} | {mode} | {fmt(ours)} | {fmt(peer)} | {fmt(ratio, 2)} "
              f"| {fmt(ours_rss and ours_rss / MIB)} | {fmt(peer_rss and peer_rss / MIB)} |")

    repeats = max((len(v) for v in speed.values()), default=0)
    print()
    print(f"Medians over {repeats} repeats; ratio = ours / pytorch.")
    if sgemm:
        libraries = "/".join(sorted({library for library, _ in sgemm}))
        gflops = [value for _, value in sgemm]
        print(f"{libraries} sgemm 512x512x512: {statistics.median(gflops):.1f} GFLOP/s (median of {len(gflops)}).")
    for preset, width, size, mode in configurations:
        if mode != "train":
            continue
        flops = forward_flops(preset, width, size)
        useful = {engine: median_or_none(speed[(preset, width, size, mode, engine)]) for engine in ("ours", "pytorch")}
        parts = [f"{engine} {fmt(v and v * 3 * flops / 1e9, 1)}" for engine, v in useful.items()]
        print(f"Useful training GFLOP/s, {preset} {width} {size} ({flops / 1e6:.1f} MFLOP forward/image, x3): "
              + ", ".join(parts) + ".")
    print(f"Machine: {cpu_model()}, {os.cpu_count()} CPUs; {', '.join(sorted(versions)) or 'no peer'}.")
    if args.command:
        print(f"Command: `{args.command}`")


if __name__ == "__main__":
    main()
