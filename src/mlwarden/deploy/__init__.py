"""Deployments: an approved store commit in a directory, with its signed ML-BOM, recorded in
the store and the approval log (``mlwarden deploy``); the state the monitor enforces and
``restore`` moves back."""

from mlwarden.deploy.deploy import BomSigner, DeploymentRecord, deploy, read_record
from mlwarden.deploy.errors import DeployError

__all__ = ["BomSigner", "DeployError", "DeploymentRecord", "deploy", "read_record"]
