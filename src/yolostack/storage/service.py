"""Files as the API hands them out: absolute, expiring links that need no key and end in the real name."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote, unquote

from fastapi import Depends, Request

from yolostack.core.errors import AppError
from yolostack.storage.backends import ObjectStore
from yolostack.storage.signing import Signer

DOWNLOAD = "get"
UPLOAD = "put"


class FileLinks:
    def __init__(
        self, store: ObjectStore, signer: Signer, base_url: str, *, download_ttl: int, upload_ttl: int
    ) -> None:
        self.store = store
        self.signer = signer
        self.base_url = base_url.rstrip("/")
        self.download_ttl = download_ttl
        self.upload_ttl = upload_ttl

    def download_url(self, key: str, filename: str, expires_in: int | None = None) -> str:
        """The store's own presigned URL where it has one (S3), else one this server serves (local disk).

        ``key`` must end with ``filename``: S3 clients take the file name from the URL's last segment.
        """
        ttl = self.download_ttl if expires_in is None else expires_in
        presigned = self.store.presigned_get(key, ttl)
        if presigned is not None:
            return presigned
        token = self.signer.sign(DOWNLOAD, {"k": key, "n": filename}, ttl)
        return f"{self.base_url}/files/{token}/{quote(filename)}"

    def local_key(self, url: str, owner_id: str) -> str | None:
        """The storage key behind one of this server's own download links, or None for any other URL.

        Our HMAC links are grants and name their key. A store's presigned URL cannot be checked here, so
        one is followed only into the caller's own images.
        """
        prefix = f"{self.base_url}/files/"
        if url.startswith(prefix):
            token, _, name = url.removeprefix(prefix).partition("/")
            try:
                claims = self.signer.verify(DOWNLOAD, token)
            except AppError:
                return None
            return str(claims["k"]) if claims.get("n") == unquote(name.split("?")[0]) else None
        key = self.store.key_for_url(url)
        return key if key is not None and key.startswith(f"images/{owner_id}/") else None

    def upload_url(self, session_id: str, filename: str) -> str:
        token = self.signer.sign(UPLOAD, {"s": session_id}, self.upload_ttl)
        return f"{self.base_url}/uploads/{token}/{quote(filename)}"


def get_file_links(request: Request) -> FileLinks:
    links: FileLinks = request.app.state.file_links
    return links


Files = Annotated[FileLinks, Depends(get_file_links)]
