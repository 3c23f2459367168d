async def attach_offline(session) -> None:
    return None
