#!/bin/sh
# Installs what `make bench` needs beyond scripts/install-deps.sh (which
# brings nsd, unbound, dnsmasq-base, dnsperf and iproute2): valgrind for the
# callgrind instruction counts, perf for `make profile`, and stubby (a DoT stub
# resolver, a peer in the DoT scenario), ldnsutils (ldns-keygen and ldns-signzone sign the
# DNSSEC scenario's private hierarchy). Idempotent.
set -eu

need=""
for pair in valgrind:valgrind callgrind_control:valgrind python3:python3 perf:linux-perf stubby:stubby ldns-signzone:ldnsutils ldns-keygen:ldnsutils ldns-key2ds:ldnsutils; do
    cmd=${pair%%:*}
    pkg=${pair#*:}
    command -v "$cmd" >/dev/null 2>&1 || case " $need " in *" $pkg "*) ;; *) need="$need $pkg" ;; esac
done

if [ -n "$need" ]; then
    echo "install-bench-deps: apt-get install$need"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    # shellcheck disable=SC2086
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $need >/dev/null
fi
echo "install-bench-deps: ok"
