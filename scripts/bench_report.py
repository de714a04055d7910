#!/usr/bin/env python3
"""Turns criterion's results, benches/memory.rs's JSON and benches/latency.rs's
JSON into docs/bench.md (issue 19's targets first, then every measurement) and
an SVG bar chart. No dependencies beyond the standard library."""

import argparse
import json
import os
import platform
import subprocess
from datetime import datetime, timezone

FLOOR = "floor (raw channel)"


def ours(name):
    """taskwarden's own rows: every bench named taskwarden or taskwarden-*."""
    return name == "taskwarden" or name.startswith("taskwarden-")


BEST_PEER = "best peer"


def crit(prefix, num, den):
    """A ratio from criterion's medians: `num` over `den` (a bench name,
    or BEST_PEER: the fastest of the peers in the group) in the first group
    whose name starts with `prefix`."""
    return ("criterion", prefix, num, den)


# Issue 19's targets, as (label, measure, bound, strict): met when the ratio
# is at most `bound` (below it when `strict`). Each is printed, measured or
# not. A latency measure gives one ratio per run of benches/latency.rs.
W1C_2 = "W1c 1M one-word tasks, 2 slots"
W1C_35 = "W1c 1M one-word tasks, 35 slots"
TARGETS = [
    ("W1c 1 producer, 2 slots: detached vs floor", crit(W1C_2, "taskwarden-detached", FLOOR), 1.1, False),
    ("W1c 1 producer, 2 slots: detached vs best peer", crit(W1C_2, "taskwarden-detached", BEST_PEER), 0.9, True),
    ("W1c 1 producer, 35 slots: detached vs floor", crit(W1C_35, "taskwarden-detached", FLOOR), 1.1, False),
    ("W1c 1 producer, 35 slots: detached vs best peer", crit(W1C_35, "taskwarden-detached", BEST_PEER), 0.9, True),
]
for _producers in (2, 4, 8):
    _group = f"W4c 1M one-word tasks, {_producers} producers, 2 slots"
    TARGETS += [
        (f"W4c {_producers} producers, 2 slots: detached vs floor",
         crit(_group, "taskwarden-detached", FLOOR), 1.3, False),
        (f"W4c {_producers} producers, 2 slots: detached vs best peer",
         crit(_group, "taskwarden-detached", BEST_PEER), 1.0, True),
    ]
TARGETS += [
    ("one task at a time (spawn + join, 4 slots): p50 vs floor",
     ("latency", "round-trip", "p50_us", "taskwarden", "floor"), 1.2, False),
    ("one task at a time (spawn + join, 4 slots): p99 vs floor",
     ("latency", "round-trip", "p99_us", "taskwarden", "floor"), 1.5, False),
    ("CPU under a trickle (a task a ms for 1 s, 8 slots) vs floor",
     ("latency", "trickle", "cpu_ms", "taskwarden", "floor"), 1.2, False),
    ("map, 20k items of 5 µs, 2 slots, vs rayon par_iter (2 threads)",
     ("latency", "map", "ms", "taskwarden-map", "rayon-par-iter"), 1.25, False),
    ("try_map vs map (same items)",
     ("latency", "map", "ms", "taskwarden-try-map", "taskwarden-map"), 1.05, False),
    ("fork-join sum of 1M, 1k leaves, spawn one half: vs rayon::join",
     ("latency", "fork-join", "ms", "taskwarden", "rayon-join"), 2.0, False),
    ("fork-join sum of 1M, 1k leaves, spawn both halves: vs rayon::join",
     ("latency", "fork-join", "ms", "taskwarden-both", "rayon-join"), 2.0, False),
    ("bytes per queued task, spawn_detached",
     ("memory", "taskwarden-detached"), 64, False),
    ("bytes per queued task, spawn (handle dropped)",
     ("memory", "taskwarden"), 64, False),
]

# Ratios shown for information, or against an earlier issue's bound, under
# the same (label, measure, bound, strict) shape.
OTHER = [
    ("TaskSet per result vs handle join (issue 8: at most 1.2x)",
     crit("W8", "taskwarden-task-set", "taskwarden-handles"), 1.2, False),
    ("W9 map over 200k 1 µs items vs rayon par_iter (issue 8: at most 1.25x)",
     crit("W9", "taskwarden-map", "rayon-par-iter"), 1.25, False),
    ("W9 try_map vs map", crit("W9", "taskwarden-try-map", "taskwarden-map"), None, False),
    ("W9 map vs a spawn/join loop", crit("W9", "taskwarden-map", "taskwarden-spawn-join-loop"), None, False),
    ("map_unordered vs rayon par_iter (20k items of 5 µs)",
     ("latency", "map", "ms", "taskwarden-map-unordered", "rayon-par-iter"), None, False),
    ("map vs the same items run serially (20k items of 5 µs; 0.5 is ideal on 2 slots)",
     ("latency", "map", "ms", "taskwarden-map", "serial"), None, False),
    ("one task at a time: p50 vs the best peer's",
     ("latency", "round-trip", "p50_us", "taskwarden", BEST_PEER), None, False),
    ("scoped on a manager vs TaskManager::scope",
     crit("W7", "taskwarden-scoped-on-manager", "taskwarden-scope"), None, False),
    ("W1c 2 slots, handles kept then joined vs floor", crit(W1C_2, "taskwarden-joined", FLOOR), None, False),
]
# Empty closures (W1, W4): for information only since issue 19 (see the
# note on W1c and W4c in the report).
for _slots in (2, 35):
    _group = f"W1 1M empty tasks, {_slots} slots"
    OTHER += [
        (f"W1 (empty) {_slots} slots: detached vs floor", crit(_group, "taskwarden-detached", FLOOR), None, False),
        (f"W1 (empty) {_slots} slots: detached vs best peer", crit(_group, "taskwarden-detached", BEST_PEER),
         None, False),
    ]
OTHER.append(("W1 (empty) 2 slots: handles kept then joined vs floor",
              crit("W1 1M empty tasks, 2 slots", "taskwarden-joined", FLOOR), None, False))
for _producers in (2, 4, 8):
    _group = f"W4 1M empty tasks, {_producers} producers, 2 slots"
    OTHER += [
        (f"W4 (empty) {_producers} producers: detached vs floor", crit(_group, "taskwarden-detached", FLOOR),
         None, False),
        (f"W4 (empty) {_producers} producers: detached vs best peer",
         crit(_group, "taskwarden-detached", BEST_PEER), None, False),
    ]


def best_peer(benches):
    peers = [t for name, (t, _) in benches.items() if not ours(name) and name != FLOOR]
    return min(peers) if peers else None


LATENCY_PEERS = ("threadpool", "rayon-spawn")


def ratios(measure, groups, latency, memory):
    """The measured values of one target: a list (one per run), empty when
    it was not measured."""
    kind = measure[0]
    if kind == "criterion":
        _, prefix, num, den = measure
        group = next((g for g in sorted(groups) if g.startswith(prefix)), None)
        if group is None or num not in groups[group]:
            return []
        benches = groups[group]
        base = best_peer(benches) if den == BEST_PEER else benches.get(den, (None,))[0]
        return [benches[num][0] / base] if base else []
    if kind == "latency":
        _, what, field, num, den = measure
        out = []
        for run in sorted(latency):
            rows = latency[run].get(what, {})
            if num not in rows:
                continue
            if den == BEST_PEER:
                peers = [rows[p][field] for p in LATENCY_PEERS if p in rows]
                base = min(peers) if peers else None
            else:
                base = rows.get(den, {}).get(field)
            if base:
                out.append(rows[num][field] / base)
        return out
    if kind == "memory":
        row = next((r for r in memory if r["pool"] == measure[1]), None)
        return [row["queued_task_bytes"]] if row else []
    raise ValueError(measure)


def bound_text(bound, strict, absolute):
    if bound is None:
        return ""
    if absolute:
        return f"≤ {bound:g}"
    return f"{'<' if strict else '≤'} {bound:.2f}"


def target_rows(targets, groups, latency, memory):
    """[(label, bound, measured, met)] as text."""
    rows = []
    for label, measure, bound, strict in targets:
        absolute = measure[0] == "memory"
        values = ratios(measure, groups, latency, memory)
        shown = " · ".join(f"{v:.0f}" if absolute else f"{v:.2f}" for v in values)
        if not values:
            met = "not measured"
        elif bound is None:
            met = "for information"
        else:
            good = sum(1 for v in values if (v < bound if strict else v <= bound))
            met = "met" if good == len(values) else "not met"
            if len(values) > 1:
                met += f" ({good} of {len(values)} runs)"
        rows.append((label, bound_text(bound, strict, absolute), shown or "—", met))
    return rows


def targets_table(rows, with_bound=True):
    if with_bound:
        lines = ["| target | bound | measured | met |", "| --- | ---: | ---: | --- |"]
        lines += [f"| {label} | {bound} | {shown} | {met} |" for label, bound, shown, met in rows]
    else:
        lines = ["| ratio | bound | measured | |", "| --- | ---: | ---: | --- |"]
        lines += [f"| {label} | {bound} | {shown} | {met} |" for label, bound, shown, met in rows]
    return lines


def load_latency(path):
    """{run: {measure: {pool: row}}} and the calibration row from
    benches/latency.rs's JSON (a file without run numbers is run 1)."""
    if not os.path.exists(path):
        return {}, {}
    with open(path) as f:
        rows = json.load(f)
    runs, calibration = {}, {}
    for row in rows:
        if row["measure"] == "calibration":
            calibration = row
            continue
        runs.setdefault(row.get("run", 1), {}).setdefault(row["measure"], {})[row["pool"]] = row
    return runs, calibration


def latency_table(latency):
    runs = sorted(latency)
    if not runs:
        return []
    measures = [
        ("round-trip", "p50_us", "one task at a time, p50 (µs)", 1),
        ("round-trip", "p99_us", "one task at a time, p99 (µs)", 1),
        ("trickle", "cpu_ms", "CPU under a trickle (ms in 1 s)", 1),
        ("fork-join", "ms", "fork-join sum of 1M, 1k leaves (ms)", 2),
        ("map", "ms", "map over 20k items of 5 µs, 2 slots (ms)", 1),
    ]
    lines = ["| measure | pool | " + " | ".join(f"run {r}" for r in runs) + " |",
             "| --- | --- |" + " ---: |" * len(runs)]
    for what, field, label, digits in measures:
        pools = []
        for r in runs:
            for pool in latency[r].get(what, {}):
                if pool not in pools:
                    pools.append(pool)
        for pool in pools:
            cells = []
            for r in runs:
                row = latency[r].get(what, {}).get(pool)
                cells.append(f"{row[field]:.{digits}f}" if row else "")
            shown = f"**{pool}**" if ours(pool) else pool
            lines.append(f"| {label} | {shown} | " + " | ".join(cells) + " |")
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
    try:
        nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    except OSError:
        nproc = str(os.cpu_count())
    return f"`nproc` {nproc}, {cpu}, {platform.system()} {platform.release()}, {rustc}"


def commit_text():
    """The commit checked out, and whether the files the benches build were
    changed from it (others may be editing them while a report runs)."""
    def git(*args):
        return subprocess.run(["git", *args], capture_output=True, text=True).stdout.strip()
    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "src", "benches", "Cargo.toml", "Cargo.lock")
    return f"commit {commit}" + (" with uncommitted changes to src/, benches/ or Cargo.*" if dirty else "")


def run_line(args):
    started = datetime.fromtimestamp(args.started, timezone.utc) if args.started else datetime.now(timezone.utc)
    parts = [f"Run {started:%Y-%m-%d %H:%M} UTC", args.commit or commit_text(), machine()]
    if args.load:
        parts.append(f"load average {args.load} when it started")
    if args.started:
        took = int(datetime.now(timezone.utc).timestamp() - args.started)
        parts.append(f"the whole report took {took // 60} min {took % 60} s")
    if args.command:
        parts.append(f"`{args.command}`")
    return "; ".join(parts) + "."


def table(groups, memory, latency, calibration, args):
    lines = ["# Benchmarks", "", run_line(args), "",
             "## Targets (issue 19)", "",
             "Ratios are taskwarden's time (or CPU) over the other's; below 1.00 means taskwarden is "
             "faster. W1c and W4c come from criterion (one median each); the latency and map rows "
             "give one ratio per run of benches/latency.rs, and `met` counts the runs that met the "
             "bound (all must). Bytes are absolute.", ""]
    lines += targets_table(target_rows(TARGETS, groups, latency, memory))
    lines += ["", "## Other ratios", "",
              "For information, or against an earlier issue's bound. The empty-closure workloads (W1, W4) "
              "are here for information only: see the note on W1c and W4c below.", ""]
    lines += targets_table(target_rows(OTHER, groups, latency, memory), with_bound=False)
    if latency:
        lines += ["", "## Latency, trickle, fork-join and map (benches/latency.rs)", "",
                  "Each pool in a child process of its own (the map variants share one child and run "
                  "interleaved, a fresh warmed-up pool per variant per round, 15 rounds after 2 of "
                  "warm-up: the median). One task at a time: 20,000 spawn-and-wait round trips on "
                  "4 slots (the floor and the peers send the result back on a channel). Trickle: "
                  "one empty task per ms for 1 s on 8 slots, the CPU time of all the process's "
                  "threads. Fork-join: median of 30 recursive sums on 2 threads; `taskwarden` "
                  "spawns one half and computes the other, `taskwarden-both` spawns both and joins "
                  "both. Map: 20,000 items of "
                  + (f"{calibration.get('busy_work_rounds', 0):,} rounds of arithmetic "
                     f"(calibrated as {calibration.get('map_micros', 5)} µs) "
                     if calibration else "about 5 µs of arithmetic ")
                  + "each, 2 slots, against rayon's `par_iter` on a 2-thread pool; `serial` is "
                  "the same items on one thread.", ""]
        lines += latency_table(latency)
    lines += ["", "## Throughput (benches/compare.rs)", ""]
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
    if memory:
        lines += ["", "## Memory (benches/memory.rs)", "",
                  "| pool | W1 peak RSS | bytes per queued empty task |", "| --- | ---: | ---: |"]
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
    # The workspace's target dir: criterion and the per-process benches write there.
    target = os.environ.get("CARGO_TARGET_DIR", "target")
    parser.add_argument("--criterion", default=os.path.join(target, "criterion"))
    parser.add_argument("--memory", default=os.path.join(target, "memory.json"))
    parser.add_argument("--latency", default=os.path.join(target, "latency.json"))
    parser.add_argument("--markdown", default="docs/bench.md")
    parser.add_argument("--svg", default="docs/bench.svg")
    parser.add_argument("--targets", help="also write the targets table alone here")
    parser.add_argument("--started", type=float, help="when the run began (Unix seconds)")
    parser.add_argument("--commit", help="the commit line, taken when the run began")
    parser.add_argument("--load", help="the load average when the run began")
    parser.add_argument("--command", help="the command that made the report")
    args = parser.parse_args()
    groups = load_groups(args.criterion)
    memory = json.load(open(args.memory)) if os.path.exists(args.memory) else []
    latency, calibration = load_latency(args.latency)
    with open(args.markdown, "w") as f:
        f.write(table(groups, memory, latency, calibration, args))
    if groups:
        with open(args.svg, "w") as f:
            f.write(svg(groups))
    if args.targets:
        with open(args.targets, "w") as f:
            f.write("\n".join(targets_table(target_rows(TARGETS, groups, latency, memory))) + "\n")


if __name__ == "__main__":
    main()
