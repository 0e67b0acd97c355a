from __future__ import annotations

from fastapi import APIRouter

from yolostack.api_keys.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyCreatedResponse,
    ApiKeyList,
    ApiKeyRevoked,
    ApiKeySchema,
)
from yolostack.api_keys.service import api_key as api_key_service
from yolostack.auth.dependencies import ApiKeysAuth
from yolostack.core.db import DbSession
from yolostack.core.responses import Body, both, link

router = APIRouter(tags=["api-keys"])


@router.get("", response_model=ApiKeyList)
async def list_api_keys(auth: ApiKeysAuth, session: DbSession) -> Body:
    """List the account's active keys (never their secrets)."""
    keys = [ApiKeySchema.model_validate(key) for key in await api_key_service.list_active(session, auth.account_id)]
    return both(keys, keys=keys)


@router.post(
    "",
    status_code=201,
    response_model=ApiKeyCreatedResponse,
    responses={201: {"links": {"RevokeApiKey": link("revoke_api_key", key_id="$response.body#/keyId")}}},
)
async def create_api_key(auth: ApiKeysAuth, session: DbSession, data: ApiKeyCreate) -> Body:
    """Create a key; the plaintext ``key`` is in this response and nowhere else, ever."""
    key, plaintext = await api_key_service.create(session, auth, data)
    created = ApiKeyCreated.model_validate({**ApiKeySchema.model_validate(key).model_dump(), "key": plaintext})
    return both(created, **created.model_dump(mode="json", by_alias=True))


@router.delete("/{key_id}", response_model=ApiKeyRevoked)
async def revoke_api_key(auth: ApiKeysAuth, session: DbSession, key_id: str) -> Body:
    """Revoke a key; it stops working at once."""
    key = await api_key_service.revoke(session, auth.account_id, key_id, by=auth)
    return both({"id": key.id, "revoked": True}, keyId=key.id, revoked=True)
