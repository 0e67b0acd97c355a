from enum import StrEnum


class Scope(StrEnum):
    """What a key may touch; a key with no scopes has the full rights of its owner (spec §2)."""

    account = "account"
    api_keys = "api-keys"
    projects = "projects"
    datasets = "datasets"
    models = "models"
    training = "training"
    exports = "exports"
    deployments = "deployments"
    inference = "inference"
    billing = "billing"
    activity = "activity"
    trash = "trash"
    storage = "storage"
    webhooks = "webhooks"
