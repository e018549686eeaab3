"""Limits every backend and the core share, each defined once: file modes, paths, response size."""

from __future__ import annotations

# File modes: permission bits only (no setuid, setgid or sticky), as the driver's writer applies them.
MAX_MODE = 0o777
# The mode the driver sends when the pod sets none (decimal 420).
DEFAULT_MODE = 0o644
# The driver's gRPC receive limit (its default): past it the mount fails with an opaque gRPC error.
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
# Past this a Secret synced from the mount (secretObjects) exceeds Kubernetes' 1 MiB object limit.
SYNC_WARNING_BYTES = 1024 * 1024
# The driver's path limits (contract §3.1): a whole path, and one element of it.
MAX_PATH_BYTES = 4096
MAX_ELEMENT_BYTES = 255


def mode_in_range(mode: int) -> bool:
    return 0 <= mode <= MAX_MODE
