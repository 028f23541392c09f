#!/usr/bin/env bash
# Installs the project's pinned tools into .tools/bin when missing:
# the Temporal CLI (dev server), staticcheck and workflowcheck.
# The Temporal CLI is built from source with `go install` (about 3 minutes
# and 250 MB the first time); later releases cannot be installed that way,
# so the version is pinned.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$PWD/.tools/bin"
mkdir -p "$bin"

install() { # name module@version
  local name=$1 mod=$2 stamp="$bin/.$1.version"
  if [[ -x "$bin/$name" && -f "$stamp" && "$(cat "$stamp")" == "$mod" ]]; then
    return
  fi
  echo "tools: installing $mod" >&2
  GOBIN="$bin" go install "$mod"
  echo "$mod" > "$stamp"
}

install temporal      github.com/temporalio/cli/cmd/temporal@v1.5.1
install staticcheck   honnef.co/go/tools/cmd/staticcheck@v0.8.2
install workflowcheck go.temporal.io/sdk/contrib/tools/workflowcheck@v0.6.0
