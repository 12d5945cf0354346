"""Authenticated keys are remembered for a short TTL; a revocation takes effect within it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from tests.ticks import FakeTicks
from tests.unit.api_harness import running_api
from upres.api.keycache import KeyCache
from upres.domain.accounts import ApiKey


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _key(key_id: str) -> ApiKey:
    return ApiKey(
        id=key_id,
        account_id="acct",
        prefix="upres_xxxxxx",
        allowed_models=("topaz-video-upscale",),
        user_group="default",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        revoked=False,
    )


def test_an_entry_lives_its_ttl_and_no_longer() -> None:
    clock = Clock()
    cache = KeyCache(ttl_s=5, clock=clock)
    assert cache.get("secret") is None
    cache.put("secret", _key("k1"))
    clock.now += 4.9
    assert cache.get("secret") == _key("k1")
    assert cache.get("other") is None
    clock.now += 0.2
    assert cache.get("secret") is None


def test_the_least_recently_used_entry_goes_first_and_ttl_zero_keeps_nothing() -> None:
    cache = KeyCache(ttl_s=60, max_entries=2)
    cache.put("a", _key("a"))
    cache.put("b", _key("b"))
    assert cache.get("a") is not None
    cache.put("c", _key("c"))
    assert [cache.get(s) is not None for s in "abc"] == [True, False, True]
    nothing = KeyCache(ttl_s=0)
    nothing.put("a", _key("a"))
    assert nothing.get("a") is None


def test_a_revoked_key_is_refused_once_its_ttl_has_passed(tmp_path: Path) -> None:
    ticks = FakeTicks()
    with (
        running_api(tmp_path, key_cache_ttl_s=5.0, ticks=ticks) as api,
        api.client() as client,
    ):
        assert client.get("/v1/credits").status_code == 200
        api.keys.revoke(api.owner.key.id)
        ticks.advance(4.9)
        cached = client.get("/v1/credits").status_code
        ticks.advance(0.2)
        refused = [client.get("/v1/credits").status_code for _ in range(2)]
    # Served from the cache within the TTL, refused once the entry is stale, and
    # not remembered again: the refusal holds.
    assert (cached, refused) == (200, [401, 401])
