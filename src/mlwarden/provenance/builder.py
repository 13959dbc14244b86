"""Who ran the build, from the CI's own environment variables.

GitHub Actions: the builder is the workflow at its ref
(``https://github.com/ORG/REPO/.github/workflows/train.yml@refs/heads/main``, the identity
GitHub's OIDC token and Sigstore certificates carry), the invocation is the run attempt.
GitLab CI: the runner of the project (``https://gitlab.com/ORG/REPO/-/runners/ID``), the
invocation is the job URL. Anywhere else: ``local://USER@HOST`` unless ``--builder-id``.
"""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Mapping

from mlwarden.provenance.record import BuilderInfo
from mlwarden.provenance.source import normalize_repository


def github_actions(env: Mapping[str, str]) -> BuilderInfo | None:
    if env.get("GITHUB_ACTIONS") != "true":
        return None
    server = env.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
    repo = env.get("GITHUB_REPOSITORY", "")
    workflow_ref = env.get("GITHUB_WORKFLOW_REF")  # ORG/REPO/.github/workflows/x.yml@REF
    builder = f"{server}/{workflow_ref}" if workflow_ref else \
        f"{server}/{repo}/actions/workflows/{env.get('GITHUB_WORKFLOW', 'unknown')}"
    run_id, attempt = env.get("GITHUB_RUN_ID"), env.get("GITHUB_RUN_ATTEMPT", "1")
    invocation = f"{server}/{repo}/actions/runs/{run_id}/attempts/{attempt}" if run_id \
        else None
    runner = env.get("RUNNER_ENVIRONMENT", "")  # github-hosted | self-hosted
    details = {k: env[k] for k in ("GITHUB_REPOSITORY", "GITHUB_SHA", "GITHUB_REF",
                                   "GITHUB_WORKFLOW_REF", "GITHUB_WORKFLOW_SHA",
                                   "GITHUB_EVENT_NAME", "GITHUB_ACTOR", "RUNNER_ENVIRONMENT",
                                   "RUNNER_OS", "RUNNER_NAME") if env.get(k)}
    return BuilderInfo(builder, "github-actions", runner == "github-hosted", invocation,
                       details)


def gitlab_ci(env: Mapping[str, str]) -> BuilderInfo | None:
    if env.get("GITLAB_CI") != "true":
        return None
    server = env.get("CI_SERVER_URL", "https://gitlab.com").rstrip("/")
    project = env.get("CI_PROJECT_PATH", "")
    runner = env.get("CI_RUNNER_ID", "unknown")
    description = env.get("CI_RUNNER_DESCRIPTION", "")
    # GitLab.com's own instance runners describe themselves as *.saas-*.runners-manager.
    hosted = server == "https://gitlab.com" and "saas-" in description and \
        "runners-manager.gitlab.com" in description
    details = {k: env[k] for k in ("CI_PROJECT_PATH", "CI_COMMIT_SHA", "CI_COMMIT_REF_NAME",
                                   "CI_COMMIT_TAG", "CI_PIPELINE_ID", "CI_JOB_ID",
                                   "CI_CONFIG_PATH", "CI_RUNNER_DESCRIPTION",
                                   "CI_RUNNER_TAGS", "GITLAB_USER_LOGIN") if env.get(k)}
    return BuilderInfo(f"{server}/{project}/-/runners/{runner}", "gitlab-ci", hosted,
                       env.get("CI_JOB_URL"), details)


def ci_source(env: Mapping[str, str]) -> tuple[str | None, str | None, str | None]:
    """(repository URL, commit, ref) as the CI states them, for checkouts without a remote."""
    if env.get("GITHUB_ACTIONS") == "true" and env.get("GITHUB_REPOSITORY"):
        server = env.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
        return (f"{server}/{env['GITHUB_REPOSITORY']}", env.get("GITHUB_SHA"),
                env.get("GITHUB_REF"))
    if env.get("GITLAB_CI") == "true" and env.get("CI_PROJECT_URL"):
        ref = f"refs/tags/{env['CI_COMMIT_TAG']}" if env.get("CI_COMMIT_TAG") else \
            f"refs/heads/{env['CI_COMMIT_REF_NAME']}" if env.get("CI_COMMIT_REF_NAME") else None
        return normalize_repository(env["CI_PROJECT_URL"]), env.get("CI_COMMIT_SHA"), ref
    return None, None, None


def detect_builder(env: Mapping[str, str] | None = None, override: str | None = None) -> \
        BuilderInfo:
    environ = os.environ if env is None else env
    found = github_actions(environ) or gitlab_ci(environ)
    if override:
        # An explicit id names the builder; the platform facts stay what the CI says.
        if found is not None:
            return BuilderInfo(override, found.platform, found.hosted, found.invocation_id,
                               found.details)
        return BuilderInfo(override, "local", False)
    if found is not None:
        return found
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return BuilderInfo(f"local://{user}@{socket.gethostname()}", "local", False)
