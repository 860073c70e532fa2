"""An emulated cluster: one network namespace per node plus one for the
switch, each node joined to the switch by a veth pair. Links are shaped
either by the kernel (bridge + tc netem on each node's veth) or, where the
kernel has no sch_netem (this machine kind), by ssi-linkemu: a userspace
switch in the switch namespace whose ports are the veths' switch ends.

Only addresses inside these namespaces are used (10.233.0.0/24). Every lab
records itself in /run/ssi-lab/<tag>.json with its owner's pid, so a lab
left behind by a crash is removed by the next `down` or `sweep`."""
import json
import os
import shutil
import signal
import subprocess


STATE_DIR = "/run/ssi-lab"
SUBNET = "10.233.0"


def run(cmd, check=True, quiet=False):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise LabError(f"`{' '.join(cmd)}` failed ({p.returncode}): {p.stderr.strip()}")
    return p


class LabError(RuntimeError):
    pass


def can_build_labs():
    """(ok, reason): root and iproute2 are needed for namespaces."""
    if os.geteuid() != 0:
        return False, "needs root to create network namespaces"
    if not shutil.which("ip"):
        return False, "needs iproute2 (`ip`)"
    return True, ""


def kernel_has_netem():
    """Probe: can a netem qdisc be created? (Some kernels lack sch_netem.)"""
    ns = f"ssilab-probe{os.getpid()}"
    try:
        run(["ip", "netns", "add", ns])
        run(["ip", "-n", ns, "link", "add", "p0", "type", "veth", "peer", "name", "p1"])
        p = run(["ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", "p0", "root", "netem",
                 "delay", "10us"], check=False)
        return p.returncode == 0
    except LabError:
        return False
    finally:
        run(["ip", "netns", "del", ns], check=False)


def _alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _kill_namespace(ns):
    pids = run(["ip", "netns", "pids", ns], check=False).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    run(["ip", "netns", "del", ns], check=False)


def cleanup(all_labs=False):
    """Removes labs whose owner died (or every lab). Idempotent. Returns the
    tags removed."""
    removed = []
    if os.path.isdir(STATE_DIR):
        for f in sorted(os.listdir(STATE_DIR)):
            if not f.endswith(".json"):
                continue
            path = os.path.join(STATE_DIR, f)
            try:
                with open(path) as fh:
                    st = json.load(fh)
            except (OSError, ValueError):
                st = {"owner": -1, "namespaces": []}
            if not all_labs and _alive(st.get("owner", -1)):
                continue
            for ns in st.get("namespaces", []):
                _kill_namespace(ns)
            os.unlink(path)
            removed.append(f[:-5])
    # Namespaces whose state file was lost (crash while writing it).
    if all_labs:
        for line in run(["ip", "netns", "list"], check=False).stdout.splitlines():
            name = line.split()[0] if line.split() else ""
            if name.startswith("ssilab-"):
                _kill_namespace(name)
    return removed


class Lab:
    """N node namespaces + a switch namespace, shaped as `profile` says."""

    def __init__(self, nodes, profile, shaper, linkemu, tag=None, cpus=None):
        if nodes < 1 or nodes > 200:
            raise LabError("a lab has 1..200 nodes")
        self.nodes, self.profile, self.shaper, self.linkemu = nodes, profile, shaper, linkemu
        self.tag = tag or f"l{os.getpid()}"
        self.switch_ns = f"ssilab-{self.tag}-sw"
        self.node_ns = [f"ssilab-{self.tag}-n{i}" for i in range(nodes)]
        self.emu = None
        # CPU list (taskset syntax) for every process of the lab, or None.
        # On this machine kind a wake-up on another CPU costs ~1 ms, which
        # swamps the emulated delays: see docs/benchmarking.md, placement.
        self.cpus = cpus

    def address(self, i):
        return f"{SUBNET}.{i + 1}"

    def _save_state(self):
        os.makedirs(STATE_DIR, exist_ok=True)
        path = os.path.join(STATE_DIR, f"{self.tag}.json")
        with open(path + ".tmp", "w") as fh:
            json.dump({"owner": os.getpid(), "namespaces": [self.switch_ns] + self.node_ns,
                       "profile": self.profile.as_dict(), "shaper": self.shaper}, fh)
        os.replace(path + ".tmp", path)

    def up(self):
        self._save_state()  # first: a crash from here on is cleaned up later
        try:
            self._build()
        except Exception:
            self.down()
            raise
        return self

    def _build(self):
        p = self.profile
        run(["ip", "netns", "add", self.switch_ns])
        run(["ip", "-n", self.switch_ns, "link", "set", "lo", "up"])
        for i, ns in enumerate(self.node_ns):
            run(["ip", "netns", "add", ns])
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
            run(["ip", "link", "add", f"s{i}", "netns", self.switch_ns, "type", "veth",
                 "peer", "name", "eth0", "netns", ns])
            run(["ip", "-n", ns, "addr", "add", f"{self.address(i)}/24", "dev", "eth0"])
            run(["ip", "-n", ns, "link", "set", "eth0", "up"])
            run(["ip", "-n", self.switch_ns, "link", "set", f"s{i}", "up"])
        if self.shaper == "netem":
            run(["ip", "-n", self.switch_ns, "link", "add", "br0", "type", "bridge"])
            for i in range(self.nodes):
                run(["ip", "-n", self.switch_ns, "link", "set", f"s{i}", "master", "br0"])
            run(["ip", "-n", self.switch_ns, "link", "set", "br0", "up"])
            for ns in self.node_ns:
                args = []
                if p.delay_us or p.jitter_us:
                    args += ["delay", f"{p.delay_us}us"] + ([f"{p.jitter_us}us"] if p.jitter_us else [])
                if p.rate_gbit:
                    args += ["rate", f"{p.rate_gbit}gbit"]
                if args:
                    run(["ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", "eth0", "root",
                         "netem"] + args)
        else:
            self._start_linkemu()

    def _start_linkemu(self):
        # The emulator forwards what the veth hands it as is: the node must
        # compute its own checksums (no offload to a NIC that does not exist).
        for ns in self.node_ns:
            run(["ip", "netns", "exec", ns, "ethtool", "-K", "eth0", "tx", "off"], check=False)
        p = self.profile
        cmd = ["ip", "netns", "exec", self.switch_ns] + self._pin()
        # Real-time priority: the emulated wire must not queue behind the
        # nodes' own work on a machine with few cores.
        if shutil.which("chrt"):
            cmd += ["chrt", "-f", "50"]
        cmd += [self.linkemu, "--delay-us", str(p.delay_us), "--jitter-us", str(p.jitter_us),
                "--rate-gbit", str(p.rate_gbit)]
        for i in range(self.nodes):
            cmd += ["--port", f"s{i}"]
        self.emu = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.emu.stdout.readline().strip()
        if line != "ready":
            err = self.emu.stderr.read().strip() if self.emu.poll() is not None else ""
            raise LabError(f"ssi-linkemu did not start: {err or line or 'no output'}")

    def _pin(self):
        return ["taskset", "-c", self.cpus] if self.cpus and shutil.which("taskset") else []

    def exec_argv(self, i, argv):
        return ["ip", "netns", "exec", self.node_ns[i]] + self._pin() + list(argv)

    def down(self):
        if self.emu and self.emu.poll() is None:
            self.emu.terminate()
            try:
                self.emu.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.emu.kill()
        for ns in self.node_ns + [self.switch_ns]:
            _kill_namespace(ns)
        path = os.path.join(STATE_DIR, f"{self.tag}.json")
        if os.path.exists(path):
            os.unlink(path)

    def __enter__(self):
        return self.up()

    def __exit__(self, *exc):
        self.down()
        return False


