#!/bin/sh
# Lists the members of your organization who hold no working backup codes (none made, an
# expired set, or every code used), one email address a line, with nothing but curl and a
# personal access token that carries the members:read scope (make one on the console's
# API tokens page).
#
#   LIFELINE_URL=https://lifeline.example.com LIFELINE_TOKEN=lifeline_pat_... \
#     ./examples/members-without-codes.sh
#
# It follows the API's pages (50 members each) to the last one. The API is described at
# $LIFELINE_URL/api/v1/openapi.json.
set -eu

: "${LIFELINE_URL:?set LIFELINE_URL to the server address, e.g. https://lifeline.example.com}"
: "${LIFELINE_TOKEN:?set LIFELINE_TOKEN to a personal access token with the members:read scope}"

after=""
while :; do
  if ! page=$(curl --silent --show-error --fail-with-body \
    --header "Authorization: Bearer $LIFELINE_TOKEN" \
    "${LIFELINE_URL%/}/api/v1/members?standing=without-codes${after:+&after=$after}"); then
    printf '%s\n' "$page" >&2
    exit 1
  fi
  # The answer is one line of JSON: {"members":[{"id":…,"email":"…",…},…],"next_after":…}
  printf '%s\n' "$page" | grep -o '"email":"[^"]*"' | sed 's/^"email":"//; s/"$//'
  after=$(printf '%s\n' "$page" | grep -o '"next_after":[0-9][0-9]*' | sed 's/^"next_after"://' || true)
  [ -n "$after" ] || break
done
