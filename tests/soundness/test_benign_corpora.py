"""Benign corpora written by the real libraries come out clean (issue 11 item 5): a
representative slice of every scikit-learn estimator (pickle and joblib), torch training
state with optimizers, schedulers and distributions, numpy / scipy.sparse / pandas
objects, pipelines holding numpy ufuncs, and the pickles joblib and numpy ship as test
data. ``python tools/benign_sweep.py`` runs the full sweep (all estimators)."""

from __future__ import annotations

from pathlib import Path

import pytest

from corpus.benign_libraries import shipped_data_files, write_data, write_sklearn, write_torch
from mlwarden.report.model import FileResult
from mlwarden.scan.engine import ScanOptions, scan_paths

# Every estimator family (linear, trees, ensembles, neighbors, SVM, clustering,
# decomposition, preprocessing, meta-estimators, Cython-backed losses and trees).
ESTIMATORS = (
    "LogisticRegression", "SGDClassifier", "Perceptron", "PassiveAggressiveClassifier",
    "Ridge", "Lasso", "DecisionTreeClassifier", "ExtraTreeRegressor",
    "RandomForestClassifier", "GradientBoostingRegressor", "HistGradientBoostingClassifier",
    "AdaBoostClassifier", "KNeighborsClassifier", "BallTree", "KDTree", "NearestNeighbors",
    "SVC", "LinearSVR", "KMeans", "DBSCAN", "Birch", "PCA", "TruncatedSVD", "NMF",
    "StandardScaler", "OneHotEncoder", "KBinsDiscretizer", "MultiLabelBinarizer",
    "PolynomialFeatures", "SimpleImputer", "KNNImputer", "GaussianProcessRegressor",
    "GaussianMixture", "MLPClassifier", "VotingClassifier", "StackingRegressor",
    "CalibratedClassifierCV", "IsolationForest", "LocalOutlierFactor", "TSNE",
    "SelectKBest", "RFE", "IsotonicRegression", "TfidfTransformer", "DictVectorizer",
    "LabelEncoder", "QuantileTransformer", "SplineTransformer", "GaussianNB",
    "LinearDiscriminantAnalysis", "PLSRegression",
)


def _not_clean(results: list[FileResult]) -> list[tuple[str, list[str]]]:
    return [(r.path, [f"{f.rule}: {f.message[:200]}" for f in r.findings
                      if f.verdict.value != "clean"])
            for r in results if r.verdict.value != "clean"]


@pytest.fixture(scope="module")
def corpora(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("benign")
    written = write_sklearn(root / "sklearn", ESTIMATORS)
    assert len(written) >= 3 * (len(ESTIMATORS) - 4)  # pickled twice and joblib-dumped
    write_torch(root / "torch")
    write_data(root / "data")
    return root


@pytest.mark.parametrize("group", ["sklearn", "torch", "data"])
def test_generated_corpora_are_clean(corpora: Path, group: str) -> None:
    report = scan_paths([str(corpora / group)], ScanOptions(workers=1, hash="never"))
    assert len(report.files) > 10
    assert not _not_clean(list(report.files)), _not_clean(list(report.files))


def test_library_test_data_is_clean() -> None:
    files = [p for p in shipped_data_files()
             if p.suffix in (".pkl", ".pickle", ".joblib", ".gz", ".bz2", ".xz", ".lzma",
                             ".z", ".npy") or ".pkl" in p.name]
    assert len(files) > 20
    report = scan_paths([str(p) for p in files], ScanOptions(workers=1, hash="never"))
    flagged = [(p, f) for p, f in _not_clean(list(report.files))
               if not all(x.startswith("unknown-format") or x.startswith("npy-bad-header")
                          for x in f)]
    assert not flagged, flagged
