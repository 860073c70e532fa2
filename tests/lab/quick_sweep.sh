#!/usr/bin/env bash
# The lab's --quick sweep end to end (namespaces, link emulator, node
# processes, plots): every cell must succeed or be skipped with a reason,
# and the JSON, the PNGs and the report must exist.
set -euo pipefail
root=${1:?usage: quick_sweep.sh SOURCE_DIR BUILD_DIR}
build=${2:?usage: quick_sweep.sh SOURCE_DIR BUILD_DIR}
out="$build/lab-quick"
rm -rf "$out"
"$root/scripts/lab" --build "$build" sweep --quick --out "$out" --max-minutes 8
for f in results.json report.md latency_vs_delay.png speedup_vs_nodes.png fault_mix.png; do
  [ -s "$out/$f" ] || { echo "FAIL: $out/$f missing"; exit 1; }
done
/usr/bin/python3 - "$out/results.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
ok = [c for c in r["cells"] if c["status"] == "ok"]
bad = [c for c in r["cells"] if c["status"] not in ("ok", "skipped")]
unexplained = [c for c in r["cells"] if c["status"] == "skipped" and not c.get("reason")]
assert not bad, bad
assert not unexplained, unexplained
assert len(ok) >= 10, f"only {len(ok)} cells ran"
assert all(c["summary"]["time_ms"]["median"] > 0 for c in ok)
print(f"PASS: {len(ok)} cells ok, {len(r['cells']) - len(ok)} skipped with a reason; shaper {r['shaper']}")
PY
