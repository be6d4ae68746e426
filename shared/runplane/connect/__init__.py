"""The wire: the Connect protocol as API Gateway HTTP API delivers it to Lambda.

``errors``        Connect error codes, their HTTP statuses, and the mapping of the domain's refusals
``codec``         request decoding (proto / JSON, gzip, size limits) and response encoding
``streams``       server-stream envelopes
``router``        procedure path -> handler registry with the protocol's checks
``access``        the token's ``projects`` claim
``apigateway``    payload-v2 event <-> HTTP request/response
``pages``         signed keyset page tokens
``listing``       Flyte's list semantics: filters, sorts, NULLs, keyset pages
``transformers``  records -> the flyteidl2 messages returned on the wire
"""

from runplane.connect.errors import Code, ConnectError

__all__ = ["Code", "ConnectError"]
