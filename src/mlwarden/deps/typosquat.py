"""Typosquat detection against the ranked list of popular PyPI names (package data).

Precision first: a name that is itself on the popular list is never a typosquat (popular
names that sit close to each other, such as numpy/numba or attr/attrs, are both legitimate),
and each technique only targets names popular enough to be worth squatting, with stricter
rank and length limits for weaker signals (a plain one-letter edit) than for strong ones (a
transposition, a look-alike character, a separator or py/python affix trick)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from packaging.utils import canonicalize_name
from rapidfuzz import process
from rapidfuzz.distance import OSA, Levenshtein

# Rank limits per technique: strong signals reach further down the popularity list.
STRONG_RANK = 5000  # separator, affix, homoglyph, transposition
EDIT1_RANK = 1500  # one insertion/deletion/substitution
EDIT2_RANK = 300  # two edits, long names only
EDIT1_MIN_LEN = 5
EDIT2_MIN_LEN = 9

_SEPARATORS = re.compile(r"[-_.]+")
_AFFIXES = ("python3", "python", "py3", "py")
# Look-alike characters and sequences, folded to one skeleton (both sides are folded).
_GLYPHS = (("rn", "m"), ("vv", "w"), ("cl", "d"), ("0", "o"), ("1", "l"), ("i", "l"),
           ("|", "l"), ("5", "s"), ("3", "e"), ("$", "s"))


@dataclass(frozen=True)
class Squat:
    name: str
    target: str
    target_rank: int
    technique: str  # separator | affix | homoglyph | transposition | edit
    distance: int

    def describe(self) -> str:
        how = {"separator": "differs only in separators",
               "affix": "differs only in a py/python prefix or suffix",
               "homoglyph": "uses look-alike characters",
               "transposition": "swaps two adjacent letters",
               "edit": f"is {self.distance} edit{'s' if self.distance > 1 else ''} away"}
        return (f"'{self.name}' {how[self.technique]} from popular package "
                f"'{self.target}' (rank {self.target_rank})")


def _key(name: str) -> str:
    return _SEPARATORS.sub("", name)


def _core(name: str) -> str:
    parts = [p for p in _SEPARATORS.split(name) if p]
    key = "".join(parts)
    for affix in _AFFIXES:
        if key.startswith(affix) and len(key) - len(affix) >= 3:
            key = key[len(affix):]
            break
    for affix in _AFFIXES:
        if key.endswith(affix) and len(key) - len(affix) >= 3:
            key = key[: -len(affix)]
            break
    return key


def _skeleton(name: str) -> str:
    s = _key(name)
    for a, b in _GLYPHS:
        s = s.replace(a, b)
    return s


class Popular:
    """The ranked popular-name list with the indexes each technique needs."""

    def __init__(self, ranked: list[str]) -> None:
        self.rank: dict[str, int] = {}
        for i, raw in enumerate(ranked, start=1):
            self.rank.setdefault(str(canonicalize_name(raw)), i)
        names = sorted(self.rank, key=self.rank.__getitem__)
        self.by_key = _first(names, _key)
        self.by_core = _first([n for n in names if self.rank[n] <= STRONG_RANK], _core)
        self.by_skeleton = _first([n for n in names if self.rank[n] <= STRONG_RANK], _skeleton)
        self.strong = [n for n in names if self.rank[n] <= STRONG_RANK]

    def __contains__(self, name: str) -> bool:
        return name in self.rank

    def check(self, raw_name: str) -> Squat | None:
        """The most likely squat target of ``raw_name``, or None."""
        name = str(canonicalize_name(raw_name))
        if name in self.rank or len(_key(name)) < 3:
            return None
        key = _key(name)
        t = self.by_key.get(key)
        if t is not None and self.rank[t] <= STRONG_RANK:
            return Squat(name, t, self.rank[t], "separator", 0)
        skel = _skeleton(name)
        t = self.by_skeleton.get(skel)
        if t is not None and skel != key:
            return Squat(name, t, self.rank[t], "homoglyph", 0)
        core = _core(name)
        t = self.by_core.get(core)
        if t is not None and t != name and len(core) >= 4:
            return Squat(name, t, self.rank[t], "affix", 0)
        return self._edits(name)

    def _edits(self, name: str) -> Squat | None:
        key = _key(name)
        best: Squat | None = None
        for target, dist, _ in process.extract(name, self.strong, scorer=OSA.distance,
                                               score_cutoff=2, limit=None):
            rank = self.rank[target]
            lev = int(Levenshtein.distance(name, target))
            tkey = _key(target)
            if dist == 1 and lev == 2:
                technique = "transposition"
                if min(len(key), len(tkey)) < 4:
                    continue
            elif dist == 1:
                technique = "edit"
                if rank > EDIT1_RANK or len(key) < EDIT1_MIN_LEN or _benign_edit(name, target):
                    continue
            else:
                technique = "edit"
                if rank > EDIT2_RANK or len(key) < EDIT2_MIN_LEN or _benign_edit(name, target):
                    continue
            cand = Squat(name, target, rank, technique, int(dist))
            if best is None or (cand.distance, cand.target_rank) < (best.distance,
                                                                      best.target_rank):
                best = cand
        return best


# Legitimate naming patterns one or two edits from a popular name: version digits
# (boto/boto3, jinja/jinja2) and plural/singular forms of a word-like name.
_BENIGN_SUFFIXES = ("2", "3", "4", "5")


def _benign_edit(name: str, target: str) -> bool:
    for a, b in ((name, target), (target, name)):
        if a.startswith(b) and a[len(b):] in _BENIGN_SUFFIXES:
            return True
        # A separator plus a distinct word: "x-io" vs "xio" is not a typo of "x".
        if a.startswith(b + "-") and len(a) - len(b) >= 3:
            return True
    return False


def _first(names: list[str], fn: object) -> dict[str, str]:
    out: dict[str, str] = {}
    for n in names:
        k = fn(n)  # type: ignore[operator]
        out.setdefault(k, n)
    return out


@lru_cache(maxsize=1)
def popular() -> Popular:
    """The bundled top-PyPI list (package data), loaded once."""
    text = resources.files("mlwarden.deps").joinpath("data/top-pypi-packages.tsv").read_text(
        encoding="utf-8")
    ranked: list[tuple[int, str]] = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        rank, _, name = line.partition("\t")
        if rank.strip().isdigit() and name.strip():
            ranked.append((int(rank), name.strip()))
    ranked.sort()
    return Popular([n for _, n in ranked])


def check(name: str) -> Squat | None:
    return popular().check(name)
