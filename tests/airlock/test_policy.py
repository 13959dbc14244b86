"""Policy loading and evaluation: each rule, exceptions (in date and expired), typosquats."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from mlwarden.policy import (
    Candidate,
    CandidateFile,
    Policy,
    PolicyError,
    evaluate,
    load_policy,
    policy_from_mapping,
)
from mlwarden.policy.typosquat import check_model_id, skeleton
from mlwarden.report.model import Verdict

C = "a" * 40
SHA = "b" * 64


def cand(repo: str = "google/bert-tiny", files: tuple[CandidateFile, ...] = (),
         revision: str = "main", code: tuple[str, ...] = (), pinned: str | None = None
         ) -> Candidate:
    files = files or (CandidateFile("model.safetensors", SHA, 100),)
    return Candidate(repo, C, revision, files, code, pinned)


def rules(result: object, action: str = "block") -> set[str]:
    return {d.rule for d in result.decisions if d.action == action}  # type: ignore[attr-defined]


def test_defaults_admit_clean_safetensors() -> None:
    r = evaluate(Policy(), cand())
    assert not r.blocked and r.decisions == ()


def test_require_safetensors() -> None:
    pkl = (CandidateFile("pytorch_model.bin", SHA, 10),)
    assert rules(evaluate(Policy(), cand(files=pkl))) == {"policy-require-safetensors"}
    both = (*pkl, CandidateFile("model.safetensors", "c" * 64, 10))
    assert not evaluate(Policy(), cand(files=both)).blocked
    assert not evaluate(Policy(require_safetensors=False), cand(files=pkl)).blocked


def test_orgs_and_trust_tiers() -> None:
    assert rules(evaluate(Policy(blocked_orgs=("evil",)), cand("evil/m"))) == \
        {"policy-org-blocked"}
    assert rules(evaluate(Policy(allowed_orgs=("acme",)), cand("other/model-x"))) == \
        {"policy-org-not-allowed"}
    p = Policy(min_trust="established", established_orgs=("acme",))
    assert not evaluate(p, cand("acme/model-x")).blocked
    assert not evaluate(p, cand("google/model-x")).blocked  # official tier
    assert rules(evaluate(p, cand("newuser/model-x"))) == {"policy-trust-tier"}
    assert rules(evaluate(Policy(min_trust="official"), cand("acme/model-x"))) == \
        {"policy-trust-tier"}


@pytest.mark.parametrize("repo", ["someone/bert-base-uncaseed", "meta-lIama/Llama-2-7b-hf",
                                  "mistral-ai/Mistral-7B-v0.1", "gοogle/gemma-2b",
                                  "someone/Mistral-7B-lnstruct-v0.2", "bert-base-uncaseed"])
def test_typosquats_are_caught(repo: str) -> None:
    assert check_model_id(repo) is not None
    assert "policy-typosquat" in rules(evaluate(Policy(), cand(repo)))


@pytest.mark.parametrize("repo", ["meta-llama/Llama-2-7b-hf", "google-bert/bert-base-uncased",
                                  "Qwen/Qwen3-2B", "acme/tiny-bert", "facebook/opt-13b",
                                  "someone/Llama-2-13b-hf", "hf-internal-testing/tiny-bert"])
def test_legitimate_ids_are_not_typosquats(repo: str) -> None:
    assert check_model_id(repo) is None


def test_typosquat_warn_mode_and_skeleton() -> None:
    r = evaluate(policy_from_mapping({"typosquat": "warn"}), cand("meta-lIama/x"))
    assert not r.blocked and rules(r, "warn") == {"policy-typosquat"}
    assert skeleton("meta-lIama") == skeleton("meta-llama")


def test_pinning_required() -> None:
    p = Policy(require_pinned=True)
    assert rules(evaluate(p, cand(revision="main"))) == {"policy-unpinned"}
    assert not evaluate(p, cand(revision=C)).blocked
    assert not evaluate(p, cand(revision="main", pinned=C)).blocked  # manifest pins it


def test_scan_verdicts_and_block_level() -> None:
    files = (CandidateFile("a.safetensors", SHA, 1, Verdict.SUSPICIOUS),
             CandidateFile("b.pkl", "c" * 64, 1, Verdict.MALICIOUS))
    r = evaluate(Policy(require_safetensors=False), cand(files=files))
    assert rules(r) == {"policy-scan-malicious"} and rules(r, "warn") == {"policy-scan-suspicious"}
    strict = policy_from_mapping({"block-verdict": "suspicious", "require-safetensors": False})
    assert rules(evaluate(strict, cand(files=files))) == {"policy-scan-malicious",
                                                          "policy-scan-suspicious"}


def test_remote_code_only_for_reviewed_commit() -> None:
    r = evaluate(Policy(), cand(code=("modeling.py",)))
    assert rules(r) == {"policy-remote-code"}
    p = policy_from_mapping({"remote-code": [{"model": "google/bert-tiny", "commit": C,
                                              "reviewer": "bob"}]})
    r = evaluate(p, cand(code=("modeling.py",)))
    assert not r.blocked and rules(r, "allow") == {"policy-remote-code-reviewed"}
    other = policy_from_mapping({"remote-code": [{"model": "google/bert-tiny",
                                                  "commit": "d" * 40, "reviewer": "bob"}]})
    assert rules(evaluate(other, cand(code=("modeling.py",)))) == {"policy-remote-code"}


def test_size_limits() -> None:
    p = policy_from_mapping({"max-file-size": "50B", "max-total-size": "1KiB"})
    files = (CandidateFile("model.safetensors", SHA, 60), CandidateFile("x.json", SHA, 2000))
    r = evaluate(p, cand(files=files))
    assert rules(r) == {"policy-size-limit"}
    assert len(r.blocking) == 3


def test_exceptions_pinned_in_date_and_expired() -> None:
    pkl = (CandidateFile("pytorch_model.bin", SHA, 10),)
    exc = {"rule": "policy-require-safetensors", "sha256": SHA, "justification": "legacy",
           "approver": "alice", "expires": "2030-01-01"}
    p = policy_from_mapping({"exceptions": [exc]})
    r = evaluate(p, cand(files=pkl), today=dt.date(2029, 12, 31))
    assert not r.blocked and "policy-exception-applied" in rules(r, "allow")
    # Expired: it stops applying, loudly.
    r = evaluate(p, cand(files=pkl), today=dt.date(2030, 1, 2))
    assert rules(r) == {"policy-require-safetensors"}
    assert rules(r, "warn") == {"policy-exception-expired"}
    # Pinned to other content: no effect.
    other = (CandidateFile("pytorch_model.bin", "e" * 64, 10),)
    assert evaluate(p, cand(files=other), today=dt.date(2029, 1, 1)).blocked
    # Model-level exception pinned by commit.
    p2 = policy_from_mapping({"blocked-orgs": ["google"], "exceptions": [{
        "rule": "policy-org-blocked", "model": "google/bert-tiny", "commit": C,
        "justification": "vetted", "approver": "carol", "expires": dt.date(2999, 1, 1)}]})
    assert not evaluate(p2, cand()).blocked


@pytest.mark.parametrize("bad", [
    {"unknown-key": 1},
    {"min-trust": "godlike"},
    {"block-verdict": "clean"},
    {"max-file-size": "lots"},
    {"exceptions": [{"rule": "x", "sha256": SHA, "justification": "j", "approver": "a"}]},
    {"exceptions": [{"rule": "x", "justification": "j", "approver": "a", "expires": "2030-01-01"}]},
    {"remote-code": [{"model": "a/b", "commit": "short", "reviewer": "r"}]},
])
def test_bad_policy_is_an_error(bad: dict[str, object]) -> None:
    with pytest.raises(PolicyError):
        policy_from_mapping(bad)


def test_load_from_files(tmp_path: Path) -> None:
    assert load_policy(search_dir=tmp_path).source == "built-in defaults"
    (tmp_path / "pyproject.toml").write_text(
        "[project]\nname='x'\n[tool.mlwarden.policy]\nblocked-orgs = ['evil']\n")
    p = load_policy(search_dir=tmp_path)
    assert p.blocked_orgs == ("evil",) and p.source.endswith("pyproject.toml")
    (tmp_path / "mlwarden.toml").write_text("[policy]\nmin-trust = 'official'\n")
    assert load_policy(search_dir=tmp_path).min_trust == "official"  # mlwarden.toml first
    (tmp_path / "broken.toml").write_text("[policy\n")
    with pytest.raises(PolicyError, match="invalid TOML"):
        load_policy(tmp_path / "broken.toml")
    with pytest.raises(PolicyError, match="not found"):
        load_policy(tmp_path / "missing.toml")
