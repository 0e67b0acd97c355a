"""Schemathesis hooks for the fuzz run, loaded by the ``st`` process through ``SCHEMATHESIS_HOOKS``."""

from __future__ import annotations

import os
from typing import Any

import schemathesis

# The key the fuzzer sends; it finds the key's id through GET /api/api-keys and would revoke it.
OWN_KEY_ID = os.environ.get("YOLOSTACK_FUZZ_KEY_ID", "")
SOMEONE_ELSES = "key_" + "0" * 20


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    """Keep the fuzzer's own key alive: revoking any other id is still fuzzed."""
    parameters = case.path_parameters or {}
    if case.operation.path == "/api/api-keys/{key_id}" and parameters.get("key_id") == OWN_KEY_ID:
        case.path_parameters = {**parameters, "key_id": SOMEONE_ELSES}
