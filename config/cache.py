"""The shared cache on Redis: Django's backend, with one redis client per connection pool.

Django's `RedisCacheClient.get_client` builds a new `redis.Redis` on the same connection pool for every cache call,
and building one costs about as much as the round trip it makes. Every payer page reads its session from this cache
(and the page cache reads pages from it), so the project keeps one client per pool instead. A client holds no
connection of its own: the pool lends one to each command (thread-safe), and starts afresh in a forked process.
"""

from django.core.cache.backends import redis as django_redis


class RedisCacheClient(django_redis.RedisCacheClient):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._clients = {}

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        client = self._clients.get(pool)
        if client is None:
            client = self._clients[pool] = self._client(connection_pool=pool)
        return client


class RedisCache(django_redis.RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = RedisCacheClient
