#!/usr/bin/env bash
# Installs what bench/peers/run.py needs: a Python 3.11 env at bench/work/peers-venv holding
# bench/peers/requirements.txt (Celery, Dramatiq, Taskiq, nats-server), and Debian's
# redis-server when none is on PATH. Idempotent: an env whose stamp matches the requirements
# hash is left alone. The redis system service is never started; run.py starts its own.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="$repo/bench/work/peers-venv"
requirements="$here/requirements.txt"
stamp="$venv/.requirements.sha256"

fail() {
    echo "bench/peers/install.sh: $*" >&2
    exit 1
}

find_uv() {
    if command -v uv >/dev/null 2>&1; then
        command -v uv
    elif [ -x "$HOME/.local/bin/uv" ]; then
        echo "$HOME/.local/bin/uv"
    else
        python3 -m pip install --user --quiet uv >&2 || fail "uv is missing and 'python3 -m pip install --user uv' failed"
        [ -x "$HOME/.local/bin/uv" ] || fail "uv was installed but is not at ~/.local/bin/uv; put it on PATH"
        echo "$HOME/.local/bin/uv"
    fi
}

install_redis() {
    command -v redis-server >/dev/null 2>&1 && return
    [ "$(id -u)" -eq 0 ] || fail "redis-server is not on PATH and installing it needs root: run 'sudo apt-get install -y redis-server', then rerun"
    command -v apt-get >/dev/null 2>&1 || fail "redis-server is not on PATH and there is no apt-get; install redis-server yourself"
    local guard=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        # Keeps the package's postinst from starting redis as a system service.
        guard=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' >"$guard"
        chmod +x "$guard"
        trap 'rm -f "$guard"' EXIT
    fi
    local log
    log="$(mktemp)"
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends redis-server; } >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        fail "apt-get could not install redis-server (output above)"
    fi
    rm -f "$log"
    command -v redis-server >/dev/null 2>&1 || fail "apt-get installed redis-server but it is not on PATH"
}

install_env() {
    local want
    want="$(sha256sum "$requirements" | cut -d' ' -f1)"
    if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
        return
    fi
    local uv
    uv="$(find_uv)"
    rm -rf "$venv"
    "$uv" venv --quiet --python python3.11 "$venv"
    VIRTUAL_ENV="$venv" "$uv" pip install --quiet --python "$venv/bin/python" -r "$requirements"
    echo "$want" >"$stamp"
}

install_redis
install_env
