"""Where an action's specs live: inline in its item while small, in the data bucket when large.

Writes are billed per KB of the whole item, and every status update rewrites it, so specs over
``INLINE_SPEC_LIMIT`` go to the bucket, content-addressed (a retried write rewrites the same
object), and every read resolves them again. An item must also stay clear of DynamoDB's 400 KB
limit, which ``checked_item`` enforces with a clear ``RecordTooLarge``.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from runplane.table.outcomes import MAX_ITEM_BYTES, RecordTooLarge, item_size
from runplane.table.records import ActionRecord, EventRecord

if TYPE_CHECKING:
    from runplane.aws.blobs import BlobStore

# Specs above this go to the bucket. Writes are billed per KB of the *whole* item, and every
# status update rewrites the item, so a small item keeps an action's life cheap.
INLINE_SPEC_LIMIT = 16 * 1024
_SPECS = ("action_spec", "run_spec")  # the serialized specs an item carries inline, deflated


class SpecBucket:
    """Offloaded specs in the data bucket; without a bucket a large spec is ``RecordTooLarge``."""

    def __init__(self, *, blobs: BlobStore | None, spec_prefix: str) -> None:
        """``spec_prefix``: ``s3://bucket[/path]``, or empty for none."""
        self._blobs = blobs
        self._spec_prefix = spec_prefix.rstrip("/")

    def offload(self, data: bytes) -> str:
        """Store bytes in the bucket, content-addressed; returns their URI."""
        if not self._spec_prefix:
            raise RecordTooLarge(f"{len(data)} bytes is over the inline limit and this store has no bucket")
        uri = f"{self._spec_prefix}/specs/{hashlib.sha256(data).hexdigest()}.pb"
        self._require_blobs().put(uri, data)  # content-addressed: a retry rewrites the same bytes
        return uri

    def read(self, uri: str) -> bytes:
        return self._require_blobs().get(uri)

    def offload_specs(self, record: ActionRecord) -> ActionRecord:
        """The record as stored: specs over the inline limit replaced by content-addressed URIs."""
        changes: dict[str, Any] = {}
        for field, uri_field in (("action_spec", "action_spec_uri"), ("run_spec", "run_spec_uri")):
            data = getattr(record, field)
            if len(data) > INLINE_SPEC_LIMIT and self._spec_prefix:
                changes[field] = b""
                changes[uri_field] = self.offload(data)
        return record.with_changes(**changes) if changes else record

    def resolve(self, record: ActionRecord) -> ActionRecord:
        """The record with its offloaded specs loaded back."""
        changes = {}
        if record.action_spec_uri and not record.action_spec:
            changes["action_spec"] = self.read(record.action_spec_uri)
        if record.run_spec_uri and not record.run_spec:
            changes["run_spec"] = self.read(record.run_spec_uri)
        return record.with_changes(**changes) if changes else record

    def _require_blobs(self) -> BlobStore:
        if self._blobs is None:
            raise RuntimeError("this store has no data bucket to resolve offloaded specs")
        return self._blobs


def checked_item(record: ActionRecord | EventRecord) -> dict[str, dict[str, Any]]:
    """The record's item, refused with ``RecordTooLarge`` if it would not fit."""
    item = record.to_item()
    size = item_size(item)
    if isinstance(record, ActionRecord):
        # The limit is on the record, specs counted as they are, not as well as they deflate:
        # whether a run fits must not depend on how repetitive its spec happens to be.
        size += sum(len(getattr(record, name)) - len(item[name]["B"]) for name in _SPECS if name in item)
    if size > MAX_ITEM_BYTES:
        raise RecordTooLarge(f"{record.key} is {size} bytes, over the {MAX_ITEM_BYTES}-byte limit")
    return item
