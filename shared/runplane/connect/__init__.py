"""The Connect protocol, unary calls, as API Gateway HTTP API delivers them to Lambda.

``errors``      Connect error codes and their HTTP statuses
``codec``       request decoding (proto / JSON, gzip, size limits) and response encoding
``router``      procedure path -> handler registry with the protocol's checks
``apigateway``  payload-v2 event <-> HTTP request/response
"""

from runplane.connect.errors import Code, ConnectError

__all__ = ["Code", "ConnectError"]
