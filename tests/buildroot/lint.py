#!/usr/bin/env python3
"""Our own checks of the Buildroot external tree in buildroot/ (Buildroot's
check-package is not available here): layout, the .mk header and variable
prefixes, Config.in, the .hash file, and that the package version is the
crate's. Prints one line per problem; exit status 1 if there is any.

  tests/buildroot/lint.py [repo-root]
"""
import hashlib
import os
import re
import sys

ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                       os.path.join(os.path.dirname(__file__), "..", ".."))
BR = os.path.join(ROOT, "buildroot")
PKG = os.path.join(BR, "package", "dproxy")
HASH_LEN = {"md5": 32, "sha1": 40, "sha224": 56, "sha256": 64, "sha384": 96, "sha512": 128}

problems = []
warnings = []


def problem(where, text):
    problems.append("%s: %s" % (os.path.relpath(where, ROOT), text))


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError as e:
        problem(path, "cannot read: %s" % e.strerror)
        return ""


def crate_version():
    m = re.search(r'^version\s*=\s*"([^"]+)"', read(os.path.join(ROOT, "Cargo.toml")), re.M)
    return m.group(1) if m else None


def common_text_checks(path, text, max_len=None):
    if text and not text.endswith("\n"):
        problem(path, "no newline at end of file")
    for n, line in enumerate(text.split("\n"), 1):
        if line != line.rstrip():
            problem(path, "line %d: trailing whitespace" % n)
        if max_len and len(line.expandtabs(8)) > max_len and "://" not in line:
            problem(path, "line %d: longer than %d columns" % (n, max_len))


def check_external():
    desc = os.path.join(BR, "external.desc")
    text = read(desc)
    if not re.search(r"^name: DPROXY$", text, re.M):
        problem(desc, "must declare 'name: DPROXY'")
    common_text_checks(desc, text)
    mk = os.path.join(BR, "external.mk")
    text = read(mk)
    if "$(BR2_EXTERNAL_DPROXY_PATH)/package/" not in text or "include" not in text:
        problem(mk, "must include $(BR2_EXTERNAL_DPROXY_PATH)/package/*/*.mk")
    common_text_checks(mk, text)
    cfg = os.path.join(BR, "Config.in")
    text = read(cfg)
    sourced = re.findall(r'^source\s+"\$BR2_EXTERNAL_DPROXY_PATH/([^"]+)"', text, re.M)
    if "package/dproxy/Config.in" not in sourced:
        problem(cfg, 'must source "$BR2_EXTERNAL_DPROXY_PATH/package/dproxy/Config.in"')
    for rel in sourced:
        if not os.path.exists(os.path.join(BR, rel)):
            problem(cfg, "sources a missing file: %s" % rel)
    common_text_checks(cfg, text)


def check_mk(version):
    path = os.path.join(PKG, "dproxy.mk")
    text = read(path)
    lines = text.split("\n")
    header = ["#" * 80, "#", "# dproxy", "#", "#" * 80, ""]
    if lines[:6] != header:
        problem(path, "must start with the 80-'#' header block naming 'dproxy', then a blank line")
    common_text_checks(path, text)

    assigned = {}
    in_define = None
    for n, line in enumerate(lines, 1):
        if in_define:
            if line.strip() == "endef":
                in_define = None
            elif line and not line.startswith("\t"):
                problem(path, "line %d: commands in define %s must start with a tab"
                        % (n, in_define))
            continue
        m = re.match(r"define\s+(\S+)\s*$", line)
        if m:
            in_define = m.group(1)
            assigned[in_define] = "define"
            if not in_define.startswith("DPROXY_"):
                problem(path, "line %d: define %s is not prefixed DPROXY_" % (n, in_define))
            continue
        m = re.match(r"([A-Za-z0-9_.$()-]+)\s*(\+=|:=|\?=|=)\s*(.*)$", line)
        if m:
            name, op, value = m.groups()
            if not name.startswith("DPROXY_"):
                problem(path, "line %d: variable %s is not prefixed DPROXY_" % (n, name))
            if op in ("?=",):
                problem(path, "line %d: use '=' or '+=' (not %s)" % (n, op))
            if name.endswith("_HOOKS"):
                for hook in value.split():
                    if not hook.startswith("DPROXY_"):
                        problem(path, "line %d: hook %s is not prefixed DPROXY_" % (n, hook))
                    elif hook not in assigned:
                        problem(path, "line %d: hook %s is not defined above" % (n, hook))
            assigned.setdefault(name, value)
            continue
        if line.startswith("\t") and line.strip():
            problem(path, "line %d: tab-indented line outside a define" % n)
    if in_define:
        problem(path, "define %s has no endef" % in_define)

    for required in ("DPROXY_VERSION", "DPROXY_SITE", "DPROXY_LICENSE",
                     "DPROXY_LICENSE_FILES", "DPROXY_INSTALL_INIT_SYSV",
                     "DPROXY_INSTALL_INIT_SYSTEMD"):
        if required not in assigned:
            problem(path, "%s is not set" % required)
    if assigned.get("DPROXY_VERSION") != version:
        problem(path, "DPROXY_VERSION is %r but Cargo.toml says %r"
                % (assigned.get("DPROXY_VERSION"), version))
    last = [line for line in lines if line.strip()][-1:]
    if last != ["$(eval $(cargo-package))"]:
        problem(path, "must end with $(eval $(cargo-package))")
    check_full_mk(path, text)
    for rel in re.findall(r"\$\(DPROXY_PKGDIR\)/(\S+)", text):
        if not os.path.exists(os.path.join(PKG, rel)):
            problem(path, "installs a missing file: %s" % rel)
    return assigned


def check_config_in():
    path = os.path.join(PKG, "Config.in")
    text = read(path)
    common_text_checks(path, text)
    lines = text.split("\n")
    if not lines or lines[0] != "config BR2_PACKAGE_DPROXY":
        problem(path, "must start with 'config BR2_PACKAGE_DPROXY'")
    for want in ('\tbool "dproxy"',
                 "\tdepends on BR2_PACKAGE_HOST_RUSTC_TARGET_ARCH_SUPPORTS",
                 "\tselect BR2_PACKAGE_HOST_RUSTC"):
        if want not in lines:
            problem(path, "missing line: %s" % want.strip())
    if "\thelp" not in lines:
        problem(path, "no help text")
        return
    body = lines[lines.index("\thelp") + 1:]
    # The help text ends at the next entry (the full-build option).
    for i, line in enumerate(body):
        if line and not line.startswith("\t"):
            body = body[:i]
            break
    for n, line in enumerate(body, lines.index("\thelp") + 2):
        if not line:
            continue
        if not line.startswith("\t  "):
            problem(path, "line %d: help text must be indented with a tab and two spaces" % n)
        # Buildroot wraps help text at 62 characters after the indent.
        elif len(line[3:]) > 62 and "://" not in line:
            problem(path, "line %d: help text longer than 62 characters" % n)
    if not any("https://" in line for line in body):
        problem(path, "help text has no upstream URL")
    check_full_option(path, lines)


def check_full_option(path, lines):
    """BR2_PACKAGE_DPROXY_FULL: a sub-option that needs dproxy and the CA bundle."""
    if "config BR2_PACKAGE_DPROXY_FULL" not in lines:
        problem(path, "no config BR2_PACKAGE_DPROXY_FULL (the full build)")
        return
    start = lines.index("config BR2_PACKAGE_DPROXY_FULL")
    entry = []
    for line in lines[start + 1:]:
        if line and not line.startswith("\t"):
            break
        entry.append(line)
    for want in ("\tdepends on BR2_PACKAGE_DPROXY", "\tselect BR2_PACKAGE_CA_CERTIFICATES"):
        if want not in entry:
            problem(path, "BR2_PACKAGE_DPROXY_FULL: missing line: %s" % want.strip())
    if not any(line.startswith('\tbool "') for line in entry):
        problem(path, "BR2_PACKAGE_DPROXY_FULL: not a bool")
    if "\thelp" in entry:
        for n, line in enumerate(entry[entry.index("\thelp") + 1:]):
            if line and (not line.startswith("\t  ") or len(line[3:]) > 62):
                problem(path, "BR2_PACKAGE_DPROXY_FULL: help line %d badly indented or too long" % (n + 1))
    else:
        problem(path, "BR2_PACKAGE_DPROXY_FULL: no help text")


def check_full_mk(path, text):
    """The feature reaches both cargo build and cargo install, plus the CA bundle."""
    block = re.search(r"^ifeq \(\$\(BR2_PACKAGE_DPROXY_FULL\),y\)\n(.*?)^endif", text, re.M | re.S)
    if not block:
        problem(path, "no ifeq ($(BR2_PACKAGE_DPROXY_FULL),y) block")
        return
    body = block.group(1)
    for want in ("DPROXY_CARGO_BUILD_OPTS += --features full",
                 "DPROXY_CARGO_INSTALL_OPTS += --features full",
                 "DPROXY_DEPENDENCIES += ca-certificates"):
        if want not in body.split("\n"):
            problem(path, "full build: missing line: %s" % want)


def check_hash(assigned, version):
    path = os.path.join(PKG, "dproxy.hash")
    text = read(path)
    common_text_checks(path, text)
    entries = {}
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("  ")
        if len(fields) != 3 or any(f != f.strip() or not f for f in fields):
            problem(path, "line %d: want '<type>  <hash>  <file>' separated by two spaces" % n)
            continue
        kind, digest, name = fields
        if kind == "none":
            if digest != "xxx":
                problem(path, "line %d: a 'none' entry has 'xxx' as its hash" % n)
        elif kind not in HASH_LEN:
            problem(path, "line %d: unknown hash type %s" % (n, kind))
            continue
        elif not re.fullmatch("[0-9a-f]{%d}" % HASH_LEN[kind], digest):
            problem(path, "line %d: %s hash must be %d lower-case hex digits"
                    % (n, kind, HASH_LEN[kind]))
        entries.setdefault(name, []).append((kind, digest))
    tarball = "dproxy-%s-cargo2.tar.gz" % version
    if tarball not in entries:
        problem(path, "no entry for %s (the vendored source tarball)" % tarball)
    elif entries[tarball] == [("none", "xxx")]:
        warnings.append("%s: %s has no hash yet (fill it in when the release is tagged)"
                        % (os.path.relpath(path, ROOT), tarball))
    for name in entries:
        if name != tarball and name.endswith(".tar.gz"):
            problem(path, "stale entry for %s (DPROXY_VERSION is %s)" % (name, version))
    for lic in assigned.get("DPROXY_LICENSE_FILES", "").split():
        src = os.path.join(ROOT, lic)
        if not os.path.exists(src):
            warnings.append("%s is listed in DPROXY_LICENSE_FILES but not in the tree yet" % lic)
            continue
        with open(src, "rb") as f:
            actual = hashlib.sha256(f.read()).hexdigest()
        if ("sha256", actual) not in entries.get(lic, []):
            problem(path, "want the line: sha256  %s  %s" % (actual, lic))


def main():
    version = crate_version()
    if not version:
        problem(os.path.join(ROOT, "Cargo.toml"), "no package version")
    check_external()
    assigned = check_mk(version)
    check_config_in()
    check_hash(assigned, version)
    for w in warnings:
        print("warning: " + w)
    for p in problems:
        print(p)
    print("buildroot lint: %s" % ("%d problem(s)" % len(problems) if problems else "ok"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
