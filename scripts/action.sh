#!/usr/bin/env bash
# The logic of the expctl GitHub Action (action.yml), runnable and testable outside GitHub.
#
#   INPUT_COMMAND=plan DATABASE_URL=... scripts/action.sh
#
# Inputs (environment; action.yml maps its inputs to these, never through ${{ }} in a script):
#   INPUT_COMMAND            plan | reconcile | validate (required)
#   INPUT_WORKING_DIRECTORY  the manifests repository's root (default: .)
#   INPUT_MANIFEST_DIR       manifest directory, relative to it (default: the environment's or
#                            expctl.toml's manifest_dir, else experiments.d)
#   INPUT_ENVIRONMENT        exported as EXPCTL_ENV when not empty: the environment of expctl.toml
#   INPUT_GATEWAY_PROFILE    exported as EXPCTL_GATEWAY_PROFILE when not empty
#   INPUT_COMMENT            plan: "true" (default) writes the sticky PR comment file (scripts/pr-plan.sh);
#                            "false" writes the JSON plan only
#   INPUT_FAIL_ON_ERROR      "true" (default): exit with expctl's code; "false": exit 0 once the
#                            outputs are written (the caller reads the exit-code output)
#   INPUT_LOCK_TIMEOUT       reconcile: seconds to wait for another run's lock (default: 600)
#   EXPCTL_BIN               an already installed expctl: skips the install
#   ACTION_PATH              the expctl sources to install (default: this script's repository)
#   EXPCTL_LOCK_FILE         the hash-pinned lock file (default: $ACTION_PATH/requirements/expctl.lock if present)
#   OUT_DIR                  where files are written (default: $RUNNER_TEMP/expctl, else a new temp dir)
#   DATABASE_URL, REDIS_URL, BYOK_ENCRYPTION_KEY and the from_env api keys: read by expctl itself;
#                            this script never prints them.
# Outputs (appended to $GITHUB_OUTPUT when set, else printed): exit-code, plan-file, comment-file, expctl.
# With $GITHUB_STEP_SUMMARY set, reconcile writes the job summary.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
action_path="${ACTION_PATH:-$(dirname "$here")}"
command="${INPUT_COMMAND:-}"
workdir="${INPUT_WORKING_DIRECTORY:-.}"
manifest_dir="${INPUT_MANIFEST_DIR:-}"
comment="${INPUT_COMMENT:-true}"
fail_on_error="${INPUT_FAIL_ON_ERROR:-true}"
lock_timeout="${INPUT_LOCK_TIMEOUT:-600}"

die() { echo "expctl-action: $*" >&2; exit 1; }

case "$command" in
  plan | reconcile | validate) ;;
  *) die "command must be plan, reconcile or validate (got '$command')" ;;
esac
case "$comment" in true | false) ;; *) die "comment must be true or false (got '$comment')" ;; esac
case "$fail_on_error" in true | false) ;; *) die "fail-on-error must be true or false (got '$fail_on_error')" ;; esac
[[ "$lock_timeout" =~ ^[0-9]+([.][0-9]+)?$ ]] || die "lock-timeout must be a number of seconds (got '$lock_timeout')"
[ -d "$workdir" ] || die "working-directory '$workdir' is not a directory"

if [ -n "${OUT_DIR:-}" ]; then
  out_dir="$OUT_DIR"
elif [ -n "${RUNNER_TEMP:-}" ]; then
  out_dir="$RUNNER_TEMP/expctl"
else
  out_dir=$(mktemp -d)
fi
mkdir -p "$out_dir"
out_dir=$(cd "$out_dir" && pwd)

if [ -n "${INPUT_GATEWAY_PROFILE:-}" ]; then
  export EXPCTL_GATEWAY_PROFILE="$INPUT_GATEWAY_PROFILE"
fi
if [ -n "${INPUT_ENVIRONMENT:-}" ]; then
  export EXPCTL_ENV="$INPUT_ENVIRONMENT"
fi
if [ -n "$manifest_dir" ]; then
  export EXPCTL_DIR="$manifest_dir"
fi

output() {
  if [ -n "${GITHUB_OUTPUT:-}" ]; then
    printf '%s=%s\n' "$1" "$2" >>"$GITHUB_OUTPUT"
  else
    printf '%s=%s\n' "$1" "$2"
  fi
}

# --- install -----------------------------------------------------------------------------------
# expctl goes into its own venv, never into the caller's Python: the hash-pinned lock file first
# (every dependency checked against its sha256), then expctl itself from the Action's sources.
install_expctl() {
  local venv="$out_dir/venv" lock="${EXPCTL_LOCK_FILE:-$action_path/requirements/expctl.lock}"
  local python="${PYTHON:-python3}"
  echo "expctl-action: installing expctl from $action_path into $venv" >&2
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
  if [ -f "$lock" ]; then
    echo "expctl-action: dependencies from the lock file $lock (--require-hashes)" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r "$lock" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps "$action_path" >&2
    "$venv/bin/python" -m pip check >&2
  else
    echo "expctl-action: no lock file at $lock: dependencies resolved by pip" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$action_path" >&2
  fi
  expctl="$venv/bin/expctl"
}

if [ -n "${EXPCTL_BIN:-}" ]; then
  expctl="$EXPCTL_BIN"
  command -v "$expctl" >/dev/null 2>&1 || die "EXPCTL_BIN '$expctl' is not an executable"
else
  install_expctl
fi
expctl=$(command -v "$expctl")
"$expctl" --version >&2
output expctl "$expctl"

cd "$workdir"
on_github() { [ "${GITHUB_ACTIONS:-}" = "true" ]; }
html_pre() {
  printf '<pre>\n'
  sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g' "$1"
  printf '</pre>\n'
}

# --- commands ----------------------------------------------------------------------------------
run_validate() {
  local format=text
  on_github && format=github
  set +e
  "$expctl" validate --format "$format" ${manifest_dir:+"$manifest_dir"}
  rc=$?
  set -e
}

run_plan() {
  local plan_file="$out_dir/plan.json"
  if on_github; then
    # Annotations on the manifest lines; the verdict is the plan's.
    "$expctl" validate --format github ${manifest_dir:+"$manifest_dir"} || true
  fi
  set +e
  if [ "$comment" = true ]; then
    OUT_DIR="$out_dir" EXPCTL="$expctl" bash "$here/pr-plan.sh"
    rc=$?
  else
    "$expctl" plan --out "$plan_file"
    rc=$?
  fi
  set -e
  if [ "$rc" -eq 1 ] && on_github && [ -s "$plan_file" ]; then
    # Refusals as annotations on the changed lines.
    "$expctl" plan --format github 2>/dev/null || true
  fi
  if [ -s "$plan_file" ]; then output plan-file "$plan_file"; fi
  if [ "$comment" = true ]; then
    # No comment means the script itself broke: there is nothing to post, so fail in any case.
    [ -s "$out_dir/comment.md" ] || die "no comment file was written"
    output comment-file "$out_dir/comment.md"
  fi
}

run_reconcile() {
  local log="$out_dir/reconcile.log" plan_md="$out_dir/plan.md" summary="${GITHUB_STEP_SUMMARY:-/dev/null}"
  # shellcheck disable=SC2016 # markdown code spans
  printf '## expctl reconcile of `%s`\n\n' "${GITHUB_SHA:-local}" >>"$summary"
  set +e
  # The plan being applied, for the summary (reconcile re-plans under its lock: they differ only
  # if the database moved in between).
  "$expctl" plan --format markdown --out "$out_dir/plan.json" >"$plan_md" 2>"$out_dir/plan.err"
  local plan_rc=$?
  cat "$out_dir/plan.err" >&2
  if [ -s "$plan_md" ]; then
    cat "$plan_md" >>"$summary"
  else
    echo "expctl plan failed (exit $plan_rc): see the job log." >>"$summary"
  fi
  "$expctl" reconcile --auto-approve --lock-timeout "$lock_timeout" >"$log" 2>&1
  rc=$?
  # A re-run (or a manual run) also rebuilds every Redis key from PostgreSQL: that heals an
  # earlier exit 3.
  if [ "$rc" -eq 0 ] && { [ "${GITHUB_RUN_ATTEMPT:-1}" -gt 1 ] || [ "${GITHUB_EVENT_NAME:-}" = workflow_dispatch ]; }; then
    echo "+ expctl cache refresh (re-run: rebuild the Redis keys)" >>"$log"
    "$expctl" cache refresh >>"$log" 2>&1 || rc=3
  fi
  set -e
  cat "$log"
  if [ -s "$out_dir/plan.json" ]; then output plan-file "$out_dir/plan.json"; fi
  {
    echo
    echo "### Result"
    case "$rc" in
      0) echo "✅ **Reconciled**: PostgreSQL and Redis match the manifests." ;;
      1) echo "❌ **Nothing was applied** (exit 1): invalid manifests, refused changes or a connection failure. Fix the branch (usually: revert the merge) and it re-runs." ;;
      3) echo "⚠️ **PostgreSQL was committed but the Redis refresh failed** (exit 3): **re-run this job to heal** (a re-run rebuilds the Redis keys with \`expctl cache refresh\`)." ;;
      4) echo "❌ **The plan went stale** (exit 4): the database changed during the run. Re-run this job." ;;
      5) echo "⏳ **Another run held the lock** (exit 5) for longer than $lock_timeout s: nothing was applied. Re-run this job once it has finished." ;;
      *) echo "❌ **expctl reconcile failed** (exit $rc): see the job log." ;;
    esac
    echo
    echo "<details><summary>reconcile output</summary>"
    echo
    html_pre "$log"
    echo
    echo "</details>"
  } >>"$summary"
  if [ "$rc" -eq 3 ] && on_github; then
    echo "::error title=expctl reconcile::PostgreSQL committed but the Redis refresh failed (exit 3): re-run this job to heal"
  fi
}

rc=0
case "$command" in
  validate) run_validate ;;
  plan) run_plan ;;
  reconcile) run_reconcile ;;
esac
output exit-code "$rc"
echo "expctl-action: $command exited $rc" >&2
if [ "$fail_on_error" = true ]; then
  exit "$rc"
fi
exit 0
