"""Where Flyte's executor writes an action's outputs (executor/pkg/plugin::ComputeActionOutputPath).

``<scheme>://<bucket>/<shard>/<runOutputBase path>/<action>/<attempt>``, where the shard is one of
the 1,296 two-character prefixes ``aa, ab, …, a9, ba, …, 99`` picked by FNV-1a (32 bit) of
``<namespace>/<TaskAction name>``: object stores spread load by key prefix.
"""

from __future__ import annotations

import string

from runplane.flyte.identifiers import ActionKey, taskaction_name

_ALPHABET = string.ascii_lowercase + string.digits
SHARD_PREFIXES = [a + b for a in _ALPHABET for b in _ALPHABET]  # 36 x 36 = 1,296
OUTPUTS_FILE = "outputs.pb"


def fnv32a(data: bytes) -> int:
    value = 0x811C9DC5
    for byte in data:
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value


def action_output_path(
    *, namespace: str, project: str, domain: str, run: str, action: str, run_output_base: str, attempt: int
) -> str:
    scheme, _, rest = run_output_base.partition("://")
    bucket, _, base_path = rest.partition("/")
    resource = taskaction_name(ActionKey(project=project, domain=domain, run=run, name=action))
    shard = SHARD_PREFIXES[fnv32a(f"{namespace}/{resource}".encode()) % len(SHARD_PREFIXES)]
    parts = [shard, base_path.strip("/"), action, str(attempt)]
    return f"{scheme}://{bucket}/" + "/".join(part for part in parts if part)
