"""`@cache.cached` for sync and async functions, with the cross-language key template."""

from __future__ import annotations

import asyncio

from conftest import wait_until_async
from polycache import AsyncCache, Cache, contract


def test_sync_decorator_with_a_template(url: str, namespace: str) -> None:
    cache = Cache(url, namespace=namespace)
    calls: list[int] = []

    @cache.cached(ttl=60, key="user:{0}")
    def get_user(user_id: int) -> dict[str, int]:
        calls.append(user_id)
        return {"id": user_id}

    assert get_user(7) == {"id": 7}
    assert get_user(7) == {"id": 7}
    assert get_user(8) == {"id": 8}
    assert calls == [7, 8]
    assert get_user.__name__ == "get_user"
    # The entry lives under the documented key, so any runtime rendering it shares it.
    assert cache.get("user:7") == {"id": 7}


def test_named_placeholders_and_defaults(namespace: str) -> None:
    cache = Cache("memory://", namespace=namespace)

    @cache.cached(key="page:{lang}:{0}")
    def page(slug: str, lang: str = "en") -> str:
        return f"{slug}/{lang}"

    assert page("home") == "home/en"
    assert page("home", lang="de") == "home/de"
    assert cache.get("page:en:home") == "home/en"
    assert cache.get("page:de:home") == "home/de"


def test_default_key_is_name_and_argument_hash(namespace: str) -> None:
    cache = Cache("memory://", namespace=namespace)

    @cache.cached()
    def price(currency: str, amount: float) -> float:
        return amount * 2

    assert price("EUR", 19.99) == 39.98
    assert cache.get(contract.call_key("price", ["EUR", 19.99])) == 39.98


def test_async_decorator(url: str, namespace: str) -> None:
    callers = 20
    calls = 0

    async def main() -> None:
        cache = await AsyncCache.connect(url, namespace=namespace)

        @cache.cached(ttl=60, key="report:{0}")
        async def report(n: int) -> list[int]:
            nonlocal calls
            calls += 1
            # Every caller has missed before this call ends (see test_async.py).
            await wait_until_async(lambda: cache.metrics()["misses"] >= callers, "all missed")
            return list(range(n))

        got = await asyncio.gather(*(report(3) for _ in range(callers)))
        assert got == [[0, 1, 2]] * callers
        assert cache.metrics()["misses"] == callers
        assert calls == 1
        assert await cache.get("report:3") == [0, 1, 2]

    asyncio.run(main())


def test_default_key_includes_keyword_arguments(namespace: str) -> None:
    cache = Cache("memory://", namespace=namespace)
    calls: list[tuple[int, dict[str, str]]] = []

    @cache.cached()
    def export(report: int, **options: str) -> str:
        calls.append((report, options))
        return f"{report}.{options.get('fmt', 'txt')}"

    assert export(1, fmt="pdf") == "1.pdf"
    assert export(1, fmt="csv") == "1.csv"  # not the pdf entry
    assert export(1, fmt="pdf", lang="en") == "1.pdf"
    assert export(1, lang="en", fmt="pdf") == "1.pdf"  # the order of names does not count
    assert len(calls) == 3
    # The key is the documented one (FORMAT.md §5), so other runtimes can compute it.
    key = contract.call_key("export", [1], {"fmt": "csv"})
    assert cache.get(key) == "1.csv"
    assert contract.call_key("export", [1], {}) == contract.call_key("export", [1])
