#!/usr/bin/env python3
"""Turns criterion's results (and benches/memory.rs's JSON) into a markdown
table and an SVG bar chart. No dependencies beyond the standard library."""

import argparse
import json
import os
import platform
import subprocess
from datetime import date

FLOOR = "floor (raw channel)"


def ours(name):
    """taskwarden's own rows: every bench named taskwarden or taskwarden-*."""
    return name == "taskwarden" or name.startswith("taskwarden-")


# Targets set by the issues, as (label, group prefix, numerator, denominator,
# bound). The denominator BEST_PEER is the fastest of the peers in the group.
BEST_PEER = "best peer"
W1_2 = "W1 1M empty tasks, 2 slots"
W1_35 = "W1 1M empty tasks, 35 slots"
TARGETS = [
    ("TaskSet per result vs handle join (issue 8: at most 1.2x)", "W8", "taskwarden-task-set", "taskwarden-handles", 1.2),
    ("map vs rayon par_iter (issue 8: at most 1.25x)", "W9", "taskwarden-map", "rayon-par-iter", 1.25),
    ("map vs a spawn/join loop", "W9", "taskwarden-map", "taskwarden-spawn-join-loop", None),
    ("scoped on a manager vs TaskManager::scope", "W7", "taskwarden-scoped-on-manager", "taskwarden-scope", None),
    ("W1 2 slots, detached vs floor (issue 10: at most 1.1x)", W1_2, "taskwarden-detached", FLOOR, 1.1),
    ("W1 2 slots, detached vs best peer (issue 10: below 0.9x)", W1_2, "taskwarden-detached", BEST_PEER, 0.9),
    ("W1 35 slots, detached vs floor (issue 10: at most 1.1x)", W1_35, "taskwarden-detached", FLOOR, 1.1),
    ("W1 35 slots, detached vs best peer (issue 10: below 0.9x)", W1_35, "taskwarden-detached", BEST_PEER, 0.9),
    ("W1 2 slots, handles kept then joined vs floor (issue 10: at most 1.3x)", W1_2, "taskwarden-joined", FLOOR, 1.3),
    ("W1 2 slots, handles dropped at once vs floor", W1_2, "taskwarden", FLOOR, None),
]
# Not targets: the same workloads with closures that capture one word, which
# every pool allocates (an empty closure is zero-sized; see benches/compare.rs).
W1C_2 = "W1c 1M one-word tasks, 2 slots"
W1C_35 = "W1c 1M one-word tasks, 35 slots"
W4C_2 = "W4c 1M one-word tasks, 2 producers, 2 slots"
TARGETS += [
    ("W1c 2 slots (one-word closures), detached vs floor", W1C_2, "taskwarden-detached", FLOOR, None),
    ("W1c 2 slots (one-word closures), detached vs best peer", W1C_2, "taskwarden-detached", BEST_PEER, None),
    ("W1c 35 slots (one-word closures), detached vs floor", W1C_35, "taskwarden-detached", FLOOR, None),
    ("W1c 35 slots (one-word closures), detached vs best peer", W1C_35, "taskwarden-detached", BEST_PEER, None),
    ("W1c 2 slots (one-word closures), handles kept then joined vs floor", W1C_2, "taskwarden-joined", FLOOR, None),
    ("W4c 2 producers (one-word closures), detached vs floor", W4C_2, "taskwarden-detached", FLOOR, None),
    ("W4c 2 producers (one-word closures), detached vs best peer", W4C_2, "taskwarden-detached", BEST_PEER, None),
]
for producers in (2, 4, 8):
    group = f"W4 1M empty tasks, {producers} producers, 2 slots"
    TARGETS.append((f"W4 {producers} producers, detached vs floor (issue 10: at most 1.3x)",
                    group, "taskwarden-detached", FLOOR, 1.3))
    TARGETS.append((f"W4 {producers} producers, detached vs best peer (issue 10: below 1.0x)",
                    group, "taskwarden-detached", BEST_PEER, 1.0))


def best_peer(benches):
    peers = [t for name, (t, _) in benches.items() if not ours(name) and name != FLOOR]
    return min(peers) if peers else None


def targets(groups):
    lines = ["", "| target | ratio | bound | met |", "| --- | ---: | ---: | --- |"]
    for label, prefix, num, den, bound in TARGETS:
        group = next((g for g in sorted(groups) if g.startswith(prefix)), None)
        if group is None or num not in groups[group]:
            continue
        benches = groups[group]
        base = best_peer(benches) if den == BEST_PEER else benches.get(den, (None,))[0]
        if base is None:
            continue
        ratio = benches[num][0] / base
        met = "(for information)" if bound is None else ("yes" if ratio <= bound else "no")
        shown = "" if bound is None else f"{bound:.2f}"
        lines.append(f"| {label} | {ratio:.2f} | {shown} | {met} |")
    return lines


def load_groups(root):
    """{group: {bench: (median_ns, elements)}} from target/criterion."""
    groups = {}
    for dirpath, _dirs, files in os.walk(root):
        if "estimates.json" not in files or os.path.basename(dirpath) != "new":
            continue
        with open(os.path.join(dirpath, "estimates.json")) as f:
            median = json.load(f)["median"]["point_estimate"]
        with open(os.path.join(dirpath, "benchmark.json")) as f:
            meta = json.load(f)
        elements = (meta.get("throughput") or {}).get("Elements", 1)
        groups.setdefault(meta["group_id"], {})[meta["function_id"]] = (median, elements)
    return groups


def fmt_time(ns):
    if ns >= 1e9:
        return f"{ns / 1e9:.2f} s"
    if ns >= 1e6:
        return f"{ns / 1e6:.1f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.1f} µs"
    return f"{ns:.0f} ns"


def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    return f"{os.cpu_count()} cores, {cpu}, {platform.system()} {platform.release()}, {rustc}"


def table(groups, memory):
    lines = [f"Measured {date.today()} on {machine()}.", ""]
    lines.append("Medians of criterion's samples; `vs floor` is the time over the raw crossbeam "
                 "pool's, `vs best peer` over the fastest of threadpool, rusty_pool and rayon "
                 "(below 1.00 means faster).")
    lines.append("")
    lines.append("W1c and W4c are W1 and W4 with closures that capture one word. An empty closure is "
                 "zero-sized, so `Box::new` allocates nothing: on W1 and W4 the floor and the peers make "
                 "no allocation per task, while taskwarden allocates its task (id, state, result cell). "
                 "Every pool allocates a closure that captures anything, as nearly every real one does.")
    lines.append("")
    lines.append("How the cost grows with threads, producers and queue depth, with charts and where each "
                 "curve bends and why: [scaling.md](scaling.md) (`scripts/bench-scaling`).")
    lines.append("")
    lines.append("| workload | pool | median | per task | vs floor | vs best peer |")
    lines.append("| --- | --- | ---: | ---: | ---: | ---: |")
    for group in sorted(groups):
        benches = groups[group]
        floor = benches.get(FLOOR, (None,))[0]
        best = best_peer(benches)
        for name, (median, elements) in sorted(benches.items(), key=lambda kv: kv[1][0]):
            per_task = fmt_time(median / elements) if elements > 1 else ""
            vs_floor = f"{median / floor:.2f}" if floor else ""
            vs_peer = f"{median / best:.2f}" if best and ours(name) else ""
            shown = f"**{name}**" if ours(name) else name
            lines.append(f"| {group} | {shown} | {fmt_time(median)} | {per_task} | {vs_floor} | {vs_peer} |")
    lines += targets(groups)
    if memory:
        lines += ["", "| memory | W1 peak RSS | bytes per queued empty task |", "| --- | ---: | ---: |"]
        for row in memory:
            lines.append(f"| {row['pool']} | {row['w1_peak_kib'] / 1024:.1f} MiB | {row['queued_task_bytes']:.0f} |")
    return "\n".join(lines) + "\n"


def svg(groups):
    """One row of bars per workload: time relative to the floor (or to the
    slowest bar where there is no floor), taskwarden highlighted."""
    rows = []
    for group in sorted(groups):
        benches = groups[group]
        if FLOOR in benches:
            base, label = benches[FLOOR][0], group
        else:
            base, label = max(t for t, _ in benches.values()), f"{group} (relative to the slowest)"
        rows.append((label, sorted(((n, t / base) for n, (t, _) in benches.items()), key=lambda x: x[1])))
    bar_h, gap, left, width = 14, 26, 250, 420
    height = sum(len(bars) * bar_h + gap for _, bars in rows) + 40
    scale = width / max(max(r for _, r in bars) for _, bars in rows)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 90}" height="{height}" '
           'font-family="sans-serif" font-size="11">',
           '<rect width="100%" height="100%" fill="white"/>',
           f'<text x="10" y="18" font-size="13" font-weight="bold">Time relative to the raw-channel floor '
           '(shorter is faster)</text>']
    y = 34
    for group, bars in rows:
        out.append(f'<text x="10" y="{y + 10}" font-weight="bold">{group}</text>')
        y += 14
        for name, ratio in bars:
            colour = "#d9480f" if ours(name) else ("#868e96" if name == FLOOR else "#4c6ef5")
            out.append(f'<text x="{left - 6}" y="{y + 10}" text-anchor="end">{name}</text>')
            out.append(f'<rect x="{left}" y="{y}" width="{ratio * scale:.1f}" height="{bar_h - 3}" fill="{colour}"/>')
            out.append(f'<text x="{left + ratio * scale + 4:.1f}" y="{y + 10}">{ratio:.2f}×</text>')
            y += bar_h
        y += gap - 14
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    # The workspace's target dir: criterion and benches/memory.rs both write there.
    target = os.environ.get("CARGO_TARGET_DIR", "target")
    parser.add_argument("--criterion", default=os.path.join(target, "criterion"))
    parser.add_argument("--memory", default=os.path.join(target, "memory.json"))
    parser.add_argument("--markdown", default="docs/bench.md")
    parser.add_argument("--svg", default="docs/bench.svg")
    args = parser.parse_args()
    groups = load_groups(args.criterion)
    memory = json.load(open(args.memory)) if os.path.exists(args.memory) else []
    with open(args.markdown, "w") as f:
        f.write(table(groups, memory))
    with open(args.svg, "w") as f:
        f.write(svg(groups))


if __name__ == "__main__":
    main()
