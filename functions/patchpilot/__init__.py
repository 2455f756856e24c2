"""PatchPilot Lambda code: handlers -> logic -> integrations, with pydantic models at every boundary."""
