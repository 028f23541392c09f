#!/bin/sh
# Initialises the SoftHSM2 token "iru" once; the worker creates its keys in it.
set -eu
if softhsm2-util --show-slots 2>/dev/null | grep -q 'Label:.*iru'; then
  echo "hsm-init: token iru exists"
  exit 0
fi
softhsm2-util --init-token --free --label iru --pin "$(cat /run/secrets/hsm_pin)" --so-pin "$(cat /run/secrets/hsm_so_pin)"
