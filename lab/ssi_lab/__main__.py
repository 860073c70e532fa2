"""scripts/lab: the interconnect lab's command line."""
import argparse
import json
import os
import signal
import sys
import time

from . import plots, profiles, runner, sweep, topology

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cmd_sweep(a):
    os.makedirs(a.out, exist_ok=True)
    s = sweep.Sweep(a)
    path = os.path.join(a.out, "results.json")
    interrupted = False

    def on_signal(signum, _frame):
        s.stop_requested = True  # the running cell is killed, the labs torn down

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        res = s.run()
    except runner.Interrupted:
        interrupted = True
        res = s.result
        if res is None:
            print("ssi lab: interrupted before any cell ran", file=sys.stderr)
            return 130
        res["interrupted"] = True
        for c in res["cells"]:
            if c.get("status") == "planned":
                c.update(status="skipped", reason="the sweep was interrupted (Ctrl-C / SIGTERM)")
    sweep.write_json(res, path)
    out = plots.render(res, a.out)
    failed = [c for c in res["cells"] if c.get("status") == "failed"]
    ok = sum(1 for c in res["cells"] if c.get("status") == "ok")
    skipped = sum(1 for c in res["cells"] if c.get("status") == "skipped")
    print(f"ssi lab: {ok} cells ok, {len(failed)} failed, {skipped} skipped -> {path}")
    for name in ("report.md", "latency_vs_delay.png", "speedup_vs_nodes.png", "fault_mix.png"):
        print(f"  {out[name]}")
    if interrupted:
        return 130
    return 1 if failed else 0


def cmd_plot(a):
    with open(a.results) as fh:
        res = json.load(fh)
    schema = res.get("schema") if isinstance(res, dict) else type(res).__name__
    if schema != sweep.SCHEMA:
        return fail(f"{a.results} is not an ssi-lab result (schema {schema}, expected {sweep.SCHEMA})")
    outdir = a.out or os.path.dirname(os.path.abspath(a.results))
    os.makedirs(outdir, exist_ok=True)
    out = plots.render(res, outdir)
    for p in out.values():
        print(p)
    return 0


def cmd_up(a):
    ok, why = topology.can_build_labs()
    if not ok:
        print(f"ssi lab: error: {why}", file=sys.stderr)
        return 2
    shaper = a.shaper
    if shaper == "auto":
        shaper = "netem" if topology.kernel_has_netem() else "linkemu"
    prof = profiles.Profile("custom", a.delay_us, a.jitter_us, a.rate_gbit)
    lab = topology.Lab(a.nodes, prof, shaper, os.path.join(a.build, "ssi-linkemu"), tag=a.tag)
    lab.up()
    print(f"lab '{lab.tag}' up ({shaper}): nodes in namespaces {', '.join(lab.node_ns)}, "
          f"addresses {topology.SUBNET}.1..{a.nodes}. Run a node with:\n"
          f"  ip netns exec {lab.node_ns[0]} {a.build}/ssi node ...\n"
          f"Ctrl-C (or `scripts/lab down`) removes it.")
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    try:
        while not stop:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    lab.down()
    return 0


def cmd_down(a):
    if os.geteuid() != 0:
        print("ssi lab: error: needs root", file=sys.stderr)
        return 2
    removed = topology.cleanup(all_labs=True)
    print(f"removed {len(removed)} lab(s)" + (f": {', '.join(removed)}" if removed else ""))
    return 0


class OneLineParser(argparse.ArgumentParser):
    """argparse's errors as one line (no usage block), exit 2 like ssi's own."""

    def error(self, message):
        self.exit(2, f"ssi lab: error: {message} (see scripts/lab --help)\n")


def main(argv=None):
    p = OneLineParser(prog="scripts/lab", description=(
        "ssi interconnect lab: emulated clusters (network namespaces + shaped links), sweeps, "
        "JSON, plots. See docs/benchmarking.md."))
    p.add_argument("--build", default=os.path.join(ROOT, "build"), help="ssi build directory")
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("sweep", help="run a sweep and write results.json, plots and report.md")
    s.add_argument("--quick", action="store_true", help="small bounded sweep (CI)")
    s.add_argument("--out", default="lab-results", help="output directory")
    s.add_argument("--workloads", nargs="+", metavar="W",
                   help=f"subset of {', '.join(list(profiles.HOST_WORKLOADS) + list(profiles.GUEST_WORKLOADS))}")
    s.add_argument("--nodes", nargs="+", type=int, metavar="N", help="node counts")
    s.add_argument("--profiles", nargs="+", metavar="P",
                   help="subset of the plan's profiles by name (e.g. d200us-10g; the quick plan has "
                        "local, d0us-10g, d200us-10g)")
    s.add_argument("--repeats", type=int, help="repetitions per cell")
    s.add_argument("--rounds", type=int, help="workload size (default: per workload)")
    s.add_argument("--shaper", choices=["auto", "netem", "linkemu"], default="auto",
                   help="who shapes links: the kernel (netem) or ssi-linkemu; auto = netem if the kernel has it")
    s.add_argument("--max-minutes", type=float, default=60.0, help="time budget; later cells are skipped")
    s.add_argument("--lab-cpus", default="0", metavar="LIST",
                   help="pin every process of an emulated cluster (nodes, link emulator) to these CPUs "
                        "(taskset list; '' = not pinned). Default 0: a cross-CPU wake-up costs ~1 ms on "
                        "this machine kind. Loopback ('local') cells are never pinned")
    s.set_defaults(fn=cmd_sweep)

    pl = sub.add_parser("plot", help="re-render plots and report from a results.json")
    pl.add_argument("results")
    pl.add_argument("--out", help="output directory (default: beside the results)")
    pl.set_defaults(fn=cmd_plot)

    u = sub.add_parser("up", help="build one emulated cluster and keep it until Ctrl-C")
    u.add_argument("--nodes", type=int, default=2)
    u.add_argument("--delay-us", type=float, default=0.0)
    u.add_argument("--jitter-us", type=float, default=0.0)
    u.add_argument("--rate-gbit", type=float, default=0.0)
    u.add_argument("--shaper", choices=["auto", "netem", "linkemu"], default="auto")
    u.add_argument("--tag", help="lab name (default: from the pid)")
    u.set_defaults(fn=cmd_up)

    d = sub.add_parser("down", help="remove every lab (also those left by a crash)")
    d.set_defaults(fn=cmd_down)

    a = p.parse_args(argv)
    if getattr(a, "nodes", None) and any(n < 1 or n > 16 for n in (a.nodes if isinstance(a.nodes, list) else [a.nodes])):
        p.error("node counts must be 1..16")
    try:
        return a.fn(a)
    except (topology.LabError, runner.CellFailed) as e:
        return fail(str(e))
    except OSError as e:
        return fail(f"{e.filename}: {e.strerror}" if e.filename else str(e))
    except json.JSONDecodeError as e:
        return fail(f"{getattr(a, 'results', '?')} is not JSON ({e.msg}, line {e.lineno})")
    except (KeyError, TypeError, ValueError) as e:
        # A results.json from another version or edited by hand.
        return fail(f"malformed results ({type(e).__name__}: {e})")


def fail(message):
    print(f"ssi lab: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
