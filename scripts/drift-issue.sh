#!/usr/bin/env bash
# Keep ONE GitHub issue open while the gateway has drifted from main's manifests (what
# .github/workflows/drift.yml runs after scripts/drift-check.sh).
#
#   drift (plan or cache check exit 2), no open issue  -> open it (label expctl-drift)
#   drift, the issue is open                            -> rewrite its description; comment when the
#                                                          drift is not the same as last time
#   no drift (both exit 0), the issue is open           -> close it with a comment
#   any other exit code (an error, not drift)           -> exit 1 and leave the issues alone
#
# The description holds the cache check report and the markdown plan, cut to fit GitHub's 65,536
# characters (the cache report first: it is short; the plan's tail goes first).
#
# Inputs (environment):
#   DRIFT_DIR     the files of scripts/drift-check.sh: plan.md, plan_exit, cache.txt, cache_exit
#                 (default: .expctl-drift)
#   REPO          owner/name (default: $GITHUB_REPOSITORY)
#   GH_TOKEN      read by gh: a token that may write issues
#   RUN_URL       the workflow run, linked from the issue (optional)
#   DRIFT_COMMIT  the commit whose manifests were compared (default: $GITHUB_SHA, else "local")
set -euo pipefail

readonly LABEL="expctl-drift"
readonly TITLE="expctl: the gateway has drifted from main's manifests"
readonly MARKER="<!-- expctl-drift"
readonly LIMIT=65536 # GitHub's maximum issue body length, in characters
export LC_ALL=C.UTF-8 # so that ${#text} counts characters, as GitHub does

drift_dir="${DRIFT_DIR:-.expctl-drift}"
repo="${REPO:-${GITHUB_REPOSITORY:-}}"
commit="${DRIFT_COMMIT:-${GITHUB_SHA:-local}}"
run_url="${RUN_URL:-}"

die() { echo "drift-issue: $*" >&2; exit 1; }

[ -n "$repo" ] || die "REPO (owner/name) is not set"
exit_code() {
  local file="$drift_dir/$1" rc
  [ -s "$file" ] || die "$file is missing: run scripts/drift-check.sh first"
  rc=$(cat "$file")
  case "$rc" in
    0 | 2) echo "$rc" ;;
    *) die "$1 is '$rc': expctl failed, which is not drift; no issue is opened or closed" ;;
  esac
}
plan_rc=$(exit_code plan_exit)
cache_rc=$(exit_code cache_exit)

# The open drift issue, if any: ours carries the label and the exact title.
issues=$(gh issue list --repo "$repo" --label "$LABEL" --state open --limit 100 --json number,title,body)
number=$(jq -r --arg title "$TITLE" '[.[] | select(.title == $title)][0].number // empty' <<<"$issues")
old_body=$(jq -r --arg title "$TITLE" '[.[] | select(.title == $title)][0].body // ""' <<<"$issues")

if [ "$plan_rc" = 0 ] && [ "$cache_rc" = 0 ]; then
  if [ -n "$number" ]; then
    gh issue close "$number" --repo "$repo" \
      --comment "No drift any more at commit \`$commit\`${run_url:+ ([run]($run_url))}: closing."
    echo "drift-issue: no drift: closed issue #$number"
  else
    echo "drift-issue: no drift, no open issue: nothing to do"
  fi
  exit 0
fi

html_pre() {
  printf '<pre>\n'
  head -c 20000 "$1" | sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g'
  if [ "$(wc -c <"$1")" -gt 20000 ]; then printf '\n… cut: the workflow log has the full report\n'; fi
  printf '</pre>\n'
}

# The same drift as last time has the same digest: then the description is refreshed silently.
digest=$(cat "$drift_dir/plan.md" "$drift_dir/cache.txt" | sha256sum | cut -c1-16)
old_digest=$(tr -d '\r' <<<"$old_body" | sed -n 's/^<!-- expctl-drift digest=\([0-9a-f]*\) -->$/\1/p' | head -n 1)

# shellcheck disable=SC2016 # the backticks are markdown code spans
head_text=$(
  printf '%s digest=%s -->\n' "$MARKER" "$digest"
  printf '## The gateway has drifted from `main`\n\n'
  printf 'Last checked %s at commit `%s`%s: ' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$commit" "${run_url:+ ([run]($run_url))}"
  printf '`expctl plan --detailed-exitcode` exit %s, `expctl cache check` exit %s.\n\n' "$plan_rc" "$cache_rc"
  printf 'Re-run the **reconcile** workflow to converge the gateway to the manifests; if the change was '
  printf 'meant (made in the admin UI), put it in the manifests instead. This issue is updated while the '
  printf 'drift lasts and closed when it is gone.\n\n'
  printf '### Redis (`expctl cache check`)\n\n'
  if [ "$cache_rc" = 0 ]; then printf 'In sync.\n'; else html_pre "$drift_dir/cache.txt"; fi
  printf '\n### What reconcile would change (`expctl plan`)\n\n'
)
plan_text=$(cat "$drift_dir/plan.md")
note=$'\n\n_… cut to fit an issue: run `expctl plan` for the full plan._\n'
budget=$((LIMIT - ${#head_text} - ${#note} - 16))
if [ "${#plan_text}" -gt "$budget" ]; then
  plan_text=${plan_text:0:budget}
  plan_text="${plan_text%$'\n'*}$note" # whole lines only
fi
body_file=$(mktemp)
trap 'rm -f "$body_file"' EXIT
printf '%s\n\n%s\n' "$head_text" "$plan_text" >"$body_file"

if [ -n "$number" ]; then
  gh issue edit "$number" --repo "$repo" --body-file "$body_file" >/dev/null
  if [ "$digest" != "$old_digest" ]; then
    gh issue comment "$number" --repo "$repo" \
      --body "The drift changed at commit \`$commit\`${run_url:+ ([run]($run_url))}: see the description." >/dev/null
    echo "drift-issue: drift changed: updated issue #$number and commented"
  else
    echo "drift-issue: same drift: updated issue #$number"
  fi
else
  gh label create "$LABEL" --repo "$repo" --color D93F0B --force \
    --description "expctl: the gateway differs from main's manifests" >/dev/null
  gh issue create --repo "$repo" --title "$TITLE" --label "$LABEL" --body-file "$body_file"
  echo "drift-issue: drift: opened an issue"
fi
