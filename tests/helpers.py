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


#: Schema changes on the demo ETL source that the per-change review covers with one field each: a type change
#: (with a value that does not cast), a likely rename, a new required column and a new nullable one.
REVIEW_ALTER = """
    UPDATE accounts SET balance = 12.5 WHERE id = 1;
    ALTER TABLE accounts ALTER COLUMN balance TYPE text;
    INSERT INTO accounts (id, name, balance) VALUES (999, 'no campaigns', 'n/a');
    ALTER TABLE accounts RENAME COLUMN region TO area;
    ALTER TABLE accounts ADD COLUMN tier text NOT NULL DEFAULT 'gold';
    ALTER TABLE accounts ALTER COLUMN tier DROP DEFAULT;
    ALTER TABLE accounts ADD COLUMN notes text;
"""
