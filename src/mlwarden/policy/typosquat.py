"""Typosquat check for model ids against the shipped popular ids and official orgs.

A name that is itself popular (or an exact official org) is never a squat. Otherwise it is
folded to a skeleton (NFKC, Cyrillic/Greek look-alikes to Latin, I/1/|->l, 0->o, rn->m,
vv->w, separators dropped, case folded): a skeleton equal to a popular one is a look-alike.
Then rapidfuzz finds near misses by edit distance. Edits that only change digits (7b/8b,
v2/v3) are version differences, not squats, and names published under the same official
org as the target are never flagged: nobody else can upload there.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

# Cyrillic and Greek letters that render like Latin ones.
_CONFUSABLES = str.maketrans({
    "а": "a", "в": "b", "е": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",
    "с": "c", "т": "t", "у": "y", "х": "x", "і": "i", "ј": "j", "ѕ": "s", "ԁ": "d",
    "ӏ": "l", "А": "a", "В": "b", "Е": "e", "К": "k", "М": "m", "Н": "h", "О": "o",
    "Р": "p", "С": "c", "Т": "t", "Х": "x", "І": "l", "Ј": "j", "Ѕ": "s",
    "α": "a", "β": "b", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p",
    "τ": "t", "υ": "u", "χ": "x", "Α": "a", "Β": "b", "Ε": "e", "Ζ": "z", "Η": "h",
    "Ι": "l", "Κ": "k", "Μ": "m", "Ν": "n", "Ο": "o", "Ρ": "p", "Τ": "t", "Χ": "x",
})
_SEQUENCES = (("rn", "m"), ("vv", "w"), ("cl", "d"))
_SEPARATORS = re.compile(r"[-_.\s]+")
EDIT1_MIN_LEN = 5
EDIT2_MIN_LEN = 10


def skeleton(text: str) -> str:
    """What a reader sees: case, look-alike characters and separators folded away."""
    s = unicodedata.normalize("NFKC", text).translate(_CONFUSABLES)
    # Upper-case I reads as lower-case l in most fonts: fold before case folding.
    s = s.replace("I", "l").replace("|", "l").replace("1", "l").replace("0", "o")
    s = s.casefold().replace("i", "l")
    for seq, rep in _SEQUENCES:
        s = s.replace(seq, rep)
    return _SEPARATORS.sub("", s)


def _data_lines(name: str) -> tuple[str, ...]:
    text = resources.files("mlwarden").joinpath("data").joinpath(name).read_text("utf-8")
    return tuple(line.strip() for line in text.splitlines()
                 if line.strip() and not line.lstrip().startswith("#"))


@lru_cache(maxsize=1)
def popular_ids() -> tuple[str, ...]:
    return _data_lines("popular_models.txt")


@lru_cache(maxsize=1)
def official_orgs() -> tuple[str, ...]:
    return _data_lines("official_orgs.txt")


@dataclass(frozen=True)
class Squat:
    candidate: str
    target: str
    kind: str  # "model" | "org"
    technique: str  # look-alike | edit
    distance: int

    def describe(self) -> str:
        what = "popular model" if self.kind == "model" else "official organisation"
        how = ("uses look-alike characters or separators" if self.technique == "look-alike"
               else f"is {self.distance} edit{'s' if self.distance > 1 else ''} away")
        return f"{self.candidate!r} {how} from {what} {self.target!r}"


def _digits_only_change(a: str, b: str) -> bool:
    return re.sub(r"\d", "", a.casefold()) == re.sub(r"\d", "", b.casefold())


@lru_cache(maxsize=8)
def _skeletons(choices: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for c in choices:
        out.setdefault(skeleton(c), c)
    return out


def _near(candidate: str, choices: tuple[str, ...], kind: str) -> Squat | None:
    if candidate in choices:
        return None
    lowered = {c.casefold(): c for c in choices}
    if candidate.casefold() in lowered:
        return None  # the Hub resolves ids case-insensitively: same repository
    twin = _skeletons(choices).get(skeleton(candidate))
    if twin is not None:
        return Squat(candidate, twin, kind, "look-alike", 0)
    n = len(candidate)
    if n < EDIT1_MIN_LEN:
        return None
    limit = 2 if n >= EDIT2_MIN_LEN else 1
    found = process.extractOne(candidate.casefold(), list(lowered), scorer=Levenshtein.distance,
                               score_cutoff=limit)
    if found is None:
        return None
    target = lowered[found[0]]
    if _digits_only_change(candidate, target):
        return None
    return Squat(candidate, target, kind, "edit", int(found[1]))


def check_model_id(repo_id: str, extra_official: tuple[str, ...] = ()) -> Squat | None:
    """A squat of a popular id or an official org, or None."""
    official = tuple(dict.fromkeys((*official_orgs(), *extra_official)))
    ids = popular_ids()
    if repo_id in ids:
        return None
    org, _, name = repo_id.rpartition("/")
    if org and org not in official:
        hit = _near(org, official, "org")
        if hit is not None:
            return hit
    full = _near(repo_id, tuple(i for i in ids if "/" in i), "model") if org else None
    if full is not None and not (org in official and full.target.split("/")[0] == org):
        return full
    # The name alone against popular names (legacy ids and the NAME part of ORG/NAME ids).
    names = tuple(dict.fromkeys(i.rpartition("/")[2] for i in ids))
    hit = _near(name, names, "model")
    if hit is None or org in official:
        # Official orgs publish many near-identical names; only another org can squat.
        return None
    return Squat(repo_id, hit.target, "model", hit.technique, hit.distance)
