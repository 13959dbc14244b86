"""Entry points: what runs when Python code is installed, started, imported or loaded,
as (scope key -> why) roots of the call graph.

- remote code: construction methods of the classes ``from_pretrained`` instantiates, and
  hubconf.py's public callables (``torch.hub.load``);
- setup.py: the whole module, and the methods of the command classes pip's install runs
  (``cmdclass`` values and subclasses of setuptools/distutils commands);
- in-tree build backends: the PEP 517 hooks pip calls.
"""

from __future__ import annotations

import ast
import re

from mlwarden.behaviour.resolve import Resolver

# Bases whose subclasses loaders instantiate: from_pretrained builds the config, the model
# (whose __init__ builds its nn.Module parts and calls post_init -> _init_weights), the
# tokenizer, processor or pipeline. Matched on the last part of the qualified name.
LOADED_BASES = frozenset({
    "PreTrainedModel", "PretrainedConfig", "PreTrainedConfig", "PreTrainedTokenizer",
    "PreTrainedTokenizerFast", "PreTrainedTokenizerBase", "TokenizersBackend", "PythonBackend",
    "SentencePieceBackend", "ProcessorMixin", "BaseImageProcessor", "BaseImageProcessorFast",
    "ImageProcessingMixin", "FeatureExtractionMixin", "SequenceFeatureExtractor",
    "BaseVideoProcessor", "Pipeline", "DiffusionPipeline", "ModelMixin", "ConfigMixin",
    "SchedulerMixin", "FlaxPreTrainedModel", "TFPreTrainedModel",
})
NN_MODULE = frozenset({"torch.nn.Module", "torch.nn.modules.module.Module"})
# Methods that run while an instance is loaded and built (transformers calls post_init ->
# init_weights -> _initialize_weights -> _init_weights, and tie_weights).
LOAD_METHODS = (
    "__init__", "__new__", "__post_init__", "__setattr__", "__getattr__", "post_init",
    "_init_weights", "init_weights", "_initialize_weights", "tie_weights", "_tie_weights",
    "from_pretrained", "_from_config", "from_dict", "get_config_dict",
)
MAX_INHERITED = 50  # bases in sibling modules one load_time_findings call hands back


def is_hubconf(display_path: str) -> bool:
    """torch.hub.load imports ``hubconf.py`` at the repository root (also in archives)."""
    return re.split(r"[/\\!]", display_path)[-1] == "hubconf.py"


def classes_of(tree: ast.Module) -> dict[str, ast.ClassDef]:
    return {s.name: s for s in tree.body if isinstance(s, ast.ClassDef)}


def ancestors(classes: dict[str, ast.ClassDef], name: str) -> list[str]:
    """``name`` and its same-file base classes, transitively (super().__init__ runs them)."""
    out: list[str] = []
    stack = [name]
    while stack:
        n = stack.pop()
        if n in out or n not in classes:
            continue
        out.append(n)
        stack.extend(b.id for b in classes[n].bases if isinstance(b, ast.Name))
    return out


def _why_loaded(classes: dict[str, ast.ClassDef], name: str, resolver: Resolver) -> str | None:
    for anc in ancestors(classes, name):
        for base in classes[anc].bases:
            q = resolver.qualify(base)
            if q is None:
                continue
            if q.rsplit(".", 1)[-1] in LOADED_BASES:
                return f"from_pretrained instantiates {name}"
            if q in NN_MODULE:
                return f"the model builds {name} (an nn.Module)"
    return None


def load_roots(tree: ast.Module, resolver: Resolver, hubconf: bool) -> dict[str, str]:
    """Load-time entry points one file shows on its own: construction methods of classes
    deriving from loaded bases (and of their same-file ancestors), and, in hubconf.py, the
    public top-level functions and classes torch.hub.load calls."""
    classes = classes_of(tree)
    roots: dict[str, str] = {}
    for name in classes:
        why = _why_loaded(classes, name, resolver)
        if why is not None:
            add_class_roots(classes, name, why, roots)
    if hubconf:
        for stmt in tree.body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) \
                    and not stmt.name.startswith("_"):
                roots.setdefault(stmt.name, f"torch.hub.load calls the entry point {stmt.name}")
            elif isinstance(stmt, ast.ClassDef) and not stmt.name.startswith("_"):
                add_class_roots(classes, stmt.name,
                                 f"torch.hub.load calls the entry point {stmt.name}", roots)
    return roots


def add_class_roots(classes: dict[str, ast.ClassDef], name: str, why: str,
                     roots: dict[str, str]) -> None:
    for anc in ancestors(classes, name):
        for m in LOAD_METHODS:
            roots.setdefault(f"{anc}.{m}", why)



# Commands pip runs when it builds and installs from source (setup.py egg_info/dist_info,
# bdist_wheel -> build -> build_py/build_ext/..., install*, develop/editable_wheel).
INSTALL_COMMANDS = frozenset({
    "egg_info", "dist_info", "build", "build_py", "build_ext", "build_clib", "build_scripts",
    "bdist_wheel", "bdist_egg", "install", "install_lib", "install_headers",
    "install_scripts", "install_data", "install_egg_info", "develop", "editable_wheel",
    "sdist", "build_src", "config", "bdist",
})
COMMAND_METHODS = ("run", "initialize_options", "finalize_options", "__init__",
                   "get_outputs", "get_source_files", "build_extension", "build_extensions",
                   "copy_extensions_to_source", "build_module", "build_modules",
                   "build_packages", "find_data_files", "get_ext_filename", "get_requires",
                   "run_command", "make_distribution", "make_release_tree", "byte_compile",
                   "install_wrapper_scripts", "write_wheelfile", "__getattr__")
_SETUPTOOLS_COMMAND = re.compile(
    r"^(setuptools|distutils|setuptools\._distutils|wheel|Cython|numpy\.distutils|pybind11)"
    r"(\.[\w.]*)?\.(" + "|".join(sorted(INSTALL_COMMANDS)) + r"|Command|bdist_wheel|"
    r"build_ext|BuildExtension|Pybind11Extension)$")
BACKEND_HOOKS = ("build_wheel", "build_sdist", "build_editable", "prepare_metadata_for_build_wheel",
                 "prepare_metadata_for_build_editable", "get_requires_for_build_wheel",
                 "get_requires_for_build_sdist", "get_requires_for_build_editable")


def install_roots(tree: ast.Module, resolver: Resolver) -> dict[str, str]:
    """setup.py: methods of the command classes that ``pip install`` runs. A class named
    in ``cmdclass`` under a maintainer's command (upload, release, test ...) is not run on
    install; its code is judged like any function."""
    classes = classes_of(tree)
    roots: dict[str, str] = {}
    named: dict[str, str] = {}  # class -> command it is registered for
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "cmdclass":
            value = node.value
            if isinstance(value, ast.Name):  # cmdclass=cmds with cmds = {...}
                found, bound = resolver.lookup(value.id, None)
                value = bound if found and bound is not None else value
            if isinstance(value, ast.Dict):
                for k, v in zip(value.keys, value.values, strict=True):
                    if isinstance(k, ast.Constant) and isinstance(v, ast.Name):
                        named[v.id] = str(k.value)
            elif isinstance(value, ast.Call):
                for kw in value.keywords:
                    if kw.arg and isinstance(kw.value, ast.Name):
                        named[kw.value.id] = kw.arg
    for name in classes:
        command = named.get(name)
        if command is not None and command not in INSTALL_COMMANDS:
            continue  # setup.py upload/release/test: a maintainer's command
        why = None
        if command is not None:
            why = f"pip install runs the '{command}' command ({name})"
        else:
            for anc in ancestors(classes, name):
                for base in classes[anc].bases:
                    q = resolver.qualify(base)
                    if q is not None and _SETUPTOOLS_COMMAND.match(q):
                        why = f"{name} extends the setuptools command {q}"
                        break
                if why:
                    break
        if why is None:
            continue
        for anc in ancestors(classes, name):
            for m in COMMAND_METHODS:
                roots.setdefault(f"{anc}.{m}", why)
    return roots


def backend_roots(tree: ast.Module) -> dict[str, str]:
    """An in-tree PEP 517 backend: the hooks pip calls."""
    names = {s.name for s in tree.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))}
    return {h: f"pip calls the build backend hook {h}" for h in BACKEND_HOOKS if h in names}
