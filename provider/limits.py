"""Limits, each defined once: file modes, paths and the response size the driver takes, and what one
SecretProviderClass may ask for: caps far above any real SPC, so that no SPC can take the memory or the
time of the daemon that serves every pod of its node (docs/security.md, "Limits on one mount").

The YAML parameters are the large ones: a thousand objects of a few fields each take about 80,000
characters, a template a few hundred. Every other parameter is a name, an address or a flag.
"""

from __future__ import annotations

from collections.abc import Mapping

from provider.errors import echo, invalid

# File modes: permission bits only (no setuid, setgid or sticky), as the driver's writer applies them.
MAX_MODE = 0o777
# The mode the driver sends when the pod sets none (decimal 420).
DEFAULT_MODE = 0o644
# The driver's gRPC receive limit (its default): past it the mount fails with an opaque gRPC error.
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
# Past this a Secret synced from the mount (secretObjects) exceeds Kubernetes' 1 MiB object limit.
SYNC_WARNING_BYTES = 1024 * 1024
# The largest request a driver sends: every SPC parameter at its cap (below) and a nodePublishSecretRef
# Secret at Kubernetes' 1 MiB fit in it; gRPC's default of 4 MiB would let one request cost 20 MB to parse.
MAX_REQUEST_BYTES = 2 * 1024 * 1024
# The driver's path limits (contract §3.1): a whole path, and one element of it.
MAX_PATH_BYTES = 4096
MAX_ELEMENT_BYTES = 255


def mode_in_range(mode: int) -> bool:
    return 0 <= mode <= MAX_MODE


MAX_OBJECTS = 1000  # objects in one SPC's `objects`
MAX_DOCUMENT_CHARS = 256 * 1024  # `objects` and `templates`, each
MAX_PARAMETER_CHARS = 16 * 1024  # any other parameter
DOCUMENT_PARAMETERS = frozenset({"objects", "templates"})


def check_parameter_sizes(parameters: Mapping[str, str]) -> None:
    """INVALID_ARGUMENT naming the first parameter over its cap, and the cap."""
    for name, value in parameters.items():
        cap, kind = ((MAX_DOCUMENT_CHARS, "'objects' and 'templates'") if name in DOCUMENT_PARAMETERS
                     else (MAX_PARAMETER_CHARS, "a parameter"))
        if len(value) > cap:
            raise invalid(f"parameter {echo(name)} is {len(value)} characters long, over the provider's limit of "
                          f"{cap} characters for {kind}")


def check_object_count(count: int, where: str) -> None:
    """INVALID_ARGUMENT when an SPC lists more than MAX_OBJECTS objects; `where` is the message's prefix."""
    if count > MAX_OBJECTS:
        raise invalid(f"{where} lists {count} objects, over the provider's limit of {MAX_OBJECTS} objects per "
                      "SecretProviderClass; split them over several SecretProviderClasses")
