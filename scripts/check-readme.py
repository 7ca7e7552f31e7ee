#!/usr/bin/env python3
"""Checks that README.md stays true to the repository (python3, standard library only).

    python3 scripts/check-readme.py [--root DIR]     check the README of DIR (default: this checkout)
    python3 scripts/check-readme.py --self-test      show that the checks catch what they should

The checks:
  (a) every fenced code block whose first line is a comment naming a file under examples/
      (`// examples/quickstart/quickstart.c`, `# examples/quickstart/quickstart.py`) equals that
      file byte for byte, apart from one trailing newline;
  (b) the README has at most 300 lines;
  (c) every relative link, `[text](docs/X.md)` or `![alt](path)`, points to an existing path;
  (d) no inline code span holds a word of 7 to 40 hex digits that looks like a commit hash.

Prints `check-readme: ok (N blocks)` and exits 0 when all hold; otherwise prints one line per
problem and exits 1. --self-test copies the README and the files it names to a temporary
folder, checks that the copy passes, then damages it in several ways (a drifted quick start
first) and checks that each is caught; it exits 0 when every damage was caught.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

MAX_LINES = 300
README = "README.md"

# A first line that is only a comment naming a file under examples/.
EXAMPLE_COMMENT = re.compile(r"^\s*(?://|#|--|;|/\*)\s*(examples/[^\s*]+?)\s*(?:\*/)?\s*$")
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.MULTILINE)
CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.DOTALL)
HASH_WORD = re.compile(r"(?<![0-9A-Za-z_])[0-9a-f]{7,40}(?![0-9A-Za-z_])")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def split_fences(text):
    """The fenced blocks as (line number of the opening fence, [lines]) and the text outside
    them (fenced lines replaced by empty lines, so that line numbers stay)."""
    blocks, outside = [], []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            outside.append(lines[i])
            i += 1
            continue
        fence = m.group(1)
        start = i
        body = []
        i += 1
        while i < len(lines) and not re.match(r"^ {0,3}" + re.escape(fence[0]) + "{%d,}\\s*$" % len(fence), lines[i]):
            body.append(lines[i])
            i += 1
        blocks.append((start + 1, body))
        outside.extend([""] * (len(body) + 2))
        i += 1  # the closing fence (or the end of the file)
    return blocks, "\n".join(outside)


def one_trailing_newline_off(data):
    return data[:-1] if data.endswith(b"\n") else data


def first_difference(a, b):
    la, lb = a.split(b"\n"), b.split(b"\n")
    for n, (x, y) in enumerate(zip(la, lb), 1):
        if x != y:
            return n
    return min(len(la), len(lb)) + 1


def check_blocks(root, text):
    """(a): returns (number of example blocks, problems)."""
    problems = []
    blocks, _ = split_fences(text)
    count = 0
    for line_no, body in blocks:
        if not body:
            continue
        m = EXAMPLE_COMMENT.match(body[0])
        if not m:
            continue
        count += 1
        name = m.group(1)
        path = os.path.join(root, name)
        if not os.path.isfile(path):
            problems.append(f"{name}: named by the README block at line {line_no}, but there is no such file")
            continue
        with open(path, "rb") as f:
            wanted = one_trailing_newline_off(f.read())
        shown = "\n".join(body).encode("utf-8")
        if shown != wanted:
            problems.append(
                f"{name} drifted: the README block at line {line_no} differs from the file "
                f"(first at line {first_difference(shown, wanted)} of the file); copy one onto the other"
            )
    return count, problems


def check_length(text):
    """(b)."""
    n = len(text.splitlines())
    return [] if n <= MAX_LINES else [f"README.md has {n} lines, at most {MAX_LINES} allowed"]


def line_of(text, offset):
    return text.count("\n", 0, offset) + 1


def check_links(root, text):
    """(c): relative links outside code must point to existing paths."""
    _, outside = split_fences(text)
    # Code spans are not links; blank them out but keep the offsets.
    plain = CODE_SPAN.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), outside)
    problems = []
    targets = [(m.group(1), m.start()) for m in INLINE_LINK.finditer(plain)]
    targets += [(m.group(1), m.start()) for m in REFERENCE_LINK.finditer(plain)]
    for target, offset in targets:
        if target.startswith("#") or SCHEME.match(target) or target.startswith("//"):
            continue
        path = target.split("#", 1)[0].split("?", 1)[0]
        if not path:
            continue
        if not os.path.exists(os.path.join(root, path)):
            problems.append(f"line {line_of(plain, offset)}: the link to {target} points to nothing")
    return problems


def check_hashes(text):
    """(d): no commit-hash-looking word in inline code."""
    _, outside = split_fences(text)
    problems = []
    for span in CODE_SPAN.finditer(outside):
        for word in HASH_WORD.findall(span.group(2)):
            if re.search(r"[0-9]", word):
                problems.append(
                    f"line {line_of(outside, span.start())}: `{word}` looks like a commit hash; "
                    "the README quotes no commits (the record is in docs/)"
                )
    return problems


def check(root):
    """All checks on ROOT/README.md: (number of example blocks, problems)."""
    with open(os.path.join(root, README), encoding="utf-8") as f:
        text = f.read()
    count, problems = check_blocks(root, text)
    problems += check_length(text)
    problems += check_links(root, text)
    problems += check_hashes(text)
    return count, problems


def run(root):
    count, problems = check(root)
    for p in problems:
        print(f"check-readme: {p}")
    if problems:
        return 1
    print(f"check-readme: ok ({count} blocks)")
    return 0


def copy_for_self_test(root, dest):
    """Copies the README, the files its blocks name and its link targets into DEST."""
    with open(os.path.join(root, README), encoding="utf-8") as f:
        text = f.read()
    names = [README]
    for _, body in split_fences(text)[0]:
        m = body and EXAMPLE_COMMENT.match(body[0])
        if m:
            names.append(m.group(1))
    _, outside = split_fences(text)
    plain = CODE_SPAN.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), outside)
    for m in list(INLINE_LINK.finditer(plain)) + list(REFERENCE_LINK.finditer(plain)):
        target = m.group(1).split("#", 1)[0].split("?", 1)[0]
        if target and not SCHEME.match(target) and not target.startswith("//"):
            names.append(target)
    for name in names:
        src, dst = os.path.join(root, name), os.path.join(dest, name)
        if os.path.isdir(src):
            os.makedirs(dst, exist_ok=True)
        elif os.path.isfile(src):
            os.makedirs(os.path.dirname(dst) or dest, exist_ok=True)
            shutil.copyfile(src, dst)
    return [n for n in names[1:] if n.startswith("examples/")]


def self_test(root):
    """Exit status 0 when every damage below is caught by the checker, run as a program."""
    me = os.path.abspath(__file__)

    def outcome(folder):
        p = subprocess.run([sys.executable, me, "--root", folder], capture_output=True, text=True)
        return p.returncode, p.stdout + p.stderr

    failures = []
    with tempfile.TemporaryDirectory(prefix="check-readme-") as tmp:
        base = os.path.join(tmp, "base")
        os.makedirs(base)
        examples = copy_for_self_test(root, base)
        rc, out = outcome(base)
        if rc != 0:
            print(f"self-test: the unchanged copy should pass but did not:\n{out}")
            return 1
        if not examples:
            print("self-test: the README has no example block to damage")
            return 1

        def damaged(label, change, expect):
            work = os.path.join(tmp, label)
            shutil.copytree(base, work)
            change(work)
            rc, out = outcome(work)
            caught = rc == 1 and expect in out
            print(f"self-test: {label}: {'caught' if caught else 'NOT CAUGHT'}")
            if not caught:
                failures.append(f"{label}: exit {rc}, output:\n{out}")

        def edit(path, fn):
            with open(path, "rb") as f:
                data = f.read()
            with open(path, "wb") as f:
                f.write(fn(data))

        target = examples[0]
        # The one the brief asks for: a quick start edited without the README.
        damaged(
            "drifted quick start",
            lambda w: edit(os.path.join(w, target), lambda d: d.replace(b"\n", b"\n// edited\n", 2)),
            f"{target} drifted",
        )
        damaged(
            "one changed character",
            lambda w: edit(os.path.join(w, target), lambda d: d[:-3] + bytes([d[-3] ^ 1]) + d[-2:]),
            f"{target} drifted",
        )
        damaged("missing quick start", lambda w: os.remove(os.path.join(w, target)), "no such file")
        damaged(
            "too long",
            lambda w: edit(os.path.join(w, README), lambda d: d + b"\nfiller\n" * MAX_LINES),
            "lines, at most",
        )
        damaged(
            "broken link",
            lambda w: edit(os.path.join(w, README), lambda d: d + b"\nSee [nothing](docs/NO_SUCH_FILE.md).\n"),
            "NO_SUCH_FILE.md points to nothing",
        )
        damaged(
            "commit hash",
            lambda w: edit(os.path.join(w, README), lambda d: d + b"\nMeasured at commit `3761324`.\n"),
            "looks like a commit hash",
        )
    for f in failures:
        print(f"self-test: {f}")
    if failures:
        return 1
    print(f"self-test: ok (every damage caught; quick start damaged: {target})")
    return 0


def main():
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=here, help="the folder holding README.md (default: this checkout)")
    ap.add_argument("--self-test", action="store_true", help="check that the checks catch damage")
    args = ap.parse_args()
    if args.self_test:
        return self_test(args.root)
    return run(args.root)


if __name__ == "__main__":
    sys.exit(main())
