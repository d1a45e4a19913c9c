"""Store change versions and the read cache they invalidate."""

from __future__ import annotations

from sqlalchemy import update

from axcenter.model.access import Role
from axcenter.store import orm
from axcenter.store.accounts import create_organization, create_user, issue_token
from axcenter.store.cache import VersionedCache
from axcenter.store.db import Store
from axcenter.store.types import utcnow


def test_commits_bump_the_versions_of_the_tables_they_change(store: Store) -> None:
    tokens, jobs = store.version(["api_tokens"]), store.version(["jobs"])
    with store.write() as s:  # unit of work
        org = create_organization(s, "Acme")
        user = create_user(s, "alice", org.id, Role.MEMBER)
        issue_token(s, user.id)
    assert store.version(["api_tokens"]) > tokens
    assert store.version(["users", "organizations"]) > 0
    assert store.version(["jobs"]) == jobs
    before = store.version(["api_tokens"])
    with store.write() as s:  # a bulk UPDATE through the session
        s.execute(update(orm.ApiToken).values(revoked_at=utcnow()))
    assert store.version(["api_tokens"]) > before


def test_rolled_back_writes_change_no_version(store: Store) -> None:
    before = store.version(["organizations"])
    try:
        with store.write() as s:
            create_organization(s, "Acme")
            raise RuntimeError("abort")
    except RuntimeError:
        pass
    assert store.version(["organizations"]) == before
    with store.read() as s:  # reads never bump
        s.get(orm.Organization, "org_x")
    assert store.version(["organizations"]) == before


def test_cache_forgets_on_change_and_after_ttl() -> None:
    version = [0]
    now = [0.0]
    cache: VersionedCache[str, int] = VersionedCache(lambda: version[0], 5.0, lambda: now[0])
    taken = cache.version()
    cache.put("a", 1, taken)
    assert cache.get("a") == 1
    version[0] += 1  # a commit changed a table read
    assert cache.get("a") is None
    cache.put("a", 1, taken)  # read before that commit: not kept
    assert cache.get("a") is None
    cache.put("a", 2, cache.version())
    now[0] = 5.0
    assert cache.get("a") is None  # expired


def test_named_caches_are_shared(store: Store) -> None:
    first = store.cache("x", ("users",), 1.0)
    assert store.cache("x", ("users",), 1.0) is first
    first.put("k", 1, first.version())
    with store.write() as s:
        org = create_organization(s, "Bolt")
        create_user(s, "bob", org.id, Role.MEMBER)
    assert first.get("k") is None
