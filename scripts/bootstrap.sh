# Sourced by scripts/run.sh and scripts/test.sh: find Python 3.11, make .venv, install pinned requirements.
# Re-installs only when a requirements file changed (a stamp holds their hash), so repeated runs start fast.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

find_python() {
  for candidate in "${PYTHON:-}" python3.11 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      echo "$candidate"; return 0
    fi
  done
  echo "Billpay needs Python 3.11 (set PYTHON=/path/to/python3.11)." >&2
  return 1
}

# WeasyPrint (bill and receipt PDFs) needs the Pango text library from the system. Install it when missing and we can.
ensure_pango() {
  if ldconfig -p 2>/dev/null | grep -q 'libpango-1.0.so.0'; then
    return 0
  fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing the Pango library for PDF rendering ..."
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libpango-1.0-0 libpangoft2-1.0-0 >/dev/null
  else
    echo "WeasyPrint needs the Pango library (Debian: apt-get install libpango-1.0-0 libpangoft2-1.0-0)." >&2
  fi
}

bootstrap_venv() {
  ensure_pango
  local requirements="$1"
  local py
  py=$(find_python)
  [ -x .venv/bin/python ] || "$py" -m venv .venv
  local stamp=.venv/.requirements-stamp
  local want
  want=$(cat requirements*.txt | sha256sum | cut -d' ' -f1)-$requirements
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "Installing Python packages from $requirements ..."
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$requirements"
    echo "$want" > "$stamp"
  fi
  mkdir -p var
}

# scripts/cluster.sh and its test (tests/test_cluster.py) run real servers from Debian's packages: nginx, PostgreSQL,
# Redis, openssl. Install the ones missing when we can.
ensure_cluster_packages() {
  local missing=()
  command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  command -v openssl >/dev/null 2>&1 || missing+=(openssl)
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "The cluster needs: ${missing[*]} (Debian: apt-get install ${missing[*]})." >&2
    return 1
  fi
  echo "Installing ${missing[*]} ..."
  # Installing must not start the packages' own system services (port 80, 5432, 6379): the cluster runs its own.
  local policy=/usr/sbin/policy-rc.d created=""
  if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; created=1; fi
  local status=0
  if ! { apt-get update -qq >/dev/null &&
         DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }; then
    status=1
  fi
  [ -n "$created" ] && rm -f "$policy"
  return $status
}
