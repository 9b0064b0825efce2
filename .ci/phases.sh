# Phase timing for .ci/run (sourced). `phase NAME CMD...` runs CMD, prints its time beside the
# time recorded for NAME in $CI_PHASE_TIMES (default .ci/phase-times.tsv) and returns CMD's
# status. A phase over twice its recorded time is named at once and again by `phase_summary`,
# which fails (returns 1) if any was; a phase without a recorded time is reported, not failed.
# A recorded time written "~N" only warns: installs, whose time is the registry's and the
# download cache's, not the project's.

CI_PHASE_TIMES=${CI_PHASE_TIMES:-.ci/phase-times.tsv}
_ci_start=$EPOCHREALTIME
_ci_slow=()
_ci_lines=()

_ci_fmt() {  # seconds -> "12 min 05 s"
  local s=$1
  if [ "$s" -ge 60 ]; then printf '%d min %02d s' $((s / 60)) $((s % 60)); else printf '%d s' "$s"; fi
}

_ci_recorded() {  # the recorded seconds of phase $1, empty if none
  [ -r "$CI_PHASE_TIMES" ] || return 0
  awk -F'\t' -v p="$1" '$0 !~ /^#/ && $1 == p { print $2; exit }' "$CI_PHASE_TIMES"
}

phase() {
  local name=$1
  shift
  local t0=$EPOCHREALTIME
  echo "ci: phase $name: $*"
  "$@"
  local rc=$?
  local took
  took=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%d", b - a + 0.5 }')
  local recorded line warn_only=0
  recorded=$(_ci_recorded "$name")
  if [ "${recorded#\~}" != "$recorded" ]; then
    warn_only=1
    recorded=${recorded#\~}
  fi
  if [ -z "$recorded" ]; then
    line="ci: phase $name took $(_ci_fmt "$took") (no recorded time in $CI_PHASE_TIMES)"
  else
    line="ci: phase $name took $(_ci_fmt "$took") (recorded $(_ci_fmt "$recorded"), limit $(_ci_fmt $((2 * recorded))))"
    if [ "$took" -gt $((2 * recorded)) ] && [ "$warn_only" -eq 1 ]; then
      line="$line
warning: phase $name took more than twice its recorded time (an install: reported, not failed)"
    elif [ "$took" -gt $((2 * recorded)) ]; then
      _ci_slow+=("$name")
      line="$line
error: phase $name took $(_ci_fmt "$took"), more than twice its recorded $(_ci_fmt "$recorded") ($CI_PHASE_TIMES): find the slow-down (--durations lists the slowest tests), or record the new time with its reason"
    fi
  fi
  _ci_lines+=("$line")
  echo "$line" >&2
  return "$rc"
}

phase_summary() {
  local total
  total=$(awk -v a="$_ci_start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%d", b - a + 0.5 }')
  echo "ci: phase times"
  local line
  for line in "${_ci_lines[@]}"; do echo "  ${line%%$'\n'*}"; done
  echo "ci: total $(_ci_fmt "$total")"
  if [ "${#_ci_slow[@]}" -gt 0 ]; then
    echo "error: over twice the recorded time: ${_ci_slow[*]} (.ci/run fails)" >&2
    return 1
  fi
}
