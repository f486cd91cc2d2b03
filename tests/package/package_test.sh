#!/usr/bin/env bash
# The Debian package: built by CPack from BUILD_DIR, its contents and control
# fields checked with dpkg-deb, lintian run on it (tags accepted in
# tests/package/lintian-accepted, with the reasons), then extracted into a
# temporary root where the shipped annald checks the shipped config, the
# unit is verified by systemd-analyze and the man pages render.
#   package_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1
src=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/annal-package.XXXXXX")
trap 'rm -rf "$work"' EXIT
failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# --- build ------------------------------------------------------------------
if ! cpack -G DEB --config "$build/CPackConfig.cmake" -B "$work/out" >"$work/cpack.log" 2>&1; then
  cat "$work/cpack.log" >&2
  echo "FAIL: cpack could not build the package" >&2
  exit 1
fi
debs=("$work"/out/annal_*.deb)
[ -f "${debs[0]}" ] || { echo "FAIL: no annal_*.deb in $work/out" >&2; exit 1; }
deb=${debs[0]}
arch=$(dpkg --print-architecture)
echo "built $(basename "$deb")"
[ "$(basename "$deb")" = "annal_0.1.0-1_${arch}.deb" ] || fail "unexpected file name $(basename "$deb")"

# --- contents ---------------------------------------------------------------
dpkg-deb -c "$deb" >"$work/contents"
for path in ./usr/bin/annald ./usr/bin/annal ./lib/systemd/system/annald.service \
  ./etc/annal/annald.conf ./usr/share/man/man8/annald.8.gz ./usr/share/man/man1/annal.1.gz \
  ./usr/share/doc/annal/copyright ./usr/share/doc/annal/changelog.Debian.gz; do
  grep -qE " ${path//./\\.}\$" "$work/contents" || fail "the package lacks $path"
done
if awk '{print $2}' "$work/contents" | grep -qv '^root/root$'; then
  fail "files not owned by root/root: $(awk '$2 != "root/root"' "$work/contents" | head -3)"
fi
grep -qE '^-rwxr-xr-x .* \./usr/bin/annald$' "$work/contents" || fail "annald is not mode 0755"
grep -qE '^-rw-r--r-- .* \./etc/annal/annald\.conf$' "$work/contents" ||
  fail "annald.conf is not mode 0644"

# --- control ----------------------------------------------------------------
dpkg-deb -f "$deb" >"$work/control"
field() { dpkg-deb -f "$deb" "$1"; }
[ "$(field Package)" = annal ] || fail "Package: $(field Package)"
[ "$(field Version)" = 0.1.0-1 ] || fail "Version: $(field Version)"
[ "$(field Architecture)" = "$arch" ] || fail "Architecture: $(field Architecture)"
[[ "$(field Maintainer)" =~ ^[^\<]+\ \<[^@\>]+@[^\>]+\>$ ]] || fail "Maintainer: $(field Maintainer)"
[ -n "$(field Description)" ] || fail "no Description"
depends=$(field Depends)
for dep in libc6 'libstdc\+\+6' adduser libspdlog libfmt libboost-program-options; do
  [[ "$depends" =~ (^|, )$dep ]] || fail "Depends lacks $dep (computed by dpkg-shlibdeps): $depends"
done
mkdir "$work/control.d"
dpkg-deb -e "$deb" "$work/control.d"
[ "$(cat "$work/control.d/conffiles")" = /etc/annal/annald.conf ] ||
  fail "conffiles: $(cat "$work/control.d/conffiles")"
grep -q 'adduser --system --group' "$work/control.d/postinst" || fail "postinst creates no annal user"
[ -x "$work/control.d/postinst" ] && [ -x "$work/control.d/prerm" ] || fail "maintainer scripts not executable"
for s in postinst prerm; do sh -n "$work/control.d/$s" || fail "$s is not valid sh"; done

# --- lintian ----------------------------------------------------------------
if ! command -v lintian >/dev/null; then
  fail "lintian is not installed (scripts/setup.sh installs it)"
else
  accepted=$(grep -v '^#' "$src/tests/package/lintian-accepted" | grep . | paste -sd, - || true)
  # Tags at error and warning level fail; info and pedantic ones are shown.
  if ! lintian --fail-on error,warning ${accepted:+--suppress-tags "$accepted"} --display-info \
    "$deb" >"$work/lintian" 2>&1; then
    cat "$work/lintian" >&2
    fail "lintian reports errors or warnings (above)"
  else
    sed 's/^/lintian: /' "$work/lintian"
  fi
fi

# --- extracted: the binaries, the config, the unit, the man pages -------------
root=$work/root
dpkg-deb -x "$deb" "$root"
out=$("$root/usr/bin/annald" --check-config "$root/etc/annal/annald.conf") ||
  fail "the shipped config does not pass annald --check-config"
grep -qE '^data += /var/lib/annal( |$)' <<<"$out" || fail "the shipped config's data is not /var/lib/annal: $out"
"$root/usr/bin/annald" --help >"$work/help" || fail "annald --help failed"
grep -q -- '--check-config' "$work/help" || fail "annald --help does not mention --check-config"
"$root/usr/bin/annal" --help >/dev/null || fail "annal --help failed"
file "$root/usr/bin/annald" | grep -q 'stripped' || fail "annald is not stripped"
file "$root/usr/bin/annald" | grep -q 'not stripped' && fail "annald is not stripped"
for page in man8/annald.8.gz man1/annal.1.gz; do
  # -ww: every groff warning; a page that renders with warnings fails.
  warnings=$(zcat "$root/usr/share/man/$page" | groff -man -Tutf8 -ww -z 2>&1) ||
    fail "$page does not render"
  [ -z "$warnings" ] || fail "$page renders with warnings: $warnings"
done
zcat "$root/usr/share/man/man8/annald.8.gz" | grep -q 'check\\-config' ||
  fail "annald(8) does not document --check-config"
if command -v systemd-analyze >/dev/null; then
  # verify resolves ExecStart= against the real root, so check a copy that
  # runs the extracted binary; the man pages are checked above.
  sed "s|^ExecStart=/usr/bin/annald|ExecStart=$root/usr/bin/annald|" \
    "$root/lib/systemd/system/annald.service" >"$work/annald.service"
  if ! (cd "$work" && systemd-analyze verify --man=no ./annald.service) >"$work/verify" 2>&1; then
    cat "$work/verify" >&2
    fail "systemd-analyze verify rejects the unit"
  fi
  systemd-analyze security --offline=yes "$work/annald.service" 2>/dev/null | tail -1 || true
fi
unit=$root/lib/systemd/system/annald.service
for kv in Type=notify User=annal Group=annal StateDirectory=annal \
  'ExecStart=/usr/bin/annald --config /etc/annal/annald.conf' Restart=on-failure \
  NoNewPrivileges=yes ProtectSystem=strict ProtectHome=yes PrivateTmp=yes PrivateDevices=yes \
  ProtectKernelTunables=yes ProtectKernelModules=yes ProtectKernelLogs=yes \
  'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6' ReadWritePaths=/var/lib/annal \
  CapabilityBoundingSet= SystemCallFilter=@system-service MemoryDenyWriteExecute=yes \
  LockPersonality=yes WantedBy=multi-user.target; do
  grep -qxF "$kv" "$unit" || fail "the unit lacks $kv"
done
# The stop timeout covers annald's bound: 2 x shutdown-grace-ms + 1 s.
grace_ms=$(grep -E '^shutdown-grace-ms +=' <<<"$out" | sed -E 's/.*= ([0-9]+).*/\1/')
stop_s=$(sed -nE 's/^TimeoutStopSec=([0-9]+)s$/\1/p' "$unit")
[ -n "$stop_s" ] && [ $((stop_s * 1000)) -gt $((2 * grace_ms + 1000)) ] ||
  fail "TimeoutStopSec=${stop_s}s is not above 2 x ${grace_ms} ms + 1 s"

if ((failures)); then
  echo "$failures check(s) failed" >&2
  exit 1
fi
echo "package OK: $(basename "$deb"), Depends: $depends"
