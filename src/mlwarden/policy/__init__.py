"""Airlock policy: which models may enter the store. Every decision cites its rule."""

from mlwarden.policy.config import (
    Policy,
    PolicyError,
    PolicyException,
    RemoteCodeReview,
    load_policy,
    policy_from_mapping,
)
from mlwarden.policy.evaluate import (
    Candidate,
    CandidateFile,
    Decision,
    PolicyResult,
    evaluate,
    trust_tier,
)

__all__ = ["Candidate", "CandidateFile", "Decision", "Policy", "PolicyError",
           "PolicyException", "PolicyResult", "RemoteCodeReview", "evaluate", "load_policy",
           "policy_from_mapping", "trust_tier"]
