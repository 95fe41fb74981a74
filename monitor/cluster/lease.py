"""A Redis lease: one holder at a time, kept alive by renewing it, released by its holder only.

Used for the cluster's detection leader (monitor/cluster/watermark.py) and for the single-instance
lease of a daemon without cluster mode (monitor/cluster/solo.py). Both scripts are atomic, so two
holders never both believe they hold the lease within one lease period.
"""

from __future__ import annotations

from monitor.redis_connect import RedisClient

# Keep (renew) the lease if we hold it, else take it if it is free.
_TAKE_OR_KEEP = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
# Renew the lease only if we still hold it (never take a free one).
_KEEP = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_REPLACE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""


async def take_or_keep(redis: RedisClient, key: str, token: str, lease_ms: int) -> bool:
    """True while ``token`` holds the lease (renewed for ``lease_ms`` from now)."""
    return bool(await redis.eval(_TAKE_OR_KEEP, 1, key, token, lease_ms))


async def keep(redis: RedisClient, key: str, token: str, lease_ms: int) -> bool:
    """Renew the lease ``token`` holds; False if it lapsed or another holder has it. Mid-pass a holder must
    not take a free lease back: another may have held it (and worked) meanwhile."""
    return bool(await redis.eval(_KEEP, 1, key, token, lease_ms))


async def release(redis: RedisClient, key: str, token: str) -> None:
    """Give the lease up, if ``token`` still holds it (never another holder's)."""
    await redis.eval(_RELEASE, 1, key, token)


async def replace(redis: RedisClient, key: str, old_token: str, token: str, lease_ms: int) -> bool:
    """Take the lease over from ``old_token`` (known dead), unless someone else took it meanwhile."""
    return bool(await redis.eval(_REPLACE, 1, key, old_token, token, lease_ms))
