#!/bin/sh
# Installs what `make test` needs on a Debian 12 machine: DNS clients and peers
# used as real upstreams, shell linters, and a Python venv with the test client.
# Idempotent: a second run with everything present only checks and returns.
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
venv="$here/.tools/venv"

# Debian packages, by the command each one provides.
need=""
for pair in dig:dnsutils kdig:knot-dnsutils nsd:nsd unbound:unbound \
            dnsmasq:dnsmasq-base dnsperf:dnsperf shellcheck:shellcheck \
            busybox:busybox ip:iproute2 file:file \
            ldns-signzone:ldnsutils openssl:openssl dnsdist:dnsdist; do
    cmd=${pair%%:*}
    pkg=${pair#*:}
    command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || need="$need $pkg"
done
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need="$need python3-venv"
# A C compiler and libc headers: cargo links with cc, ring builds C, and the DoT
# bench's floor (bench/floor.c) is compiled by its tests.
command -v cc >/dev/null 2>&1 || need="$need gcc"
[ -e /usr/include/stdio.h ] || need="$need libc6-dev"
# GNU time: scripts/test-lane.sh reports the CPU seconds of each step of `make test`.
[ -x /usr/bin/time ] || need="$need time"

if [ -n "$need" ]; then
    echo "install-deps: apt-get install$need"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # policy-rc.d keeps package scripts from starting unbound/nsd on port 53.
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $need >/dev/null
    rm -f /usr/sbin/policy-rc.d
fi

if [ ! -x "$venv/bin/pytest" ] || ! "$venv/bin/python" -c 'import dns, jsonschema' 2>/dev/null; then
    echo "install-deps: python venv in $venv"
    mkdir -p "$here/.tools"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check \
        'dnspython==2.7.0' 'pytest==8.3.4' 'jsonschema==4.23.0'
fi
# pytest-xdist: `make test-integration` runs the suite's files in parallel workers.
if ! "$venv/bin/python" -c 'import xdist' 2>/dev/null; then
    echo "install-deps: pytest-xdist in $venv"
    "$venv/bin/pip" install -q --disable-pip-version-check 'pytest-xdist==3.6.1' 'execnet==2.1.1'
fi
echo "install-deps: ok"
