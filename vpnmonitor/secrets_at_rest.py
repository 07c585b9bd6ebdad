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


class EncryptedTextField(models.TextField):
    """A text column holding a Fernet token; Python sees the plaintext."""

    def from_db_value(self, value, expression, connection):
        return decrypt(value) if value else value

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        return encrypt(value) if value else value
