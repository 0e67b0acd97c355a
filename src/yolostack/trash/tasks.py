from yolostack.core.db import Database
from yolostack.core.files import Deleter, delete_orphans
from yolostack.trash.service import trash as trash_service


async def purge_expired_trash(database: Database, store: Deleter | None = None) -> int:
    """``trash.purge``: delete for good what has been in the trash longer than the retention period,
    then the files only those rows used."""
    async with database.sessionmaker() as session:
        async with session.begin():
            purged = await trash_service.purge_expired(session)
        if store is not None:
            await delete_orphans(session, store)
        return purged
