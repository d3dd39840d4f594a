"""Test helpers shared across test modules."""

from __future__ import annotations

from pymongo import monitoring

#: Commands that change data or structure on a MongoDB server.
WRITE_COMMANDS = frozenset(
    {
        "insert",
        "update",
        "delete",
        "findAndModify",
        "create",
        "createIndexes",
        "drop",
        "dropIndexes",
        "dropDatabase",
        "collMod",
        "renameCollection",
        "bulkWrite",
        "createSearchIndexes",
        "updateSearchIndex",
        "dropSearchIndex",
        "aggregate_out",
    }
)


class CommandRecorder(monitoring.CommandListener):
    """Records ``(command_name, database, command)`` of every command a client starts."""

    def __init__(self):
        self.commands: list[tuple[str, str, dict]] = []

    def started(self, event):
        self.commands.append((event.command_name, event.database_name, dict(event.command)))

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass

    def names(self) -> list[str]:
        return [c[0] for c in self.commands]

    def writes(self) -> list[tuple[str, str, dict]]:
        """Write commands, including aggregations with ``$out``/``$merge``."""
        out = []
        for name, db, cmd in self.commands:
            if name in WRITE_COMMANDS:
                out.append((name, db, cmd))
            elif name == "aggregate" and any(("$out" in s or "$merge" in s) for s in cmd.get("pipeline", [])):
                out.append((name, db, cmd))
        return out

    def clear(self) -> None:
        self.commands.clear()
