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


def plot_latency_vs_delay(res, path, plt):
    nodes = max([c["nodes"] for c in _ok(res["cells"])] + [2])
    nodes = 2 if any(c["nodes"] == 2 for c in _ok(res["cells"])) else nodes
    cells = _delay_cells(res, nodes)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for w in WORKLOAD_ORDER:
        pts = sorted((c["delay_us"], c) for c in cells if c["workload"] == w)
        if not pts:
            continue
        xs = [d for d, _ in pts]
        lat = [(d, _med(c, "read_fault_us")) for d, c in pts if _med(c, "read_fault_us") is not None]
        if lat and w != "lab-private":
            line, = a1.plot([d for d, _ in lat], [v for _, v in lat], "o-", label=f"{w} measured")
            mod = [(d, c["model"]["read"]["total_us"]) for d, c in pts if c.get("model")]
            a1.plot([d for d, _ in mod], [v for _, v in mod], "--", color=line.get_color(),
                    label=f"{w} model")
        t = [c["summary"]["time_ms"] for _, c in pts]
        a2.errorbar(xs, [s["median"] for s in t],
                    yerr=[[s["median"] - s["min"] for s in t], [s["max"] - s["median"] for s in t]],
                    fmt="o-", capsize=3, label=w)
    a1.set(title=f"Read fault latency vs link delay ({nodes} nodes, tcp)",
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
        by_n = {c["nodes"]: _med(c, "throughput_ops_s") for c in cells
                if c["workload"] == "lab-private" and c["profile"] == prof and c["transport"] == "tcp"}
        if not by_n.get(1) or len(by_n) < 2:
            continue
        ns = sorted(by_n)
        ax.plot(ns, [by_n[n] / by_n[1] for n in ns], "o-", label=f"lab-private ({prof})")
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
        vals = [sum(r[key] for r in sel[w]["repeats"]) / len(sel[w]["repeats"]) for w in ws]
        ax.bar(ws, vals, bottom=bottom, label=label)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set(title=f"Fault mix per run ({nodes} nodes, profile {prof}, tcp)", ylabel="events per run")
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
        "How to read this: docs/benchmarking.md.", "",
        "![latency vs delay](latency_vs_delay.png)", "", "![speed-up](speedup_vs_nodes.png)", "",
        "![fault mix](fault_mix.png)", "",
        "## Profiles", "", "| profile | one-way delay (us) | rate (Gbit/s) | measured rpc RTT (us) |",
        "|---|---|---|---|"]
    for p in res["profiles"]:
        rtt = ", ".join(f"{k} {v:.0f}" for k, v in p.get("rtt_us", {}).items()) or "-"
        lines.append(f"| {p['name']} | {'loopback' if p.get('local') else p['delay_us']} | "
                     f"{p['rate_gbit'] or 'unlimited'} | {rtt} |")
    lines += ["", "## Cells (median [min-max] over repeats)", "",
              "| workload | nodes | profile | transport | time ms | ops/s | read fault us (model) | "
              "write fault us (model) |", "|---|---|---|---|---|---|---|---|"]
    for c in res["cells"]:
        if c.get("status") != "ok":
            continue
        s = c["summary"]
        t = s["time_ms"]
        mr = c.get("model", {}).get("read", {}).get("total_us")
        mw = c.get("model", {}).get("write", {}).get("total_us")
        lines.append(
            f"| {c['workload']} | {c['nodes']} | {c['profile']} | {c['transport']} | "
            f"{t['median']:.1f} [{t['min']:.1f}-{t['max']:.1f}] | {_med(c, 'throughput_ops_s') or 0:.3g} | "
            f"{_fmt(_med(c, 'read_fault_us'), '.0f')} ({_fmt(mr, '.0f')}) | "
            f"{_fmt(_med(c, 'write_fault_us'), '.0f')} ({_fmt(mw, '.0f')}) |")
    others = [c for c in res["cells"] if c.get("status") != "ok"]
    if others:
        lines += ["", "## Not run or failed", ""]
        for c in others:
            where = f" n={c['nodes']} {c['profile']} {c['transport']}" if "nodes" in c else ""
            lines.append(f"- {c['workload']}{where}: {c['status']}: {c.get('reason', '')}")
    lines += ["", "Model: " + model.__doc__.strip().splitlines()[0], ""]
    return "\n".join(lines)
