"""The knowledge base vouches for objects by identity, never by module prefix: re-exports
are classified as what they are, library classes by the effects of their reconstruction
hooks (read from source, never imported), legacy spellings from the libraries' own
compatibility code, pure builtins and type references as such."""

from __future__ import annotations

import pickle
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlwarden.report.model import Verdict
from mlwarden.scan.context import Limits, ScanContext
from mlwarden.scan.knowledge import lookup, policy
from mlwarden.scan.pickle import scan_pickle

FAKELIB = {
    "fakelib/__init__.py": "",
    "fakelib/utils.py": """
        import os
        from subprocess import check_output as run_tool
        from os import system as _sys

        def helper(x):
            return len(x)
    """,
    "fakelib/models.py": """
        import os
        from collections import OrderedDict

        class Plain:
            def __setstate__(self, state):
                self.__dict__.update(state)
                if "cache" not in self.__dict__:
                    self.cache = OrderedDict()

        class Child(Plain):
            pass

        class Effectful:
            def __setstate__(self, state):
                os.system(state["cmd"])

        class FromState:
            def __setstate__(self, state):
                self.__dict__.update(state)
                state["callback"]()

        class Hooked:
            def __del__(self):
                self.close()

            def close(self):
                os.remove(self.path)

        class Unhashable:
            def __eq__(self, other):
                return other.compute()
    """,
}


def _installed(root: Path, files: dict[str, str]) -> Iterator[Path]:
    """``files`` written under ``root``, which the knowledge base reads as installed
    library sources until the test ends."""
    for name, text in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text))
    policy.configure(policy.KnowledgePolicy(source_roots=(str(root),)))
    yield root
    policy.configure(policy.KnowledgePolicy())


@pytest.fixture
def fakelib(tmp_path: Path) -> Iterator[Path]:
    yield from _installed(tmp_path, FAKELIB)


def _scan(data: bytes) -> ScanContext:
    ctx = ScanContext("t", Limits())
    scan_pickle(data, ctx)
    return ctx


def _s(text: str) -> bytes:
    return b"\x8c" + bytes([len(text)]) + text.encode()


def _newobj(module: str, name: str, state: bytes = b"}") -> bytes:
    return b"\x80\x04" + _s(module) + _s(name) + b"\x93)\x81" + state + b"b."


def test_reexports_are_what_they_really_are(fakelib: Path) -> None:
    k = lookup("fakelib.utils", "run_tool")
    assert k.danger is not None  # subprocess.check_output under a library's name
    assert lookup("fakelib.utils", "_sys").danger is not None
    ref_only = b"\x80\x04" + _s("fakelib.utils") + _s("run_tool") + b"\x93."
    assert _scan(ref_only).verdict is Verdict.MALICIOUS


def test_library_classes_by_the_effects_of_their_hooks(fakelib: Path) -> None:
    assert _scan(_newobj("fakelib.models", "Plain")).verdict is Verdict.CLEAN
    assert _scan(_newobj("fakelib.models", "Child")).verdict is Verdict.CLEAN
    for name, why in (("Effectful", "os.system"), ("FromState", "callback"),
                      ("Hooked", "os.remove")):
        ctx = _scan(_newobj("fakelib.models", name))
        assert ctx.verdict is Verdict.SUSPICIOUS, name
        assert why in ctx.findings[0].message, ctx.findings[0].message
    # Defining __eq__ alone makes a class unhashable: __eq__ never runs on load.
    assert _scan(_newobj("fakelib.models", "Unhashable")).verdict is Verdict.CLEAN
    # A class is not a function: calling even a plain class is a call.
    call = b"\x80\x04" + _s("fakelib.models") + _s("Plain") + b"\x93)R."
    assert _scan(call).verdict is Verdict.MALICIOUS
    # A library function may be referenced; calling it is a call.
    ref = b"\x80\x04" + _s("fakelib.utils") + _s("helper") + b"\x93."
    assert _scan(ref).verdict is Verdict.CLEAN
    assert _scan(ref[:-1] + b"]\x85R.").verdict is Verdict.MALICIOUS


def test_scanned_directories_are_not_library_sources(tmp_path: Path) -> None:
    # A module next to the model (cwd, the scanned repository) is the attacker's.
    (tmp_path / "evilmod.py").write_text("class Plain:\n    pass\n")
    import os

    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        policy.configure(policy.KnowledgePolicy())
        assert _scan(_newobj("evilmod", "Plain")).verdict is Verdict.SUSPICIOUS
    finally:
        os.chdir(old)


def test_policy_admits_classes_by_exact_name_only() -> None:
    policy.configure(policy.KnowledgePolicy(allow_classes=frozenset({"acme.models.Net"})))
    try:
        assert _scan(_newobj("acme.models", "Net")).verdict is Verdict.CLEAN
        assert _scan(_newobj("acme.models", "Net2")).verdict is Verdict.SUSPICIOUS
        call = b"\x80\x04" + _s("acme.models") + _s("Net") + b"\x93)R."
        assert _scan(call).verdict is Verdict.MALICIOUS  # admitted as a class, not a call
    finally:
        policy.configure(policy.KnowledgePolicy())


def test_no_module_prefix_vouches_for_unknown_names() -> None:
    for module, name in (("torch.nn", "definitely_not_a_torch_name"),
                         ("sklearn.utils", "not_a_sklearn_function"),
                         ("transformers", "NotAModel")):
        assert lookup(module, name).safe is None, (module, name)


def test_pure_builtins_and_type_references() -> None:
    assert _scan(pickle.dumps(len, protocol=2)).verdict is Verdict.CLEAN
    call_len = b"\x80\x02cbuiltins\nlen\n]\x85R."  # len([])
    assert _scan(call_len).verdict is Verdict.CLEAN
    import collections.abc

    assert _scan(pickle.dumps(collections.abc.Iterable)).verdict is Verdict.CLEAN
    import __future__

    assert _scan(pickle.dumps(__future__.annotations)).verdict is Verdict.CLEAN
    assert _scan(b"\x80\x02cbuiltins\neval\nX\x01\x00\x00\x001\x85R.").verdict \
        is Verdict.MALICIOUS


def test_partial_only_wraps_until_called() -> None:
    import functools

    import numpy as np

    built = pickle.dumps(functools.partial(np.clip, a_min=0), protocol=4)
    assert _scan(built).verdict is Verdict.CLEAN
    called = (b"\x80\x04" + _s("functools") + _s("partial") + b"\x93" + _s("codecs")
              + _s("open") + b"\x93\x85R" + _s("x") + b"\x85R.")
    assert _scan(called).verdict is Verdict.MALICIOUS


def test_legacy_spellings_from_the_libraries_themselves() -> None:
    # numpy < 1.0, numpy < 1.17, old joblib / Python 2 module paths.
    for data in (
        b"cnumpy.core._internal\n_reconstruct\n(cnumpy\nndarray\n(I0\ntS'b'\ntR.",
        b"\x80\x02cnumpy.random\n__RandomState_ctor\n)R.",
        b"\x80\x02cnumpy.matrixlib.defmatrix\nmatrix\n.",
        b"\x80\x02cnumpy.core.records\nrecord\n.",
        b"\x80\x02cnumpy.core\n_ufunc_reconstruct\nX\x0a\x00\x00\x00numpy.coreX\x03\x00\x00"
        b"\x00add\x86R.",
        b"ccopy_reg\n_reconstructor\n(c__builtin__\nobject\nc__builtin__\nobject\nNtR.",
    ):
        ctx = _scan(data)
        assert ctx.verdict is Verdict.CLEAN, (data, [f.message for f in ctx.findings])
    bad = b"\x80\x02cnumpy.core\n_ufunc_reconstruct\nX\x02\x00\x00\x00osX\x06\x00\x00\x00" \
          b"system\x86R."
    assert _scan(bad).verdict is Verdict.MALICIOUS


def test_embedded_keras_archive_is_judged_as_what_it_contains(tmp_path: Path) -> None:
    import io
    import tarfile

    from mlwarden.scan.engine import ScanOptions, scan_paths

    def tar_with(name: str, data: bytes) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as t:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
        return buf.getvalue()

    loader = b"\x80\x04" + _s("keras.src.saving.pickle_utils") + _s(
        "deserialize_model_from_bytecode") + b"\x93"
    benign = tar_with("model/config.json", b'{"class_name": "Sequential"}')
    evil = tar_with("model/payload.pkl", b"cos\nsystem\n(S'touch x'\ntR.")
    for name, archive, expected in (("ok.pkl", benign, "clean"),
                                    ("evil.pkl", evil, "malicious")):
        p = tmp_path / name
        p.write_bytes(loader + b"B" + len(archive).to_bytes(4, "little") + archive
                      + b"\x85R.")
        report = scan_paths([str(p)], ScanOptions(workers=1, hash="never"))
        assert report.verdict.value == expected, [(f.path, f.findings) for f in report.files]


def test_python2_protocol0_with_escaped_non_ascii(tmp_path: Path) -> None:
    from mlwarden.scan.engine import ScanOptions, scan_paths

    benign = (b"(dp0\nS'name'\np1\nS'caf\\xe9 na\\xefve'\np2\nsS'obj'\np3\n"
              b"ccollections\nOrderedDict\np4\n((lp5\ntRp6\ns.")
    evil = b"(dp0\nS'caf\\xe9'\np1\nS'x'\nsS'run'\ncos\nsystem\n(S'touch x'\ntRs."
    for name, data, expected in (("b.pkl", benign, "clean"), ("e.pkl", evil, "malicious")):
        (tmp_path / name).write_bytes(data)
        report = scan_paths([str(tmp_path / name)], ScanOptions(workers=1, hash="never"))
        assert report.files[0].format == "pickle"
        assert report.verdict.value == expected


def test_a_scan_without_policy_does_not_inherit_the_previous_scans(tmp_path: Path) -> None:
    from mlwarden.scan.engine import ScanOptions, scan_paths

    lib = tmp_path / "lib"
    (lib / "acmelib").mkdir(parents=True)
    (lib / "acmelib" / "__init__.py").write_text("class Plain:\n    pass\n")
    model = tmp_path / "model.pkl"
    model.write_bytes(_newobj("acmelib", "Plain"))
    try:
        with_lib = scan_paths([str(model)], ScanOptions(hash="never",
                                                        source_paths=(str(lib),)))
        assert with_lib.files[0].verdict is Verdict.CLEAN
        again = scan_paths([str(model)], ScanOptions(hash="never"))
        assert again.files[0].verdict is Verdict.SUSPICIOUS
    finally:
        policy.configure(policy.KnowledgePolicy())


# A library that, like gensim 4, assigns a class into another module of its package
# (``keyedvectors.FastTextKeyedVectors = FastTextKeyedVectors`` in ``fasttext.py``) and has
# dropped classes that older versions pickled.
OLDLIB = {
    "oldlib/__init__.py": "__version__ = '4.4.0'\nfrom oldlib import models\n",
    "oldlib/models/__init__.py": "from .vectors import Vectors\nfrom .fast import Fast\n",
    "oldlib/models/vectors.py": """
        class Vectors:
            def __setstate__(self, state):
                self.__dict__.update(state)

        # compatibility alias, allowing older pickles to load
        Vocab = Vectors
        Computed = type("Computed", (), {})
    """,
    "oldlib/models/fast.py": """
        import os
        from oldlib.models import vectors

        class FastVectors(vectors.Vectors):
            pass

        class Loud:
            def __setstate__(self, state):
                os.system(state["cmd"])

        vectors.FastVectors = FastVectors
        vectors.Loud = Loud
        vectors.Runner = os.system

        def later():
            vectors.Maybe = FastVectors
    """,
    "oldlib/models/dynamic.py": """
        def install(name, cls):
            globals()[name] = cls
    """,
    # A separate library whose package puts modules into sys.modules: nothing it lacks is
    # proven absent.
    "hooklib/__init__.py": "import sys\nsys.modules['hooklib.extra'] = sys\n",
    "hooklib/core.py": "class Core:\n    pass\n",
}


@pytest.fixture
def oldlib(tmp_path: Path) -> Iterator[Path]:
    yield from _installed(tmp_path, OLDLIB)


def test_a_class_assigned_into_a_module_from_another_module_is_that_class(
        oldlib: Path) -> None:
    from mlwarden.scan.knowledge import sources

    assert sources.canonical("oldlib.models.vectors", "FastVectors") == \
        "oldlib.models.fast.FastVectors"
    assert _scan(_newobj("oldlib.models.vectors", "FastVectors")).verdict is Verdict.CLEAN
    # What is assigned is judged as what it is: effects stay effects, calls stay calls.
    ctx = _scan(_newobj("oldlib.models.vectors", "Loud"))
    assert ctx.verdict is Verdict.SUSPICIOUS and "os.system" in ctx.findings[0].message
    call = b"\x80\x04" + _s("oldlib.models.vectors") + _s("FastVectors") + b"\x93)R."
    assert _scan(call).verdict is Verdict.MALICIOUS
    # A dangerous callable assigned in is that callable, even only referenced.
    assert lookup("oldlib.models.vectors", "Runner").danger is not None
    ref = b"\x80\x04" + _s("oldlib.models.vectors") + _s("Runner") + b"\x93."
    assert _scan(ref).verdict is Verdict.MALICIOUS
    # Assigned only when a function runs: not a definition, and not proof of absence.
    ctx = _scan(_newobj("oldlib.models.vectors", "Maybe"))
    assert ctx.verdict is Verdict.SUSPICIOUS, ctx.findings
    # A module-level alias of the module itself (a legacy name) keeps working.
    assert _scan(_newobj("oldlib.models.vectors", "Vocab")).verdict is Verdict.CLEAN


def test_names_the_installed_library_does_not_define_are_unscannable(oldlib: Path) -> None:
    from mlwarden.scan.knowledge import undefined

    ctx = _scan(_newobj("oldlib.models.vectors", "DocvecsArray"))
    assert ctx.verdict is Verdict.UNSCANNABLE, ctx.findings
    assert [f.rule for f in ctx.findings] == ["pickle-undefined-global"]
    assert "oldlib 4.4.0 does not define oldlib.models.vectors.DocvecsArray" in \
        ctx.findings[0].message
    # A module the package no longer has.
    ctx = _scan(_newobj("oldlib.models.wrappers.fasttext", "FastText"))
    assert ctx.verdict is Verdict.UNSCANNABLE, ctx.findings
    assert "has no module oldlib.models.wrappers" in ctx.findings[0].message
    # Calling an undefined name is still a call of an unknown callable.
    call = b"\x80\x04" + _s("oldlib.models.vectors") + _s("DocvecsArray") + b"\x93)R."
    assert _scan(call).verdict is Verdict.MALICIOUS
    # Never by guesswork: a name bound by any statement (even one not followed), a module
    # that binds names dynamically, a package that edits sys.modules, a library that is
    # not installed: not proven absent, so suspicious as before.
    assert undefined("oldlib.models.vectors", "Computed") is None
    assert undefined("oldlib.models.dynamic", "Anything") is None
    assert undefined("hooklib.core", "Gone") is None
    assert undefined("hooklib.extra", "Gone") is None
    assert undefined("notinstalledlib.models", "Gone") is None
    for mod, name in (("oldlib.models.dynamic", "Anything"), ("hooklib.core", "Gone"),
                      ("notinstalledlib.models", "Gone")):
        assert _scan(_newobj(mod, name)).verdict is Verdict.SUSPICIOUS, (mod, name)
    # A compiled submodule could be what the name is.
    (oldlib / "oldlib" / "models" / "native.cpython-311-x86_64-linux-gnu.so").write_bytes(b"")
    policy.configure(policy.KnowledgePolicy(source_roots=(str(oldlib),)))
    assert undefined("oldlib.models.native", "Thing") is None
    assert undefined("oldlib.models", "native") is None
