"""Interconnect profiles (what one link between a node and the switch
looks like) and the workload/profile sets of the quick and full sweeps."""
from dataclasses import dataclass, asdict


@dataclass(frozen=True)
class Profile:
    name: str
    delay_us: float = 0.0     # one-way, per link
    jitter_us: float = 0.0    # uniform +/-, order kept
    rate_gbit: float = 0.0    # 0 = unlimited
    local: bool = False       # no namespaces: every node on this host's loopback

    def as_dict(self):
        return asdict(self)


LOCAL = Profile("local", local=True)


def delay_profile(us, rate=10.0):
    return Profile(f"d{us:g}us-{rate:g}g", delay_us=float(us), rate_gbit=float(rate))


def rate_profile(rate, us=100.0):
    return Profile(f"d{us:g}us-{rate:g}g", delay_us=float(us), rate_gbit=float(rate))


HOST_WORKLOADS = {
    # name: (what it stresses, rounds in --quick, rounds in the full sweep)
    "lab-private": ("pages homed on their writer; no coherence traffic after first touch", 400, 4000),
    "lab-read-mostly": ("remote read faults on a block one node rewrites now and then", 40, 200),
    "lab-counter": ("one counter the nodes take turns to increment: a page migration per increment", 100, 200),
    "lab-false-sharing": ("disjoint cache lines of one page written by every node", 300, 2000),
    "lab-prodcons": ("a ring of producer/consumer mailbox pages: one page round trip per message", 60, 200),
}

GUEST_WORKLOADS = {
    # name: (what it stresses, guest kernel in BUILD/tests/guest/kernels/)
    "guest-counter": ("counter kernel: vCPUs on every node increment one guest word (lock xadd)", "counter"),
    "guest-dsmbench": ("dsmbench kernel: remote page touches, page ping-pong, private pages", "dsmbench"),
    "guest-ipi": ("ipi kernel: IPI ping-pong between vCPUs on different nodes", "ipi"),
}


def guest_vcpus(nodes):
    """vCPUs of a guest cell: at least 2 (the kernels pair cpus), one per node above."""
    return max(2, nodes)


def sweep_plan(quick):
    """(profiles, node counts, repeats) of the built-in sweeps."""
    if quick:
        profiles = [LOCAL, delay_profile(0), delay_profile(200)]
        return profiles, [1, 2], 2
    profiles = [LOCAL] + [delay_profile(d) for d in (0, 20, 100, 200, 500, 1000)]
    profiles += [rate_profile(r) for r in (1, 100)]
    return profiles, [1, 2, 4], 3
