"""How hard Key Vault calls are retried (the loop itself is the core's, provider/retry.py).

azure-core's own retries are switched off on our clients (retry_total=0) so that the core's loop is the
only one: 408, 429 and 5xx answers and dropped connections, inside the mount's deadline.
"""

from __future__ import annotations

from provider.retry import RetryPolicy

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
POLICY = RetryPolicy(max_attempts=4, base_delay=0.4, max_delay=8.0)
