"""The sweep driver: workloads x node counts x interconnect profiles x
transports, each cell repeated; one JSON file with the machine, the
measured floor and link round trips, every repetition and min/median/max;
then plots and a report beside it."""
import json
import os
import statistics
import subprocess
import sys
import time

from . import machine, model, profiles, runner, topology

SCHEMA = "ssi-lab/1"
SUMMARY_KEYS = ("time_ms", "throughput_ops_s", "read_fault_us", "write_fault_us", "upgrade_fault_us",
                *(f"{p}_fault_us" for p in model.PATHS), *(f"{p}_faults" for p in model.PATHS),
                *(f"{p}_delays_mean" for p in model.PATHS))


class Progress:
    """A progress bar on a terminal, one line per cell otherwise (CI logs)."""

    def __init__(self, total, stream=sys.stderr):
        self.total, self.done, self.t0, self.stream = total, 0, time.monotonic(), stream
        self.tty = stream.isatty()

    def step(self, label, note=""):
        self.done += 1
        el = time.monotonic() - self.t0
        eta = el / self.done * (self.total - self.done) if self.done else 0
        width = 30
        fill = int(width * self.done / max(self.total, 1))
        bar = "#" * fill + "." * (width - fill)
        line = f"[{bar}] {self.done}/{self.total} {label} {note} (elapsed {el:.0f}s, eta {eta:.0f}s)"
        if self.tty:
            self.stream.write("\r\033[K" + line[:160])
            if self.done == self.total:
                self.stream.write("\n")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def say(self, msg):
        self.stream.write(("\r\033[K" if self.tty else "") + msg + "\n")
        self.stream.flush()


def summarize(reps):
    out = {}
    for k in SUMMARY_KEYS:
        vals = [r[k] for r in reps if r.get(k) is not None]
        if vals:
            out[k] = {"min": min(vals), "median": statistics.median(vals), "max": max(vals)}
    return out


def kvm_usable():
    """(True, "") when /dev/kvm is usable, else (False, why): the project's
    probe, scripts/kvm-why-not."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    p = subprocess.run([os.path.join(root, "scripts", "kvm-why-not")], capture_output=True, text=True)
    if p.returncode == 0:
        return True, ""
    return False, f"guest workloads need a usable /dev/kvm ({p.stdout.strip()}; run the sweep in scripts/kvm-vm)"


def measure_floor(build):
    exe = os.path.join(build, "benchmarks", "dsm", "dsm_floor")
    p = subprocess.run([exe, "300"], capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise topology.LabError(f"dsm_floor failed: {p.stderr.strip()}")
    return json.loads(p.stdout)


class Sweep:
    def __init__(self, args):
        self.args = args
        self.build = os.path.abspath(args.build)
        self.ssi = os.path.join(self.build, "ssi")
        self.linkemu = os.path.join(self.build, "ssi-linkemu")
        for exe in (self.ssi, self.linkemu):
            if not os.access(exe, os.X_OK):
                raise topology.LabError(f"{exe} not found: build first (./scripts/build)")
        plan_profiles, plan_nodes, plan_repeats = profiles.sweep_plan(args.quick)
        self.profiles = [p for p in plan_profiles if not getattr(args, "profiles", None) or p.name in args.profiles]
        if not self.profiles:
            raise topology.LabError(f"no profile of the plan is named {' or '.join(args.profiles)}: "
                                    f"{', '.join(p.name for p in plan_profiles)}")
        self.nodes = args.nodes or plan_nodes
        self.repeats = args.repeats or plan_repeats
        self.kvm_ok, self.kvm_why = kvm_usable()
        self.workloads = args.workloads or list(profiles.HOST_WORKLOADS) + list(profiles.GUEST_WORKLOADS)
        unknown = [w for w in self.workloads
                   if w not in profiles.HOST_WORKLOADS and w not in profiles.GUEST_WORKLOADS]
        if unknown:
            raise topology.LabError(f"unknown workload(s): {', '.join(unknown)}")
        self.deadline = time.monotonic() + args.max_minutes * 60
        self.port = 7400
        self.result = None
        self.stop_requested = False  # set by the SIGINT/SIGTERM handler

    def rounds(self, workload):
        quick, full = profiles.HOST_WORKLOADS[workload][1:]
        return self.args.rounds or (quick if self.args.quick else full)

    def _stopping(self):
        return self.stop_requested

    def _next_port(self):
        self.port = 7400 + (self.port - 7399) % 500
        return self.port

    def run(self):
        a = self.args
        lab_ok, lab_why = topology.can_build_labs()
        shaper = a.shaper
        if lab_ok and shaper == "auto":
            shaper = "netem" if topology.kernel_has_netem() else "linkemu"
        if lab_ok:
            topology.cleanup()
        res = {
            "schema": SCHEMA, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "quick": a.quick, "machine": machine.describe(),
            "git": machine.git_revision(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
            "shaper": shaper if lab_ok else None, "repeats": self.repeats,
            "placement": {"local": "not pinned",
                          "lab": f"every lab process on CPUs {a.lab_cpus}" if a.lab_cpus else "not pinned"},
            "floor": measure_floor(self.build), "profiles": [], "cells": [],
        }
        self.result = res
        cells = self._plan_cells(lab_ok)
        prog = Progress(sum(1 for c in cells if c["status"] == "planned") * self.repeats)
        prog.say(f"ssi lab: {len(cells)} cells x {self.repeats} repeats, shaper {res['shaper']}, "
                 f"floor {res['floor']['uffd_fault_us']:.0f} us/fault, budget {a.max_minutes} min")
        for prof in self.profiles:
            group = [c for c in cells if c["profile"] == prof.name]
            if not group:
                continue
            pinfo = prof.as_dict()
            res["profiles"].append(pinfo)
            res["cells"].extend(group)  # filled in place: an interrupted sweep keeps what ran
            if any(c["status"] == "planned" for c in group):
                self._run_profile(prof, pinfo, group, shaper, prog)
        res["machine"]["loadavg_at_end"] = os.getloadavg()
        return res

    def _plan_cells(self, lab_ok):
        cells = []
        for prof in self.profiles:
            for n in self.nodes:
                for tr in (["tcp", "shm"] if prof.local else ["tcp"]):
                    for w in self.workloads:
                        guest = w in profiles.GUEST_WORKLOADS
                        c = {"workload": w, "nodes": n, "profile": prof.name, "transport": tr,
                             "delay_us": prof.delay_us, "rate_gbit": prof.rate_gbit,
                             "status": "planned"}
                        if guest:
                            c["vcpus"] = profiles.guest_vcpus(n)
                        else:
                            c["rounds"] = self.rounds(w)
                        if not prof.local and not lab_ok:
                            c.update(status="skipped", reason=topology_reason(lab_ok))
                        elif guest and not self.kvm_ok:
                            c.update(status="skipped", reason=self.kvm_why)
                        cells.append(c)
        return cells

    def _run_profile(self, prof, pinfo, group, shaper, prog):
        lab = None
        try:
            if not prof.local:
                try:
                    lab = topology.Lab(max(max(self.nodes), 2), prof, shaper, self.linkemu,
                                       cpus=self.args.lab_cpus or None).up()
                except topology.LabError as e:  # e.g. a kernel without veth: skip, say why
                    for c in group:
                        if c["status"] == "planned":
                            c.update(status="skipped", reason=f"emulated cluster unavailable: {e}")
                            for _ in range(self.repeats):
                                prog.step(f"{c['workload']} n={c['nodes']} {c['profile']}", "skipped")
                    prog.say(f"profile {prof.name}: skipped: {e}")
                    return
            pinfo["rtt_us"] = self._calibrate(prof, lab)
            prog.say(f"profile {prof.name}: measured rpc round trip "
                     + ", ".join(f"{k} {v:.0f} us" for k, v in pinfo["rtt_us"].items()))
            for c in group:
                if c["status"] != "planned":
                    continue
                self._run_cell(c, prof, lab, pinfo, prog)
        finally:
            if lab:
                lab.down()

    def _calibrate(self, prof, lab):
        rtt = {}
        for tr in (["tcp", "shm"] if prof.local else ["tcp"]):
            if prof.local:
                out = runner.run_local(self.ssi, "ping", 2, tr, 300, should_stop=self._stopping)
            else:
                out = runner.run_in_lab(self.ssi, lab, 2, "ping", 300, self._next_port(),
                                        should_stop=self._stopping)
            rtt[tr] = runner.link_rtt_us(out)
        return rtt

    def _run_cell(self, c, prof, lab, pinfo, prog):
        reps = []
        label = f"{c['workload']} n={c['nodes']} {c['profile']} {c['transport']}"
        for r in range(self.repeats):
            if self.stop_requested:
                raise runner.Interrupted("interrupted")
            if time.monotonic() > self.deadline:
                c.update(status="skipped", reason="time budget (--max-minutes) used up")
                prog.step(label, "skipped: time budget")
                continue
            try:
                if c["workload"] in profiles.GUEST_WORKLOADS:
                    kernel = os.path.join(self.build, "tests", "guest", "kernels",
                                          profiles.GUEST_WORKLOADS[c["workload"]][1] + ".elf")
                    out = runner.run_guest(self.ssi, kernel, c["nodes"], c["transport"],
                                           lab=None if prof.local else lab, port=self._next_port(),
                                           should_stop=self._stopping, vcpus=c["vcpus"])
                    reps.append(runner.guest_metrics(out))
                elif prof.local:
                    out = runner.run_local(self.ssi, c["workload"], c["nodes"], c["transport"], c["rounds"],
                                           should_stop=self._stopping)
                    reps.append(runner.metrics(out))
                else:
                    out = runner.run_in_lab(self.ssi, lab, c["nodes"], c["workload"], c["rounds"],
                                            self._next_port(), should_stop=self._stopping)
                    reps.append(runner.metrics(out))
                prog.step(label, f"{reps[-1]['time_ms']:.1f} ms")
            except runner.CellFailed as e:
                c.update(status="failed", reason=str(e))
                prog.step(label, "FAILED")
                prog.say(f"FAILED {label}: {e}")
                break
        c["repeats"] = reps
        if reps and c["status"] == "planned":
            c["status"] = "ok"
        if reps:
            c["summary"] = summarize(reps)
        if reps and c["nodes"] > 1:  # 1 node: no remote fault to model
            rtt = pinfo["rtt_us"][c["transport"]]
            shared = c["workload"] != "lab-private"
            c["model"] = {
                "read": model.expected_fault_us(self.result["floor"], rtt, prof.rate_gbit, downgrade=shared),
                "write": model.expected_fault_us(self.result["floor"], rtt, prof.rate_gbit),
            }
            delays = {p: c["summary"].get(f"{p}_delays_mean", {}).get("median") for p in model.PATHS}
            c["model"]["paths"] = model.path_models(self.result["floor"], rtt, prof.rate_gbit, delays)
            med = c["summary"].get("read_fault_us", {}).get("median")
            if med is not None:
                prog.say(f"  {label}: read fault {model.explain(med, c['model']['read'])}")
            for path, m in c["model"]["paths"].items():
                med = c["summary"].get(f"{path}_fault_us", {}).get("median")
                if med is not None:
                    prog.say(f"  {label}: {path} ({m['delays']:.2g} delays) {model.explain(med, m)}")


def topology_reason(lab_ok):
    return "" if lab_ok else "network namespaces unavailable: " + topology.can_build_labs()[1]


def write_json(result, path):
    with open(path + ".tmp", "w") as fh:
        json.dump(result, fh, indent=1)
    os.replace(path + ".tmp", path)
