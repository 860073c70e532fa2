"""PNG plots and a Markdown report from a sweep's JSON (matplotlib)."""
import os

from . import model

WORKLOAD_ORDER = ["lab-private", "lab-read-mostly", "lab-counter", "lab-false-sharing", "lab-prodcons"]


def _ok(cells):
    return [c for c in cells if c.get("status") == "ok" and c.get("summary")]


def _med(c, key):
    return c["summary"].get(key, {}).get("median")


def _legend(ax):
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "no data in this sweep", ha="center", va="center", transform=ax.transAxes)


def _finish(fig, axes, path, plt, grid=True):
    for a in axes:
        if grid:
            a.grid(alpha=0.3)
        _legend(a)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _delay_cells(res, nodes):
    """tcp cells over namespace profiles at the default 10 Gbit/s rate."""
    local = {p["name"] for p in res["profiles"] if p.get("local")}
    return [c for c in _ok(res["cells"]) if c["profile"] not in local and c["nodes"] == nodes
            and c["transport"] == "tcp" and c.get("rate_gbit") == 10.0]


def _bars(stats, scale=1.0):
    """min-max error bars around the median of summary dicts."""
    return [[(st["median"] - st["min"]) * scale for st in stats], [(st["max"] - st["median"]) * scale for st in stats]]


def _model_groups(series):
    """{workload: [(delay, model us)]} -> [(workloads, points)]: workloads whose
    model is the same (it depends on the link and on whether a read needs a
    downgrade, not on the workload) share one line."""
    groups = {}
    for w, pts in series.items():
        key = tuple((d, round(v, 1)) for d, v in pts)
        groups.setdefault(key, []).append(w)
    return [(ws, list(key)) for key, ws in groups.items()]


def plot_latency_vs_delay(res, path, plt):
    nodes = max([c["nodes"] for c in _ok(res["cells"])] + [2])
    nodes = 2 if any(c["nodes"] == 2 for c in _ok(res["cells"])) else nodes
    cells = _delay_cells(res, nodes)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.5))
    colors, models = {}, {}
    for w in WORKLOAD_ORDER:
        pts = sorted(((c["delay_us"], c) for c in cells if c["workload"] == w), key=lambda p: p[0])
        if not pts:
            continue
        xs = [d for d, _ in pts]
        lat = [(d, c["summary"]["read_fault_us"]) for d, c in pts if _med(c, "read_fault_us") is not None]
        if lat and w != "lab-private":
            colors[w] = f"C{WORKLOAD_ORDER.index(w)}"  # the same colour in both panels
            a1.errorbar([d for d, _ in lat], [st["median"] for _, st in lat], yerr=_bars([st for _, st in lat]),
                        fmt="o-", capsize=3, color=colors[w], label=f"{w} measured")
            # The model is a floor for a remote fault: none on 1 node.
            if nodes > 1:
                models[w] = [(d, c["model"]["read"]["total_us"]) for d, c in pts if c.get("model")]
        t = [c["summary"]["time_ms"] for _, c in pts]
        a2.errorbar(xs, [st["median"] for st in t], yerr=_bars(t), fmt="o-", capsize=3,
                    color=f"C{WORKLOAD_ORDER.index(w)}", label=w)
    for ws, pts in _model_groups({w: p for w, p in models.items() if p}):
        color = colors[ws[0]] if len(ws) == 1 else "black"
        a1.plot([d for d, _ in pts], [v for _, v in pts], "--", color=color, label=f"model ({', '.join(ws)})")
    a1.set(title=f"Read fault latency vs link delay ({nodes} nodes, tcp; min-max bars)",
           xlabel="one-way link delay (us)", ylabel="mean read fault (us)")
    a2.set(title=f"Run time vs link delay ({nodes} nodes, tcp; min-max bars)",
           xlabel="one-way link delay (us)", ylabel="measured phase (ms)", yscale="log")
    _finish(fig, (a1, a2), path, plt)


def plot_speedup(res, path, plt):
    cells = _ok(res["cells"])
    fig, ax = plt.subplots(figsize=(7, 4.5))
    top = max([c["nodes"] for c in cells] + [1])
    # Private pages only: the one workload whose work per node is independent
    # of the others (the others are meant not to scale). Loopback, the
    # fastest emulated link and the slowest one.
    names = [p["name"] for p in res["profiles"]]
    for prof in dict.fromkeys(names[:2] + names[-1:]):
        by_n = {c["nodes"]: c["summary"]["throughput_ops_s"] for c in cells
                if c["workload"] == "lab-private" and c["profile"] == prof and c["transport"] == "tcp"
                and c["summary"].get("throughput_ops_s")}
        if not by_n.get(1) or not by_n[1]["median"] or len(by_n) < 2:
            continue
        ns = sorted(by_n)
        base = by_n[1]["median"]
        ax.errorbar(ns, [by_n[n]["median"] / base for n in ns], yerr=_bars([by_n[n] for n in ns], 1.0 / base),
                    fmt="o-", capsize=3, label=f"lab-private ({prof}; min-max bars)")
    ax.plot([1, top], [1, top], "k:", label="ideal")
    cpus = res["machine"].get("online_cpus")
    if cpus:
        ax.axhline(cpus, color="grey", lw=0.8, ls="--", label=f"{cpus} online CPUs")
    ax.set(title="Private-page speed-up vs node count (aggregate ops/s over 1 node)", xlabel="nodes",
           ylabel="speed-up")
    _finish(fig, (ax,), path, plt)


def plot_fault_mix(res, path, plt):
    cells = _ok(res["cells"])
    nodes = max([c["nodes"] for c in cells] + [1])
    prof = next((p["name"] for p in res["profiles"] if not p.get("local")), None) or \
        (res["profiles"][0]["name"] if res["profiles"] else None)
    sel = {c["workload"]: c for c in cells if c["nodes"] == nodes and c["profile"] == prof
           and c["transport"] == "tcp"}
    ws = [w for w in WORKLOAD_ORDER if w in sel]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    bottom = [0.0] * len(ws)
    for key, label in (("read_faults", "read"), ("write_faults", "write"), ("upgrade_faults", "upgrade"),
                       ("invalidations", "invalidations sent")):
        runs = [[r[key] for r in sel[w]["repeats"]] for w in ws]
        vals = [sum(x) / len(x) for x in runs]
        ax.bar(ws, vals, bottom=bottom, label=label, capsize=3,
               yerr=[[v - min(x) for v, x in zip(vals, runs)], [max(x) - v for v, x in zip(vals, runs)]])
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set(title=f"Fault mix per run ({nodes} nodes, profile {prof}, tcp; mean, min-max bars)",
           ylabel="events per run")
    ax.tick_params(axis="x", labelsize=7)
    _finish(fig, (ax,), path, plt, grid=False)


def render(res, outdir):
    """Writes the PNGs and report.md into outdir; returns their paths."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    paths = {}
    for name, fn in (("latency_vs_delay.png", plot_latency_vs_delay), ("speedup_vs_nodes.png", plot_speedup),
                     ("fault_mix.png", plot_fault_mix)):
        p = os.path.join(outdir, name)
        fn(res, p, plt)
        paths[name] = p
    rp = os.path.join(outdir, "report.md")
    with open(rp, "w") as fh:
        fh.write(report(res))
    paths["report.md"] = rp
    return paths


def _fmt(v, spec=".1f"):
    return "-" if v is None else format(v, spec)


def _num(v):
    """3 significant digits without exponent: 0.0123, 1.23, 123, 12300."""
    return f"{v:.3g}" if 1e-3 <= abs(v) < 1e3 or v == 0 else f"{v:.0f}"


def _time(ms):
    """A {min, median, max} in ms as 'median [min-max] unit', in the unit
    that suits the median (us below 1 ms, s from 10 s)."""
    unit, scale = ("us", 1e3) if ms["median"] < 1 else ("s", 1e-3) if ms["median"] >= 1e4 else ("ms", 1.0)
    return f"{_num(ms['median'] * scale)} [{_num(ms['min'] * scale)}-{_num(ms['max'] * scale)}] {unit}"


def report(res):
    m = res["machine"]
    fl = res["floor"]
    lines = [
        "# ssi interconnect lab report", "",
        f"{res['created']}, git {res.get('git') or '?'}, {'quick' if res['quick'] else 'full'} sweep, "
        f"{res['repeats']} repeats per cell, link shaper `{res.get('shaper')}`.", "",
        f"Machine: {m['cpu_model']}, {m['online_cpus']} CPUs, {m['mem_gib']} GiB, kernel {m['kernel']}, "
        f"load average at start {', '.join(f'{x:.2f}' for x in m['loadavg_at_start'])}"
        + (f", at end {', '.join(f'{x:.2f}' for x in m['loadavg_at_end'])}" if m.get("loadavg_at_end") else "")
        + ", /dev/kvm "
        f"{'present' if m['kvm'] else 'absent'}. CPU placement: loopback cells "
        f"{res.get('placement', {}).get('local', '?')}; emulated clusters "
        f"{res.get('placement', {}).get('lab', '?')}; {m['cpu_placement']}.", "",
        f"Fault floor on this host (dsm_floor, median): uffd fault {fl['uffd_fault_us']:.1f} us, "
        f"write-protect {fl['write_protect_us']:.1f} us, drop {fl['drop_us']:.1f} us.", "",
        "How to read this: docs/benchmarking.md. Guest cells (guest-*): the time is the whole "
        "`ssi run` (boot included), no ops/s; their fault columns are the DSM's own.", "",
        "![latency vs delay](latency_vs_delay.png)", "", "![speed-up](speedup_vs_nodes.png)", "",
        "![fault mix](fault_mix.png)", "",
        "## Profiles", "", "| profile | one-way delay (us) | rate (Gbit/s) | measured rpc RTT (us) |",
        "|---|---|---|---|"]
    for p in res["profiles"]:
        rtt = ", ".join(f"{k} {v:.0f}" for k, v in p.get("rtt_us", {}).items()) or "-"
        lines.append(f"| {p['name']} | {'loopback' if p.get('local') else p['delay_us']} | "
                     f"{p['rate_gbit'] or 'unlimited'} | {rtt} |")
    lines += ["", "## Cells (median [min-max] over repeats)", "",
              "| workload | nodes | profile | transport | time | ops/s | read fault us (model) | "
              "write fault us (model) |", "|---|---|---|---|---|---|---|---|"]
    for c in res["cells"]:
        if c.get("status") != "ok":
            continue
        s = c["summary"]
        # The model is a remote fault's floor: meaningless on 1 node.
        model_of = c.get("model", {}) if c["nodes"] > 1 else {}
        mr = model_of.get("read", {}).get("total_us")
        mw = model_of.get("write", {}).get("total_us")
        lines.append(
            f"| {c['workload']} | {c['nodes']} | {c['profile']} | {c['transport']} | "
            f"{_time(s['time_ms'])} | {_fmt(_med(c, 'throughput_ops_s'), '.3g')} | "
            f"{_fmt(_med(c, 'read_fault_us'), '.0f')} ({_fmt(mr, '.0f')}) | "
            f"{_fmt(_med(c, 'write_fault_us'), '.0f')} ({_fmt(mw, '.0f')}) |")
    lines += path_table(res)
    others = [c for c in res["cells"] if c.get("status") != "ok"]
    if others:
        lines += ["", "## Not run or failed", ""]
        for c in others:
            where = f" n={c['nodes']} {c['profile']} {c['transport']}" if "nodes" in c else ""
            lines.append(f"- {c['workload']}{where}: {c['status']}: {c.get('reason', '')}")
    lines += ["", "Model: " + model.SUMMARY, ""]
    return "\n".join(lines)


def path_table(res):
    """Per fault path: faults, measured mean us, the path's minimum and the
    ratio (medians over repeats), for every multi-node cell that has any."""
    rows = []
    for c in res["cells"]:
        ok = c.get("status") == "ok" and c.get("nodes", 0) > 1  # 1 node: no remote faults
        paths = c.get("model", {}).get("paths", {}) if ok else {}
        for path, m in paths.items():
            med = _med(c, f"{path}_fault_us")
            if med is None:
                continue
            rows.append(f"| {c['workload']} | {c['nodes']} | {c['profile']} | {c['transport']} | {path} | "
                        f"{_fmt(_med(c, f'{path}_faults'), '.0f')} | {med:.0f} | {m['delays']:.3g} | "
                        f"{m['total_us']:.0f} | {med / m['total_us']:.2f}x |")
    if not rows:
        return []
    return ["", "## Faults by message path (median over repeats; model = the path's minimum)", "",
            "| workload | nodes | profile | transport | path | faults | measured us | one-way delays | "
            "model us | measured/model |", "|---|---|---|---|---|---|---|---|---|---|", *rows]
