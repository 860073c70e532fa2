"""Expected DSM fault latency from measured link parameters:

    fault = floor + rtt + wire

  floor  this host's local fault cost: a userfaultfd fault resolved with
         UFFDIO_COPY (dsm_floor, measured once per sweep), plus a
         write-protect downgrade when the page's holder must give up write
         access first (a read of a page someone wrote);
  rtt    the measured 64-byte rpc round trip over this profile's links
         (ssi's transport over the emulated wire: ping workload);
  wire   serialising the 4 KiB page plus the 64-byte frame header at the
         profile's link rate (0 when unlimited).

It is a floor for a 2-hop fault (requester -> home, home replies with the
page). Measured minus model is where ssi loses time: queueing behind
other faults, 3-hop forwards and invalidation rounds, wake-ups.

Per fault path (path_models): the DSM counts each fault by the message path
that served it (NodeStats::path_faults, docs/protocol.md "Message paths"),
and each path has its minimum number of one-way message delays:

  read_home        request -> home, grant from the home's copy      2 (1 RTT)
  read_forwarded   request -> home -> owner, the owner grants         3 (1.5 RTT)
                   (+ the owner's write-protect)
  write_home       request -> home, grant (data, zero or keep)        2 (1 RTT)
  write_sharers    request -> home -> sharers, they ack the requester;
                   the grant travels home -> requester meanwhile      3 (1.5 RTT)
  write_forwarded  request -> home -> owner, the owner grants         3 (1.5 RTT)

one-way delay = rtt / 2; model = floor + delays * rtt / 2 + wire. A message
a node sends itself costs no delay (a fault on a page homed on the faulting
node, a fetch from the home's own copy), so the DSM also counts the delays
each fault's path really had (NodeStats::path_delays): with those, the model
is the minimum for where the nodes of each fault were (a read forwarded to a
requester that is the page's home takes 2, not 3)."""

# One complete sentence for reports (the docstring above has the details).
SUMMARY = ("expected 2-hop fault latency = floor (this host's userfaultfd fault, plus a write-protect "
           "downgrade when the page's holder wrote it) + the measured 64-byte rpc round trip over the "
           "profile's links + the 4 KiB page's serialisation at the link rate; measured minus model is "
           "the time ssi adds (queueing, 3-hop forwards, invalidations, wake-ups). "
           "Per message path, the model is the path's minimum: floor + its one-way delays (2 for a read or "
           "write served by the home, 3 for one forwarded by the owner or a write whose sharers ack the "
           "requester) x half the round trip + wire. "
           "Not applied to 1-node cells, which have no remote faults.")

PAGE_BYTES = 4096
HEADER_BYTES = 64


def wire_us(rate_gbit, payload=PAGE_BYTES + HEADER_BYTES):
    if not rate_gbit:
        return 0.0
    return payload * 8 / (rate_gbit * 1e3)  # bits / (bits per us)


def expected_fault_us(floor, rtt_us, rate_gbit, downgrade=False):
    """floor: dict from dsm_floor (uffd_fault_us, write_protect_us)."""
    f = floor.get("uffd_fault_us", 0.0) + (floor.get("write_protect_us", 0.0) if downgrade else 0.0)
    w = wire_us(rate_gbit)
    return {"floor_us": f, "rtt_us": rtt_us, "wire_us": w, "total_us": f + rtt_us + w}


# path -> (one-way message delays on the critical path, holder write-protects first)
PATHS = {
    "read_home": (2, False),
    "read_forwarded": (3, True),
    "write_home": (2, False),
    "write_sharers": (3, False),
    "write_forwarded": (3, False),
}


def path_models(floor, rtt_us, rate_gbit, delays_of=None):
    """The minimum latency of each fault path (see the module docstring);
    delays_of: path -> mean one-way delays measured (default: PATHS')."""
    out = {}
    for path, (delays, downgrade) in PATHS.items():
        delays = (delays_of or {}).get(path) or delays
        f = floor.get("uffd_fault_us", 0.0) + (floor.get("write_protect_us", 0.0) if downgrade else 0.0)
        w = wire_us(rate_gbit)
        out[path] = {"delays": delays, "floor_us": f, "rtt_us": rtt_us * delays / 2, "wire_us": w,
                     "total_us": f + rtt_us * delays / 2 + w}
    return out


def explain(measured_us, model):
    """One line: measured vs model and its parts."""
    if measured_us is None:
        return "no faults of this kind"
    excess = measured_us - model["total_us"]
    ratio = measured_us / model["total_us"] if model["total_us"] else float("inf")
    return (f"measured {measured_us:.0f} us vs model {model['total_us']:.0f} us "
            f"(floor {model['floor_us']:.0f} + rtt {model['rtt_us']:.0f} + wire {model['wire_us']:.1f}); "
            f"x{ratio:.2f}, {excess:+.0f} us")
