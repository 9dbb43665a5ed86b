#!/usr/bin/env bash
# The Debian packages the end-to-end tests drive, installed when missing:
#   chromium  the web console's browser test (tests/tests/web_console.rs, via playwright-core)
#   nginx     the two-daemon routing test (tests/tests/scale_out.rs)
# A test whose program is missing fails with a clear message; this installs them first.
set -euo pipefail
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/sbin/nginx ] || missing+=(nginx)
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
echo "system-deps: installing ${missing[*]} (Debian packages)"
as_root=()
[ "$(id -u)" = 0 ] || as_root=(sudo)
"${as_root[@]}" apt-get update -o DPkg::Lock::Timeout=600 >/dev/null
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -o DPkg::Lock::Timeout=600 "${missing[@]}" >/dev/null
