#!/bin/sh
# Makes sure a Rust toolchain exists for `make build`: a machine with rustup (or any
# cargo on PATH) is left alone; a fresh Debian 12 gets Debian's own Rust 1.96
# (rustc-web, cargo-web from bookworm-security), the one the cross builds use too.
set -eu
if command -v cargo >/dev/null 2>&1; then
    exit 0
fi
if [ ! -x /usr/bin/cargo ]; then
    echo "ensure-rust: no cargo found; installing Debian's rustc-web and cargo-web"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends rustc-web cargo-web >/dev/null
fi
