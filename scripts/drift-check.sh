#!/usr/bin/env bash
# Look for drift between main's manifests and the gateway (what .github/workflows/drift.yml runs).
#
# Runs `expctl plan --format markdown --detailed-exitcode --require-secrets` and `expctl cache check`
# and writes, for scripts/drift-issue.sh:
#   $OUT_DIR/plan.md      the markdown plan (what reconcile would change)
#   $OUT_DIR/plan_exit    plan's exit code: 0 nothing to change, 2 changes or Redis drift
#   $OUT_DIR/cache.txt    cache check's report (one `drift: <target, password masked>: …` line each)
#   $OUT_DIR/cache_exit   cache check's exit code: 0 in sync, 2 drift
# Errors (stderr) go to the job log only: they can name hosts and users.
#
#   DATABASE_URL=postgresql://expctl_plan@db/gateway REDIS_URL=redis://cache:6379/0 \
#     BYOK_ENCRYPTION_KEY=… OUT_DIR=/tmp/drift scripts/drift-check.sh
#
# Inputs (environment):
#   OUT_DIR      where to write (default: .expctl-drift); created if missing
#   EXPCTL       the expctl command (default: expctl from PATH)
#   EXPCTL_DIR, EXPCTL_ENV, DATABASE_URL, REDIS_URL, BYOK_ENCRYPTION_KEY and the from_env api keys:
#                read by expctl itself; this script never prints them
#
# Exit code: 0 when both commands ran (drift or not: the files say which); 1 when either failed
# (connection, invalid manifests, a secret that cannot be read, ...). An error is not drift.
set -uo pipefail

out_dir="${OUT_DIR:-.expctl-drift}"
expctl="${EXPCTL:-expctl}"

die() { echo "drift-check: $*" >&2; exit 1; }

command -v "$expctl" >/dev/null 2>&1 || die "'$expctl' not found on PATH"
# Without the BYOK key every stored api key is "checked at apply": counted as a change, that would
# be drift on every run. (--require-secrets does the same for the api keys themselves.)
[ -n "${BYOK_ENCRYPTION_KEY:-}" ] || die "BYOK_ENCRYPTION_KEY is not set: the stored api keys cannot be compared"
# An empty repository variable means "no named environment", not an environment called "".
if [ -z "${EXPCTL_ENV:-}" ]; then unset EXPCTL_ENV; fi

mkdir -p "$out_dir"
rm -f "$out_dir"/plan.md "$out_dir"/plan_exit "$out_dir"/cache.txt "$out_dir"/cache_exit

"$expctl" plan --format markdown --detailed-exitcode --require-secrets >"$out_dir/plan.md"
plan_rc=$?
echo "$plan_rc" >"$out_dir/plan_exit"

"$expctl" cache check >"$out_dir/cache.txt"
cache_rc=$?
echo "$cache_rc" >"$out_dir/cache_exit"
cat "$out_dir/cache.txt"

case "$plan_rc:$cache_rc" in
  0:0) echo "drift-check: no drift (plan exit 0, cache check exit 0)" ;;
  [02]:[02]) echo "drift-check: DRIFT (plan exit $plan_rc, cache check exit $cache_rc)" ;;
  *)
    echo "::error title=expctl drift check::expctl failed (plan exit $plan_rc, cache check exit $cache_rc): see the log above; no drift issue is opened or closed"
    exit 1
    ;;
esac
