"""Benign corpora written by the real libraries: every scikit-learn estimator that fits on a
toy dataset (pickled and joblib-dumped), torch training state (modules, optimizers,
schedulers, distributions), numpy / scipy.sparse / pandas objects, and pipelines holding
numpy ufuncs. All of it must scan clean.

``write_all(directory, estimators=None)`` writes every group and returns name -> path;
``estimators`` limits the scikit-learn sweep to those class names (the test suite takes a
representative slice; tools/benign_sweep.py takes all of them).
"""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


def _datasets() -> list[tuple[str, Any, Any]]:
    import numpy as np
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=60, n_features=6, n_informative=4, random_state=0)
    rng = np.random.default_rng(0)
    return [
        ("classification", x, y),
        ("positive", np.abs(x), y),
        ("regression", x, x[:, 0] * 2.0 + rng.normal(size=len(x)) * 0.1),
        ("multioutput", x, np.stack([y, 1 - y], axis=1)),
        ("counts", rng.integers(0, 5, size=(60, 6)), y),
        ("unsupervised", x, None),
        ("text", ["a b c", "b c d", "c d e", "d e a"] * 15, y),
        ("dicts", [{"a": float(v), "b": "x" if v > 0 else "y"} for v in x[:, 0]], y),
        ("positive_target", x, np.abs(x[:, 0]) + 1.0),
        ("one_feature", x[:, 0], x[:, 1]),
        ("labels", y, None),
        ("kernel", x @ x.T, None),
    ]


def fitted_estimators(names: Iterable[str] | None = None) -> Iterator[tuple[str, object]]:
    """(class name, fitted instance) for every estimator of all_estimators() that fits
    on one of the toy datasets; the others are skipped (they need real inputs)."""
    from sklearn.utils import all_estimators
    from sklearn.utils._test_common.instance_generator import _construct_instances

    wanted = set(names) if names is not None else None
    data = _datasets()
    for name, cls in all_estimators():
        if wanted is not None and name not in wanted:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                inst = next(iter(_construct_instances(cls)))
            except Exception:
                continue
            for _kind, x, y in data:
                try:
                    est = pickle.loads(pickle.dumps(inst))  # a fresh copy per attempt
                    est.fit(x) if y is None else est.fit(x, y)
                except Exception:
                    continue
                yield name, est
                break


def write_sklearn(directory: Path, names: Iterable[str] | None = None) -> dict[str, Path]:
    import joblib

    out: dict[str, Path] = {}
    directory.mkdir(parents=True, exist_ok=True)
    for name, est in fitted_estimators(names):
        for proto in (2, 5):
            p = directory / f"{name}.p{proto}.pkl"
            p.write_bytes(pickle.dumps(est, protocol=proto))
            out[p.name] = p
        p = directory / f"{name}.joblib"
        joblib.dump(est, p)
        out[p.name] = p
    return out


def write_torch(directory: Path) -> dict[str, Path]:
    import torch
    from torch import distributions as D

    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv1d(2, 4, 3), torch.nn.BatchNorm1d(4),
                              torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.LazyLinear(3),
                              torch.nn.Dropout(0.1), torch.nn.LayerNorm(3))
    net(torch.zeros(2, 2, 8))
    opts = {
        "sgd": torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9),
        "adam": torch.optim.Adam(net.parameters(), lr=1e-3),
        "adamw": torch.optim.AdamW(net.parameters(), lr=1e-3),
        "rmsprop": torch.optim.RMSprop(net.parameters()),
        "adagrad": torch.optim.Adagrad(net.parameters()),
    }
    loss = net(torch.randn(2, 2, 8)).sum()
    loss.backward()
    for o in opts.values():
        o.step()
    base = opts["sgd"]
    scheds = {
        "step": torch.optim.lr_scheduler.StepLR(base, 2),
        "cosine": torch.optim.lr_scheduler.CosineAnnealingLR(base, 10),
        "onecycle": torch.optim.lr_scheduler.OneCycleLR(opts["adam"], 0.1, total_steps=10),
        "plateau": torch.optim.lr_scheduler.ReduceLROnPlateau(opts["adamw"]),
        "lambda_free": torch.optim.lr_scheduler.ExponentialLR(opts["rmsprop"], 0.9),
    }
    dists = {
        "normal": D.Normal(torch.zeros(2), torch.ones(2)),
        "categorical": D.Categorical(logits=torch.zeros(3)),
        "mvn": D.MultivariateNormal(torch.zeros(2), torch.eye(2)),
        "bernoulli": D.Bernoulli(probs=torch.tensor([0.3])),
        "independent": D.Independent(D.Normal(torch.zeros(2), torch.ones(2)), 1),
        "mixture": D.MixtureSameFamily(D.Categorical(torch.ones(2)),
                                       D.Normal(torch.zeros(2), torch.ones(2))),
        "transformed": D.TransformedDistribution(D.Normal(0.0, 1.0), [D.ExpTransform()]),
    }
    states = {
        "checkpoint": {"model": net.state_dict(), "epoch": 3, "step": 120,
                       "optimizers": {k: o.state_dict() for k, o in opts.items()},
                       "schedulers": {k: s.state_dict() for k, s in scheds.items()},
                       "rng": torch.get_rng_state(), "best": torch.tensor(0.5)},
        "whole_module": net,
        "optimizer_objects": opts,
        "scheduler_objects": {k: v for k, v in scheds.items()},
        "distributions": dists,
        "mixed_precision": {"scaler": torch.amp.GradScaler("cpu").state_dict(),
                            "half": torch.ones(2, dtype=torch.float16),
                            "bf16": torch.ones(2, dtype=torch.bfloat16)},
    }
    out: dict[str, Path] = {}
    for name, obj in states.items():
        for legacy in (False, True):
            p = directory / f"{name}{'.legacy' if legacy else ''}.pt"
            torch.save(obj, p, _use_new_zipfile_serialization=not legacy)
            out[p.name] = p
    return out


def write_data(directory: Path) -> dict[str, Path]:
    """numpy, scipy.sparse and pandas objects; pipelines holding numpy ufuncs."""
    import joblib
    import numpy as np
    import pandas as pd
    import scipy.sparse as sp
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    x = rng.random((20, 3))
    y = (x[:, 0] > 0.5).astype(int)
    objs: dict[str, object] = {
        "numpy": {"f": np.arange(6.0).reshape(2, 3), "i8": np.int8(3), "c": np.complex64(1j),
                  "rec": np.rec.fromarrays([[1, 2], [b"a", b"b"]], names="n,s"),
                  "struct": np.zeros(2, dtype=[("a", "<i4"), ("b", "<f8", (2,))]),
                  "masked": np.ma.masked_array([1, 2], mask=[0, 1]),
                  "matrix": np.matrix([[1, 2]]), "dt": np.datetime64("2024-01-01"),
                  "str": np.array(["a", "bc"]), "obj": np.array([1, "x", None], dtype=object),
                  "rs": np.random.RandomState(0), "gen": np.random.default_rng(1),
                  "pcg": np.random.PCG64(2), "ufunc": np.add, "dtype": np.dtype("<U5")},
        "scipy_sparse": {f: getattr(sp, f)(np.eye(3)) for f in (
            "csr_matrix", "csc_matrix", "coo_matrix", "lil_matrix", "dok_matrix",
            "bsr_matrix", "dia_matrix", "csr_array", "coo_array")},
        "pandas": {
            "frame": pd.DataFrame({"a": [1, 2], "b": ["x", "y"], "c": pd.Categorical(["u", "v"]),
                                   "t": pd.to_datetime(["2024-01-01", "2024-01-02"]),
                                   "i": pd.array([1, None], dtype="Int64"),
                                   "td": pd.to_timedelta(["1D", "2D"])}),
            "series": pd.Series([1.0, 2.0], index=pd.Index(["a", "b"], name="k")),
            "multi": pd.MultiIndex.from_tuples([(1, "a"), (2, "b")]),
            "periods": pd.period_range("2024-01", periods=3, freq="M"),
            "range": pd.RangeIndex(5), "ts": pd.Timestamp("2024-01-01", tz="UTC"),
            "dates": pd.date_range("2024-01-01", periods=3, freq="D"),
            "interval": pd.interval_range(0, 3), "sparse": pd.arrays.SparseArray([0, 1, 0]),
            "offset": pd.offsets.MonthEnd(), "string": pd.Series(["a", None], dtype="string"),
        },
        "pipeline_ufuncs": make_pipeline(FunctionTransformer(np.log1p, np.expm1),
                                         FunctionTransformer(np.sqrt), StandardScaler(),
                                         LogisticRegression()).fit(x, y),
        "ufunc_list": [np.exp, np.log, np.maximum, np.isnan],
    }
    try:
        import pyarrow as pa
    except ImportError:  # pandas' optional Arrow backend
        pass
    else:
        objs["pyarrow"] = {"array": pa.array([1, None]), "strings": pa.array(["a", "b"]),
                           "table": pa.table({"a": [1, 2]}), "schema": pa.schema(
                               [("a", pa.int64()), ("t", pa.timestamp("s", tz="UTC"))]),
                           "chunked": pa.chunked_array([[1], [2]]),
                           "nested": pa.array([{"x": [1]}])}
    out: dict[str, Path] = {}
    for name, obj in objs.items():
        for proto in (2, 4, 5):
            p = directory / f"{name}.p{proto}.pkl"
            p.write_bytes(pickle.dumps(obj, protocol=proto))
            out[p.name] = p
        p = directory / f"{name}.joblib"
        joblib.dump(obj, p, compress=3 if name == "pandas" else 0)
        out[p.name] = p
    np.savez(directory / "arrays.npz", a=np.arange(3), o=np.array([None, "x"], dtype=object))
    out["arrays.npz"] = directory / "arrays.npz"
    sp.save_npz(directory / "sparse.npz", sp.csr_matrix(np.eye(4)))
    out["sparse.npz"] = directory / "sparse.npz"
    return out


def write_all(directory: Path, estimators: Iterable[str] | None = None) -> dict[str, Path]:
    out = {}
    out.update({f"sklearn/{k}": v for k, v in write_sklearn(directory / "sklearn",
                                                             estimators).items()})
    out.update({f"torch/{k}": v for k, v in write_torch(directory / "torch").items()})
    out.update({f"data/{k}": v for k, v in write_data(directory / "data").items()})
    return out


def shipped_data_files() -> list[Path]:
    """Data files the installed joblib, numpy and onnx wheels ship (pickles, npy, npz,
    joblib dumps of many versions), for the benign sweep."""
    import importlib.util

    out: list[Path] = []
    for pkg, sub in (("joblib", "test/data"), ("numpy", "lib/tests/data"),
                     ("numpy", "core/tests/data"), ("numpy", "_core/tests/data")):
        spec = importlib.util.find_spec(pkg)
        if spec is None or not spec.submodule_search_locations:
            continue
        d = Path(next(iter(spec.submodule_search_locations))) / sub
        if d.is_dir():
            out += sorted(p for p in d.rglob("*") if p.is_file() and p.suffix != ".py")
    return out
