#!/usr/bin/env bash
# Regenerates the README's configuration reference from `starter config`.
set -euo pipefail
cd "$(dirname "$0")/.."
ref=$(go run ./starter config)
python3 - "$ref" <<'PY'
import sys
ref = sys.argv[1] + "\n"
s = open("README.md").read()
b, e = "<!-- config:begin -->\n", "<!-- config:end -->"
i, j = s.index(b) + len(b), s.index(e)
open("README.md", "w").write(s[:i] + ref + s[j:])
PY
