#!/usr/bin/env python3
"""Reports production Rust files over MAX_FILE_LINES lines and functions over MAX_FN_LINES lines.

Production code is every `.rs` file under a crate's `src/` directory, up to its first
`#[cfg(test)]` line (the in-module tests sit below it and do not count). Files under `tests/`,
`benches/` and `fuzz/` are test code and are not checked. A function's length runs from the line
of its `fn` to the line of its closing brace, found by counting braces outside strings, chars and
comments (good enough for rustfmt-formatted code, which is all this repository holds).

Exits 1 when anything is over a limit, naming each file and function with its length, so that CI
(scripts/test.sh) fails and says where. Usage: scripts/code-shape.py [ROOT]
"""

import os
import re
import sys

MAX_FILE_LINES = 800
MAX_FN_LINES = 100
SKIP_DIRS = {"target", "node_modules", ".git", "fuzz", "tests", "benches", "contracts"}
FN_RE = re.compile(r"^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?(extern\s+\"[^\"]*\"\s+)?fn\s+([A-Za-z0-9_]+)")


def production_lines(path):
    """The file's lines up to (not including) its first `#[cfg(test)]`."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    for i, line in enumerate(lines):
        if line.strip() == "#[cfg(test)]":
            return lines[:i]
    if lines and lines[-1] == "":
        lines = lines[:-1]
    return lines


def strip_code(line, state):
    """The line with strings, chars and comments blanked; `state` carries block comments and
    multi-line strings across lines ({'block': depth, 'string': bool})."""
    out = []
    i = 0
    n = len(line)
    while i < n:
        c = line[i]
        if state["block"] > 0:
            if line.startswith("*/", i):
                state["block"] -= 1
                i += 2
            elif line.startswith("/*", i):
                state["block"] += 1
                i += 2
            else:
                i += 1
            continue
        if state["string"]:
            if c == "\\":
                i += 2
            elif c == '"':
                state["string"] = False
                i += 1
            else:
                i += 1
            continue
        if line.startswith("//", i):
            break
        if line.startswith("/*", i):
            state["block"] += 1
            i += 2
            continue
        m = re.match(r'r(#*)"', line[i:])
        if m and (i == 0 or not (line[i - 1].isalnum() or line[i - 1] == "_")):
            end = '"' + m.group(1)
            j = line.find(end, i + len(m.group(0)))
            if j < 0:
                # A raw string across lines: rare here; treat the rest of the line as string.
                break
            i = j + len(end)
            continue
        if c == '"':
            state["string"] = True
            i += 1
            continue
        if c == "'":
            # A char literal ('x', '\n', '\u{..}') or a lifetime ('a): skip only literals.
            m = re.match(r"'(\\.|\\u\{[0-9a-fA-F]+\}|[^\\'])'", line[i:])
            if m:
                i += len(m.group(0))
                continue
        out.append(c)
        i += 1
    return "".join(out)


def long_functions(lines):
    """(name, first line number, length) of every function whose body is over MAX_FN_LINES."""
    found = []
    state = {"block": 0, "string": False}
    stack = []  # (name, start line, brace depth at which the body opened)
    pending = None  # a fn signature seen, its body's brace not yet
    depth = 0
    for number, raw in enumerate(lines, start=1):
        code = strip_code(raw, state)
        if pending is None:
            m = FN_RE.match(code)
            if m:
                pending = (m.group(7), number)
        for c in code:
            if c == "{":
                depth += 1
                if pending is not None:
                    stack.append((pending[0], pending[1], depth))
                    pending = None
            elif c == "}":
                if stack and stack[-1][2] == depth:
                    name, start, _ = stack.pop()
                    length = number - start + 1
                    if length > MAX_FN_LINES:
                        found.append((name, start, length))
                depth -= 1
            elif c == ";" and pending is not None and depth >= 0:
                # A declaration without a body (trait method, extern fn).
                pending = None
    return found


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
    root = os.path.abspath(root)
    problems = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
        rel_dir = os.path.relpath(dirpath, root)
        if "src" not in rel_dir.split(os.sep):
            continue
        for name in sorted(filenames):
            if not name.endswith(".rs"):
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            lines = production_lines(path)
            if len(lines) > MAX_FILE_LINES:
                problems.append(f"{rel}: {len(lines)} production lines (limit {MAX_FILE_LINES})")
            for fn, start, length in long_functions(lines):
                problems.append(f"{rel}:{start}: fn {fn} is {length} lines (limit {MAX_FN_LINES})")
    for p in problems:
        print(p)
    if problems:
        print(f"code-shape: {len(problems)} over the limits (files {MAX_FILE_LINES}, functions {MAX_FN_LINES} lines)")
        return 1
    print(f"code-shape: every production file <= {MAX_FILE_LINES} lines, every function <= {MAX_FN_LINES} lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
