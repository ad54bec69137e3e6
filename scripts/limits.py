#!/usr/bin/env python3
"""The limits table of ARCHITECTURE.md, generated from the code.

A limit is a numeric `const` in production code (a crate's `src/`, above the file's first
`#[cfg(test)]`) whose name says it bounds something: it starts with MAX_ or MIN_, or ends with a
unit or count noun (_BYTES, _MS, _S, _CDRS, _BLOCKS, _KEYS, ...), or names a queue, capacity,
budget, interval, timeout or ceiling. The table lists each with its value as written, its unit
(from the name's last word), the file that defines it, the first sentence of its doc comment, and
whether a `const _: () = assert!(...)` relates it to another limit.

  scripts/limits.py --check   exits 1 if ARCHITECTURE.md's table differs from the code (CI)
  scripts/limits.py --write   rewrites the table between the markers
  scripts/limits.py           prints the table
"""

import os
import re
import sys

BEGIN = "<!-- limits:begin -->"
END = "<!-- limits:end -->"
SKIP_DIRS = {"target", "node_modules", ".git", "fuzz", "tests", "benches", "contracts"}
NUMERIC = re.compile(r"^(usize|u8|u16|u32|u64|u128|i32|i64|f64|Duration|std::time::Duration)$")
CONST = re.compile(r"^\s*(pub(\([^)]*\))?\s+)?const\s+([A-Z][A-Z0-9_]*)\s*:\s*([^=]+?)\s*=\s*(.*)$")
UNITS = {
    "BYTES": "bytes", "KIB": "KiB", "MIB": "MiB", "MS": "ms", "S": "s", "SECS": "s",
    "CDRS": "CDRs", "BLOCKS": "blocks", "KEYS": "keys", "ITEMS": "items", "DIGITS": "digits",
    "LEN": "chars", "CHARS": "chars", "TXS": "transactions", "MESSAGES": "messages",
    "HEIGHTS": "heights", "ROUNDS": "rounds", "PEERS": "peers", "RECORDS": "records",
    "ENTRIES": "entries", "SENDS": "sends", "BATCHES": "batches", "ADDRESSES": "addresses",
    "AUTHORITIES": "authorities", "TRANSACTIONS": "transactions", "EVIDENCE": "records",
    "SUBMISSIONS": "submissions", "REQUESTS": "requests", "CONNECTIONS": "connections",
    "GROUPS": "groups", "RETRIES": "retries", "ATTEMPTS": "attempts", "SEGMENTS": "segments",
}
LIMIT_WORDS = ("QUEUE", "CAPACITY", "BUDGET", "INTERVAL", "TIMEOUT", "CEILING", "PATIENCE",
               "LIMIT", "BACKOFF", "DELAY", "PERIOD", "AHEAD", "DRIFT")


def is_limit(name, ty):
    if not NUMERIC.match(ty.strip()) or name in ("KIB", "MIB", "GIB"):
        return False
    last = name.split("_")[-1]
    return (name.startswith(("MAX_", "MIN_")) or last in UNITS
            or any(w in name for w in LIMIT_WORDS))


def unit_of(name, ty, value):
    words = name.split("_")
    if "PER" in words:
        per = words[words.index("PER") + 1:]
        unit = next((UNITS[w] for w in reversed(per) if w in UNITS), None)
        if unit is not None:
            return f"per {unit}"
        words = words[:words.index("PER")]
    for word in reversed(words):
        if word in UNITS:
            return UNITS[word]
    if "Duration" in ty:
        m = re.search(r"Duration::from_(secs|millis|micros)", value)
        return {"secs": "s", "millis": "ms", "micros": "µs"}.get(m.group(1), "time") if m else "time"
    return "count"


def production(path):
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    for i, line in enumerate(lines):
        if line.strip() == "#[cfg(test)]":
            return lines[:i]
    return lines


def doc_before(lines, index):
    """The first sentence of the `///` doc comment right above line `index`."""
    docs = []
    i = index - 1
    while i >= 0 and (lines[i].strip().startswith("///") or lines[i].strip().startswith("#[")):
        if lines[i].strip().startswith("///"):
            docs.insert(0, lines[i].strip()[3:].strip())
        i -= 1
    text = " ".join(docs)
    m = re.match(r"(.+?\.)(\s|$)", text)
    sentence = m.group(1) if m else text
    sentence = sentence.replace("|", "\\|")
    return sentence if len(sentence) <= 140 else sentence[:137] + "..."


def collect(root):
    limits = []
    asserts = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
        if "src" not in os.path.relpath(dirpath, root).split(os.sep):
            continue
        for fname in sorted(filenames):
            if not fname.endswith(".rs"):
                continue
            path = os.path.join(dirpath, fname)
            rel = os.path.relpath(path, root)
            lines = production(path)
            text = "\n".join(lines)
            asserts += re.findall(r"const _: \(\) = (?:\{[^}]*)?assert!\((.*?)\);", text, re.S)
            for i, line in enumerate(lines):
                if line.startswith((" ", "\t")) and not line.startswith("    pub const"):
                    # Constants inside functions are local to them; associated ones count.
                    if not re.match(r"^    (pub(\([^)]*\))?\s+)?const ", line):
                        continue
                m = CONST.match(line)
                if not m:
                    continue
                name, ty, value = m.group(3), m.group(4), m.group(5)
                if not is_limit(name, ty):
                    continue
                j = i
                while not value.rstrip().endswith(";") and j + 1 < len(lines):
                    j += 1
                    value += " " + lines[j].strip()
                value = value.rstrip().rstrip(";").strip().replace("|", "\\|")
                limits.append((name, value, unit_of(name, ty, value), rel, doc_before(lines, i)))
    return limits, asserts


def table(root):
    limits, asserts = collect(root)
    rows = ["| limit | value | unit | where | checked by | what it bounds |",
            "|---|---|---|---|---|---|"]
    for name, value, unit, rel, doc in sorted(limits, key=lambda l: (l[3], l[0])):
        related = [a for a in asserts if re.search(r"\b%s\b" % re.escape(name), a)]
        checked = "const assert" if related else ""
        rows.append(f"| `{name}` | `{value}` | {unit} | `{rel}` | {checked} | {doc} |")
    return "\n".join(rows)


def main():
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    generated = table(root)
    if mode == "":
        print(generated)
        return 0
    arch = os.path.join(root, "ARCHITECTURE.md")
    with open(arch, encoding="utf-8") as f:
        doc = f.read()
    if BEGIN not in doc or END not in doc:
        print(f"limits: ARCHITECTURE.md has no markers {BEGIN!r} … {END!r}")
        return 1
    head, rest = doc.split(BEGIN, 1)
    current, tail = rest.split(END, 1)
    if mode == "--write":
        with open(arch, "w", encoding="utf-8") as f:
            f.write(head + BEGIN + "\n" + generated + "\n" + END + tail)
        print("limits: ARCHITECTURE.md's table rewritten")
        return 0
    if mode == "--check":
        if current.strip() != generated.strip():
            print("limits: ARCHITECTURE.md's limits table differs from the code; run scripts/limits.py --write")
            old = set(current.strip().split("\n"))
            new = set(generated.strip().split("\n"))
            for row in sorted(new - old):
                print(f"  in the code, not the table: {row}")
            for row in sorted(old - new):
                print(f"  in the table, not the code: {row}")
            return 1
        print("limits: ARCHITECTURE.md's table matches the code")
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
