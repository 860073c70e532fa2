#!/usr/bin/env bash
# Model-checks dsm/model/dsm.pml with spin in a temporary directory.
#   check.sh --model FILE --expect pass [-- SPIN_DEFINES...]
#       passes only if pan explores the whole state space with "errors: 0".
#   check.sh --model FILE --expect fail [-- SPIN_DEFINES...]
#       (a mutant) passes only if pan reports errors >= 1 and the violation is
#       one of the model's correctness properties (SWMR, data value,
#       quiescence, invalid end state), not a modelling artefact such as a
#       full channel.  Prints the violation and the message trace to it.
# pan exits 0 even when it finds errors, so everything is decided on its output.
set -euo pipefail

model="" expect=""
while [ $# -gt 0 ]; do
  case "$1" in
    --model) model=$2; shift 2 ;;
    --expect) expect=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "check.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
defines=("$@")
[ -f "$model" ] || { echo "check.sh: no model file '$model'" >&2; exit 2; }
[ "$expect" = pass ] || [ "$expect" = fail ] || { echo "check.sh: --expect pass|fail" >&2; exit 2; }
for tool in spin gcc; do
  command -v "$tool" >/dev/null || { echo "check.sh: $tool not installed (run scripts/deps)" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/ssi-model.XXXXXX")
trap 'rm -rf "$work"' EXIT
cp "$model" "$work/model.pml"
cd "$work"

echo "model: $model ${defines[*]:-} (expect $expect)"
spin -a "${defines[@]}" model.pml > spin.out 2>&1 || { cat spin.out; echo "FAIL: spin -a"; exit 1; }
# SAFETY: assertions + invalid end states only (no never claim).  COLLAPSE:
# lossless state compression, the search stays exhaustive.  MEMLIM (MB) makes
# pan stop with a message instead of exhausting the machine.  -w: gcc warns
# about spin's generated array accesses.  A mutant stops at its first error
# after a few thousand states, so it is compiled without optimisation.
opt=-O2; [ "$expect" = fail ] && opt=-O0
gcc $opt -w -DSAFETY -DCOLLAPSE -DMEMLIM=${SSI_MODEL_MEMLIM_MB:-3072} -o pan pan.c 2> gcc.out \
  || { cat gcc.out; echo "FAIL: gcc pan.c"; exit 1; }
start=$(date +%s.%N)
./pan -m500000 > pan.out 2>&1 || true
end=$(date +%s.%N)

grep -E "^pan:|errors:|states, stored|transitions|total actual memory|elapsed time" pan.out | grep -v "^pan: rate" || true
awk -v a="$start" -v b="$end" 'BEGIN { printf "wall time: %.1f s\n", b - a }'

errors=$(sed -n 's/.*errors: \([0-9][0-9]*\).*/\1/p' pan.out | head -1)
if [ -z "$errors" ]; then
  tail -20 pan.out; echo "FAIL: pan did not finish (no 'errors:' line)"; exit 1
fi

if [ "$expect" = pass ]; then
  # A truncated search can also say "errors: 0": reject it.
  if grep -qE "max search depth too small|out of memory|memory limit" pan.out; then
    echo "FAIL: search incomplete"; exit 1
  fi
  if [ "$errors" = 0 ]; then echo "PASS: errors: 0, state space exhausted"; exit 0; fi
  grep -E "assertion violated|invalid end state" pan.out | head -3
  spin -t -r -s "${defines[@]}" model.pml 2>&1 | grep -E "Send|Recv|Error|failed" | grep -v nfull | tail -30 || true
  echo "FAIL: the model has errors"; exit 1
fi

# expect fail
violation=$(grep -m1 -E "assertion violated|invalid end state|acceptance cycle" pan.out || true)
echo "violation: ${violation:-none}"
if [ "$errors" -lt 1 ]; then echo "FAIL: spin found no error in the mutant"; exit 1; fi
if ! echo "$violation" | grep -qE "assertion violated (swmr_ok|value_ok|read_ok|write_ok|quiescent_ok)|invalid end state"; then
  echo "FAIL: the error is not one of the checked properties"; exit 1
fi
echo "message trace to the violation (last 30 sends/receives):"
spin -t -r -s "${defines[@]}" model.pml 2>&1 | grep -E "Send|Recv" | grep -v nfull | tail -30 || true
echo "PASS: spin rejects the mutant (errors: $errors)"
