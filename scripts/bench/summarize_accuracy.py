#!/usr/bin/env python3
"""Summarise a JSONL file of accuracy runs (scripts/bench/accuracy.sh) as markdown.

    python3 scripts/bench/summarize_accuracy.py bench-results/accuracy-lt100.jsonl --command "..."

Each line is one training run, Quorum's (engine "quorum", extracted from metrics.json) or
PyTorch's (pytorch_accuracy.py), in the same shape. Prints: one row per run (engine, seed,
test accuracy, balanced accuracy, macro-F1, lowest recall, training seconds); per engine
the mean ± sample standard deviation over seeds of accuracy and lowest recall; per engine
the per-epoch test accuracy curve (mean over seeds); last the exact command.
"""
import argparse
import json
import shlex
import statistics
import sys
from collections import defaultdict


def load(path):
    runs = []
    with open(path) as lines:
        for number, line in enumerate(lines, 1):
            line = line.strip()
            if not line:
                continue
            try:
                run = json.loads(line)
            except json.JSONDecodeError as error:
                sys.exit(f"{path}:{number}: not JSON ({error})")
            if "engine" in run and "history" in run and "test_accuracy" in run:
                runs.append(run)
            else:
                print(f"summarize_accuracy: {path}:{number}: not an accuracy run, skipped", file=sys.stderr)
    return runs


def setting(run):
    """What must match for runs to be compared."""
    return (run.get("data"), run.get("preset"), run.get("width"), run.get("epochs"), run.get("limit"))


def label(run, mixed):
    if not mixed:
        return run["engine"]
    data, preset, width, epochs, limit = setting(run)
    text = f"{run['engine']} ({data}, {preset} w{width}, {epochs} ep"
    return text + (f", limit {limit})" if limit is not None else ")")


def mean_std(values):
    """'0.8195 ± 0.0040 (n=3)'; the sample std needs two values."""
    if not values:
        return "–"
    mean = statistics.fmean(values)
    if len(values) < 2:
        return f"{mean:.4f} (n=1)"
    return f"{mean:.4f} ± {statistics.stdev(values):.4f} (n={len(values)})"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", help="JSONL file, one run per line")
    parser.add_argument("--command", help="the command that produced the file (default: this one)")
    args = parser.parse_args()

    runs = load(args.results)
    if not runs:
        sys.exit(f"summarize_accuracy: no accuracy runs in {args.results}")
    mixed = len({setting(run) for run in runs}) > 1
    groups = defaultdict(list)
    for run in runs:
        groups[label(run, mixed)].append(run)

    first = runs[0]
    if not mixed:
        data, preset, width, epochs, limit = setting(first)
        print(f"Accuracy: {data}, MobileNetV2 {preset} width {width}, {epochs} epochs, "
              f"{first.get('threads')} threads" + (f" (smoke test: --limit {limit})" if limit is not None else ""))
        print()

    print("| engine | seed | test accuracy | balanced accuracy | macro-F1 | lowest recall | training s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, group in groups.items():
        for run in sorted(group, key=lambda r: r.get("seed", 0)):
            print(f"| {name} | {run.get('seed')} | {run['test_accuracy']:.4f} | {run['test_balanced_accuracy']:.4f} | "
                  f"{run['test_macro_f1']:.4f} | {run['test_lowest_recall']:.3f} | {run['seconds_total']:.1f} |")
    print()

    print("| engine | test accuracy (mean ± std over seeds) | lowest recall (mean ± std) |")
    print("| --- | --- | --- |")
    for name, group in groups.items():
        print(f"| {name} | {mean_std([r['test_accuracy'] for r in group])} | "
              f"{mean_std([r['test_lowest_recall'] for r in group])} |")
    print()

    print("Per-epoch test accuracy, mean over seeds:")
    print()
    for name, group in groups.items():
        epochs = min(len(r["history"]) for r in group)
        curve = [statistics.fmean(r["history"][e]["test_accuracy"] for r in group) for e in range(epochs)]
        print(f"- {name}: " + " ".join(f"{value:.4f}" for value in curve))
    print()

    command = args.command or shlex.join(["python3", *sys.argv])
    print(f"Command: `{command}`")


if __name__ == "__main__":
    main()
