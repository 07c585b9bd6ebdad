"""Secrets stored encrypted (Fernet) with a key derived from SECRET_KEY; SECRET_KEY_FALLBACKS still decrypt."""

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import models

_PURPOSE = b"vpnmonitor.secrets-at-rest:"


def _fernet():
    keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return MultiFernet([
        Fernet(base64.urlsafe_b64encode(hashlib.sha256(_PURPOSE + key.encode()).digest())) for key in keys
    ])


def encrypt(plaintext):
    """The Fernet token of plaintext ("" stays "": nothing to hide)."""
    if not plaintext:
        return ""
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token):
    """The plaintext of a Fernet token; a token no configured key opens is an error naming the cause."""
    if not token:
        return ""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise ValueError(
            "a stored secret cannot be decrypted: SECRET_KEY changed (put the old key in SECRET_KEY_FALLBACKS) "
            "or the value was not written by vpnmonitor"
        ) from None


class UndecryptableSecret(str):
    """A stored token that no configured key opens (SECRET_KEY changed without SECRET_KEY_FALLBACKS).

    Its row still loads, shows and saves (the token is written back unchanged); only using the secret, through
    reveal(), fails, so one server's unreadable password is that server's poll error and nothing else.
    """


def reveal(value):
    """The plaintext of an EncryptedTextField's value; ValueError when it cannot be decrypted."""
    if isinstance(value, UndecryptableSecret):
        return decrypt(str(value))
    return value


class EncryptedTextField(models.TextField):
    """A text column holding a Fernet token; Python sees the plaintext (or an UndecryptableSecret)."""

    def from_db_value(self, value, expression, connection):
        if not value:
            return value
        try:
            return decrypt(value)
        except ValueError:
            return UndecryptableSecret(value)

    def get_prep_value(self, value):
        if isinstance(value, UndecryptableSecret):
            return str(value)
        value = super().get_prep_value(value)
        return encrypt(value) if value else value
