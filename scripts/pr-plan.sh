#!/usr/bin/env bash
# Plan a pull request's manifests and write the sticky PR comment (what .github/workflows/plan.yml runs).
#
# Runs `expctl validate`, then `expctl plan --format markdown --out plan.json`, and writes:
#   $OUT_DIR/comment.md   the comment body: the hidden marker first, the markdown plan (or the
#                         validation problems), and a footer with the plan id
#   $OUT_DIR/plan.json    the saved JSON plan (absent when validation or planning failed)
#   $OUT_DIR/exit_code    the exit code below, for the workflow's later steps
# It posts nothing itself: the workflow's comment job does, so this script can run locally:
#
#   DATABASE_URL=postgresql://expctl_plan@db/gateway REDIS_URL=redis://cache:6379/0 \
#     OUT_DIR=/tmp/plan scripts/pr-plan.sh
#
# Inputs (environment):
#   OUT_DIR       where to write (default: .expctl-plan); created if missing
#   EXPCTL_DIR    manifest directory (default: the environment's or expctl.toml's manifest_dir, else
#                 experiments.d); expctl reads it too. EXPCTL_ENV: the environment, read by expctl
#   DATABASE_URL, REDIS_URL   read by expctl; give the plan a READ-ONLY role (docs/gitops.md)
#   EXPCTL        the expctl command (default: expctl from PATH)
#   PLAN_COMMIT   the commit named in the footer (default: $GITHUB_SHA, else "local")
#
# Exit code: the plan's (0 ok, 1 invalid manifests, refused changes or a failed plan). The
# comment is written in every case, so reviewers always see why.
set -uo pipefail

readonly MARKER='<!-- expctl-plan -->'
readonly LIMIT=65536 # GitHub's maximum comment length, in characters

out_dir="${OUT_DIR:-.expctl-plan}"
manifest_dir="${EXPCTL_DIR:-}"
expctl="${EXPCTL:-expctl}"
export LC_ALL=C.UTF-8 # so that `wc -m` counts characters, as GitHub does

mkdir -p "$out_dir"
comment="$out_dir/comment.md"
plan_json="$out_dir/plan.json"
plan_md="$out_dir/plan.md"
log="$out_dir/expctl.log"
rm -f "$comment" "$plan_json" "$plan_md" "$log" "$out_dir/exit_code"

if ! command -v "$expctl" >/dev/null 2>&1; then
  echo "pr-plan: '$expctl' not found on PATH" >&2
  exit 1
fi

# Escapes text for an HTML <pre> block, in which GitHub renders no markdown at all.
html_escape() { sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g'; }

# shellcheck disable=SC2016 # the backticks are markdown code spans, not command substitutions
footer() {
  local plan_id=$1
  printf '\n---\n'
  if [ -n "$plan_id" ]; then
    printf 'Plan id `%s` · ' "$plan_id"
  fi
  printf 'Planned read-only at commit `%s`. ' "${PLAN_COMMIT:-${GITHUB_SHA:-local}}"
  printf 'Nothing is applied by this comment: **apply happens on merge** (`expctl reconcile` on `main`). '
  printf 'The JSON plan is in the `expctl-plan` artifact.\n'
}

finish() {
  local rc=$1
  echo "$rc" >"$out_dir/exit_code"
  local chars
  chars=$(wc -m <"$comment")
  echo "pr-plan: wrote $comment ($chars characters), exit $rc" >&2
  exit "$rc"
}

# A block of tool output (validation problems, a plan failure) as a comment section.
output_block() {
  local title=$1 file=$2
  printf '%s\n\n<pre>\n' "$title"
  # Bounded so that the comment stays well under GitHub's limit; the job log has everything.
  head -n 200 "$file" | head -c 50000 | html_escape
  if [ "$(wc -l <"$file")" -gt 200 ] || [ "$(wc -c <"$file")" -gt 50000 ]; then
    printf '\n… cut to fit a comment: the job log has the full output\n'
  fi
  printf '</pre>\n'
}

# 1. Validate: every problem of every file, reported without touching any database.
validate_out="$out_dir/validate.txt"
"$expctl" validate ${manifest_dir:+"$manifest_dir"} >"$validate_out" 2>&1
validate_rc=$?
cat "$validate_out" >&2
if [ "$validate_rc" -ne 0 ]; then
  {
    printf '%s\n### expctl plan\n' "$MARKER"
    printf '❌ **The manifests are invalid: no plan was made and nothing can be applied.**\n\n'
    output_block "Fix these problems (\`expctl validate\` shows them locally):" "$validate_out"
    footer ""
  } >"$comment"
  finish 1
fi

# 2. Plan (read-only): markdown for the comment, JSON for the artifact and for `expctl apply`.
"$expctl" plan --format markdown --out "$plan_json" >"$plan_md" 2>"$log"
plan_rc=$?
cat "$log" >&2

if [ ! -s "$plan_md" ]; then
  # No plan at all: a connection failure, a missing secret setting, a crash. The messages stay in
  # the job log: connection errors can name hosts and users that a PR comment should not.
  [ "$plan_rc" -eq 0 ] && plan_rc=1
  {
    printf '%s\n### expctl plan\n' "$MARKER"
    printf '❌ **expctl plan failed (exit %s) before producing a plan.** ' "$plan_rc"
    printf 'See the workflow run log for the error; nothing can be applied until it plans.\n'
    footer ""
  } >"$comment"
  rm -f "$plan_json"
  finish "$plan_rc"
fi

plan_id=""
if [ -s "$plan_json" ]; then
  # The first "plan_id" is the top-level one (format_version 1 puts it second, before any nesting).
  plan_id=$(grep -o '"plan_id": *"[^"]*"' "$plan_json" | head -n 1 | sed 's/.*"\([^"]*\)"$/\1/')
fi

# 3. The comment: the marker on the first line (the renderer's own, else ours), the plan, the footer.
if [ "$(head -n 1 "$plan_md")" != "$MARKER" ]; then
  { printf '%s\n' "$MARKER"; cat "$plan_md"; } >"$plan_md.tmp" && mv "$plan_md.tmp" "$plan_md"
fi
{ cat "$plan_md"; footer "$plan_id"; } >"$comment"

# The markdown renderer already fits the plan to GitHub's limit; only the footer can push it over.
# Then the plan's tail (details, unmanaged list, cache line) is cut: the verdict, the irreversible
# actions, the traffic shifts and the refusals come first and are kept.
if [ "$(wc -m <"$comment")" -gt "$LIMIT" ]; then
  footer_text=$(footer "$plan_id")
  note=$'\n_… cut to fit a GitHub comment: the full plan is in the artifact._\n'
  budget=$((LIMIT - ${#footer_text} - ${#note} - 16))
  plan_text=$(cat "$plan_md")
  cut=${plan_text:0:budget} # characters under a UTF-8 locale (bytes otherwise: fewer characters)
  cut=${cut%$'\n'*}         # whole lines only
  printf '%s\n%s%s\n' "$cut" "$note" "$footer_text" >"$comment"
fi

finish "$plan_rc"
