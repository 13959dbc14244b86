"""Dangerous callables: (reason, reference) per exact name, and per module prefix.

A module entry matches the module and every submodule (CVE-2025-10157: exact module
matching let ``asyncio.unix_events`` through). Names are canonical ``module.qualname``.
"""

from __future__ import annotations

from typing import NamedTuple


# A NamedTuple, not a dataclass: as immutable, and cheaper to build at import.
class Danger(NamedTuple):
    # exec | process | import | file | network | gadget | code | nested-pickle | torch
    category: str
    reason: str
    ref: str


def _d(category: str, reason: str, ref: str) -> Danger:
    return Danger(category, reason, ref)


_LANDSCAPE = "scanner-landscape.md: denylist gaps"
_PICKLE_DOCS = "https://docs.python.org/3/library/pickle.html#restricting-globals"

EXEC = _d("exec", "evaluates or executes Python code", _PICKLE_DOCS)
PROCESS = _d("process", "spawns processes or runs shell commands", _PICKLE_DOCS)
IMPORT = _d("import",
            "imports arbitrary modules or resolves arbitrary names (defeats any denylist)",
            "GHSA-vvpj-8cmc-gx39")
FILE = _d("file", "reads, writes or deletes files", _LANDSCAPE)
NET = _d("network", "opens network connections or URLs", _LANDSCAPE)
GADGET = _d("gadget", "calls or fetches other objects indirectly (operator/functools gadget)",
            _LANDSCAPE)
CODE = _d("code", "builds code or function objects from data", _LANDSCAPE)
NESTED = _d("nested-pickle", "deserialises a nested pickle or checkpoint", _LANDSCAPE)
DEBUG = _d("exec", "runs code under a debugger, profiler or test helper", _LANDSCAPE)
INTROSPECT = _d("import", "reaches interpreter internals (sys.modules, frames, subclasses)",
                _LANDSCAPE)
TORCH = _d("torch", "torch API that loads, compiles or runs code", _LANDSCAPE)
SIDE_EFFECT_IMPORT = _d("exec", "importing this module runs a program", _LANDSCAPE)

# Whole modules (and all their submodules).
MODULES: dict[str, Danger] = {
    "os": PROCESS, "posix": PROCESS, "nt": PROCESS, "subprocess": PROCESS,
    "_posixsubprocess": PROCESS, "_winapi": PROCESS, "pty": _d(
        "process", "pty.spawn runs a program", "CVE-2025-71322"),
    "platform": PROCESS, "commands": PROCESS, "popen2": PROCESS,
    "multiprocessing": _d("process", "spawns processes (multiprocessing.util.spawnv_passfds)",
                          _LANDSCAPE),
    "concurrent": PROCESS, "asyncio": _d(
        "process", "asyncio submodules spawn processes (_UnixSubprocessTransport._start)",
        "CVE-2025-10157"),
    "threading": PROCESS, "_thread": PROCESS, "signal": PROCESS,
    "sys": INTROSPECT, "gc": INTROSPECT, "inspect": INTROSPECT, "ctypes": _d(
        "process", "loads native libraries (ctypes.CDLL)", _LANDSCAPE),
    "_ctypes": PROCESS, "cffi": PROCESS,
    "importlib": IMPORT, "imp": IMPORT, "_imp": IMPORT, "pkgutil": IMPORT, "zipimport": IMPORT,
    "modulefinder": IMPORT, "runpy": _d("exec", "runpy._run_code executes code", _LANDSCAPE),
    "_frozen_importlib": IMPORT, "_frozen_importlib_external": IMPORT, "site": IMPORT,
    "pydoc": _d("import", "pydoc.locate imports by name; pydoc.pipepager runs a command",
                "CVE-2025-71320"),
    "code": _d("exec", "code.InteractiveInterpreter.runcode executes code", _LANDSCAPE),
    "codeop": EXEC, "compileall": EXEC, "py_compile": EXEC,
    "marshal": _d("code", "marshal.loads builds code objects", _LANDSCAPE),
    "pdb": DEBUG, "bdb": DEBUG, "profile": DEBUG, "cProfile": DEBUG, "trace": _d(
        "exec", "trace.Trace.run/runctx executes code", "CVE-2025-71352"),
    "timeit": _d("exec", "timeit.timeit executes code strings", "CVE-2025-71351"),
    "doctest": DEBUG, "idlelib": DEBUG, "lib2to3": DEBUG, "unittest": DEBUG,
    "test.support": DEBUG, "_testcapi": DEBUG, "_testinternalcapi": DEBUG,
    "_interpreters": EXEC, "_xxsubinterpreters": EXEC, "_pyrepl": PROCESS,
    "_osx_support": PROCESS, "_aix_support": PROCESS,
    "ensurepip": _d("process", "ensurepip._run_pip runs pip", _LANDSCAPE),
    "pip": _d("process", "pip.main installs and runs arbitrary packages", "CVE-2025-1716"),
    "setuptools": PROCESS, "distutils": FILE, "_distutils_hack": IMPORT, "pkg_resources": IMPORT,
    "venv": _d("process", "venv.create runs pip in a new environment", _LANDSCAPE),
    "webbrowser": _d("process", "webbrowser.open launches a browser", _LANDSCAPE),
    "antigravity": SIDE_EFFECT_IMPORT, "this": SIDE_EFFECT_IMPORT, "turtledemo": SIDE_EFFECT_IMPORT,
    "shutil": FILE, "tempfile": FILE, "io": FILE, "_io": _d("file", "_io.FileIO opens files",
                                                          _LANDSCAPE),
    "fileinput": FILE, "mmap": FILE, "glob": FILE, "tarfile": FILE,
    "zipfile": FILE, "zipapp": FILE, "shelve": NESTED, "dbm": FILE, "sqlite3": FILE,
    "socket": NET, "_socket": NET, "ssl": NET, "socketserver": NET, "http": NET, "urllib": NET,
    "urllib3": NET, "requests": NET, "httpx": NET, "aiohttp": NET, "ftplib": NET,
    "smtplib": _d("network", "smtplib.SMTP connects to a mail server", _LANDSCAPE),
    "imaplib": _d("process", "imaplib.IMAP4_stream runs a command", _LANDSCAPE),
    "poplib": NET, "nntplib": NET, "telnetlib": NET, "xmlrpc": NET, "wsgiref": NET,
    "pickle": NESTED, "_pickle": NESTED, "cPickle": NESTED, "pickletools": NESTED,
    "copy_reg": GADGET,
    "operator": GADGET, "_operator": GADGET, "functools": GADGET, "_functools": GADGET,
    "logging.config": _d("exec", "logging.config.listen/fileConfig import and run code",
                         _LANDSCAPE),
    "logging.handlers": NET,
    "numpy.testing": _d("exec", "numpy.testing._private.utils.runstring executes code",
                        _LANDSCAPE),
    "numpy.f2py": PROCESS, "numpy.distutils": PROCESS, "numpy.ctypeslib": PROCESS,
    "numpy.lib._datasource": NET, "pandas.io": FILE, "IPython": EXEC,
    "torch.hub": _d("torch", "torch.hub.load downloads and runs repository code", _LANDSCAPE),
    "torch._inductor": _d("torch", "torch._inductor.codecache.compile_file compiles and loads code",
                          _LANDSCAPE),
    "torch._dynamo": _d("torch", "torch._dynamo guards evaluate code strings", _LANDSCAPE),
    "torch.utils.collect_env": _d("torch", "torch.utils.collect_env.run runs a shell command",
                                  _LANDSCAPE),
    "torch.utils.bottleneck": _d("torch", "torch.utils.bottleneck profiles (runs) scripts",
                                 _LANDSCAPE),
    "torch.utils.cpp_extension": _d("torch", "compiles and loads native extensions", _LANDSCAPE),
    "torch.utils._config_module": _d("torch", "ConfigModule.load_config unpickles/execs config",
                                     _LANDSCAPE),
    "torch.package": _d("torch", "torch.package imports code shipped in the package",
                        _LANDSCAPE),
    "torch.distributed": _d("torch", "torch.distributed.rpc runs remote functions",
                            "CVE-2024-5480"),
    "torch.ops": TORCH, "torch._ops": TORCH, "torch.library": TORCH, "torch.classes": TORCH,
    "mlflow.projects": _d("process", "mlflow entry-point runners (seen in Hub malware)",
                          _LANDSCAPE),
    "mlflow.utils.process": PROCESS, "mlflow.pyfunc.backend": PROCESS,
    "transformers.dynamic_module_utils": _d("import", "downloads and imports remote code",
                                            "https://huggingface.co/docs/transformers/custom_models"),
}

# Exact callables (canonical module.qualname).
NAMES: dict[str, Danger] = {
    "builtins.eval": EXEC, "builtins.exec": EXEC, "builtins.compile": EXEC,
    "builtins.execfile": EXEC, "builtins.open": FILE, "builtins.file": FILE,
    "builtins.__import__": IMPORT, "builtins.getattr": IMPORT, "builtins.setattr": INTROSPECT,
    "builtins.delattr": INTROSPECT, "builtins.globals": INTROSPECT, "builtins.locals": INTROSPECT,
    "builtins.vars": INTROSPECT, "builtins.input": EXEC, "builtins.breakpoint": DEBUG,
    "builtins.help": DEBUG, "builtins.exit": EXEC, "builtins.quit": EXEC,
    "builtins.__build_class__": CODE, "builtins.map": GADGET, "builtins.filter": GADGET,
    "builtins.apply": GADGET, "builtins.reload": IMPORT, "builtins.memoryview": GADGET,
    "builtins.type": CODE, "builtins.super": INTROSPECT,
    "builtins.object.__subclasses__": INTROSPECT,
    "types.CodeType": CODE, "types.FunctionType": CODE, "types.LambdaType": CODE,
    "types.MethodType": CODE, "types.ModuleType": CODE, "types.new_class": CODE,
    "copyreg.add_extension": GADGET, "copyreg.pickle": GADGET, "copyreg.constructor": GADGET,
    "copyreg._reduce_ex": GADGET,
    "pkgutil.resolve_name": _d("import", "pkgutil.resolve_name('os:system') resolves any name",
                               "GHSA-vvpj-8cmc-gx39"),
    "uuid._get_command_stdout": PROCESS, "logging.FileHandler": FILE,
    "logging.basicConfig": FILE, "logging.StreamHandler": FILE,
    "numpy.load": NESTED, "numpy.loads": NESTED, "numpy.lib.npyio.load": NESTED,
    "numpy.lib.format.read_array": NESTED, "numpy.lib._npyio_impl.load": NESTED,
    "numpy.fromfile": FILE, "numpy.loadtxt": NET, "numpy.genfromtxt": NET, "numpy.memmap": FILE,
    "numpy.save": FILE, "numpy.savez": FILE, "numpy.savetxt": FILE, "numpy.DataSource": NET,
    "numpy.core.numeric.loads": NESTED,
    "pandas.read_csv": NET, "pandas.read_pickle": NESTED, "pandas.read_json": NET,
    "pandas.read_html": NET, "pandas.read_excel": NET, "pandas.read_sql": NET,
    "pandas.read_table": NET, "pandas.read_parquet": NET, "pandas.read_feather": NET,
    "pandas.read_hdf": FILE, "pandas.read_xml": NET, "pandas.read_fwf": NET, "pandas.eval": EXEC,
    "joblib.load": NESTED, "joblib.numpy_pickle.load": NESTED, "joblib.Parallel": PROCESS,
    "dill.load": NESTED, "dill.loads": NESTED, "dill._dill.load": NESTED,
    "dill._dill.loads": NESTED, "dill._dill._create_function": CODE,
    "dill._dill._create_code": CODE, "dill._dill._import_module": IMPORT,
    "dill._dill._get_attr": IMPORT, "dill._dill._eval_repr": EXEC,
    "dill._dill._create_filehandle": FILE, "dill._dill._create_type": CODE,
    "cloudpickle.load": NESTED, "cloudpickle.loads": NESTED,
    "cloudpickle.cloudpickle._make_function": _d("code", "rebuilds a function from bytecode",
                                                 _LANDSCAPE),
    "cloudpickle.cloudpickle.subimport": IMPORT,
    "cloudpickle.cloudpickle.dynamic_subimport": IMPORT,
    "cloudpickle.cloudpickle._make_skeleton_class": CODE,
    "cloudpickle.cloudpickle._make_skeleton_enum": CODE,
    "cloudpickle.cloudpickle._function_setstate": CODE,
    "torch.load": NESTED, "torch.serialization.load": _d(
        "torch", "torch.serialization.load loads a nested checkpoint", _LANDSCAPE),
    "torch.serialization._load": NESTED, "torch.serialization._legacy_load": NESTED,
    "torch.save": FILE, "torch.serialization.save": FILE,
    "torch.jit.load": _d("torch", "torch.jit.load loads TorchScript code", _LANDSCAPE),
    "torch.jit._serialization.load": TORCH, "torch.jit.CompilationUnit": TORCH,
    "torch.jit._script.CompilationUnit": TORCH, "torch._C.CompilationUnit": TORCH,
    "torch._C.import_ir_module": TORCH, "torch.jit.frontend.get_jit_def": TORCH,
    "torch.jit.annotations.parse_type_line": _d("torch", "uses eval", "CVE-2022-45907"),
    "torch._dynamo.guards.GuardBuilder.get": TORCH,
    "torch.fx.experimental.symbolic_shapes.ShapeEnv.evaluate_guards_expression": TORCH,
    "torch.fx.graph_module.reduce_graph_module": _d(
        "torch", "re-executes pickled GraphModule source code", _LANDSCAPE),
    "torch.fx.graph_module.reduce_package_graph_module": TORCH,
    "torch.fx.graph_module._deserialize_graph_module": TORCH,
    "torch.utils.data.datapipes.utils.decoder.basichandlers": NESTED,
    "tensorflow.io.read_file": FILE, "tensorflow.io.write_file": FILE,
    "keras.models.load_model": NESTED, "tensorflow.keras.models.load_model": NESTED,
    "jinja2.Template": EXEC, "jinja2.Environment": EXEC,
    "transformers.pipeline": NET, "transformers.pipelines.pipeline": NET,
}

# Callables that deserialise their (first) argument: constant bytes there are scanned too.
NESTED_PICKLE_LOADERS = frozenset({
    "pickle.loads", "_pickle.loads", "pickle._loads", "cPickle.loads", "dill.loads",
    "dill._dill.loads", "cloudpickle.loads", "numpy.loads", "numpy.core.numeric.loads",
    "torch.storage._load_from_bytes",
})

# Names whose result is another global chosen by a constant argument: the result is
# classified as that global (so ``getattr(builtins, 'eval')`` is ``builtins.eval``).
RESOLVERS = frozenset({
    "builtins.getattr", "dill._dill._load_type", "dill._dill._get_attr",
    "cloudpickle.cloudpickle._builtin_type",
})


def find(module: str, qualname: str) -> Danger | None:
    """The danger of ``module.qualname``: exact name first, then module prefixes."""
    full = f"{module}.{qualname}"
    hit = NAMES.get(full)
    if hit is not None:
        return hit
    parts = full.split(".")
    # Longest module prefix first, so a specific entry wins over its parent.
    for i in range(len(parts) - 1, 0, -1):
        hit = MODULES.get(".".join(parts[:i]))
        if hit is not None:
            return hit
    return None
