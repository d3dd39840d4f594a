"""Import users from a CSV (username, email, role, initial_password) into DuckDB with bcrypt hashes.

The plain password is hashed as soon as the row is read and never stored, logged, returned or put in an
error message. Invalid rows are rejected with their line number; duplicates (in the file or against
existing users, by username or email) are reported, and only overwritten with ``update_existing=True``.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ferry.errors import FerryError

ROLES = ("user", "manager", "admin")
HEADER = ["username", "email", "role", "initial_password"]
EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
USERNAME = re.compile(r"^[A-Za-z0-9_.-]{3,64}$")

USERS_DDL = """
CREATE TABLE IF NOT EXISTS users (
    username      VARCHAR PRIMARY KEY,
    email         VARCHAR NOT NULL UNIQUE,
    role          VARCHAR NOT NULL,
    password_hash VARCHAR NOT NULL,
    created_at    TIMESTAMP NOT NULL,
    updated_at    TIMESTAMP NOT NULL
)
"""


class UsersInputError(FerryError, ValueError):
    pass


@dataclass
class ImportReport:
    inserted: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    duplicates: list[dict[str, Any]] = field(default_factory=list)  # reported, not written
    rejected: list[dict[str, Any]] = field(default_factory=list)  # invalid rows

    def summary(self) -> dict[str, Any]:
        return {
            "inserted": len(self.inserted),
            "updated": len(self.updated),
            "duplicates": len(self.duplicates),
            "rejected": len(self.rejected),
        }


def _problems(row: dict[str, str]) -> list[tuple[str, str]]:
    out = []
    if not USERNAME.match(row["username"]):
        out.append(("username", "must be 3-64 letters, digits, '_', '.' or '-'"))
    if not EMAIL.match(row["email"]):
        out.append(("email", f"invalid email {row['email']!r}"))
    if row["role"] not in ROLES:
        out.append(("role", f"role {row['role']!r} not in {list(ROLES)}"))
    pw = row["initial_password"]
    if len(pw) < 8:
        out.append(("initial_password", "must be at least 8 characters"))  # never echo the value
    elif len(pw.encode()) > 72:
        out.append(("initial_password", "longer than bcrypt's 72-byte limit"))
    return out


def import_users(con, csv_path: str | Path, *, update_existing: bool = False, rounds: int = 12) -> ImportReport:
    """Validate every row, then write inserts/updates in one transaction."""
    import bcrypt

    path = Path(csv_path)
    if not path.is_file():
        raise UsersInputError(f"{path}: no such file")
    con.execute(USERS_DDL)
    existing = {u: e for u, e in con.execute("SELECT username, email FROM users").fetchall()}
    report = ImportReport()
    dupes = _Duplicates(existing, update_existing)
    writes: list[tuple[str, list]] = []
    for line, row in _rows(path, report):
        user, email = row["username"], row["email"]
        reason = dupes.reason(line, user, email)
        if reason:
            report.duplicates.append({"line": line, "username": user, "email": email, "reason": reason})
            continue
        pw_hash = bcrypt.hashpw(row.pop("initial_password").encode(), bcrypt.gensalt(rounds)).decode()
        if user in existing:
            sql = (
                "UPDATE users SET email = ?, role = ?, password_hash = ?, updated_at = now()::TIMESTAMP"
                " WHERE username = ?"
            )
            writes.append((sql, [email, row["role"], pw_hash, user]))
            report.updated.append(user)
        else:
            sql = "INSERT INTO users VALUES (?, ?, ?, ?, now()::TIMESTAMP, now()::TIMESTAMP)"
            writes.append((sql, [user, email, row["role"], pw_hash]))
            report.inserted.append(user)
    con.execute("BEGIN TRANSACTION")
    try:
        for sql, params in writes:
            con.execute(sql, params)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return report


def _rows(path: Path, report: ImportReport):
    """``(line, row)`` of each valid row of the file (trimmed, e-mail lower-cased, the password as typed); each
    invalid row goes to ``report.rejected`` with the line, the field and why (never the password)."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in (reader.fieldnames or [])]
        if sorted(header) != sorted(HEADER):
            raise UsersInputError(f"{path}: header {header} does not match {HEADER}")
        reader.fieldnames = header
        for raw in reader:
            line = reader.line_num
            if None in raw or any(raw.get(k) is None for k in HEADER):
                user = (raw.get("username") or "").strip()
                report.rejected.append(
                    {"line": line, "username": user, "field": "*", "reason": "wrong number of columns"}
                )
                continue
            row = {k: (raw[k] or "").strip() for k in HEADER}
            row["initial_password"] = raw.pop("initial_password") or ""  # keep as typed
            row["email"] = row["email"].lower()
            bad = _problems(row)
            for fld, reason in bad:
                report.rejected.append({"line": line, "username": row["username"], "field": fld, "reason": reason})
            if not bad:
                yield line, row


class _Duplicates:
    """Why a valid row is not written: a repeat in the file, an e-mail another user has, an existing user."""

    def __init__(self, existing: dict[str, str], update_existing: bool):
        self.existing, self.update_existing = existing, update_existing
        self.email_owner = {e.lower(): u for u, e in existing.items()}
        self.seen_user: dict[str, int] = {}
        self.seen_email: dict[str, int] = {}

    def reason(self, line: int, user: str, email: str) -> str | None:
        if user in self.seen_user or email in self.seen_email:
            return f"duplicate of line {self.seen_user.get(user) or self.seen_email.get(email)} in the file"
        self.seen_user[user], self.seen_email[email] = line, line
        owner = self.email_owner.get(email)
        if owner is not None and owner != user:
            return f"email already used by existing user {owner!r}"
        if user in self.existing and not self.update_existing:
            return "user exists (not updated: update_existing=false)"
        return None


def verify_password(con, username: str, password: str) -> bool:
    import bcrypt

    row = con.execute("SELECT password_hash FROM users WHERE username = ?", [username]).fetchone()
    return bool(row) and bcrypt.checkpw(password.encode(), row[0].encode())
