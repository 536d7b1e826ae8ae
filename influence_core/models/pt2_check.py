"""What a ``.pt2`` upload may hold before torch is allowed to read it.

``torch.export.load`` (torch 2.14) runs code from the archive in several places: it unpickles (``weights_only=False``)
every weight or constant whose config entry says ``"use_pickle": true``, the legacy ``data/weights/<model>.pt`` and
``data/constants/<model>.pt`` files and ``opaque_obj_*`` / ``custom_obj_*`` constants; it falls back to
``weights_only=False`` when the sample inputs do not load with ``weights_only=True``; it loads AOTInductor shared
libraries (``data/aotinductor/``); it resolves node targets on the ``torch`` module (``torch.os.system`` included),
evaluates symbolic shapes with ``sympy.sympify`` (Python ``eval``), ``exec``s the program's ``guards_code`` when the
module is built, and writes attribute names into generated Python source.

So the archive is read with `zipfile` first and only an allow-list passes (anything else is refused, nothing loaded):

- members: exactly those ``torch.export.save`` writes for one program named ``model`` under one root folder — archive
  markers, ``models/model.json``, the two payload configs, raw ``weight_<n>`` / ``tensor_<n>`` files they name, the
  sample inputs, ``extra/<name>`` text files; ASCII names, no duplicates, no zip bomb;
- payload configs: ``{"config": {fqn: {path_name, is_param, use_pickle: false, tensor_meta}}}`` and nothing else;
- sample inputs: must load with ``torch.load(weights_only=True)`` (so torch never falls back to a full unpickle);
- the program JSON: node targets only ATen operators (``torch.ops.aten.*``) and the symbolic-size helpers torch itself
  emits; symbolic expressions only names, numbers, arithmetic and a fixed set of sympy functions; attribute names
  dotted identifiers; tensors as the only graph inputs; one positional input; no subgraphs, custom objects, operator
  arguments, constant inputs or tokens; no control characters that would end a comment in generated code.

After loading, `check_loaded_program` checks the graph again and the caller drops ``guards_code`` (never executed).
"""

from __future__ import annotations

import ast
import io
import json
import math
import operator
import re
import unicodedata
import zipfile

import torch

from ..errors import InfluenceError

MAX_ARCHIVE_UNCOMPRESSED = 2**30
MAX_COMPRESSION_RATIO = 100
_FIXED = {"archive_format", "archive_version", "byteorder", ".data/version", ".data/serialization_id",
          "models/model.json", "data/weights/model_weights_config.json", "data/constants/model_constants_config.json",
          "data/sample_inputs/model.pt"}
_REQUIRED = _FIXED - {"byteorder", ".data/version", ".data/serialization_id"}
_MEMBER = re.compile(r"[A-Za-z0-9_./-]+")
_WEIGHT = re.compile(r"weight_\d+")
_CONSTANT = re.compile(r"tensor_\d+")
_EXTRA = re.compile(r"extra/[A-Za-z0-9_.-]+")
_FQN = re.compile(r"[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*")
_SYMBOL = re.compile(r"[a-z]+\d+")
_ATEN = re.compile(r"torch\.ops\.aten\.([A-Za-z0-9_]+)\.([A-Za-z0-9_]+)")
_DENIED_ATEN = {"from_file"}  # reads a file named in the graph
_SYM_TARGETS = {f"_operator.{n}" for n in ("getitem", "eq", "ne", "le", "ge", "lt", "gt", "neg", "pos", "mul", "add",
                                            "sub", "floordiv", "mod", "pow", "truediv", "and_", "or_")} | \
               {f"torch.sym_{n}" for n in ("not", "int", "float", "ite", "max", "min", "sqrt")} | {"math.trunc"}
_SYMPY_NAMES = {"Symbol", "Integer", "Float", "Rational", "Max", "Min", "Eq", "Ne", "Lt", "Le", "Gt", "Ge", "And",
                "Or", "Not", "Abs", "floor", "ceiling", "Mod", "oo", "zoo", "nan", "true", "false", "True", "False",
                "FloorDiv", "ModularIndexing", "Where", "PythonMod", "CleanDiv", "CeilToInt", "FloorToInt", "CeilDiv",
                "LShift", "RShift", "PowByNatural", "FloatPow", "FloatTrueDiv", "IntTrueDiv",
                "IsNonOverlappingAndDenseIndicator", "TruncToFloat", "TruncToInt", "RoundToInt", "RoundDecimal",
                "ToFloat", "Identity"}
_SYMPY_KEYWORDS = {"positive", "negative", "nonnegative", "nonpositive", "integer", "real", "finite", "rational",
                   "even", "odd", "zero", "nonzero"}
# Union members of the export schema that stand for things we do not load: subgraphs, custom (torchbind / opaque)
# objects, operators passed as arguments, effect tokens and constant (non-tensor) inputs.
_REFUSED_KEYS = {"as_graph": "a subgraph (control flow)", "as_custom_obj": "a custom object",
                 "as_operator": "an operator argument", "custom_obj": "a custom object input",
                 "token": "an effect token", "constant_input": "a constant input",
                 "as_custom_objs": "custom objects"}
_ONE_INPUT_SPEC = [1, {"type": "builtins.tuple", "context": "null", "children_spec": [
    {"type": "builtins.tuple", "context": "null", "children_spec": [{"type": None, "context": None, "children_spec": []}]},
    {"type": "builtins.dict", "context": "[]", "children_spec": []}]}]


def _refuse(label: str, why: str) -> InfluenceError:
    return InfluenceError(f"refused to load '{label}': {why}; only plain torch.export programs (ATen operators, "
                          "raw tensor weights, no pickled or compiled code) are accepted")


# ----------------------------------------------------------------------------------------- members
def _members(archive: zipfile.ZipFile, label: str) -> dict[str, zipfile.ZipInfo]:
    infos = archive.infolist()
    if not infos:
        raise _refuse(label, "the archive is empty")
    names = [i.filename for i in infos]
    if len(set(names)) != len(names):
        raise _refuse(label, "the archive lists a member twice")
    total = sum(i.file_size for i in infos)
    if total > MAX_ARCHIVE_UNCOMPRESSED:
        raise _refuse(label, f"it expands to {total / 2**20:.0f} MB (limit {MAX_ARCHIVE_UNCOMPRESSED // 2**20} MB)")
    for info in infos:
        if info.file_size > 2**20 and info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1):
            raise _refuse(label, f"member '{info.filename}' is compressed more than {MAX_COMPRESSION_RATIO}:1 (a zip bomb?)")
    roots = {n.split("/", 1)[0] for n in names}
    if len(roots) != 1 or any("/" not in n for n in names):
        raise _refuse(label, "its members do not sit in one root folder as torch.export.save writes them")
    root = roots.pop()
    out: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        name = info.filename[len(root) + 1:]
        if info.is_dir() and name == "":
            continue
        if not _MEMBER.fullmatch(name) or ".." in name.split("/") or "//" in name:
            raise _refuse(label, f"unexpected member name '{info.filename}'")
        out[name] = info
    return out


def _classify(name: str) -> str | None:
    """Why a member is refused, or None when it is one torch.export.save writes and torch reads without pickle."""
    if name in _FIXED or _EXTRA.fullmatch(name):
        return None
    if name.startswith("data/weights/") and _WEIGHT.fullmatch(name[len("data/weights/"):]):
        return None
    if name.startswith("data/constants/") and _CONSTANT.fullmatch(name[len("data/constants/"):]):
        return None
    if name.startswith("data/aotinductor/"):
        return f"'{name}' is AOTInductor compiled code (a shared library torch would load)"
    if name.startswith(("data/executorch/", "data/mtia", "xl_model_weights/")):
        return f"'{name}' is a backend payload this workbench does not read"
    if name.endswith((".pt", ".pkl", ".pickle", ".bin")) or "custom_obj_" in name or "opaque_obj_" in name:
        return f"'{name}' is a pickle torch would unpickle with weights_only=False"
    if name.startswith("models/"):
        return f"'{name}' is a second program (only one program named 'model' is read)"
    return f"unexpected member '{name}'"


def _payload_config(text: bytes, name: str, pattern: re.Pattern, folder: str, members: dict, label: str) -> set[str]:
    """Check a weights / constants config; returns the payload files it names."""
    try:
        cfg = json.loads(text)
    except ValueError:
        raise _refuse(label, f"'{name}' is not JSON") from None
    if not isinstance(cfg, dict) or set(cfg) != {"config"} or not isinstance(cfg["config"], dict):
        raise _refuse(label, f"'{name}' is not in the payload config format of torch.export.save")
    used = set()
    for fqn, entry in cfg["config"].items():
        what = f"'{fqn}' in '{name}'"
        if not _FQN.fullmatch(str(fqn)):
            raise _refuse(label, f"the name {what} is not a dotted identifier")
        if not isinstance(entry, dict) or not set(entry) <= {"path_name", "is_param", "use_pickle", "tensor_meta"}:
            raise _refuse(label, f"the entry {what} has an unknown format")
        if entry.get("use_pickle") is not False:
            raise _refuse(label, f"the entry {what} is stored as a pickle (\"use_pickle\": true), which runs code when loaded")
        path = entry.get("path_name")
        if not isinstance(path, str) or not pattern.fullmatch(path) or f"{folder}{path}" not in members:
            raise _refuse(label, f"the entry {what} points to '{path}', not a raw tensor file of the archive")
        if not isinstance(entry.get("tensor_meta"), dict) or not isinstance(entry.get("is_param"), bool):
            raise _refuse(label, f"the entry {what} has no tensor description")
        used.add(f"{folder}{path}")
    return used


# ----------------------------------------------------------------------------------- program JSON
def check_sym_expr(text: str) -> bool:
    """True when ``text`` (a symbolic shape torch passes to ``sympy.sympify``) holds only names of symbols, numbers,
    arithmetic, comparisons and the sympy functions torch emits — nothing ``eval`` could abuse."""
    if not isinstance(text, str) or len(text) > 2000:
        return False
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError):
        return False
    for node in ast.walk(tree):
        if isinstance(node, (ast.Expression, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.Load,
                             ast.operator, ast.unaryop, ast.boolop, ast.cmpop)):
            continue
        if isinstance(node, ast.Call):
            if not (isinstance(node.func, ast.Name) and node.func.id in _SYMPY_NAMES):
                return False
            if any(k.arg not in _SYMPY_KEYWORDS or not isinstance(k.value, ast.Constant) or not isinstance(k.value.value, bool)
                   for k in node.keywords):
                return False
            continue
        if isinstance(node, ast.keyword):
            continue  # checked with its call
        if isinstance(node, ast.Name):
            if node.id in _SYMPY_NAMES or _SYMBOL.fullmatch(node.id):
                continue
            return False
        if isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, (bool, int, float)) or (isinstance(value, str) and _SYMBOL.fullmatch(value)):
                continue
            return False
        return False
    return True


def _target_ok(target: str) -> bool:
    found = _ATEN.fullmatch(target)
    if found:
        return found.group(1) not in _DENIED_ATEN
    return target in _SYM_TARGETS


def _bad_text(text: str) -> bool:
    """Control characters (other than newline and tab) or line separators: they could end a comment in generated code."""
    return any(ch not in "\n\t" and unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in text)


def _walk(obj, label: str, path: str = "") -> None:
    if isinstance(obj, str):
        if _bad_text(obj):
            raise _refuse(label, f"the program holds control characters (at {path or 'top level'})")
        return
    if isinstance(obj, list):
        for i, item in enumerate(obj):
            _walk(item, label, f"{path}[{i}]")
        return
    if not isinstance(obj, dict):
        return
    for key, value in obj.items():
        if not isinstance(key, str) or _bad_text(key):
            raise _refuse(label, f"the program holds an odd key at {path}")
        where = f"{path}.{key}" if path else key
        if key in _REFUSED_KEYS and value not in (None, {}, []):
            raise _refuse(label, f"the program uses {_REFUSED_KEYS[key]} ({where})")
        if key == "target" and "inputs" in obj and "outputs" in obj:
            if not isinstance(value, str) or not _target_ok(value):
                raise _refuse(label, f"the program calls '{str(value)[:80]}', not an ATen operator")
        elif key == "expr_str":
            if not check_sym_expr(value):
                raise _refuse(label, f"the symbolic shape '{str(value)[:80]}' is not a plain expression")
        elif key in ("parameter_name", "buffer_name", "tensor_constant_name") and value is not None:
            if not isinstance(value, str) or not _FQN.fullmatch(value):
                raise _refuse(label, f"the attribute name '{str(value)[:80]}' ({where}) is not a dotted identifier")
        elif key == "fqn" and value not in ("", None):
            if not isinstance(value, str) or not _FQN.fullmatch(value):
                raise _refuse(label, f"the module name '{str(value)[:80]}' is not a dotted identifier")
        _walk(value, label, where)


def check_program_json(program: dict, label: str) -> None:
    """Refuse a serialized ExportedProgram (models/model.json) that holds anything outside the allow-list above."""
    if not isinstance(program, dict) or not isinstance(program.get("graph_module"), dict):
        raise _refuse(label, "models/model.json is not a serialized ExportedProgram")
    _walk(program, label)
    gm = program["graph_module"]
    graph = gm.get("graph") or {}
    for i, inp in enumerate(graph.get("inputs") or []):
        if not isinstance(inp, dict) or set(inp) != {"as_tensor"}:
            raise _refuse(label, f"graph input {i} is not a tensor")
    if graph.get("custom_obj_values"):
        raise _refuse(label, "the program holds custom objects")
    if gm.get("treespec_namedtuple_fields"):
        raise _refuse(label, "the program's inputs or outputs use named tuples")
    signature = gm.get("signature") or {}
    for spec in signature.get("input_specs") or []:
        kinds = set(spec) if isinstance(spec, dict) else {"?"}
        if not kinds <= {"user_input", "parameter", "buffer", "tensor_constant"}:
            raise _refuse(label, f"the program has an input of kind {', '.join(sorted(kinds))}")
        if "user_input" in spec and set((spec["user_input"] or {}).get("arg") or {}) != {"as_tensor"}:
            raise _refuse(label, "the program has an input that is not a tensor")
    for spec in signature.get("output_specs") or []:
        kinds = set(spec) if isinstance(spec, dict) else {"?"}
        if not kinds <= {"user_output", "buffer_mutation"}:
            raise _refuse(label, f"the program has an output of kind {', '.join(sorted(kinds))}")
    root = [e for e in gm.get("module_call_graph") or [] if isinstance(e, dict) and e.get("fqn") == ""]
    try:
        in_spec = json.loads(root[0]["signature"]["in_spec"])
    except (IndexError, KeyError, TypeError, ValueError):
        raise _refuse(label, "the program does not describe its inputs") from None
    if in_spec != _ONE_INPUT_SPEC:
        raise _refuse(label, "the program must take exactly one positional tensor (forward(x))")
    for name, bounds in (program.get("range_constraints") or {}).items():
        if not _SYMBOL.fullmatch(str(name)) or not isinstance(bounds, dict) or any(
                not (v is None or isinstance(v, int)) for v in bounds.values()):
            raise _refuse(label, f"the shape constraint '{str(name)[:40]}' is not plain")
    for dialect in program.get("verifiers") or []:
        if dialect not in ("", "ATEN", "TRAINING"):
            raise _refuse(label, f"unknown verifier '{str(dialect)[:40]}'")


# ---------------------------------------------------------------------------------------------- public
def check_pt2_archive(data: bytes, label: str) -> None:
    """Raise `InfluenceError` unless ``data`` is a ``.pt2`` that ``torch.export.load`` reads without running any code
    from it (see the module docstring). Reads the archive with `zipfile` only; torch reads nothing here except the
    sample inputs, with ``weights_only=True``."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError):
        raise InfluenceError(f"cannot read '{label}' as a torch.export program: it is not a zip archive") from None
    with archive:
        members = _members(archive, label)
        for name in members:
            why = _classify(name)
            if why is not None:
                raise _refuse(label, why)
        missing = sorted(_REQUIRED - set(members))
        if missing:
            raise InfluenceError(f"cannot read '{label}' as a torch.export program: '{missing[0]}' is missing "
                                 "(save it with torch.export.save)")
        try:
            bad = archive.testzip()  # every member readable, names in local headers = the directory's
        except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, EOFError) as err:
            bad = str(err) or "?"
        if bad is not None:
            raise InfluenceError(f"cannot read '{label}' as a torch.export program: member '{bad}' is damaged")

        def read(name: str) -> bytes:
            return archive.read(members[name])

        if read("archive_format").strip() != b"pt2" or read("archive_version").strip() != b"0":
            raise InfluenceError(f"cannot read '{label}' as a torch.export program: unsupported archive format or version")
        used = _payload_config(read("data/weights/model_weights_config.json"), "model_weights_config.json", _WEIGHT,
                               "data/weights/", members, label)
        used |= _payload_config(read("data/constants/model_constants_config.json"), "model_constants_config.json",
                                _CONSTANT, "data/constants/", members, label)
        unused = sorted(n for n in members if (n.startswith("data/weights/weight_") or n.startswith("data/constants/tensor_"))
                        and n not in used)
        if unused:
            raise _refuse(label, f"'{unused[0]}' is not named by its payload config")
        sample = read("data/sample_inputs/model.pt")
        if sample:
            try:
                torch.load(io.BytesIO(sample), weights_only=True, map_location="cpu")
            except Exception:  # noqa: BLE001 - any refusal: torch itself would retry with weights_only=False
                raise _refuse(label, "its sample inputs (data/sample_inputs/model.pt) hold Python objects that would "
                                     "run code when unpickled") from None
        try:
            program = json.loads(read("models/model.json"))
        except ValueError:
            raise _refuse(label, "models/model.json is not JSON") from None
        check_program_json(program, label)


def check_loaded_program(program, label: str) -> None:
    """After loading: every call in every graph is an ATen operator or one of torch's symbolic-size helpers."""
    import torch.fx

    allowed = {operator.getitem, math.trunc}
    try:
        from torch._export.serde.serialize import _SYM_OPS

        allowed |= set(_SYM_OPS)
    except ImportError:  # pragma: no cover - private name moved: ATen and getitem still pass
        pass
    for module in program.graph_module.modules():
        if not isinstance(module, torch.fx.GraphModule):
            continue
        for node in module.graph.nodes:
            if node.op in ("placeholder", "output", "get_attr"):
                continue
            target = node.target
            ok = node.op == "call_function" and (
                (isinstance(target, torch._ops.OpOverload) and target.namespace == "aten"
                 and target._schema.name.split("::")[-1] not in _DENIED_ATEN) or target in allowed)
            if not ok:
                raise _refuse(label, f"the program calls {getattr(target, '__name__', str(target))[:80]} ({node.op})")
