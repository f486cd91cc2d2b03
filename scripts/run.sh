#!/usr/bin/env bash
# Installs what is missing, builds a Release annald and starts it with its
# defaults: data in ./data, the protocol on 127.0.0.1:7411, the admin endpoint
# and web console on http://127.0.0.1:7412/. Extra arguments go to annald.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release --target annald annal
exec build/release/tools/annald "$@"
