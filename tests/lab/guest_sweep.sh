#!/usr/bin/env bash
# The lab's sweep with guest-level workloads only (needs a usable /dev/kvm:
# it runs in the KVM test VM): every guest cell, on loopback and in the
# emulated clusters, must run with the guest's own checks passing, or be
# skipped with a reason; at least the loopback cells must run.
set -euo pipefail
root=${1:?usage: guest_sweep.sh SOURCE_DIR BUILD_DIR}
build=${2:?usage: guest_sweep.sh SOURCE_DIR BUILD_DIR}
if ! why=$("$root/scripts/kvm-why-not"); then
  printf 'guest_sweep: Skipped\nno usable /dev/kvm here (%s)\n' "$why"
  exit 77
fi
out="$build/lab-guest"
rm -rf "$out"
"$root/scripts/lab" --build "$build" sweep --quick --nodes 2 --repeats 1 \
  --workloads guest-counter guest-ipi --out "$out" --max-minutes 20
/usr/bin/python3 - "$out/results.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
cells = r["cells"]
ok = [c for c in cells if c["status"] == "ok"]
bad = [c for c in cells if c["status"] not in ("ok", "skipped")]
unexplained = [c for c in cells if c["status"] == "skipped" and not c.get("reason")]
assert not bad, bad
assert not unexplained, unexplained
assert all(c["workload"].startswith("guest-") for c in cells), cells
local = [c for c in ok if c["profile"] == "local"]
assert len(local) == 4, f"{len(local)} loopback guest cells ran, expected 4"
assert all(c["summary"]["time_ms"]["median"] > 0 and c["summary"].get("read_fault_us") for c in ok)
print(f"PASS: {len(ok)} guest cells ok, {len(cells) - len(ok)} skipped with a reason; shaper {r['shaper']}")
PY
