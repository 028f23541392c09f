#!/usr/bin/env bash
# Installs the project's pinned tools into .tools/bin when missing:
# the Temporal CLI (dev server), the Temporal server and its SQL schema tool
# (cluster mode: `starter cluster`), staticcheck, errcheck, workflowcheck,
# benchstat (make bench) and the MinIO server (the evidence locker's S3
# store with Object Lock, for tests and the cluster mode; about 2.5 minutes
# and 150 MB to build; internal/objectstore runs it).
# The Temporal CLI and server are built from source with `go install` (about
# 3 minutes and 250 MB, and about 2 minutes and 130 MB, the first time);
# later CLI releases cannot be installed that way, so the versions are pinned.
# The server is the same version the CLI's dev server embeds (1.29.1).
# The PostgreSQL schemas stay in the server module (Go module cache);
# `starter cluster` finds them with `go list -m`, see internal/cluster.
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

# The server's commands are installed under their own names: `server` and
# `sql` are too generic to sit in a PATH.
install_as() { # name module@version (the binary go install writes is the module's last element)
  local name=$1 mod=$2 stamp="$bin/.$1.version" tmp
  if [[ -x "$bin/$name" && -f "$stamp" && "$(cat "$stamp")" == "$mod" ]]; then
    return
  fi
  echo "tools: installing $mod as $name" >&2
  tmp=$(mktemp -d)
  GOBIN="$tmp" go install "$mod"
  mv "$tmp/$(basename "${mod%@*}")" "$bin/$name"
  rmdir "$tmp"
  echo "$mod" > "$stamp"
}

install temporal      github.com/temporalio/cli/cmd/temporal@v1.5.1
install_as temporal-server     go.temporal.io/server/cmd/server@v1.29.1
install_as temporal-sql-tool   go.temporal.io/server/cmd/tools/sql@v1.29.1
install staticcheck   honnef.co/go/tools/cmd/staticcheck@v0.8.2
install errcheck      github.com/kisielk/errcheck@v1.30.0
install workflowcheck go.temporal.io/sdk/contrib/tools/workflowcheck@v0.6.0
install benchstat     golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da
install minio         github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c
