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
other faults, 3-hop forwards and invalidation rounds, wake-ups."""

# One complete sentence for reports (the docstring above has the details).
SUMMARY = ("expected 2-hop fault latency = floor (this host's userfaultfd fault, plus a write-protect "
           "downgrade when the page's holder wrote it) + the measured 64-byte rpc round trip over the "
           "profile's links + the 4 KiB page's serialisation at the link rate; measured minus model is "
           "the time ssi adds (queueing, 3-hop forwards, invalidations, wake-ups). "
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


def explain(measured_us, model):
    """One line: measured vs model and its parts."""
    if measured_us is None:
        return "no faults of this kind"
    excess = measured_us - model["total_us"]
    ratio = measured_us / model["total_us"] if model["total_us"] else float("inf")
    return (f"measured {measured_us:.0f} us vs model {model['total_us']:.0f} us "
            f"(floor {model['floor_us']:.0f} + rtt {model['rtt_us']:.0f} + wire {model['wire_us']:.1f}); "
            f"x{ratio:.2f}, {excess:+.0f} us")
