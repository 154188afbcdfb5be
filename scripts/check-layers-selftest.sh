#!/bin/sh
# Shows that scripts/check-layers.py fails on planted violations (and passes without):
# a core module doing I/O or reading the clock, and modules importing each other.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
fail=0

check() { # expect(pass|fail) description [text the failure must show]
    if python3 "$here/check-layers.py" "$t/src" >"$t/out" 2>&1; then got=pass; else got=fail; fi
    if [ "$got" != "$1" ] || ! grep -qF -- "${3:-}" "$t/out"; then
        echo "check-layers selftest: expected $1 ${3:-} for: $2"; cat "$t/out"; fail=1
    fi
}

mkdir -p "$t/src/core" "$t/src/shell"
printf 'pub mod a;\npub mod b;\npub mod core;\npub mod shell;\n' >"$t/src/lib.rs"
printf 'use crate::b::Thing;\n' >"$t/src/a.rs"
printf '//! b, mentioned as crate::a in a comment only.\npub struct Thing;\nconst S: &str = "crate::a";\n' >"$t/src/b.rs"
printf 'pub mod step;\nuse crate::b;\n' >"$t/src/core/mod.rs"
printf 'pub fn step(now: u64) -> u64 { now + super::X }\n' >"$t/src/core/step.rs"
printf 'use crate::{a, core::step};\nfn f() { let _ = std::time::Instant::now(); }\n' >"$t/src/shell/mod.rs"
check pass "a clean tree"

printf 'use crate::{shell, b::Thing};\n' >"$t/src/a.rs"
check fail "a -> shell -> a (grouped import)" "import cycle through a -> shell"
check fail "a -> shell -> a, its other edge" "import cycle through shell -> a"
printf 'use crate::b::Thing;\n' >"$t/src/a.rs"

printf 'pub struct Thing;\nfn g() { crate::a::f(); }\n' >"$t/src/b.rs"
check fail "a <-> b directly" "import cycle through b -> a"
printf 'pub struct Thing;\nconst S: &str = "other";\nfn g() { crate::a::f(); }\nconst T: &str = "t";\n' >"$t/src/b.rs"
check fail "a <-> b after a string that ends in r" "import cycle through b -> a"
printf 'pub struct Thing;\n' >"$t/src/b.rs"

printf 'use mio::Poll;\n' >>"$t/src/core/step.rs"
check fail "mio in the core" "step.rs:2: the core must not use mio"
printf 'pub fn step(now: u64) -> u64 { now + super::X }\n' >"$t/src/core/step.rs"
printf 'fn t() { let _ = std::time::Instant::now(); }\n' >>"$t/src/core/mod.rs"
check fail "Instant::now() in the core" "must not use Instant::now()"
printf 'pub mod step;\nuse std::fs::File;\n' >"$t/src/core/mod.rs"
check fail "std::fs in the core" "must not use std::fs"
printf 'pub mod step;\nfn r() { crate::rand::Rng::new(); }\n' >"$t/src/core/mod.rs"
check fail "the CSPRNG in the core" "must not use the CSPRNG"
printf 'pub mod step;\n#[cfg(test)]\nmod tests;\n' >"$t/src/core/mod.rs"
printf 'fn origin() { let _ = std::time::Instant::now(); }\n' >"$t/src/core/tests.rs"
check pass "clean again, with core tests that read the clock"

[ $fail = 0 ] && echo "check-layers selftest: ok"
exit $fail
