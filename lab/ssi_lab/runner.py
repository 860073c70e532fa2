"""Runs one cell: one workload on N nodes over one interconnect profile and
transport, and returns the coordinator's JSON outcome plus derived metrics.
Every process it starts is bounded by a timeout and killed on the way out."""
import json
import os
import secrets
import subprocess
import tempfile
import time

from . import model

CELL_TIMEOUT_S = 180


class CellFailed(RuntimeError):
    pass


class Interrupted(RuntimeError):
    """Ctrl-C / SIGTERM: the sweep stops after killing this cell's processes."""


def _wait(procs, main, timeout, should_stop):
    """Waits for `main` in short slices (so a stop request is seen at once);
    kills every process of the cell on the way out. Returns main's stderr."""
    deadline = time.monotonic() + timeout
    try:
        while main.poll() is None:
            if should_stop and should_stop():
                raise Interrupted("interrupted")
            if time.monotonic() > deadline:
                raise CellFailed(f"timed out after {timeout} s")
            time.sleep(0.05)
        return main.stderr.read() if main.stderr else ""
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()


def _read_outcome(path, what):
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError) as e:
        raise CellFailed(f"{what}: no JSON outcome ({e})")


def run_local(ssi, workload, nodes, transport, rounds, timeout=CELL_TIMEOUT_S, should_stop=None):
    """All nodes on this host's loopback (`ssi demo`)."""
    with tempfile.TemporaryDirectory(prefix="ssilab") as d:
        out = os.path.join(d, "outcome.json")
        cmd = [ssi, "demo", "--nodes", str(nodes), "--transport", transport, "--workload", workload,
               "--rounds", str(rounds), "--json", out]
        # stderr to a file: a pipe nobody reads could fill up and stall the run.
        with tempfile.TemporaryFile(mode="w+") as err:
            p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, text=True)
            _wait([p], p, timeout, should_stop)
            err.seek(0)
            msg = err.read().strip()[-300:]
        outcome = _read_outcome(out, f"ssi demo exited {p.returncode}: {msg}")
    if outcome.get("exit_code") != 0:
        raise CellFailed(outcome.get("message") or f"exit code {outcome.get('exit_code')}")
    return outcome


def run_in_lab(ssi, lab, nodes, workload, rounds, port, timeout=CELL_TIMEOUT_S, should_stop=None):
    """Coordinator in node 0's namespace, node i in namespace i (the first
    `nodes` namespaces of the lab), over tcp. A failure's reason carries the
    last lines every process wrote to stderr."""
    coord_addr = f"{lab.address(0)}:{port}"

    def start(out, errs, procs):
        procs.append(subprocess.Popen(lab.exec_argv(0, [
            ssi, "coordinator", "--listen", coord_addr, "--nodes", str(nodes), "--workload",
            workload, "--rounds", str(rounds), "--json", out]),
            stdout=subprocess.DEVNULL, stderr=errs[0]))
        procs += _lab_nodes(ssi, lab, nodes, coord_addr, errs)
    return _run_cell(nodes, "coordinator", start, timeout, should_stop)


def run_guest(ssi, kernel, nodes, transport, lab=None, port=0, timeout=CELL_TIMEOUT_S,
              should_stop=None, vcpus=2):
    """A guest kernel across `nodes` nodes: `ssi run` on loopback, or the
    coordinator (`--kernel`) in node 0's namespace with node i in namespace
    i. Returns the run's JSON outcome (the guest checks its own results:
    exit code 0)."""

    def start(out, errs, procs):
        machine = ["--vcpus", str(vcpus), "--mem", "64M", "--kernel", kernel, "--json", out]
        if lab is None:
            cmd = [ssi, "run", "--nodes", str(nodes)] + machine
            if nodes > 1:
                cmd += ["--transport", transport]
            procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=errs[0]))
            return
        coord_addr = f"{lab.address(0)}:{port}"
        procs.append(subprocess.Popen(lab.exec_argv(0, [
            ssi, "coordinator", "--listen", coord_addr, "--nodes", str(nodes)] + machine),
            stdout=subprocess.DEVNULL, stderr=errs[0]))
        procs += _lab_nodes(ssi, lab, nodes, coord_addr, errs)
    return _run_cell(nodes, "ssi", start, timeout, should_stop)


def _run_cell(nodes, what, start, timeout, should_stop):
    """Runs the processes start(out, errs, procs) appends to procs (procs[0]
    ends the cell and writes the JSON outcome to `out`), bounded and killed
    on the way out; returns the outcome, or raises CellFailed with the last
    lines every process wrote to stderr."""
    # Every process of the cell inherits one machine secret (docs/security.md).
    os.environ["SSI_SECRET"] = secrets.token_hex(32)
    with tempfile.TemporaryDirectory(prefix="ssilab") as d:
        out = os.path.join(d, "outcome.json")
        errs = [open(os.path.join(d, f"stderr-{k}"), "w+") for k in range(nodes + 1)]
        procs = []
        try:
            try:
                start(out, errs, procs)
            finally:
                if procs:
                    _wait(procs, procs[0], timeout, should_stop)
            try:
                outcome = _read_outcome(out, f"{what} exited {procs[0].returncode}")
                if outcome.get("exit_code") != 0:
                    raise CellFailed(outcome.get("message") or f"exit code {outcome.get('exit_code')}")
            except CellFailed as e:
                raise CellFailed(f"{e}; {_tails(errs, procs)}")
        finally:
            for f in errs:
                f.close()
    return outcome


def _lab_nodes(ssi, lab, nodes, coord_addr, errs):
    """Node i in namespace i, over tcp, joining the coordinator at
    `coord_addr`; errs[i + 1] takes its stderr."""
    time.sleep(0.2)  # the coordinator listens before nodes dial (they also retry)
    return [subprocess.Popen(lab.exec_argv(i, [
        ssi, "node", "--coordinator", coord_addr, "--id", str(i), "--transport", "tcp",
        "--listen", f"tcp:{lab.address(i)}:0"]), stdout=subprocess.DEVNULL, stderr=errs[i + 1])
        for i in range(nodes)]


def _tails(errs, procs):
    """'coordinator: ...; node 1 (exit -9): ...' from the last stderr lines."""
    parts = []
    for k, (f, p) in enumerate(zip(errs, procs)):
        f.seek(0)
        lines = [ln for ln in f.read().splitlines() if ln.strip() and not ln.startswith("[ssi]")]
        who = "coordinator" if k == 0 else f"node {k - 1}"
        if lines or p.returncode not in (0, None):
            parts.append(f"{who} (exit {p.returncode}): {' | '.join(lines[-2:])[-240:]}")
    return "; ".join(parts) or "no process wrote an error"


def metrics(outcome):
    """Cell metrics from the nodes' counters of the measured phase."""
    reps = outcome.get("node_reports", [])
    stats = [r.get("stats", {}) for r in reps]
    if not stats or any("elapsed_ns" not in s for s in stats):
        raise CellFailed("the outcome has no measured phase counters")
    elapsed = max(s["elapsed_ns"] for s in stats)
    ops = sum(s["ops"] for s in stats)
    return {
        "time_ms": elapsed / 1e6,
        "ops": ops,
        "throughput_ops_s": ops / (elapsed / 1e9) if elapsed else 0.0,
        **_fault_metrics(stats),
    }


def _fault_metrics(stats):
    """Fault counts and count-weighted mean latencies (us) over the nodes'
    counters. Upgrades (read copy -> writable) are write faults too, with
    their own mean."""

    def total(k):
        return sum(s.get(k, 0) for s in stats)

    def weighted_mean(mean_key, count_key):
        n = total(count_key)
        return sum(s.get(mean_key, 0) * s.get(count_key, 0) for s in stats) / n / 1000 if n else None

    paths = {}
    for path in model.PATHS:
        paths[f"{path}_faults"] = total(f"{path}_faults")
        paths[f"{path}_fault_us"] = weighted_mean(f"{path}_fault_mean_ns", f"{path}_faults")
        n = paths[f"{path}_faults"]
        paths[f"{path}_delays_mean"] = total(f"{path}_delays") / n if n else None
    return {
        **paths,
        "read_faults": total("read_faults"),
        "write_faults": total("write_faults"),
        "upgrade_faults": total("upgrade_faults"),
        "invalidations": total("invalidations_sent"),
        "page_bytes": total("page_bytes_received"),
        "read_fault_us": weighted_mean("read_fault_mean_ns", "read_faults"),
        "write_fault_us": weighted_mean("write_fault_mean_ns", "write_faults"),
        "upgrade_fault_us": weighted_mean("upgrade_fault_mean_ns", "upgrade_faults"),
    }


def guest_metrics(outcome):
    """Guest cell metrics: the run's wall time (boot included) and the DSM
    counters of every node (a guest has no host-level ops count)."""
    stats = [r.get("stats", {}) for r in outcome.get("node_reports", [])]
    if "wall_ns" not in outcome:
        raise CellFailed("the outcome has no wall_ns")
    return {"time_ms": outcome["wall_ns"] / 1e6, "ops": None, "throughput_ops_s": None,
            **_fault_metrics(stats)}


def link_rtt_us(outcome):
    """Median 64-byte rpc round trip of a `ping` run, over all nodes."""
    vals = [r["stats"]["rtt_median_us"] for r in outcome.get("node_reports", [])
            if "rtt_median_us" in r.get("stats", {})]
    if not vals:
        raise CellFailed("ping outcome has no rtt_median_us")
    vals.sort()
    return float(vals[len(vals) // 2])
