"""auth_metadata: AuthMetadataService, how the flyte SDK and CLI find the identity provider
before they hold a token (its two routes are the only ones without an authorizer)."""
