"""Shared layer of the token service: envelopes, errors, the device flow, sessions, tokens, storage, HTTP plumbing."""
