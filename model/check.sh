#!/usr/bin/env bash
# Model-checks the pause protocol with spin (model/README.md).
#
#   model/check.sh          the default checks: pause.pml (safety, two LTL properties), the broken #8092
#                           model, each protocol change in pause.pml undone (spin must find the bug),
#                           and pause.pml with a device worker (-DDEVICE_WORKER: safety, LTL, and
#                           FIX_DRAIN_THEN_READ undone)
#   model/check.sh --all    also the slower ones: a pause deadline that can fire at any moment (rollback),
#                           the extra KICK operation, the protocol exactly as first specified
#
# Prints one line per check: PASS/FAIL, name, what spin said, states stored, state vector, time.
# Exits non-zero if pause.pml has an error (or its search is incomplete), or if a model that must fail
# (the broken #8092 model, a model with one change undone) does not.
# Environment: K_SAFETY (default 6), K_LTL (5), K_LTL_ALL (4), K_DEVICE (3), K_DEVICE_LTL (2),
# SPIN_MEMLIM_MB (4096), KEEP=1 keeps the
# temporary directory.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
K_SAFETY="${K_SAFETY:-6}"
K_LTL="${K_LTL:-5}"
K_LTL_ALL="${K_LTL_ALL:-4}"
K_DEVICE="${K_DEVICE:-3}"
K_DEVICE_LTL="${K_DEVICE_LTL:-2}"
MEMLIM="${SPIN_MEMLIM_MB:-4096}"

for tool in spin gcc; do
  if ! command -v "$tool" >/dev/null; then
    echo "FAIL  $tool is not installed (apt-get install spin gcc)" >&2
    exit 2
  fi
done

work="$(mktemp -d "${TMPDIR:-/tmp}/bunvmm-spin-XXXXXX")"
if [[ "${KEEP:-0}" != 1 ]]; then trap 'rm -rf "$work"' EXIT; else echo "keeping $work"; fi
failures=0

# check NAME EXPECT MODEL MODE [spin -D flags...]
#   EXPECT: ok (no error, complete search) | invalid-end | error (any error)
#   MODE:   safety | ltl:<claim>
check() {
  local name="$1" expect="$2" model="$3" mode="$4"; shift 4
  local dir="$work/$name"
  mkdir -p "$dir"
  cp "$here/pause.pml" "$here/pause-broken-8092.pml" "$dir/"
  (
    cd "$dir"
    spin -a "$@" "$model" >spin.out 2>&1 || { cat spin.out; exit 1; }
    if [[ "$mode" == safety ]]; then
      gcc -O2 -w -DSAFETY -DNOCLAIM -DMEMLIM="$MEMLIM" -o pan pan.c
      ./pan -m100000 -w24 >pan.out 2>&1 || true
    else
      gcc -O2 -w -DNFAIR=3 -DMEMLIM="$MEMLIM" -o pan pan.c
      ./pan -a -f -N "${mode#ltl:}" -m100000 -w24 >pan.out 2>&1 || true
    fi
  ) || { echo "FAIL  $name: spin or gcc failed"; failures=$((failures + 1)); return; }

  local out="$dir/pan.out"
  local errors states vector secs what
  errors="$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' "$out" | head -1)"
  states="$(sed -n 's/^ *\([0-9][0-9.e+]*\) states, stored.*/\1/p' "$out" | head -1)"
  vector="$(sed -n 's/^State-vector \([0-9]*\) byte.*/\1/p' "$out" | head -1)"
  secs="$(sed -n 's/^pan: elapsed time \([0-9.e+]*\) seconds.*/\1/p' "$out" | head -1)"
  what="$(grep -m1 -oE 'invalid end state|assertion violated .*\(at depth|acceptance cycle|reached -DMEMLIM bound' "$out" || true)"
  what="${what% (at depth}"
  [[ -n "$errors" ]] || errors="?"

  local verdict=FAIL
  case "$expect" in
    ok)
      if [[ "$errors" == 0 ]] && ! grep -qE 'Search not completed|reached -DMEMLIM bound|max search depth too small' "$out"; then
        verdict=PASS; what="no errors"
      fi ;;
    invalid-end)
      if [[ "$errors" != 0 && "$errors" != "?" && "$what" == "invalid end state" ]]; then verdict=PASS; fi ;;
    error)
      if [[ "$errors" != 0 && "$errors" != "?" ]]; then verdict=PASS; fi ;;
  esac
  [[ "$verdict" == PASS ]] || failures=$((failures + 1))
  printf '%s  %-22s %-22s errors %s (%s), %s states stored, state vector %s bytes, %s s\n' \
    "$verdict" "$name" "[$mode]" "$errors" "${what:-?}" "${states:-?}" "${vector:-?}" "${secs:-?}"
  if [[ "$verdict" == FAIL ]]; then sed 's/^/      /' "$out" | head -30; fi
}

# pause.pml: the protocol bunvmm implements
check good-safety            ok          pause.pml safety -DK="$K_SAFETY"
check good-ltl-pause         ok          pause.pml ltl:pause_completes -DK="$K_LTL"
check good-ltl-ops           ok          pause.pml ltl:ops_complete -DK="$K_LTL_ALL"
# cloud-hypervisor #8092's lock scope: spin must find the deadlock
check broken-8092            invalid-end pause-broken-8092.pml safety -DK="$K_SAFETY"
# each change to the protocol as first specified, undone: spin must find the bug it fixes
check undo-ack-running       error       pause.pml safety -DK=4 -DNO_FIX_ACK_RUNNING
check undo-eject-once        error       pause.pml safety -DK=4 -DNO_FIX_EJECT_ONCE
check undo-exit-last         error       pause.pml safety -DK=4 -DNO_FIX_EXIT_LAST
check undo-serve-on-park     error       pause.pml safety -DK=4 -DNO_FIX_SERVE_ON_PARK
# with a device worker (a smaller K: it multiplies the states): the same properties, plus no request in
# flight at Paused and no notification to a parked device; reading CMD before draining the control
# eventfd must lose a wake-up
check device-safety          ok          pause.pml safety -DK="$K_DEVICE" -DDEVICE_WORKER
check device-ltl-ops         ok          pause.pml ltl:ops_complete -DK="$K_DEVICE_LTL" -DDEVICE_WORKER
check undo-drain-then-read   error       pause.pml safety -DK="$K_DEVICE" -DDEVICE_WORKER -DNO_FIX_DRAIN_THEN_READ

if [[ "${1:-}" == --all ]]; then
  check as-specified          error       pause.pml safety -DK=4 -DAS_SPECIFIED
  check deadline-any-safety   ok          pause.pml safety -DK=4 -DDEADLINE_ANYTIME
  check deadline-any-ltl      ok          pause.pml ltl:ops_complete -DK=3 -DDEADLINE_ANYTIME
  check deadline-any-undo-ack error       pause.pml safety -DK=4 -DDEADLINE_ANYTIME -DNO_FIX_ACK_RUNNING
  check kick-op-safety        ok          pause.pml safety -DK=4 -DKICK_OP
  check kick-op-ltl           ok          pause.pml ltl:ops_complete -DK=3 -DKICK_OP
fi

if (( failures > 0 )); then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all checks passed"
