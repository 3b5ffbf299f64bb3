"""The shared cache on Redis (config/cache.py): Django's backend keeping one redis client per connection pool, which
still works across threads and in a forked process."""

import os
import threading

import pytest
from django.conf import settings

from config.cache import RedisCache
from tests.conftest import IN_CI


@pytest.fixture
def redis_cache():
    redis_url = settings.REDIS_URL or os.environ.get("REDIS_URL", "")
    if not redis_url:
        if IN_CI:
            pytest.fail("CI must prove the Redis cache backend on real Redis (REDIS_URL)")
        pytest.skip("needs REDIS_URL")
    backend = RedisCache(redis_url, {"KEY_PREFIX": f"test-cache-{os.getpid()}-{id(object())}"})
    yield backend
    backend.delete_many([f"k{i}" for i in range(8)] + ["forked", "shared"])


def test_one_client_serves_every_call_on_a_pool(redis_cache):
    client = redis_cache._cache.get_client(write=True)
    assert redis_cache._cache.get_client() is client
    redis_cache.set("shared", {"amount_minor": 1234}, 30)
    assert redis_cache.get("shared") == {"amount_minor": 1234}
    assert redis_cache._cache.get_client(write=True) is client


def test_threads_share_the_client_and_each_sees_its_own_answers(redis_cache):
    errors = []

    def work(n):
        try:
            for round_ in range(50):
                redis_cache.set(f"k{n}", (n, round_), 30)
                assert redis_cache.get(f"k{n}") == (n, round_)
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_a_forked_process_uses_the_cache_on_connections_of_its_own(redis_cache):
    redis_cache.set("shared", "before the fork", 30)
    pid = os.fork()
    if pid == 0:  # the child: the pool starts afresh, as in a gunicorn or celery worker forked from the master
        try:
            redis_cache.set("forked", redis_cache.get("shared") + ", read in the child", 30)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert redis_cache.get("forked") == "before the fork, read in the child"
    assert redis_cache.get("shared") == "before the fork"
