#!/usr/bin/env bash
# Creates (or reuses) the virtual environment of the Python baselines and installs the
# pinned requirements into it.
#
#   bash tests/bench/python/setup.sh [VENV]     # VENV defaults to <workspace>/target/bench-venv
#
# Idempotent: a venv whose stamp matches requirements.txt and whose interpreter still runs
# is left as it is (a fraction of a second); otherwise it is (re)built. Quiet on success;
# on failure it prints what failed to stderr and exits non-zero.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
venv="${1:-$root/target/bench-venv}"
req="$here/requirements.txt"
python="${PYTHON:-python3}"

fail() {
    echo "bench python setup: $*" >&2
    exit 1
}

command -v "$python" >/dev/null 2>&1 || fail "$python not found on PATH (Python 3.9 or newer is needed)"
"$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)' \
    || fail "$("$python" --version 2>&1) is too old: msgraph-sdk needs Python 3.9 or newer"

want="$("$python" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$req") $("$python" -c 'import sys; print(sys.version.split()[0])')"
stamp="$venv/.bench-requirements"

if [[ -x "$venv/bin/python" ]] && "$venv/bin/python" -c '' 2>/dev/null \
    && [[ -f "$stamp" ]] && [[ "$(cat "$stamp")" == "$want" ]]; then
    exit 0
fi

if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c '' 2>/dev/null; then
    rm -rf "$venv"
    log="$(mktemp)"
    if ! "$python" -m venv "$venv" >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        fail "could not create a virtual environment at $venv with '$python -m venv' (on Debian: apt-get install python3-venv)"
    fi
    rm -f "$log"
fi

rm -f "$stamp"
log="$(mktemp)"
if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    -r "$req" >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    rm -f "$log"
    fail "pip install -r $req into $venv failed (is PyPI reachable?)"
fi
rm -f "$log"

"$venv/bin/python" -c 'import httpx, msgraph, msgraph_core, kiota_http' 2>/dev/null \
    || fail "the packages were installed into $venv but do not import"
echo "$want" >"$stamp"
