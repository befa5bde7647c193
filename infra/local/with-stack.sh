#!/usr/bin/env bash
# Run a command against a fresh local stack, then stop the stack whatever the command did.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
"$here/stack.sh" start || { "$here/stack.sh" stop; exit 1; }
"$@"
rc=$?
"$here/stack.sh" stop >/dev/null
exit $rc
