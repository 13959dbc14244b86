"""Run GuardDog's source-code rules offline on local packages (run inside GuardDog's venv).

    guarddog-venv/bin/python benchmarks/guarddog_runner.py < paths.json > results.json

Each archive is extracted with GuardDog's own safe extractor and scanned with
``PypiPackageScanner().scan_local`` (source-code rules only: metadata rules need PyPI).
Prints one JSON object: {path: {"rules": [...], "seconds": s, "error": str | None}}."""

from __future__ import annotations

import json
import sys
import tempfile
import time


def main() -> None:
    from guarddog.scanners.pypi_package_scanner import PypiPackageScanner
    from guarddog.utils.archives import safe_extract

    paths = json.load(sys.stdin)
    scanner = PypiPackageScanner()
    out: dict[str, dict[str, object]] = {}
    for path in paths:
        started = time.perf_counter()
        rules: list[str] = []
        risk: object = None
        error = None
        try:
            with tempfile.TemporaryDirectory() as tmp:
                safe_extract(path, tmp)
                result = scanner.scan_local(tmp)
                for rule, found in (result.get("results") or {}).items():
                    if found:
                        rules.append(rule)
                risk = result.get("risk_score")
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
        out[path] = {"rules": sorted(rules), "seconds": time.perf_counter() - started,
                     "risk": risk, "error": error}
        if len(sys.argv) > 1:  # progress file: partial results survive
            with open(sys.argv[1], "a") as fh:
                fh.write(json.dumps({path: out[path]}) + "\n")
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
