"""Callables that ordinary model files need, with the uses in which each is safe.

Uses: ``REF`` (only referenced, e.g. a class passed as an argument), ``NEW`` (an instance is
reconstructed: NEWOBJ/NEWOBJ_EX, copyreg.__newobj__/_reconstructor, then BUILD state), and
``CALL`` (invoked with arguments by REDUCE/OBJ/INST). A prefix entry covers single-component
qualnames in a module and its submodules (classes, never ``Class.method`` paths).
"""

from __future__ import annotations

from typing import NamedTuple

R, N, C, S, IT = 1, 2, 4, 8, 16  # bit set of allowed uses (see Use in lookup)
RN = R | N | S | IT  # hand-vetted classes: slot-state BUILD and item opcodes are fine too
RNC = R | N | C | S | IT


# A NamedTuple, not a dataclass: the record is as immutable and costs a quarter of the
# class-building time at import (the knowledge base loads for every pickle scan).
class Safe(NamedTuple):
    uses: int
    note: str
    invokes: tuple[int, ...] = ()  # argument positions that the callable calls
    constructs: tuple[int, ...] = ()  # argument positions that it instantiates without __init__


def _s(uses: int, note: str, invokes: tuple[int, ...] = (),
       constructs: tuple[int, ...] = ()) -> Safe:
    return Safe(uses, note, invokes, constructs)


_BUILTIN = _s(RNC, "builtin value type")
_TORCH_REBUILD = _s(RNC, "torch tensor/storage rebuilder")
_TORCH_TYPE = _s(RNC, "torch storage/dtype/device type")
_NUMPY = _s(RNC, "numpy array/dtype/scalar reconstruction")
_NUMPY_RANDOM = _s(RNC, "numpy random state reconstruction")
_STDLIB_VALUE = _s(RNC, "standard-library value type")

NAMES: dict[str, Safe] = {
    # Pickle's own reconstruction helpers.
    "copyreg._reconstructor": _s(C, "protocol 0/1 object reconstruction (base.__init__ "
                                    "runs unless base is object)", invokes=(1,),
                                 constructs=(0,)),
    "copyreg.__newobj__": _s(C, "protocol 2 object reconstruction", constructs=(0,)),
    "copyreg.__newobj_ex__": _s(C, "protocol 2+ object reconstruction", constructs=(0,)),
    "copyreg._reconstructor.__self__": _s(R, "reconstruction helper"),
    # Builtins.
    **{f"builtins.{n}": _BUILTIN for n in (
        "set", "frozenset", "bytearray", "bytes", "complex", "slice", "range", "list", "dict",
        "tuple", "str", "int", "float", "bool", "object", "Ellipsis", "NotImplemented",
        "reversed", "enumerate", "property", "staticmethod", "classmethod")},
    # Pure builtins and type references: calling them computes a value (len([]), hash(x))
    # or names a type; what runs is at most a dunder of an argument that is itself judged
    # where it is reconstructed.
    **{f"builtins.{n}": _s(RNC, "pure builtin") for n in (
        "len", "abs", "min", "max", "sum", "round", "divmod", "pow", "hash", "sorted", "ord",
        "chr", "bin", "hex", "oct", "all", "any", "isinstance", "issubclass", "callable",
        "format", "ascii", "repr", "zip", "iter", "id")},
    **{f"builtins.{n}": _s(R, "exception type (referenced)") for n in (
        "Exception", "BaseException", "ValueError", "TypeError", "KeyError", "IndexError",
        "RuntimeError", "AttributeError", "NotImplementedError", "Warning", "UserWarning",
        "DeprecationWarning", "FutureWarning", "StopIteration", "ArithmeticError")},
    **{f"collections.abc.{n}": _s(R, "abstract base class (type reference)") for n in (
        "Iterable", "Iterator", "Mapping", "MutableMapping", "Sequence", "MutableSequence",
        "Set", "MutableSet", "Callable", "Hashable", "Sized", "Container", "Collection",
        "Generator", "Awaitable", "Coroutine", "AsyncIterable", "AsyncIterator", "Reversible",
        "ByteString", "KeysView", "ItemsView", "ValuesView", "MappingView", "Buffer")},
    **{f"__future__.{n}": _s(R, "__future__ feature (a constant)") for n in (
        "annotations", "division", "print_function", "absolute_import", "unicode_literals",
        "generator_stop", "nested_scopes", "generators", "with_statement")},
    **{f"typing.{n}": _s(R, "typing construct (type reference)") for n in (
        "Any", "Optional", "Union", "List", "Dict", "Tuple", "Set", "Callable", "Iterable",
        "Sequence", "Mapping", "Type", "TypeVar", "Generic", "Literal", "ClassVar", "Final")},
    # Standard-library value types.
    **{f"collections.{n}": _STDLIB_VALUE for n in (
        "OrderedDict", "deque", "Counter", "ChainMap", "UserDict", "UserList")},
    "collections.defaultdict": _s(RNC, "dict with a default factory (called on misses)",
                                  invokes=(0,)),
    **{f"datetime.{n}": _STDLIB_VALUE for n in (
        "datetime", "date", "time", "timedelta", "timezone", "tzinfo")},
    "decimal.Decimal": _STDLIB_VALUE, "fractions.Fraction": _STDLIB_VALUE,
    "uuid.UUID": _STDLIB_VALUE, "uuid.SafeUUID": _STDLIB_VALUE,
    **{f"types.{n}": _STDLIB_VALUE for n in (
        "NoneType", "EllipsisType", "NotImplementedType", "SimpleNamespace")},
    "argparse.Namespace": _STDLIB_VALUE, "types.SimpleNamespace": _STDLIB_VALUE,
    "re._compile": _s(RNC, "compiled regular expression"),
    "pathlib.PosixPath": _STDLIB_VALUE, "pathlib.WindowsPath": _STDLIB_VALUE,
    "pathlib.PurePosixPath": _STDLIB_VALUE, "pathlib.PureWindowsPath": _STDLIB_VALUE,
    "pathlib.Path": _STDLIB_VALUE, "enum.Enum": _s(R, "enum base"),
    "logging.getLogger": _s(RNC, "loggers pickle by name"),
    "zoneinfo.ZoneInfo": _STDLIB_VALUE, "zoneinfo.ZoneInfo._unpickle": _STDLIB_VALUE,
    "array.array": _STDLIB_VALUE, "array._array_reconstructor": _STDLIB_VALUE,
    # A partial only wraps its target; calling the partial calls the target, which the
    # interpreter then judges as called (BUILD state may swap the target: followed too).
    "functools.partial": _s(RNC, "callable wrapper (its target is judged where called)"),
    "_functools.partial": _s(RNC, "callable wrapper (its target is judged where called)"),
    "_codecs.encode": _s(RNC, "protocol 0-2 bytes are pickled as codecs.encode(str, 'latin1')"),
    "codecs.encode": _s(RNC, "protocol 0-2 bytes"),
    # numpy.
    **{f"{m}._reconstruct": _s(RNC, "numpy array reconstruction", constructs=(0,))
       for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{f"{m}.scalar": _NUMPY for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{f"{m}._frombuffer": _NUMPY for m in ("numpy.core.numeric", "numpy._core.numeric")},
    "numpy.ndarray": _NUMPY, "numpy.dtype": _NUMPY, "numpy.matrix": _NUMPY,
    "numpy.ma.core._mareconstruct": _s(RNC, "numpy masked array", constructs=(0, 1)),
    "numpy.ma.core.MaskedArray": _NUMPY,
    "numpy.core.records.recarray": _NUMPY, "numpy.record": _NUMPY,
    "numpy.rec.recarray": _NUMPY, "numpy.recarray": _NUMPY,
    "numpy._core.records.recarray": _NUMPY, "numpy.ma.core.mvoid": _NUMPY,
    **{f"numpy.{n}": _NUMPY for n in (
        "bool_", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
        "float16", "float32", "float64", "longdouble", "complex64", "complex128", "str_",
        "bytes_", "object_", "void", "datetime64", "timedelta64", "intc", "uintc", "intp",
        "uintp", "longlong", "ulonglong", "half", "single", "double", "clongdouble")},
    # Each calls a callable it is given (bit_generator_ctor; a class for the bit generator).
    "numpy.random._pickle.__randomstate_ctor": _s(C, "numpy RandomState", invokes=(1,)),
    "numpy.random._pickle.__generator_ctor": _s(C, "numpy Generator", invokes=(1,)),
    "numpy.random._pickle.__bit_generator_ctor": _s(C, "numpy bit generator", invokes=(0,)),
    **{n: _NUMPY_RANDOM for n in (
        "numpy.random._mt19937.MT19937", "numpy.random._pcg64.PCG64",
        "numpy.random._pcg64.PCG64DXSM", "numpy.random._philox.Philox",
        "numpy.random._sfc64.SFC64", "numpy.random.mtrand.RandomState",
        "numpy.random._generator.Generator", "numpy.random.bit_generator.SeedSequence",
        "numpy.random.bit_generator.__pyx_unpickle_SeedSequence")},
    # PyTorch.
    **{f"torch._utils.{n}": _TORCH_REBUILD for n in (
        "_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3", "_rebuild_parameter",
        "_rebuild_parameter_with_state", "_rebuild_qtensor", "_rebuild_sparse_tensor",
        "_rebuild_sparse_csr_tensor", "_rebuild_nested_tensor",
        "_rebuild_device_tensor_from_numpy", "_rebuild_device_tensor_from_cpu_tensor",
        "_rebuild_meta_tensor_no_storage", "_rebuild_xla_tensor",
        "_rebuild_mtia_tensor", "_set_obj_state")},
    "torch._utils._rebuild_wrapper_subclass": _s(RNC, "tensor wrapper subclass",
                                                 constructs=(0,)),
    "torch._tensor._rebuild_from_type": _s(C, "tensor subclass rebuild (calls its func)",
                                           invokes=(0,), constructs=(1,)),
    "torch._tensor._rebuild_from_type_v2": _s(C, "tensor subclass rebuild (calls its func)",
                                              invokes=(0,), constructs=(1,)),
    "torch.storage._load_from_bytes": _s(C, "storage pickled with plain pickle: a nested "
                                            "checkpoint, scanned as its own entry"),
    "torch.serialization._get_layout": _TORCH_REBUILD,
    "torch.device": _TORCH_TYPE, "torch.Size": _TORCH_TYPE, "torch.dtype": _TORCH_TYPE,
    "torch.Tensor": _TORCH_TYPE, "torch._tensor.Tensor": _TORCH_TYPE,
    "torch.nn.parameter.Parameter": _TORCH_TYPE, "torch.nn.parameter.Buffer": _TORCH_TYPE,
    "torch.nn.parameter.UninitializedParameter": _TORCH_TYPE,
    "torch.storage.UntypedStorage": _TORCH_TYPE, "torch.storage.TypedStorage": _TORCH_TYPE,
    "torch.UntypedStorage": _TORCH_TYPE, "torch.TypedStorage": _TORCH_TYPE,
    "torch.return_types": _TORCH_TYPE,
    **{f"torch.{n}Storage": _TORCH_TYPE for n in (
        "Float", "Double", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte", "Bool",
        "ComplexFloat", "ComplexDouble", "QInt8", "QUInt8", "QInt32", "QUInt4x2", "QUInt2x4")},
    **{f"torch.{n}Tensor": _TORCH_TYPE for n in (
        "Float", "Double", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte", "Bool")},
    **{f"torch.{n}": _TORCH_TYPE for n in (
        "float32", "float", "float64", "double", "float16", "half", "bfloat16", "complex32",
        "complex64", "complex128", "cfloat", "cdouble", "uint8", "uint16", "uint32", "uint64",
        "int8", "int16", "short", "int32", "int", "int64", "long", "bool", "qint8", "quint8",
        "qint32", "quint4x2", "quint2x4", "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz",
        "float8_e5m2fnuz", "strided", "sparse_coo", "sparse_csr", "sparse_csc", "sparse_bsr",
        "sparse_bsc", "_mkldnn", "contiguous_format", "channels_last", "channels_last_3d",
        "preserve_format", "per_tensor_affine", "per_channel_affine",
        "per_tensor_symmetric", "per_channel_symmetric", "per_channel_affine_float_qparams")},
    **{f"torch.jit._pickle.{n}": _s(C, "TorchScript constant builder") for n in (
        "build_intlist", "build_tensorlist", "build_doublelist", "build_boollist",
        "build_tensor_from_id", "restore_type_tag")},
    # sklearn / joblib / scipy.
    "sklearn.tree._tree.Tree": _s(RNC, "sklearn tree structure (Cython __reduce__)"),
    "sklearn.neighbors._kd_tree.newObj": _s(C, "sklearn KD tree (Cython __reduce__)",
                                            constructs=(0,)),
    "sklearn.neighbors._ball_tree.newObj": _s(C, "sklearn ball tree (Cython __reduce__)",
                                              constructs=(0,)),
    "sklearn.metrics._dist_metrics.newObj": _s(C, "sklearn distance metric", constructs=(0,)),
    "sklearn._loss._loss.__pyx_unpickle_CyHalfBinomialLoss": _s(C, "sklearn loss"),
    "joblib.numpy_pickle.NumpyArrayWrapper": _s(RN, "joblib array header; the raw buffer "
                                                    "follows in the file"),
    "joblib.numpy_pickle.NDArrayWrapper": _s(RN, "joblib <0.10 array stored in a side file"),
    "joblib.numpy_pickle_compat.NDArrayWrapper": _s(RN, "joblib <0.10 array"),
    "joblib.numpy_pickle_compat.ZNDArrayWrapper": _s(RN, "joblib <0.10 compressed array"),
    # dill / cloudpickle reconstructors of plain data.
    "dill._dill._load_type": _s(C, "dill builtin type lookup (resolved by name)"),
    "dill._dill._create_namedtuple": _s(C, "dill namedtuple"),
    "dill._dill._create_array": _s(C, "dill numpy array"),
    "dill._dill._create_dtypemeta": _s(C, "dill numpy dtype"),
    "dill._dill._create_cell": _s(C, "dill cell"),
    "dill._dill._create_lock": _s(C, "dill lock"), "dill._dill._create_rlock": _s(C, "dill lock"),
    "dill._dill._create_stringi": _s(C, "dill StringIO"),
    "dill._dill._create_stringo": _s(C, "dill StringIO"),
    "cloudpickle.cloudpickle._builtin_type": _s(C, "builtin type lookup (resolved by name)"),
    "cloudpickle.cloudpickle._make_empty_cell": _s(C, "cloudpickle cell"),
    "cloudpickle.cloudpickle._make_cell": _s(C, "cloudpickle cell"),
    # pandas: the entry points its pickles use (Cython reconstructors and the Index
    # helpers that instantiate the class they are given), and its value types.
    **{f"pandas.core.indexes.{m}.{f}": _s(C, "pandas index reconstruction", invokes=(0,),
                                          constructs=(0,))
       for m, f in (("base", "_new_Index"), ("datetimes", "_new_DatetimeIndex"),
                    ("interval", "_new_IntervalIndex"), ("period", "_new_PeriodIndex"))},
    "pandas._libs.arrays.__pyx_unpickle_NDArrayBacked": _s(C, "pandas array (Cython)",
                                                           constructs=(0,)),
    **{f"pandas._libs.{n}": _s(RNC, "pandas reconstructor (Cython)") for n in (
        "internals._unpickle_block", "tslibs.timestamps._unpickle_timestamp",
        "tslibs.timedeltas._timedelta_unpickle", "tslibs.nattype._nat_unpickle",
        "sparse.IntIndex", "sparse.BlockIndex", "interval.Interval",
        "tslibs.period.Period", "tslibs.timestamps.Timestamp",
        "tslibs.timedeltas.Timedelta")},
    **{f"pandas.core.internals.managers.{n}": _s(RNC, "pandas block manager") for n in (
        "BlockManager", "SingleBlockManager")},
    **{f"pandas.{n}": _s(RNC, "pandas value type") for n in (
        "DataFrame", "Series", "Index", "RangeIndex", "MultiIndex", "DatetimeIndex",
        "PeriodIndex", "IntervalIndex", "CategoricalIndex", "TimedeltaIndex", "Categorical",
        "CategoricalDtype", "DatetimeTZDtype", "PeriodDtype", "IntervalDtype", "SparseDtype",
        "StringDtype", "BooleanDtype", "Int8Dtype", "Int16Dtype", "Int32Dtype", "Int64Dtype",
        "UInt8Dtype", "UInt16Dtype", "UInt32Dtype", "UInt64Dtype", "Float32Dtype",
        "Float64Dtype", "ArrowDtype", "Interval", "Period", "Timestamp", "Timedelta",
        "DateOffset", "NA", "NaT")},
    **{f"pandas.arrays.{n}": _s(RNC, "pandas extension array") for n in (
        "BooleanArray", "IntegerArray", "FloatingArray", "DatetimeArray", "TimedeltaArray",
        "PeriodArray", "SparseArray", "StringArray", "ArrowStringArray", "IntervalArray",
        "NumpyExtensionArray", "ArrowExtensionArray")},
    "dateutil.relativedelta.relativedelta": _s(RNC, "dateutil value type"),
    # pyarrow (pandas' string and Arrow-backed columns): its pickle entry points rebuild
    # arrays, tables and types from buffers and type aliases.
    **{f"pyarrow.lib.{n}": _s(RNC, "pyarrow reconstruction") for n in (
        "_restore_array", "_reconstruct_record_batch", "_reconstruct_table",
        "chunked_array", "dictionary", "field", "list_", "large_list", "py_buffer", "scalar",
        "schema", "struct", "timestamp", "type_for_alias", "map_", "decimal128",
        "decimal256", "fixed_size_list", "duration", "time32", "time64", "date32",
        "date64")},
    "pyarrow.NA": _s(R, "pyarrow null scalar"), "pyarrow.lib.NA": _s(R, "pyarrow null"),
    # Keras models pickle themselves as their saved archive handed to a deserialiser: the
    # call is the load of an embedded model, whose bytes are scanned as their own entry.
    **{n: _s(C, "embedded model loader (its archive is scanned as its own entry)") for n in (
        "keras.saving.pickle_utils.deserialize_model_from_bytecode",
        "keras.src.saving.pickle_utils.deserialize_model_from_bytecode",
        "tf_keras.src.saving.pickle_utils.deserialize_model_from_bytecode",
        "tf_keras.saving.pickle_utils.deserialize_model_from_bytecode",
        "tensorflow.python.keras.saving.pickle_utils.deserialize_model_from_bytecode",
        "keras.src.saving.keras_saveable.KerasSaveable._unpickle_model",
        "keras.src.models.model.Model._unpickle_model")},
    "io.BytesIO": _s(RNC, "in-memory bytes (a model archive handed to a loader)"),
    "_io.BytesIO": _s(RNC, "in-memory bytes (a model archive handed to a loader)"),
    # transformers TrainingArguments enums (called with their value).
    **{f"transformers.trainer_utils.{n}": _s(RNC, "transformers enum") for n in (
        "IntervalStrategy", "SchedulerType", "HubStrategy", "EvaluationStrategy",
        "SaveStrategy", "FSDPOption", "ShardedDDPOption")},
    **{f"transformers.training_args.{n}": _s(RNC, "transformers enum") for n in (
        "OptimizerNames", "TrainingArguments")},
    "transformers.debug_utils.DebugOption": _s(RNC, "transformers enum"),
    "transformers.trainer_pt_utils.AcceleratorConfig": _s(RNC, "transformers config"),
    "accelerate.utils.dataclasses.DistributedType": _s(RNC, "accelerate enum"),
    "accelerate.state.PartialState": _s(RN, "accelerate state"),
}

# Only TorchScript's own namespace is covered as a whole: Python's pickle cannot import a
# ``__torch__`` name, only TorchScript's loader resolves it. Every other entry vouches for
# one object; library classes come from the generated tables (libraries.py) or the source
# analysis of installed distributions (sources.py), each by exact name.
PREFIXES: dict[str, Safe] = {
    "__torch__": _s(RN, "TorchScript class: only TorchScript's own loader resolves it; "
                        "Python's pickle cannot import it"),
}
