#!/usr/bin/env python3
"""Fails when modules of one crate import each other, directly or in a loop.

Usage: scripts/check-module-cycles.py [SRC_DIR ...]   (default: sdk/src trainer/src cli/src bindings/gstreamer/src)
       scripts/check-module-cycles.py --self-test     (fixtures in scripts/testdata/module-cycles/)

Rules:
- Crates: in each SRC_DIR, lib.rs and main.rs are crate roots, and so is every bin/NAME.rs and
  bin/NAME/main.rs. The module tree follows the `mod x;` declarations from the root (x.rs or
  x/mod.rs). `#[cfg(test)]` items (`mod tests { .. }`, `mod tests;` files, test-only fns and
  uses) are skipped entirely. Inline `mod x { .. }` blocks belong to the file's module.
- Edges: module A depends on B when A's code names a path that resolves into B: `use` trees
  (grouped ones included) and paths in code (`crate::a::f()`, `super::T`, `self::c::T`, and paths
  starting with a child module or an imported name, such as `bench::run()`). A path resolves to
  the deepest module it walks through; a name a module imports or re-exports (`pub use x::T;`,
  `pub use x::*;`) is followed to where the item is defined. `pub use` lines and `mod x;`
  declarations are not edges, nor are paths into other crates (`std::`, `sempart::`).
  Comments, doc comments and string literals are ignored; self-edges are dropped.
- Every strongly connected component of more than one module is reported with one example
  `file:line` per edge inside it; any such cycle makes the exit status 1.
"""
import os
import re
import sys
from collections import defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "scripts", "testdata", "module-cycles")
TOKEN = re.compile(r"r#[A-Za-z_]\w*|\$?[A-Za-z_]\w*|::|\S")
RAW_STRING = re.compile(r'[bc]?r(#*)"')
ITEM_KEYWORDS = {"fn", "struct", "enum", "trait", "type", "const", "static", "union"}


def strip_comments_and_strings(text):
    """Blanks comments, string and char literals, keeping newlines so line numbers hold."""
    out, i, n = [], 0, len(text)

    def blank(start, end):
        out.append(re.sub(r"[^\n]", " ", text[start:end]))
        return end

    while i < n:
        c = text[i]
        after_ident = i and (text[i - 1].isalnum() or text[i - 1] == "_")
        raw = RAW_STRING.match(text, i) if c in "bcr" and not after_ident else None
        if text.startswith("//", i):
            end = text.find("\n", i)
            i = blank(i, n if end < 0 else end)
        elif text.startswith("/*", i):
            j, depth = i + 2, 1
            while j < n and depth:
                depth += text.startswith("/*", j) - text.startswith("*/", j)
                j += 2 if text.startswith(("/*", "*/"), j) else 1
            i = blank(i, j)
        elif raw:
            end = text.find('"' + raw.group(1), raw.end())
            i = blank(i, n if end < 0 else end + 1 + len(raw.group(1)))
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            i = blank(i, j + 1)
        elif c == "'" and i + 1 < n and text[i + 1] == "\\":
            end = text.find("'", i + 3)  # '\n', '\'', '\u{..}'
            i = blank(i, n if end < 0 else end + 1)
        elif c == "'" and i + 2 < n and text[i + 2] == "'":
            i = blank(i, i + 3)  # 'x' (a lone ' is a lifetime or label)
        else:
            out.append(c)
            i += 1
    return "".join(out)


def tokenize(text):
    """Returns (token, line) pairs of the stripped source."""
    tokens, line, last = [], 1, 0
    for m in TOKEN.finditer(strip_comments_and_strings(text)):
        line += text.count("\n", last, m.start())
        last = m.start()
        tokens.append((m.group().removeprefix("r#"), line))
    return tokens + [("", line)] * 3


def is_ident(tok):
    return bool(re.match(r"\$?[A-Za-z_]\w*$", tok))


def closing(tokens, i):
    """Index just past the bracket group that opens at tokens[i]."""
    depth = 0
    while i < len(tokens) and tokens[i][0]:
        depth += (tokens[i][0] in "([{") - (tokens[i][0] in ")]}")
        i += 1
        if depth == 0:
            break
    return i


def skip_item(tokens, i):
    """Index past the item starting at tokens[i] (after a #[cfg(test)] attribute)."""
    depth = 0
    while tokens[i][0]:
        tok = tokens[i][0]
        if tok in ")]}" and depth == 0:
            return i  # the attribute was on the last element of an enclosing group
        depth += (tok in "([{") - (tok in ")]}")
        i += 1
        if (tok == ";" and depth == 0) or (tok == "}" and depth == 0):
            return i
    return i


def parse_use_tree(tokens, i, prefix, leaves):
    """Parses a use tree at tokens[i] into leaves (segments, alias, glob, line); returns next i."""
    segs = list(prefix)
    if tokens[i][0] == "::":
        segs, i = ["::"], i + 1  # `use ::name` is always another crate
    while True:
        tok, line = tokens[i]
        if tok == "{":
            i += 1
            while tokens[i][0] not in ("}", ""):
                i = parse_use_tree(tokens, i, segs, leaves)
                i += tokens[i][0] == ","
            return i + 1
        if tok == "*":
            leaves.append((segs, None, True, line))
            return i + 1
        if not is_ident(tok):
            return i + 1
        if tokens[i + 1][0] == "::":
            segs, i = segs + [tok], i + 2
            continue
        alias, i = tok, i + 1
        if tokens[i][0] == "as":
            alias, i = tokens[i + 1][0], i + 2
        target = segs if tok == "self" else segs + [tok]
        alias = (segs[-1] if segs else None) if alias == "self" else alias
        leaves.append((target, None if alias == "_" else alias, False, line))
        return i


class Crate:
    """One crate's module tree, its imports, defined names and the paths its code names."""

    def __init__(self, label, root_file):
        self.label, self.files = label, {}  # module path (tuple) -> file
        self.inline = set()  # logical paths of inline `mod x { }` blocks
        self.aliases = defaultdict(dict)  # scope -> name -> (scope, segments)
        self.globs = defaultdict(list)  # scope -> [(scope, segments)]
        self.items = defaultdict(set)  # scope -> names defined there
        self.refs = []  # (module, scope, segments, pub_use, file, line, text)
        self.busy = set()  # (scope, name) lookups in progress, to stop loops through imports
        self.load((), root_file, os.path.dirname(root_file))

    def load(self, module, path, child_dir):
        """Scans one file, then loads the files of its `mod x;` children."""
        self.files[module] = path
        with open(path, encoding="utf-8") as f:
            children = self.scan(module, path, tokenize(f.read()))
        for child in children:
            self.load_child(child, os.path.join(child_dir, *child[len(module) :]))

    def scan(self, module, path, tokens):
        """Records a file's uses, paths, defined names, inline modules; returns its `mod x;`."""
        i, stack, depth, pub, children = 0, [], 0, False, []
        while tokens[i][0]:
            tok, line = tokens[i]
            nxt, scope = tokens[i + 1][0], module + tuple(name for name, _ in stack)
            if tok == "#" and nxt in ("[", "!"):
                end = closing(tokens, i + 1 + (nxt == "!"))
                attr = "".join(t for t, _ in tokens[i:end])
                i = skip_item(tokens, end) if attr == "#[cfg(test)]" else end
                continue
            if tok == "pub":
                pub, i = True, closing(tokens, i + 1) if nxt == "(" else i + 1
                continue
            if tok == "use":
                leaves = []
                i = parse_use_tree(tokens, i + 1, [], leaves)
                self.record_use(module, scope, leaves, pub, path)
            elif tok == "mod" and is_ident(nxt) and tokens[i + 2][0] in (";", "{"):
                if tokens[i + 2][0] == ";":
                    children.append(scope + (nxt,))
                else:
                    self.inline.add(scope + (nxt,))
                    stack.append((nxt, depth))
                    depth += 1
                i += 3
            elif tok in ITEM_KEYWORDS and is_ident(nxt) and tokens[i - 1][0] != "'":
                self.items[scope].add(nxt)
                i += 1
            elif is_ident(tok) and nxt == "::" and tokens[i - 1][0] not in ("::", "."):
                segs = [tok]  # a path starts here (tokens[-1] is padding)
                while tokens[i + 1][0] == "::" and is_ident(tokens[i + 2][0]):
                    segs.append(tokens[i + 2][0])
                    i += 2
                self.refs.append((module, scope, segs, False, path, line, "::".join(segs)))
                i += 1
            else:
                depth += (tok == "{") - (tok == "}")
                if tok == "}" and stack and stack[-1][1] == depth:
                    stack.pop()
                i += 1
            pub = False
        return children

    def record_use(self, module, scope, leaves, pub, path):
        """Keeps a use's names for lookups and its paths as (possible) edges."""
        for segs, alias, glob, line in leaves:
            if glob:
                self.globs[scope].append((scope, segs))
            elif alias:
                self.aliases[scope][alias] = (scope, segs)
            text = "use " + "::".join(segs) + ("::*" if glob else "")
            self.refs.append((module, scope, segs, pub, path, line, text))

    def load_child(self, module, base):
        """Loads the file of `mod x;` from base.rs or base/mod.rs, if it exists."""
        for path, child_dir in ((base + ".rs", base), (os.path.join(base, "mod.rs"), base)):
            if os.path.isfile(path):
                return self.load(module, path, child_dir)
        note = f"check-module-cycles: note: no file for module {name(module)} in {self.label}"
        print(note, file=sys.stderr)

    def known(self, module):
        return module in self.files or module in self.inline

    def absolutize(self, scope, segs, depth=0):
        """Crate-absolute segments for a path written in scope, or None for other crates."""
        if not segs or segs[0] == "::" or depth > 32:
            return None
        first = segs[0]
        if first in ("crate", "$crate"):
            return segs[1:]
        if first in ("self", "super"):
            ups = 0
            while ups < len(segs) and segs[ups] == "super":
                ups += 1
            if ups > len(scope):
                return None
            return list(scope[: len(scope) - ups]) + segs[max(ups, first == "self"):]
        target = self.find_name(scope, first, depth + 1)
        return None if target is None else target + segs[1:]

    def find_name(self, scope, name, depth=0):
        """Absolute segments of what `name` means inside module scope, or None."""
        if depth > 32 or (scope, name) in self.busy:
            return None
        self.busy.add((scope, name))
        try:
            return self.lookup(scope, name, depth)
        finally:
            self.busy.discard((scope, name))

    def lookup(self, scope, name, depth):
        """find_name's rules: child module, import, own item, then glob imports."""
        if self.known(scope + (name,)):
            return list(scope) + [name]
        if name in self.aliases[scope]:
            return self.absolutize(*self.aliases[scope][name], depth + 1)
        if name in self.items[scope]:
            return list(scope) + [name]
        for glob_scope, glob_segs in self.globs[scope]:
            source = self.absolutize(glob_scope, glob_segs, depth + 1)
            if source is not None:
                found = self.find_name(self.resolve(source, depth + 1), name, depth + 1)
                if found is not None:
                    return found
        return None

    def resolve(self, segs, depth=0):
        """The deepest module (file or inline) an absolute path leads to, following imports."""
        module = ()
        for i, seg in enumerate(segs):
            if self.known(module + (seg,)):
                module += (seg,)
                continue
            target = self.find_name(module, seg, depth + 1)
            if target is None or target == list(module) + [seg] or depth > 32:
                break
            return self.resolve(target + segs[i + 1 :], depth + 1)
        return module

    def file_module(self, module):
        while module not in self.files:
            module = module[:-1]
        return module

    def edges(self):
        """{(from, to): (file, line, text)} for every dependency, first example kept."""
        found = {}
        for module, scope, segs, pub_use, path, line, text in self.refs:
            absolute = None if pub_use else self.absolutize(scope, segs)
            if absolute is not None:
                target = self.file_module(self.resolve(absolute))
                if target != module:
                    found.setdefault((module, target), (path, line, text))
        return found


def find_crates(src_dir):
    """Every crate root in a source directory: lib.rs, main.rs, bin/NAME.rs, bin/NAME/main.rs."""
    roots = [(src_dir, os.path.join(src_dir, name)) for name in ("lib.rs", "main.rs")]
    bin_dir = os.path.join(src_dir, "bin")
    for name in sorted(os.listdir(bin_dir)) if os.path.isdir(bin_dir) else []:
        path = os.path.join(bin_dir, name)
        root = os.path.join(path, "main.rs") if os.path.isdir(path) else path
        roots.append((path.removesuffix(".rs"), root))
    return [
        Crate(f"{os.path.relpath(label)} ({os.path.basename(root)})", root)
        for label, root in roots
        if os.path.isfile(root)
    ]


def strongly_connected(nodes, edges):
    """Tarjan's algorithm; returns the components with more than one node."""
    graph, index, low, stack, on_stack, found = defaultdict(list), {}, {}, [], set(), []
    for a, b in edges:
        graph[a].append(b)

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return found


def name(module):
    return "::".join(module) or "crate"


def check(src_dirs, quiet=False):
    """Checks the crates in src_dirs, prints cycles; returns (cycles, modules, edges, crates)."""
    cycles, modules, edge_count, crates = [], 0, 0, []
    for src_dir in src_dirs:
        crates += find_crates(src_dir)
    for crate in crates:
        edges = crate.edges()
        modules, edge_count = modules + len(crate.files), edge_count + len(edges)
        for component in strongly_connected(crate.files, edges):
            cycles.append((crate.label, component))
            if quiet:
                continue
            print(f"cycle in {crate.label}: {', '.join(name(m) for m in component)}")
            for (a, b), (path, line, text) in sorted(edges.items()):
                if a in component and b in component:
                    print(f"  {name(a)} -> {name(b)}: {os.path.relpath(path)}:{line} {text}")
    return cycles, modules, edge_count, len(crates)


def self_test():
    """The cyclic fixture must give exactly its two loops, the acyclic one none."""
    cyclic, *_ = check([os.path.join(FIXTURES, "cyclic")], quiet=True)
    acyclic, *_ = check([os.path.join(FIXTURES, "acyclic")], quiet=True)
    got = sorted(sorted(name(m) for m in component) for _, component in cyclic)
    ok_cyclic = got == [["a", "b"], ["c", "d", "e"]]
    print(f"self-test cyclic/: {'ok' if ok_cyclic else 'FAILED'}, found {got}")
    found = [[name(m) for m in component] for _, component in acyclic]
    print(f"self-test acyclic/: {'ok' if not acyclic else 'FAILED'}, found {found}")
    return 0 if ok_cyclic and not acyclic else 1


def main(args):
    if args == ["--self-test"]:
        return self_test()
    if not args:
        args = [os.path.join(ROOT, d) for d in ("sdk/src", "trainer/src", "cli/src", "bindings/gstreamer/src")]
        args = [d for d in args if os.path.isdir(d)]
    cycles, modules, edges, crates = check(args)
    counts = f"({modules} modules, {edges} edges in {crates} crates)"
    print(f"check-module-cycles: {len(cycles) or 'no'} cycle{'s' * (len(cycles) != 1)} {counts}")
    return 1 if cycles else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
