"""The Python binding's ctypes declarations must match the C header (issue 31, item 6).

``include/sempart.h`` is what cbindgen generates from the Rust C ABI (sdk/tests/header.rs keeps
it up to date). This file checks the other side: that ``bindings/python/sempart/_capi.py``
declares every function of the header with the same argument and return types, mirrors every
struct with the same fields in the same order and types, and that the enum values the package
mirrors (``Status``, ``_PROVIDERS``, ``_FORMATS`` in ``sempart/__init__.py``) equal the
header's. ``test_drift_is_detected`` shows that the check fails on mutated copies of the
header and of the Python sources.

Nothing here loads libsempart.so or imports numpy: the header is read with the small parser
below (cbindgen output is regular), ``_capi.py`` is executed as a standalone module and its
``_declare(lib)`` is run on a recording stand-in for the library, and ``__init__.py`` is read
with ``ast``. The files checked are those of this checkout, found relative to this file, so the
test behaves the same with ``PYTHONPATH=bindings/python`` and with the package pip-installed.
"""

from __future__ import annotations

import ast
import ctypes
import importlib.util
import re
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import pytest

HERE = Path(__file__).resolve().parent
PACKAGE = HERE.parent / "sempart"
CAPI = PACKAGE / "_capi.py"
INIT = PACKAGE / "__init__.py"
HEADER = HERE.parents[2] / "include" / "sempart.h"


# ---------------------------------------------------------------------------------------------
# The header
# ---------------------------------------------------------------------------------------------


class HeaderParseError(Exception):
    """The header holds something this parser does not understand (fail loudly, never skip)."""


@dataclass(frozen=True)
class CType:
    """A C type as written: ``base`` (``uint32_t``, ``char``, ``sempart_model``...), the
    number of ``*`` and, for a struct field, the array length."""

    base: str
    pointers: int = 0
    array: Optional[int] = None

    def __str__(self):
        return self.declare("")

    def declare(self, name):
        """C spelling (without const): ``uint32_t providers[3]``, ``sempart_model **out_model``."""
        text = self.base + " " * bool(self.pointers or name) + "*" * self.pointers + name
        return text + (f"[{self.array}]" if self.array else "")


@dataclass
class Header:
    defines: Dict[str, int] = field(default_factory=dict)
    enums: Dict[str, Dict[str, int]] = field(default_factory=dict)  # type -> enumerator -> value
    structs: Dict[str, List[Tuple[str, CType]]] = field(default_factory=dict)  # fields in order
    opaque: set = field(default_factory=set)
    aliases: Dict[str, CType] = field(default_factory=dict)  # typedef <type> <name>;
    functions: Dict[str, Tuple[CType, List[Tuple[str, CType]]]] = field(default_factory=dict)

    def constants(self):
        out = dict(self.defines)
        for values in self.enums.values():
            out.update(values)
        return out


_QUALIFIERS = {"const", "volatile", "restrict", "struct", "enum", "union"}
_IDENT = re.compile(r"[A-Za-z_]\w*")


def _int_literal(text, known):
    text = text.strip()
    if text in known:
        return known[text]
    m = re.fullmatch(r"(-?)\s*(0[xX][0-9a-fA-F]+|\d+)[uUlL]*", text)
    if not m:
        raise HeaderParseError(f"not an integer constant: {text!r}")
    return int(m.group(1) + m.group(2), 0)


def parse_decl(text, named, known=None):
    """``const sempart_model *model`` -> ("model", CType("sempart_model", 1));
    ``uint32_t providers[3]`` -> ("providers", CType("uint32_t", 0, 3))."""
    text = " ".join(text.split())
    if "(" in text or ")" in text:
        raise HeaderParseError(f"function pointers are not supported: {text!r}")
    array = None
    m = re.fullmatch(r"(.*?)\s*\[\s*([^\]]+?)\s*\]", text)
    if m:
        text, array = m.group(1), _int_literal(m.group(2), known or {})
    pointers = text.count("*")
    tokens = [t for t in re.split(r"[\s*]+", text) if t and t not in _QUALIFIERS]
    if not tokens or any(not _IDENT.fullmatch(t) for t in tokens):
        raise HeaderParseError(f"cannot read the declaration {text!r}")
    name = None
    if named:
        if len(tokens) < 2:
            raise HeaderParseError(f"declaration without a type or a name: {text!r}")
        name = tokens.pop()
    return name, CType(" ".join(tokens), pointers, array)


_BLOCK = re.compile(
    r"(?:typedef\s+)?\b(struct|enum|union)\s*([A-Za-z_]\w*)?\s*\{(.*?)\}\s*([A-Za-z_]\w*)?\s*;", re.S
)


def parse_header(text):
    """Every #define with an integer value, enum, struct, opaque type, typedef and function
    prototype of a cbindgen-generated C header."""
    h = Header()
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    lines = []
    for line in text.splitlines():
        if line.strip().startswith("#"):
            m = re.match(r"\s*#\s*define\s+([A-Za-z_]\w*)\s+(.+?)\s*$", line)
            if m:
                try:
                    h.defines[m.group(1)] = _int_literal(m.group(2), h.defines)
                except HeaderParseError:
                    pass  # a non-integer macro: nothing a binding mirrors
            continue
        lines.append(line)
    text = "\n".join(lines)
    text = re.sub(r'extern\s+"C"\s*\{', " ", text)

    def block(m):
        kind, tag, body, name = m.groups()
        name = name or tag
        if not name:
            raise HeaderParseError(f"anonymous {kind} without a typedef name")
        if kind == "union":
            raise HeaderParseError(f"unions are not supported ({name})")
        if kind == "enum":
            values, nxt = {}, 0
            for item in (s.strip() for s in body.split(",")):
                if not item:
                    continue
                em = re.fullmatch(r"([A-Za-z_]\w*)\s*(?:=\s*(.+))?", item, re.S)
                if not em:
                    raise HeaderParseError(f"cannot read the enumerator {item!r} of {name}")
                value = nxt if em.group(2) is None else _int_literal(em.group(2), {**h.defines, **values})
                values[em.group(1)] = value
                nxt = value + 1
            h.enums[name] = values
        else:
            fields = []
            for item in (s.strip() for s in body.split(";")):
                if item:
                    fields.append(parse_decl(item, named=True, known=h.defines))
            h.structs[name] = fields
        return " ; "

    text = _BLOCK.sub(block, text)
    if "{" in text:
        raise HeaderParseError("a brace block the parser does not understand: " + text[text.index("{") - 80:][:200])
    text = text.replace("}", " ")  # the end of extern "C" { ... }

    for stmt in (" ".join(s.split()) for s in text.split(";")):
        if not stmt:
            continue
        m = re.fullmatch(r"typedef (?:struct|union) ([A-Za-z_]\w*) ([A-Za-z_]\w*)", stmt)
        if m:
            h.opaque.add(m.group(2))
            continue
        if stmt.startswith("typedef "):
            name, ctype = parse_decl(stmt[len("typedef "):], named=True, known=h.defines)
            h.aliases[name] = ctype
            continue
        m = re.fullmatch(r"(?P<ret>.+?)\s*\b(?P<name>[A-Za-z_]\w*)\s*\((?P<params>.*)\)", stmt)
        if not m:
            raise HeaderParseError(f"unrecognised declaration: {stmt!r}")
        _, ret = parse_decl(m.group("ret"), named=False)
        params = m.group("params").strip()
        args = [] if params in ("", "void") else [parse_decl(p, named=True) for p in params.split(",")]
        if m.group("name") in h.functions:
            raise HeaderParseError(f"{m.group('name')} is declared twice")
        h.functions[m.group("name")] = (ret, args)
    h.opaque -= set(h.structs)  # `typedef struct x x;` next to a full definition is not opaque
    return h


# ---------------------------------------------------------------------------------------------
# C types and ctypes as comparable ABI descriptions: "u32", "f64", "char", "ptr(u8)",
# "array(u32,3)", "struct(sempart_box)", "void". ctypes aliases (c_size_t is c_ulong is c_uint64
# on LP64) cannot be told apart, so equal ABI forms are equal.
# ---------------------------------------------------------------------------------------------

_C_SCALARS = {
    "int8_t": ctypes.c_int8, "uint8_t": ctypes.c_uint8, "int16_t": ctypes.c_int16, "uint16_t": ctypes.c_uint16,
    "int32_t": ctypes.c_int32, "uint32_t": ctypes.c_uint32, "int64_t": ctypes.c_int64, "uint64_t": ctypes.c_uint64,
    "size_t": ctypes.c_size_t, "ssize_t": ctypes.c_ssize_t, "ptrdiff_t": ctypes.c_ssize_t,
    "intptr_t": ctypes.c_ssize_t, "uintptr_t": ctypes.c_size_t,
    "signed char": ctypes.c_byte, "unsigned char": ctypes.c_ubyte, "short": ctypes.c_short,
    "unsigned short": ctypes.c_ushort, "int": ctypes.c_int, "unsigned int": ctypes.c_uint, "unsigned": ctypes.c_uint,
    "long": ctypes.c_long, "unsigned long": ctypes.c_ulong, "long long": ctypes.c_longlong,
    "unsigned long long": ctypes.c_ulonglong,
    "float": ctypes.c_float, "double": ctypes.c_double, "char": ctypes.c_char, "bool": ctypes.c_bool,
    "_Bool": ctypes.c_bool,
}


def py_form(t, struct_names):
    """The ABI description of a ctypes type (or None, "void")."""
    if t is None:
        return "void"
    if isinstance(t, type):
        if issubclass(t, ctypes._Pointer):
            return f"ptr({py_form(t._type_, struct_names)})"
        if issubclass(t, ctypes.Array):
            return f"array({py_form(t._type_, struct_names)},{t._length_})"
        if issubclass(t, ctypes.Union):
            return f"union({struct_names.get(t, t.__name__)})"
        if issubclass(t, ctypes.Structure):
            return f"struct({struct_names.get(t, 'unmirrored ' + t.__name__)})"
        if issubclass(t, ctypes._SimpleCData):
            code = t._type_
            special = {"z": "ptr(char)", "P": "ptr(void)", "c": "char", "?": "bool", "Z": "ptr(wchar)", "u": "wchar",
                       "O": "pyobject"}
            if code in special:
                return special[code]
            bits = 8 * ctypes.sizeof(t)
            if code in "fdg":
                return f"f{bits}"
            if code in "bhilq":
                return f"i{bits}"
            if code in "BHILQ":
                return f"u{bits}"
    return f"<not a ctypes type: {t!r}>"


def py_name(t):
    """How the Python side spells a type, for messages."""
    if t is None:
        return "None"
    if isinstance(t, type):
        if issubclass(t, ctypes._Pointer):
            return f"POINTER({py_name(t._type_)})"
        if issubclass(t, ctypes.Array):
            return f"{py_name(t._type_)} * {t._length_}"
        return t.__name__
    return repr(t)


def _scalar_form(ctype_cls):
    return py_form(ctype_cls, {})


def c_forms(ct, header):
    """The set of ABI descriptions a ctypes declaration of the C type ``ct`` may have. An enum
    is C ``int``-sized with implementation-defined signedness (GCC makes one without negative
    values unsigned), so both ``c_int32`` and ``c_uint32`` are accepted unless the header
    fixes the type with a typedef. A pointer to an opaque type may be ``c_void_p``."""
    seen = set()
    while ct.base in header.aliases:
        if ct.base in seen:
            raise HeaderParseError(f"typedef loop at {ct.base}")
        seen.add(ct.base)
        a = header.aliases[ct.base]
        if a.array and ct.array:
            raise HeaderParseError(f"array of arrays at {ct}")
        ct = CType(a.base, a.pointers + ct.pointers, a.array or ct.array)
    base = ct.base
    if base == "void":
        if ct.array and not ct.pointers:
            raise HeaderParseError("an array of void")
        forms = {"void"}
    elif base in _C_SCALARS:
        forms = {_scalar_form(_C_SCALARS[base])}
    elif base in header.enums:
        bits = 8 * ctypes.sizeof(ctypes.c_int)
        forms = {f"i{bits}", f"u{bits}"}
    elif base in header.structs:
        forms = {f"struct({base})"}
    elif base in header.opaque:
        if ct.pointers == 0:
            raise HeaderParseError(f"the opaque type {base} used by value")
        forms = {"ptr(void)", f"ptr(struct({base}))"}
        ct = CType(base, ct.pointers - 1, ct.array)
    else:
        raise HeaderParseError(f"the C type `{base}` is unknown to this test's C-to-ctypes map")
    for _ in range(ct.pointers):
        forms = {f"ptr({f})" for f in forms}
    if ct.array:
        forms = {f"array({f},{ct.array})" for f in forms}
    return forms


# ---------------------------------------------------------------------------------------------
# The Python side
# ---------------------------------------------------------------------------------------------

UNSET = object()


class _Recorded:
    """Stands in for a ctypes function of the library: records restype and argtypes."""

    def __init__(self, name):
        self.__name__ = name
        self.restype = UNSET
        self.argtypes = UNSET


class RecordingLibrary:
    """Stands in for the CDLL that ``_capi._declare(lib)`` configures; every attribute is a
    :class:`_Recorded` function, so no library is loaded."""

    def __init__(self):
        self.__dict__["functions"] = {}

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return self.functions.setdefault(name, _Recorded(name))

    __getitem__ = __getattr__


@dataclass
class PythonSide:
    label: str  # where it comes from, for messages
    functions: Dict[str, Tuple[object, object]]  # name -> (restype, argtypes), UNSET where never set
    structs: Dict[type, str]  # ctypes.Structure subclass -> the header type it mirrors
    capi_constants: Dict[str, object]
    init_constants: Dict[str, object]


def load_capi(source, path=CAPI):
    """``_capi.py`` (or a mutated copy of its source) as a standalone module: it imports only
    the standard library and loads nothing at import."""
    module = types.ModuleType("_sempart_capi_under_test")
    module.__file__ = str(path)
    exec(compile(source, str(path), "exec"), module.__dict__)
    return module


def _snake(name):
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def mirrored_structs(module, header):
    """ctypes.Structure subclasses defined in ``module`` -> the header type each mirrors: the
    first ``sempart_*`` name in double back-quotes of its docstring (``_capi.py``'s convention),
    else ``sempart_`` + the class name in snake case."""
    out = {}
    for name, obj in vars(module).items():
        if not (isinstance(obj, type) and issubclass(obj, (ctypes.Structure, ctypes.Union))):
            continue
        if obj.__module__ != module.__name__ or obj.__name__ != name:
            continue
        named = re.findall(r"``(sempart_\w+)``", obj.__doc__ or "")
        known = set(header.structs) | header.opaque
        out[obj] = next((n for n in named if n in known), named[0] if named else "sempart_" + _snake(name))
    return out


def literal_constants(source):
    """Top-level literal assignments of a module's source and, per top-level class, its
    literal class attributes (as a dict), read with ``ast``: nothing is imported."""

    def literal(node):
        try:
            return ast.literal_eval(node)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return UNSET

    def assignments(body):
        for st in body:
            if isinstance(st, ast.Assign) and len(st.targets) == 1 and isinstance(st.targets[0], ast.Name):
                yield st.targets[0].id, st.value
            elif isinstance(st, ast.AnnAssign) and isinstance(st.target, ast.Name) and st.value is not None:
                yield st.target.id, st.value

    out = {}
    tree = ast.parse(source)
    for name, value in assignments(tree.body):
        v = literal(value)
        if v is not UNSET:
            out[name] = v
    for st in tree.body:
        if isinstance(st, ast.ClassDef):
            attrs = {n: literal(v) for n, v in assignments(st.body)}
            out[st.name] = {n: v for n, v in attrs.items() if v is not UNSET}
    return out


def python_side(capi_source, init_source, header, label="sempart"):
    capi = load_capi(capi_source)
    declare = getattr(capi, "_declare", None) or getattr(capi, "declare", None)
    if not callable(declare):
        pytest.fail(f"{label}/_capi.py has no _declare(lib) any more: update {Path(__file__).name}")
    lib = RecordingLibrary()
    declare(lib)
    functions = {n: (f.restype, f.argtypes) for n, f in lib.functions.items()}
    capi_constants = {n: v for n, v in vars(capi).items() if isinstance(v, int) and not isinstance(v, bool)}
    return PythonSide(label, functions, mirrored_structs(capi, header), capi_constants,
                      literal_constants(init_source))


# ---------------------------------------------------------------------------------------------
# The comparison
# ---------------------------------------------------------------------------------------------

# Enum mirrors of sempart/__init__.py: (its name there, the header enum, the enumerators'
# prefix, the Python key a header enumerator's suffix becomes).
ENUM_MIRRORS = (
    ("Status", "sempart_status", "SEMPART_STATUS_", lambda s: s),
    ("_PROVIDERS", "sempart_provider", "SEMPART_PROVIDER_", lambda s: s.replace("_", "").lower()),
    # format names drop the bit depth: SEMPART_PIXEL_FORMAT_RGB8 -> "rgb", NV12 -> "nv12"
    ("_FORMATS", "sempart_pixel_format", "SEMPART_PIXEL_FORMAT_",
     lambda s: re.sub(r"8$", "", s.replace("_", "").lower())),
)


def _match(ctype, pytype, header, structs):
    """None when the ctypes declaration fits the C type, else what the header expects."""
    try:
        want = c_forms(ctype, header)
    except HeaderParseError as e:
        return str(e)
    got = py_form(pytype, structs)
    if got in want:
        return None
    return f"header `{ctype}` (ABI {' or '.join(sorted(want))}), Python {py_name(pytype)} (ABI {got})"


def compare(header, py):
    """Every difference between the header and the Python declarations, one message each."""
    problems = []
    capi, init = f"{py.label}/_capi.py", f"{py.label}/__init__.py"

    # functions
    for name, (restype, argtypes) in py.functions.items():
        if name not in header.functions:
            problems.append(f"{capi} binds {name}, which include/sempart.h does not declare")
            continue
        ret, params = header.functions[name]
        if restype is UNSET:
            why = _match(ret, ctypes.c_int, header, py.structs)
            if why:
                problems.append(f"{name} return type: restype never set (ctypes assumes c_int); {why}")
        else:
            why = _match(ret, restype, header, py.structs)
            if why:
                problems.append(f"{name} return type: {why}")
        if argtypes is UNSET or argtypes is None:
            wanted = ", ".join(t.declare(n) for n, t in params) or "void"
            problems.append(f"{name}: argtypes never set (header: {wanted})")
            continue
        argtypes = list(argtypes)
        if len(argtypes) != len(params):
            problems.append(
                f"{name}: header takes {len(params)} parameters "
                f"({', '.join(t.declare(n) for n, t in params) or 'void'}), "
                f"Python argtypes has {len(argtypes)} ({', '.join(py_name(a) for a in argtypes)})"
            )
        for i, ((pname, ctype), pytype) in enumerate(zip(params, argtypes)):
            why = _match(ctype, pytype, header, py.structs)
            if why:
                problems.append(f"{name} parameter {i} `{pname}`: {why}")
    for name in header.functions:
        if name not in py.functions:
            problems.append(f"{capi} does not bind {name} (it mirrors every function of the header)")

    # structs
    mirrored = {}
    for cls, cname in py.structs.items():
        mirrored.setdefault(cname, []).append(cls)
        label = f"{cname} ({capi} class {cls.__name__})"
        if cname in header.opaque:
            if "_fields_" in vars(cls) and cls._fields_:
                problems.append(f"{label}: the header's type is opaque but Python declares fields")
            continue
        if cname not in header.structs:
            problems.append(f"{capi} class {cls.__name__} mirrors {cname}, which include/sempart.h does not define")
            continue
        for attr in ("_pack_", "_anonymous_"):
            if attr in vars(cls):
                problems.append(f"{label}: sets {attr}, which the header's plain struct does not have")
        want, got = header.structs[cname], list(getattr(cls, "_fields_", []))
        for i, ((fname, ctype), entry) in enumerate(zip(want, got)):
            pname, pytype = entry[0], entry[1]
            if pname != fname:
                problems.append(
                    f"{label} field {i}: header `{ctype.declare(fname)}`, Python {pname!r} ({py_name(pytype)})"
                )
                continue
            if len(entry) > 2:
                problems.append(f"{label} field {i} `{fname}`: Python declares a bit field, the header does not")
            why = _match(ctype, pytype, header, py.structs)
            if why:
                problems.append(f"{label} field {i} `{fname}`: {why}")
        if len(want) != len(got):
            problems.append(
                f"{label}: header has {len(want)} fields ({', '.join(n for n, _ in want)}), "
                f"Python {len(got)} ({', '.join(e[0] for e in got)})"
            )
    for cname in header.structs:
        if cname not in mirrored:
            problems.append(f"header struct {cname} has no ctypes.Structure in {capi}")
    for cname, classes in mirrored.items():
        if len(classes) > 1:
            problems.append(f"{cname} is mirrored by several classes: {', '.join(c.__name__ for c in classes)}")

    # enum values
    for pyname, enum, prefix, key in ENUM_MIRRORS:
        if enum not in header.enums:
            problems.append(f"include/sempart.h has no enum {enum} (mirrored by {pyname} in {init})")
            continue
        mirror = py.init_constants.get(pyname)
        if not isinstance(mirror, dict):
            problems.append(f"{init} has no literal {pyname}: update ENUM_MIRRORS in {Path(__file__).name}")
            continue
        pyvalues = {k: (v[0] if isinstance(v, tuple) else v) for k, v in mirror.items()}
        expected = {}
        for enumerator, value in header.enums[enum].items():
            if not enumerator.startswith(prefix):
                problems.append(f"{enum}: enumerator {enumerator} lacks the prefix {prefix}")
                continue
            expected[key(enumerator[len(prefix):])] = (enumerator, value)
        for k, (enumerator, value) in expected.items():
            if k not in pyvalues:
                problems.append(f"{enum}: {enumerator} = {value} has no entry {k!r} in {pyname} ({init})")
            elif pyvalues[k] != value:
                problems.append(f"{enum}: {enumerator} is {value} in the header, {pyname}[{k!r}] is {pyvalues[k]!r}")
        for k in pyvalues:
            if k not in expected:
                problems.append(f"{pyname}[{k!r}] ({init}) matches no enumerator {prefix}* of {enum}")

    # any integer constant named like a header #define or enumerator
    constants = header.constants()
    for where, values in ((capi, py.capi_constants), (init, py.init_constants)):
        for n, v in values.items():
            cname = n if n in constants else "SEMPART_" + n
            if cname in constants and isinstance(v, int) and not isinstance(v, bool) and v != constants[cname]:
                problems.append(f"{where}: {n} = {v}, but the header's {cname} is {constants[cname]}")
    return problems


def drift(header_text, capi_source, init_source, label="sempart"):
    header = parse_header(header_text)
    return compare(header, python_side(capi_source, init_source, header, label))


def _read(path):
    return Path(path).read_text(encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------


def test_header_parser_reads_every_declaration():
    """The parser misses nothing: every `name(` after a type, every struct, every enum of the
    header is parsed (so the drift check cannot pass by reading too little)."""
    text = _read(HEADER)
    header = parse_header(text)
    bare = re.sub(r"//[^\n]*", "", re.sub(r"/\*.*?\*/", " ", text, flags=re.S))
    assert set(header.functions) == set(re.findall(r"\b(sempart_\w+)\s*\(", bare))
    assert len(header.structs) == len(re.findall(r"\bstruct\s*(?:\w+\s*)?\{", bare))
    assert len(header.enums) == len(re.findall(r"\benum\s*(?:\w+\s*)?\{", bare))
    assert len(header.functions) >= 20 and {"sempart_segment", "sempart_result_timing"} <= set(header.functions)
    assert header.structs["sempart_options"][0] == ("providers", CType("uint32_t", 0, 3))
    assert header.functions["sempart_model_open"][1][2] == ("out_model", CType("sempart_model", 2))
    assert header.enums["sempart_status"]["SEMPART_STATUS_OK"] == 0
    assert {"sempart_model", "sempart_result"} <= header.opaque


def test_python_declarations_are_read_without_the_library():
    header = parse_header(_read(HEADER))
    py = python_side(_read(CAPI), _read(INIT), header)
    assert len(py.functions) >= 20
    assert sorted(py.structs.values()) == sorted(header.structs)
    assert "Status" in py.init_constants


def test_ctypes_declarations_match_the_header():
    problems = drift(_read(HEADER), _read(CAPI), _read(INIT))
    assert not problems, "bindings/python/sempart drifted from include/sempart.h:\n  " + "\n  ".join(problems)


def test_installed_copy_matches_the_header():
    """When the package is pip-installed (what the test suite imports), the installed copy is
    this checkout's or also matches the header (else: reinstall it, `pip install ./bindings/python`)."""
    spec = importlib.util.find_spec("sempart")
    if spec is None or not spec.origin:
        return
    installed = Path(spec.origin).resolve().parent
    if installed == PACKAGE.resolve():
        return
    capi, init = installed / "_capi.py", installed / "__init__.py"
    if not capi.is_file() or not init.is_file():
        return
    if _read(capi) == _read(CAPI) and _read(init) == _read(INIT):
        return
    problems = drift(_read(HEADER), _read(capi), _read(init), label=str(installed))
    assert not problems, (
        f"the installed sempart at {installed} (not this checkout's copy) drifted from include/sempart.h; "
        "reinstall it with `pip install ./bindings/python`:\n  " + "\n  ".join(problems)
    )


# Mutations: (id, file, regex, replacement, fragments each of which some new problem must
# contain). Each regex must match exactly once in today's file (twice for a swap).
_SWAP = "\0swap\0"
MUTATIONS = [
    # the header
    ("header-argument-type", "header", r"size_t index, sempart_box", "uint32_t index, sempart_box",
     ["sempart_result_box parameter 1 `index`"]),
    ("header-return-type", "header", r"int64_t sempart_result_object_index\(", "int32_t sempart_result_object_index(",
     ["sempart_result_object_index return type"]),
    ("header-pointer-depth", "header", r"sempart_model \*\*out_model", "sempart_model *out_model",
     ["sempart_model_open parameter 2 `out_model`"]),
    ("header-struct-argument", "header", r"const sempart_frame \*frame,\s*sempart_result \*\*out_result\);",
     "const sempart_box *frame, sempart_result **out_result);",
     ["sempart_segment parameter 1 `frame`", "struct(sempart_box)"]),
    ("header-parameter-removed", "header", r",\s*size_t \*out_length\)", ")",
     ["sempart_model_metadata: header takes 4 parameters"]),
    ("header-parameter-added", "header", r"sempart_options_init\(sempart_options \*out\)",
     "sempart_options_init(sempart_options *out, uint32_t flags)", ["sempart_options_init: header takes 2"]),
    ("header-function-removed", "header", r"sempart_status sempart_result_box\([^;]*\);", "",
     ["binds sempart_result_box, which include/sempart.h does not declare"]),
    ("header-function-added", "header", r"const char \*sempart_version\(void\);",
     "const char *sempart_version(void);\nvoid sempart_flush(sempart_model *model);", ["does not bind sempart_flush"]),
    ("header-fields-swapped", "header", r"size_t data_size_bytes;|uint32_t width_px;", _SWAP,
     ["sempart_frame (", "field 1: header `uint32_t width_px`", "field 2: header `size_t data_size_bytes`"]),
    ("header-field-type", "header", r"float refine_eps;", "double refine_eps;",
     ["sempart_options (", "field 9 `refine_eps`"]),
    ("header-field-signedness", "header", r"int32_t device_id;", "uint32_t device_id;", ["field 4 `device_id`"]),
    ("header-array-length", "header", r"uint32_t providers\[3\];", "uint32_t providers[4];",
     ["field 0 `providers`", "array(u32,4)"]),
    ("header-field-added", "header", r"uint8_t verify_integrity;", "uint8_t verify_integrity;\n  uint32_t log_level;",
     ["sempart_options (", "header has 12 fields"]),
    ("header-field-renamed", "header", r"uint32_t x1;", "uint32_t x_end;", ["sempart_box (", "x_end"]),
    ("header-struct-renamed", "header", r"\} sempart_timing;", "} sempart_times;", ["sempart_timing"]),
    ("header-status-value", "header", r"SEMPART_STATUS_IO = 10", "SEMPART_STATUS_IO = 13",
     ["SEMPART_STATUS_IO is 13 in the header", "Status['IO'] is 10"]),
    ("header-status-added", "header", r"SEMPART_STATUS_MODEL_INTEGRITY = 12,",
     "SEMPART_STATUS_MODEL_INTEGRITY = 12,\n  SEMPART_STATUS_CANCELLED = 13,", ["SEMPART_STATUS_CANCELLED"]),
    ("header-pixel-format-value", "header", r"SEMPART_PIXEL_FORMAT_NV12 = 5", "SEMPART_PIXEL_FORMAT_NV12 = 6",
     ["SEMPART_PIXEL_FORMAT_NV12 is 6"]),
    ("header-provider-renamed", "header", r"SEMPART_PROVIDER_CUDA = 1", "SEMPART_PROVIDER_ROCM = 1",
     ["SEMPART_PROVIDER_ROCM"]),
    ("header-enum-typedef", "header", r"\} sempart_status;", "} sempart_status_e;\ntypedef int64_t sempart_status;",
     ["sempart_options_init return type", "i64"]),
    # sempart/_capi.py
    ("capi-restype", "capi", r'"sempart_result_box_count": \(ctypes.c_size_t,',
     '"sempart_result_box_count": (ctypes.c_uint32,',
     ["sempart_result_box_count return type"]),
    ("capi-argtype", "capi", r"ctypes.POINTER\(Frame\), ctypes.c_size_t,", "ctypes.POINTER(Frame), ctypes.c_int64,",
     ["sempart_segment_batch parameter 2 `count`"]),
    ("capi-struct-pointer", "capi", r'"sempart_segment": \(s, \[p, ctypes.POINTER\(Frame\)',
     '"sempart_segment": (s, [p, ctypes.POINTER(Box)', ["sempart_segment parameter 1 `frame`"]),
    ("capi-argument-dropped", "capi", r', ctypes.POINTER\(ctypes.c_size_t\)\]\),', "]),",
     ["sempart_model_metadata: header takes 5 parameters"]),
    ("capi-unbound", "capi", r'\s*"sempart_result_timing": \(Timing, \[p\]\),', "",
     ["does not bind sempart_result_timing"]),
    ("capi-extra-binding", "capi", r'"sempart_result_free": \(None, \[p\]\),',
     '"sempart_result_free": (None, [p]),\n        "sempart_result_clone": (p, [p]),',
     ["binds sempart_result_clone, which include/sempart.h does not declare"]),
    ("capi-fields-swapped", "capi", r'\("allow_fallback", ctypes.c_uint8\),|\("cpu_threads", ctypes.c_uint32\),', _SWAP,
     ["sempart_options (", "field 2: header `uint8_t allow_fallback`"]),
    ("capi-field-type", "capi", r'\("refine_radius", ctypes.c_float\)', '("refine_radius", ctypes.c_double)',
     ["field 8 `refine_radius`"]),
    ("capi-field-dropped", "capi", r'\s*\("verify_integrity", ctypes.c_uint8\),', "",
     ["sempart_options (", "header has 11 fields"]),
    ("capi-struct-docstring", "capi", r'"""``sempart_box``\."""', '"""``sempart_bbox``."""',
     ["mirrors sempart_bbox, which include/sempart.h does not define"]),
    # sempart/__init__.py
    ("init-status-value", "init", r"(?m)^    IO = 10$", "    IO = 11", ["SEMPART_STATUS_IO is 10 in the header"]),
    ("init-format-code", "init", r'"nv12": \(5, 1\)', '"nv12": (6, 1)', ["SEMPART_PIXEL_FORMAT_NV12 is 5"]),
    ("init-provider-missing", "init", r'"tensorrt": 0, ', "", ["SEMPART_PROVIDER_TENSOR_RT = 0 has no entry"]),
]


def mutate(text, pattern, replacement):
    hits = list(re.finditer(pattern, text))
    if replacement == _SWAP:
        assert len(hits) == 2, f"{pattern!r} must match twice to swap, matched {len(hits)}"
        a, b = hits
        return text[:a.start()] + b.group() + text[a.end():b.start()] + a.group() + text[b.end():]
    assert len(hits) == 1, f"{pattern!r} must match once, matched {len(hits)}: update MUTATIONS"
    return text[:hits[0].start()] + replacement + text[hits[0].end():]


@pytest.mark.parametrize("mutation", MUTATIONS, ids=[m[0] for m in MUTATIONS])
def test_drift_is_detected(mutation):
    _, target, pattern, replacement, fragments = mutation
    files = {"header": _read(HEADER), "capi": _read(CAPI), "init": _read(INIT)}
    baseline = set(drift(files["header"], files["capi"], files["init"]))
    files[target] = mutate(files[target], pattern, replacement)
    new = [p for p in drift(files["header"], files["capi"], files["init"]) if p not in baseline]
    assert new, "the mutation went unnoticed"
    unmentioned = [f for f in fragments if not any(f in p for p in new)]
    assert not unmentioned, f"no problem mentions {unmentioned}; found:\n  " + "\n  ".join(new)
