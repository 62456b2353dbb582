"""Shared layer of the token service: envelopes, errors, grants, tokens, storage, HTTP plumbing."""
