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
