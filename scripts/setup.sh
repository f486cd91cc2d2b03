#!/usr/bin/env bash
# Installs what annal needs from Debian 12 packages, idempotently.
# Only packages that are missing are installed; nothing is downloaded from
# anywhere but the configured Debian mirrors.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  libboost-dev libboost-program-options-dev
  libxxhash-dev libsimdjson-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libfmt-dev libspdlog-dev
  clang libclang-rt-14-dev
  ccache
  python3 python3-pytest python3-pip python3-setuptools python3-wheel
  # the admin endpoint's tests: Prometheus's own text-format parser; curl
  # and jq for bench/metrics.sh
  python3-prometheus-client curl jq
  # The .deb (packaging/, tests/package): man pages from --help, the
  # package's checks (dpkg-shlibdeps, lintian, man page rendering, file).
  help2man lintian dpkg-dev groff-base file
  # the web console's test (tests/console): a headless browser
  chromium
)

# Node.js and npm for the TypeScript client (clients/typescript): Debian's,
# unless a node is already installed (a nodejs from elsewhere bundles npm and
# conflicts with Debian's npm package).
command -v node >/dev/null 2>&1 || PACKAGES+=(nodejs npm)
# chromium (above) is driven by playwright-core from npm, which downloads no
# browser of its own.

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
