from yolostack.core.db import Database
from yolostack.trash.service import trash as trash_service


async def purge_expired_trash(database: Database) -> int:
    """``trash.purge``: delete for good what has been in the trash longer than the retention period."""
    async with database.sessionmaker() as session, session.begin():
        return await trash_service.purge_expired(session)
