"""Package inspection: mlwarden's behaviour analyser against GuardDog, in the same run.

    python benchmarks/package_corpus.py benign       # once: top-300 wheels + sdists (pip)
    python benchmarks/package_inspection.py [--limit N] [--no-guarddog] [--json FILE]

Corpora (``bench-work/packages``, out of git; ``package_corpus.py`` rebuilds them):
benign = the latest wheel and sdist of the 300 most downloaded PyPI projects; malicious =
``malicious_packages.py``'s harmless re-creations of reported techniques (built here).

GuardDog (PyPI ``guarddog``, YARA rules, no semgrep needed) runs from its own venv
(``bench-work/guarddog-venv``, created here with pip if missing, because its pins clash with
ours) through ``guarddog_runner.py``: source-code rules only, offline. GuardDog runs in a
subprocess beside mlwarden's own pass, so both see the same load on the machine. A package
is flagged by mlwarden when its verdict is not clean (suspicious, unscannable or malicious); by
GuardDog when its risk score is above zero (GuardDog's own verdict; "any rule" is printed
too). Both run single-process; packages/s is packages over the summed per-package time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench-work" / "packages"
GD_VENV = ROOT / "bench-work" / "guarddog-venv"
GD_VERSION = "3.2.0"


def _corpus(limit: int | None) -> tuple[list[Path], list[Path]]:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from malicious_packages import build_all

    malicious = sorted(build_all(WORK / "malicious"))
    benign = sorted(p for kind in ("wheel", "sdist") for p in (WORK / "benign" / kind).glob("*/*")
                    if p.is_file() and not p.name.endswith(".part"))
    if not benign:
        sys.exit("no benign corpus: run python benchmarks/package_corpus.py benign")
    if limit:
        benign = benign[:limit]
    return benign, malicious


def _ours(paths: list[Path]) -> dict[str, dict[str, object]]:
    from mlwarden.deps.inspect.engine import InspectError, inspect_target
    from mlwarden.report.model import Verdict

    out: dict[str, dict[str, object]] = {}
    for p in paths:
        started = time.perf_counter()
        try:
            r = inspect_target(p)
            verdict = r.verdict.value
            rules = sorted({f.rule for f in r.findings if f.verdict is not Verdict.CLEAN})
        except InspectError as exc:
            verdict, rules = "error", [str(exc)[:100]]
        out[str(p)] = {"verdict": verdict, "rules": rules,
                       "seconds": time.perf_counter() - started}
        with (WORK / "ours-progress.jsonl").open("a") as fh:  # partial results survive
            fh.write(json.dumps({str(p): out[str(p)]}) + "\n")
    return out


def _guarddog_start(paths: list[Path]) -> subprocess.Popen[str]:
    """GuardDog in its venv, running beside our own pass (both single-process), so both
    tools see the same machine load; its per-package times are its own."""
    py = GD_VENV / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(GD_VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", f"guarddog=={GD_VERSION}"],
                       check=True)
    proc = subprocess.Popen([str(py), str(ROOT / "benchmarks" / "guarddog_runner.py"),
                             str(WORK / "guarddog-progress.jsonl")],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    assert proc.stdin is not None
    proc.stdin.write(json.dumps([str(p) for p in paths]))
    proc.stdin.close()
    return proc


def _guarddog_finish(proc: subprocess.Popen[str]) -> dict[str, dict[str, object]]:
    assert proc.stdout is not None
    data: dict[str, dict[str, object]] = json.loads(proc.stdout.read())
    proc.wait()
    return data


def _flag_ours(r: dict[str, object]) -> bool:
    return r["verdict"] not in ("clean",)


def _flag_gd(r: dict[str, object]) -> bool:
    risk = r.get("risk")
    return isinstance(risk, dict) and float(risk.get("score") or 0) > 0


def _flag_gd_any(r: dict[str, object]) -> bool:
    return bool(r.get("rules"))


def _rate(results: dict[str, dict[str, object]], flag: object) -> tuple[int, int]:
    n = sum(1 for r in results.values() if flag(r))  # type: ignore[operator]
    return n, len(results)


def _per_rule(results: dict[str, dict[str, object]]) -> Counter[str]:
    c: Counter[str] = Counter()
    for r in results.values():
        for rule in r.get("rules") or []:  # type: ignore[attr-defined]
            c[str(rule)] += 1
    return c


def _speed(results: dict[str, dict[str, object]]) -> float:
    total = sum(float(r["seconds"]) for r in results.values())  # type: ignore[arg-type]
    return len(results) / total if total else 0.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, help="benign archives to use (default: all)")
    ap.add_argument("--no-guarddog", action="store_true")
    ap.add_argument("--json", type=Path, help="write every per-package result here")
    args = ap.parse_args()
    benign, malicious = _corpus(args.limit)
    print(f"corpus: {len(benign)} benign archives (top-300 wheels + sdists), "
          f"{len(malicious)} malicious re-creations", flush=True)
    gd = None if args.no_guarddog else _guarddog_start(malicious + benign)
    ours_m, ours_b = _ours(malicious), _ours(benign)
    gd_b = gd_m = None
    if gd is not None:
        both = _guarddog_finish(gd)
        gd_m = {str(p): both[str(p)] for p in malicious}
        gd_b = {str(p): both[str(p)] for p in benign}

    def row(name: str, b: dict[str, dict[str, object]], m: dict[str, dict[str, object]],
            flag: object) -> None:
        det, nm = _rate(m, flag)
        fa, nb = _rate(b, flag)
        both = {**b, **m}
        print(f"| {name} | {det}/{nm} ({det / nm:.0%}) | {fa}/{nb} ({fa / nb:.1%}) | "
              f"{_speed(both):.2f} |")

    print("\n| tool | malicious detected | benign flagged | packages/s |\n|---|---|---|---|")
    row("mlwarden deps inspect", ours_b, ours_m, _flag_ours)
    if gd_b is not None and gd_m is not None:
        row(f"GuardDog {GD_VERSION} (risk score > 0)", gd_b, gd_m, _flag_gd)
        row(f"GuardDog {GD_VERSION} (any rule)", gd_b, gd_m, _flag_gd_any)
    def projects(results: dict[str, dict[str, object]], flag: object) -> tuple[int, int]:
        names: dict[str, bool] = {}
        for p, r in results.items():
            proj = Path(p).parent.name
            names[proj] = names.get(proj, False) or bool(flag(r))  # type: ignore[operator]
        return sum(names.values()), len(names)

    fp, np_ = projects(ours_b, _flag_ours)
    print(f"\nprojects (wheel or sdist flagged): mlwarden {fp}/{np_} ({fp / np_:.1%})", end="")
    if gd_b is not None:
        gp, _ = projects(gd_b, _flag_gd)
        print(f", GuardDog {gp}/{np_} ({gp / np_:.1%})")
    else:
        print()
    mal_ours = sum(1 for r in ours_b.values() if r["verdict"] == "malicious")
    print(f"\nmlwarden: benign archives called malicious: {mal_ours}")
    for title, results in (("mlwarden", (ours_m, ours_b)), ("GuardDog", (gd_m, gd_b))):
        if results[0] is None or results[1] is None:
            continue
        m_rules, b_rules = _per_rule(results[0]), _per_rule(results[1])
        print(f"\n{title} per rule: malicious packages hit / benign packages hit")
        for rule in sorted(set(m_rules) | set(b_rules)):
            print(f"  {rule:45} {m_rules[rule]:4} / {b_rules[rule]:4}")
    missed = [Path(p).name for p, r in ours_m.items() if not _flag_ours(r)]
    print(f"\nmlwarden missed: {missed}")
    if gd_m is not None:
        print(f"GuardDog missed: {[Path(p).name for p, r in gd_m.items() if not _flag_gd(r)]}")
    flagged = {Path(p).name: (r['verdict'], r['rules']) for p, r in ours_b.items()
               if _flag_ours(r)}
    print(f"mlwarden benign flagged: {json.dumps(flagged, indent=1)}")
    if args.json:
        args.json.write_text(json.dumps({"ours": {**ours_b, **ours_m},
                                         "guarddog": {**(gd_b or {}), **(gd_m or {})}},
                                        indent=1))


if __name__ == "__main__":
    main()
