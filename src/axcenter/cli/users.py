"""``axc user``: users, roles and API tokens.

A token is printed once, when it is issued: store it then (``axc login --token``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from axcenter.cli import render
from axcenter.cli.alloc import say, table, text, utc
from axcenter.cli.common import connect, new_app, print_json

__all__ = ["ROLES", "app", "users_table"]

app = new_app(help="Users, roles and API tokens.", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
ROLES = ("operator", "program_manager", "reviewer", "org_admin", "member")


def _role(value: str) -> str:
    if value not in ROLES:
        raise typer.BadParameter(f"{value!r}: one of {', '.join(ROLES)}", param_hint="ROLE")
    return value


def users_table(users: Sequence[Mapping[str, Any]]) -> Table:
    t = table()
    for column in ("USER", "ID", "ROLE", "ORGANIZATION", ""):
        t.add_column(column, overflow="fold")
    for u in users:
        t.add_row(
            text(u.get("name")),
            text(u.get("id")),
            text(u.get("role")),
            text(u.get("organization")),
            "" if u.get("active", True) else Text("inactive", style="bright_black"),
        )
    return t


def _say_token(user: object, token: object) -> None:
    say(f"token for {escape(text(user))} (shown once, store it now):")
    render.out_console().print(str(token), soft_wrap=True, highlight=False, markup=False)


@app.command("list")
def list_users(
    ctx: typer.Context,
    org: Annotated[str | None, typer.Option("--org", help="Only this organization.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Users you may see, with their roles."""
    with connect(ctx) as client:
        items = client.list_users(org)
    if as_json:
        print_json(items)
    elif not items:
        say("no users")
    else:
        render.out_console().print(users_table(items))


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="User name.")],
    role: Annotated[str, typer.Option("--role", help=", ".join(ROLES))] = "member",
    org: Annotated[str | None, typer.Option("--org", help="Organization (default: yours).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Create a user and its first token (operators; org admins: members of their org)."""
    with connect(ctx) as client:
        out = client.create_user(name=name, role=_role(role), organization=org)
    if as_json:
        print_json(out)
        return
    say(
        f"created [bold]{escape(text(out.get('name')))}[/] ({text(out.get('id'))}), "
        f"{escape(text(out.get('role')))} in {escape(text(out.get('organization')))}"
    )
    if out.get("token"):
        _say_token(out.get("name"), out["token"])


@app.command("role")
def role(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(help="User name or usr_ id.")],
    new_role: Annotated[str, typer.Argument(metavar="ROLE", help=", ".join(ROLES))],
    as_json: JsonOption = False,
) -> None:
    """Change a user's role (operators only; audited)."""
    with connect(ctx) as client:
        out = client.update_user(user, role=_role(new_role))
    if as_json:
        print_json(out)
    else:
        say(f"{escape(text(out.get('name')))} is now {escape(text(out.get('role')))}")


@app.command("map")
def map_account(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(help="User name or usr_ id.")],
    account: Annotated[str, typer.Argument(help="An existing unix account on the center.")],
    as_json: JsonOption = False,
) -> None:
    """Run a user's jobs as an existing unix account (operators only; audited): for
    centers whose accounts come from a directory service (identities: mapped)."""
    with connect(ctx) as client:
        out = client.map_unix_account(user, account)
    if as_json:
        print_json(out)
    else:
        say(
            f"{escape(text(out.get('user')))}'s jobs run as {escape(text(out.get('account')))}"
            f" (uid {text(out.get('uid'))})"
        )


@app.command("token")
def token(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(help="User name or usr_ id.")],
    name: Annotated[str, typer.Option("--name", help="What the token is for.")] = "",
    expires_in_days: Annotated[
        int | None,
        typer.Option(
            "--expires-in-days", min=1, max=3650, help="Days until it expires (default: never)."
        ),
    ] = None,
    list_: Annotated[bool, typer.Option("--list", "-l", help="List tokens instead.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Issue a new token for a user (printed once), or --list its tokens."""
    with connect(ctx) as client:
        out = (
            client.get_user(user)
            if list_
            else client.issue_token(user, name, expires_in_days=expires_in_days)
        )
    if as_json:
        print_json(out)
    elif list_:
        t = table()
        for column in ("TOKEN ID", "NAME", "CREATED", "EXPIRES", "REVOKED"):
            t.add_column(column, overflow="fold")
        for tok in out.get("tokens") or []:
            t.add_row(
                text(tok.get("id")),
                text(tok.get("name")),
                utc(tok.get("created_at")),
                utc(tok.get("expires_at")),
                utc(tok.get("revoked_at")),
            )
        render.out_console().print(t)
    else:
        say(f"issued token {escape(text(out.get('id')))}")
        _say_token(out.get("user"), out.get("token"))


@app.command("reset-password")
def reset_password(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(help="User name or usr_ id.")],
    as_json: JsonOption = False,
) -> None:
    """Drop a user's dashboard password and second factor, unlock the account and sign it
    out everywhere; prints a one-time link where the user sets new ones (operators)."""
    with connect(ctx) as client:
        out = client.reset_password(user)
    if as_json:
        print_json(out)
    else:
        say(
            f"{escape(text(out.get('user')))} is signed out and has no password now; "
            f"until {utc(out.get('expires_at'))} this link (once) sets a new one:"
        )
        render.out_console().print(text(out.get("link")), soft_wrap=True, highlight=False)


@app.command("rotate")
def rotate(
    ctx: typer.Context,
    token_id: Annotated[str, typer.Argument(help="Token id (tok_...), from `token --list`.")],
    expires_in_days: Annotated[
        int | None,
        typer.Option(
            "--expires-in-days",
            min=1,
            max=3650,
            help="Days until the new token expires (default: the old one's lifetime).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Replace a token by a new one (printed once); the old one is revoked at once."""
    with connect(ctx) as client:
        out = client.rotate_token(token_id, expires_in_days=expires_in_days)
    if as_json:
        print_json(out)
    else:
        say(f"revoked {escape(token_id)}; issued token {escape(text(out.get('id')))}")
        _say_token(out.get("user"), out.get("token"))


@app.command("revoke")
def revoke(
    ctx: typer.Context,
    token_id: Annotated[str, typer.Argument(help="Token id (tok_...), from `token --list`.")],
) -> None:
    """Revoke a token at once."""
    with connect(ctx) as client:
        client.revoke_token(token_id)
    say(f"revoked {escape(token_id)}")
