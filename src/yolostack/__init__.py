"""yolostack: a self-hosted vision AI platform speaking the Ultralytics Platform and HUB APIs."""

__version__ = "0.1.0"
