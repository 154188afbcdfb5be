# The Buildroot package in buildroot/ (a BR2_EXTERNAL tree), tested without
# Buildroot itself:
#
#   make buildroot-lint   our checks of the .mk, Config.in and .hash files;
#                         shellcheck -s sh, busybox sh -n and dash -n on every
#                         shipped script; systemd-analyze on the unit
#   make buildroot-s50    S50dproxy run for real (busybox start-stop-daemon)
#                         with the host-built daemon on loopback
#   make test-buildroot   both (part of `make test`)

.PHONY: test-buildroot buildroot-lint buildroot-s50

buildroot-lint:
	python3 tests/buildroot/lint.py
	tests/buildroot/lint_scripts.sh

buildroot-s50: build
	tests/buildroot/s50_test.sh target/release/dproxy

test-buildroot: buildroot-lint buildroot-s50

TEST_PARTS += test-buildroot
