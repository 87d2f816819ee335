#!/usr/bin/env bash
# Prepare this machine for offsite's local stack and tests. Idempotent: run it as often as you like
# (the Makefile runs it before every target).
#   - as root, installs missing system packages: openssh-server (the SFTP partner) and rclone
#     (benchmarks); without root it only reports what is missing (the stack then uses asyncssh);
#   - creates .venv with Python 3.11+ and installs the project (`uv pip install -e '.[dev]'`),
#     pinned by constraints.txt, skipped while pyproject.toml, constraints.txt and this script are
#     unchanged; then byte-compiles the installed packages and the repository's own code;
#   - checks the Pub/Sub emulator prerequisites (Java, Google Cloud CLI emulator jar).
set -euo pipefail

cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
STAMP="$VENV/.offsite-installed"

say() { printf 'setup: %s\n' "$*"; }

# --- system packages ---------------------------------------------------------------------------
missing=()
[ -x /usr/sbin/sshd ] || command -v sshd >/dev/null 2>&1 || missing+=(openssh-server)
command -v rclone >/dev/null 2>&1 || missing+=(rclone)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Debian would start the system sshd (port 22, all interfaces) on install; the stack runs its
    # own on a free loopback port. A policy-rc.d answering 101 keeps services from starting.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
      trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    say "missing ${missing[*]} (run as root to install; until then SFTP uses the asyncssh fallback)"
  fi
fi

# --- Python virtual environment -----------------------------------------------------------------
python_ok() { "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' >/dev/null 2>&1; }
if [ ! -x "$VENV/bin/python" ] || ! python_ok "$VENV/bin/python"; then
  PYTHON=""
  for candidate in "${PYTHON_FOR_VENV:-}" python3.13 python3.12 python3.11 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 && python_ok "$(command -v "$candidate")"; then
      PYTHON="$(command -v "$candidate")"
      break
    fi
  done
  if [ -z "$PYTHON" ]; then
    say "error: no Python 3.11+ found; install python3.11 (apt-get install -y python3.11-venv) or set PYTHON_FOR_VENV"
    exit 1
  fi
  say "creating $VENV with $PYTHON"
  "$PYTHON" -m venv "$VENV"
  rm -f "$STAMP"
fi

want="$(cat pyproject.toml constraints.txt devstack/setup.sh | sha256sum | cut -d' ' -f1)"
have="$(cat "$STAMP" 2>/dev/null || true)"
if [ "$want" != "$have" ] || ! "$VENV/bin/python" -c 'import offsite, devstack, shared' >/dev/null 2>&1; then
  say "installing the project into $VENV (uv pip install -e '.[dev]' -c constraints.txt)"
  # constraints.txt pins every distribution at the versions the tests and the functions'
  # requirements.txt were made with, so a fresh machine gets the same environment. uv installs
  # that same set in well under a minute (pip took 2-3); pip is the fallback if uv cannot (say,
  # a machine whose only package source is a pip config, which uv does not read).
  export PIP_DISABLE_PIP_VERSION_CHECK=1
  if ! { "$VENV/bin/pip" install -q uv -c constraints.txt \
         && "$VENV/bin/uv" pip install -q --native-tls --python "$VENV/bin/python" -e '.[dev]' -c constraints.txt; }; then
    say "uv could not install the project; installing with pip"
    "$VENV/bin/pip" install -q -e '.[dev]' -c constraints.txt
  fi
  # Byte-code ahead of time. Every test spawns Python processes (the stack's functions and
  # servers, the CLI, bench children); where PYTHONDONTWRITEBYTECODE is set (as on the machines
  # we test on) none of them may cache what it compiles, and each compiled google-cloud-*,
  # pydantic and the rest from source again: ~1.3 CPU-s more per process (`offsite --help` 1.9 s
  # against 0.6 s; the test suite 15.5 min against 12.9).
  # uv does not compile unless asked, and not what it finds installed already: compile it all.
  # A file it cannot compile (some packages ship examples for other Pythons) is only slower to import.
  "$VENV/bin/python" -m compileall -q -j 0 "$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" >/dev/null \
    || say "warning: some installed modules did not byte-compile; they are compiled when imported"
  echo "$want" >"$STAMP"
fi
# The same for the repository's own code (quick: compileall skips what is up to date). A syntax
# error is printed here and fails where the code is used (lint, tests), not the setup.
"$VENV/bin/python" -m compileall -q -j 0 shared devstack offsite functions tests bench \
  || say "warning: the code above does not compile"

# --- Pub/Sub emulator prerequisites (reported; `offsite dev up` names the fix too) ----------------
command -v java >/dev/null 2>&1 || say "warning: java not found; the Pub/Sub emulator needs Java 11+ (apt-get install -y default-jre-headless)"
if ! ls /usr/lib/google-cloud-sdk/platform/pubsub-emulator/lib/cloud-pubsub-emulator-*.jar >/dev/null 2>&1 \
   && [ -z "${OFFSITE_DEV_PUBSUB_JAR:-}" ]; then
  say "warning: Pub/Sub emulator jar not found; apt-get install -y google-cloud-cli-pubsub-emulator (or set OFFSITE_DEV_PUBSUB_JAR)"
fi
say "ready"
