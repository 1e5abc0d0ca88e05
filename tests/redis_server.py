"""The test stack's Redis (``stack/redis.py``, a part of the stack) as the Celery tests'
broker and result backend: each test module takes a database number of its own,
emptied before the module starts, so modules never see each other's queues or keys."""

from __future__ import annotations

from dataclasses import dataclass

from b2c_monitoring.stack.local import LocalStack

# database numbers of the test modules that use Redis (the demo's app uses 0)
CELERY_TESTS = 1
CELERY_BENCH = 15


@dataclass(frozen=True)
class RedisDb:
    url: str
    database: int


def redis_db(stack: LocalStack, database: int) -> RedisDb:
    """``database`` of the stack's Redis, emptied."""
    stack.redis.flush(database)
    return RedisDb(stack.redis.url(database), database)
