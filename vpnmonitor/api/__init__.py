"""The API layer shared by every app: envelopes, errors, pagination, auth, throttles."""
