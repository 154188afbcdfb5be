#!/usr/bin/env python3
"""The layering rules of src/ (run by `make lint`).

1. The resolver core (src/core/) does no I/O of its own: no mio, libc, nix, std::fs or
   std::net sockets, no Instant::now() or SystemTime::now(), and no CSPRNG (the
   crate's rand module, getrandom), nor the shell's modules (server, sockets, transport,
   ...): time and randomness come in as inputs. Its unit tests (files named tests.rs,
   compiled only for `cargo test`) may take one real Instant as the origin of their
   virtual clock.
2. No two modules import each other, directly or in a cycle. Modules are compared with
   their siblings (a module may use its parent and its children): `crate::a::x` used in
   `b` is an edge b -> a; `super::y` used in `a::x` is an edge x -> y inside `a`.
   Every edge of a cycle is reported.

Usage: check-layers.py [SRC_DIR]
"""

import os
import re
import sys

FORBIDDEN_IN_CORE = [
    (re.compile(r"\bmio::"), "mio"),
    (re.compile(r"\blibc::"), "libc"),
    (re.compile(r"\bnix::"), "nix"),
    (re.compile(r"\bstd::fs\b"), "std::fs"),
    (re.compile(r"\bstd::net::(UdpSocket|TcpStream|TcpListener)\b"), "std::net sockets"),
    (re.compile(r"\bstd::os::"), "std::os"),
    (re.compile(r"\bInstant::now\s*\("), "Instant::now()"),
    (re.compile(r"\bSystemTime::now\s*\("), "SystemTime::now()"),
    (re.compile(r"\bcrate::rand\b"), "the CSPRNG (crate::rand)"),
    (re.compile(r"\bgetrandom\b"), "the CSPRNG (getrandom)"),
    (re.compile(r"\bcrate::(sockets|batch|signals|privs|server|transport)\b"), "the I/O shell"),
]

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def strip(text):
    """Source without comments and string or char literals (their words are not
    imports), in one pass from the start, as the compiler reads it."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif c == "r" and re.match(r'r#*"', text[i:]) and not (i and re.match(r"\w", text[i - 1])):
            hashes = re.match(r"r(#*)", text[i:]).group(1)
            end = text.find('"' + hashes, i + len(hashes) + 2)
            i = n if end < 0 else end + 1 + len(hashes)
            out.append('""')
        elif c == "b" and text.startswith('b"', i) and not (i and re.match(r"\w", text[i - 1])):
            i += 1
        elif c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
            out.append('""')
        elif c == "'":
            m = re.match(r"'(?:\\.[^']*|[^'\\])'", text[i:])
            if m:  # a char literal; otherwise a lifetime
                i += len(m.group(0))
                out.append("' '")
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def modules(src):
    """Module path (tuple) -> file, for every .rs file under src."""
    mods = {}
    for root, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(root, f), src)
            parts = rel[:-3].split(os.sep)
            if parts[-1] in ("mod", "lib", "main"):
                parts = parts[:-1]
            mods[tuple(parts)] = os.path.join(root, f)
    return mods


def expand(body):
    """Paths named by a use-tree body `a::{b, c::d}` -> [[a, b], [a, c, d]]."""
    out = []
    depth, start, parts = 0, 0, []
    for i, ch in enumerate(body + ","):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(body[start:i].strip())
            start = i + 1
    for p in parts:
        if not p:
            continue
        m = re.match(r"^((?:%s\s*::\s*)*)\{(.*)\}$" % IDENT, p, re.S)
        if m:
            prefix = [x for x in re.split(r"\s*::\s*", m.group(1)) if x]
            for rest in expand(m.group(2)):
                out.append(prefix + rest)
        else:
            out.append([x for x in re.split(r"\s*::\s*", p.split(" as ")[0]) if x])
    return out


def references(text):
    """(anchor, path) for every `crate::...` and `super::...` path in the source."""
    refs = []
    for m in re.finditer(r"\b(crate|super)\s*::\s*", text):
        anchor, i = m.group(1), m.end()
        if text.startswith("{", i):
            depth, j = 0, i
            while j < len(text):
                if text[j] == "{":
                    depth += 1
                elif text[j] == "}":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            for p in expand(text[i + 1 : j]):
                refs.append((anchor, p))
        else:
            p = re.match(r"(?:%s)(?:\s*::\s*%s)*" % (IDENT, IDENT), text[i:])
            if p:
                refs.append((anchor, re.split(r"\s*::\s*", p.group(0))))
    return refs


def resolve(mods, here, anchor, path):
    """The module a path names (its longest module prefix), or None."""
    base = list(here[:-1]) if anchor == "super" else []
    while path and path[0] == "super":
        base, path = base[:-1], path[1:]
    full = base + [p for p in path if p not in ("self",)]
    for n in range(len(full), 0, -1):
        if tuple(full[:n]) in mods:
            return tuple(full[:n])
    return None


def sibling_edge(a, b):
    """The edge between the ancestors of a and b that are siblings, or None."""
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    if n == len(a) or n == len(b):
        return None  # one contains the other
    return (a[: n + 1], b[: n + 1])


def cycles(edges):
    """Strongly connected components with more than one module (Tarjan)."""
    graph = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def name(m):
    return "::".join(m)


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "src"
    mods = modules(src)
    errors = []
    edges = set()
    for here, path in sorted(mods.items()):
        with open(path, encoding="utf-8") as f:
            text = strip(f.read())
        if here[:1] == ("core",) and os.path.basename(path) != "tests.rs":
            for rx, what in FORBIDDEN_IN_CORE:
                for m in rx.finditer(text):
                    line = text.count("\n", 0, m.start()) + 1
                    errors.append(f"{path}:{line}: the core must not use {what}")
        for anchor, p in references(text):
            target = resolve(mods, here, anchor, p)
            if target is None or target == here:
                continue
            e = sibling_edge(here, target)
            if e:
                edges.add(e)
    in_cycles = set()
    for comp in cycles(edges):
        for a, b in edges:
            if a in comp and b in comp:
                in_cycles.add((a, b))
    for a, b in sorted(in_cycles):
        errors.append(f"{src}: import cycle through {name(a)} -> {name(b)}")
    for e in errors:
        print(e, file=sys.stderr)
    if errors:
        print(f"check-layers: {len(errors)} problem(s)", file=sys.stderr)
        return 1
    print(f"check-layers: {len(mods)} modules, {len(edges)} edges, no cycle")
    return 0


if __name__ == "__main__":
    sys.exit(main())
