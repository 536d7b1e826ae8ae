"""Who may open, decide on and manage a project: its owner and members with roles, kept in ``members.json`` in the
project folder (not in state.json, so state changes and access changes never overwrite each other).

Roles, each with the rights of the one before: ``viewer`` (open and see), ``reviewer`` (also decide), ``owner`` (also
rename, manage members). An `Access` names who is asking. Signed in (the app with ``[auth]`` in
``.streamlit/secrets.toml``) the roles in ``members.json`` hold; the server's ``admins`` own every project (also the
ones made before sign-in, which have no owner). Not signed in — the CLI, the library, the app without ``[auth]``,
bound to localhost — everyone is the machine's user, who owns every project. Pure library: no streamlit here.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from .atomic import write_text_atomic
from .errors import InfluenceError
from .review import default_user

ROLES = ("viewer", "reviewer", "owner")  # each role may do what the ones before it may
RIGHTS = {"open": "viewer", "decide": "reviewer", "manage": "owner"}  # what each right needs at least
MEMBERS_FILE = "members.json"
_USER = re.compile(r"[^\x00-\x1f\x7f]{1,254}")


def valid_user(user: str) -> str:
    """``user`` (an e-mail address, an OpenID subject or a login name) trimmed, else a one-line error."""
    user = str(user or "").strip()
    if not _USER.fullmatch(user):
        raise InfluenceError("a user is named by one line of up to 254 characters (e.g. an e-mail address)")
    return user


def _same(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a.casefold() == b.casefold()


@dataclass(frozen=True)
class Members:
    """A project's owner (None for a project made before sign-in) and its other members' roles."""

    owner: str | None = None
    roles: Mapping[str, str] = field(default_factory=dict)  # user -> "viewer" | "reviewer" (not the owner)

    def role_of(self, user: str) -> str | None:
        if _same(self.owner, user):
            return "owner"
        return next((role for who, role in self.roles.items() if _same(who, user)), None)


def read_members(folder: str | os.PathLike) -> Members:
    """The members of the project in ``folder``; no file = no owner, no members."""
    path = Path(folder) / MEMBERS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Members(None, {})
    except (OSError, ValueError) as err:
        raise InfluenceError(f"the member list of project '{Path(folder).name}' cannot be read: {err}") from None
    if not isinstance(data, dict) or not isinstance(data.get("members") or {}, dict):
        raise InfluenceError(f"the member list of project '{Path(folder).name}' is not an owner and a table of members")
    roles = {str(u): str(r) for u, r in (data.get("members") or {}).items() if r in ROLES[:-1]}
    return Members(data.get("owner") or None, roles)


def write_members(folder: str | os.PathLike, members: Members) -> None:
    """Save ``members`` atomically (a reader sees the old or the new list, never half of one)."""
    folder = Path(folder)
    body = json.dumps({"owner": members.owner, "members": dict(sorted(members.roles.items()))}, indent=2)
    write_text_atomic(folder / MEMBERS_FILE, body)


@dataclass(frozen=True)
class Access:
    """Who is asking: ``user``, and whether they ``signed_in`` (then roles apply; otherwise the machine's user, who
    owns everything). ``admins`` (the server configuration's) own every project and may create projects; with no
    admins configured, any signed-in user may create projects."""

    user: str
    signed_in: bool = False
    admins: tuple[str, ...] = ()

    @classmethod
    def local(cls, user: str | None = None) -> "Access":
        """The machine's user (``user``, e.g. the CLI's ``--user``, or the OS login name): owner of every project."""
        return cls(valid_user(user) if user else default_user())

    @classmethod
    def signed_in_as(cls, user: str | None) -> "Access":
        """A user the sign-in provider vouched for, with the administrators of the server's configuration."""
        from .server_config import server_config

        return cls(valid_user(user), signed_in=True, admins=tuple(server_config().admins))

    @property
    def admin(self) -> bool:
        return any(_same(a, self.user) for a in self.admins)

    def role(self, folder: str | os.PathLike) -> str | None:
        """This user's role in the project in ``folder`` (None: no access)."""
        if not self.signed_in or self.admin:
            return "owner"
        return read_members(folder).role_of(self.user)

    def may(self, folder: str | os.PathLike, right: str) -> bool:
        """Whether this user has ``right`` ("open", "decide", "manage") on the project in ``folder``."""
        role = self.role(folder)
        return role is not None and ROLES.index(role) >= ROLES.index(RIGHTS[right])

    def check(self, folder: str | os.PathLike, right: str) -> None:
        """Refuse, in one line, what this user may not do on the project in ``folder``."""
        if self.may(folder, right):
            return
        name, role = Path(folder).name, self.role(folder)
        if role is None:
            raise InfluenceError(f"{self.user} has no access to project '{name}': ask its owner to add you")
        if right == "decide":
            raise InfluenceError(f"you may view project '{name}' but not decide (your role: {role}); ask its owner "
                                 "for the reviewer role")
        raise InfluenceError(f"only the owner of project '{name}' may do that (your role: {role})")

    @property
    def may_create(self) -> bool:
        return not self.signed_in or not self.admins or self.admin

    def check_create(self) -> None:
        if not self.may_create:
            raise InfluenceError("only the server's administrators may create projects here")

    def visible(self, projects: str | os.PathLike, names: Iterable[str]) -> list[str]:
        """Those of ``names`` (project folders under ``projects``) this user may open, in the given order."""
        return [n for n in names if self.may(Path(projects) / n, "open")]


def set_member(folder: str | os.PathLike, user: str, role: str | None) -> Members:
    """Give ``user`` ``role`` ("viewer" or "reviewer") on the project in ``folder``, or take it away (None); the
    owner's role cannot be changed here. Returns the new list."""
    user = valid_user(user)
    if role is not None and role not in ROLES[:-1]:
        raise InfluenceError(f"unknown role '{str(role)[:20]}'; choose one of: {', '.join(ROLES[:-1])}")
    members = read_members(folder)
    if _same(members.owner, user):
        raise InfluenceError(f"{user} owns this project")
    roles = {u: r for u, r in members.roles.items() if not _same(u, user)}
    if role is not None:
        roles[user] = role
    members = Members(members.owner, roles)
    write_members(folder, members)
    return members
