"""Model bytes on ``models`` are signed: a process unpickles only what a holder of the deployment's key wrote.

A version uploaded as a pickle and a learner's serving copy both carry model
bytes that every serve worker loads. Anyone who can write the topic could
otherwise put any bytes there, so each such record carries an HMAC-SHA256,
made with the deployment's model key, over the bytes and what they claim to be
(model, version, kind, labels learned): a copy signed for v1 cannot pass as
v2's, nor an old copy as a newer one. The restricted unpickler
(``weir.state.pickling``) stays behind this as a second wall.

The key is ``WEIR_MODEL_KEY``, or the contents of ``WEIR_MODEL_KEY_FILE``
(default ``<WEIR_HOME>/model.key``, created with a random key, readable by its
owner only, the first time it is needed), so the processes of one machine
agree without set-up and a cluster's processes share it through a Secret.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import tempfile
from pathlib import Path

from weir.contract.records import ModelRecord
from weir.errors import ConfigError
from weir.settings import Settings, revealed

MIN_KEY_BYTES = 16
_DOMAIN = b"weir-model-signature-v1"
_SERVED_DOMAIN = b"weir-served-v1"
UNSIGNED, BAD_SIGNATURE = "unsigned", "bad-signature"


def model_bytes(record: ModelRecord) -> bytes | None:
    """The pickled model a record carries, if any: an uploaded version's or a serving copy's."""
    if record["kind"] == "SNAPSHOT":
        return record["snapshot"]
    spec = record["spec"]
    return spec["pickle"] if record["kind"] == "VERSION" and spec is not None else None


class ModelSigner:
    """Signs the model bytes a deployment writes and tells which records it may load."""

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ConfigError(f"the model key is {len(key)} bytes; use at least {MIN_KEY_BYTES} "
                              "(e.g. `openssl rand -hex 32`)")
        self._key = key

    def _mac(self, record: ModelRecord, data: bytes) -> bytes:
        learned = record["counters"].get("learned", 0) if record["kind"] == "SNAPSHOT" else 0
        claim = "\0".join((record["model_name"], record["version"] or "", record["kind"], str(learned)))
        message = b"\0".join((_DOMAIN, claim.encode(), hashlib.sha256(data).digest()))
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def sign(self, record: ModelRecord) -> ModelRecord:
        """The record with its signature, if it carries model bytes (other records need none)."""
        data = model_bytes(record)
        return record if data is None else {**record, "signature": self._mac(record, data)}

    def refusal(self, record: ModelRecord) -> str | None:
        """Why this record's model bytes must not be loaded (``unsigned``, ``bad-signature``), or None."""
        data = model_bytes(record)
        if data is None:
            return None
        signature = record["signature"]
        if not signature:
            return UNSIGNED
        return None if hmac.compare_digest(signature, self._mac(record, data)) else BAD_SIGNATURE

    def sign_file(self, data: bytes) -> str:
        """The signature of a model file, hex, as ``weir models sign`` writes it beside the file."""
        return hmac.new(self._key, b"\0".join((_DOMAIN, b"file", hashlib.sha256(data).digest())),
                        hashlib.sha256).hexdigest()

    def file_is_signed(self, data: bytes, signature: str) -> bool:
        return hmac.compare_digest(signature.strip(), self.sign_file(data))

    def sign_served(self, value: bytes) -> bytes:
        """The signature of a raw event a Weir process has already served (the HTTP service): the front passes
        such an event by, and only a holder of the key can make it do so, since any producer can write a header."""
        return hmac.new(self._key, b"\0".join((_SERVED_DOMAIN, hashlib.sha256(value).digest())),
                        hashlib.sha256).hexdigest().encode()

    def is_served(self, value: bytes | None, signature: bytes | None) -> bool:
        return value is not None and signature is not None and hmac.compare_digest(signature, self.sign_served(value))


def model_signer(settings: Settings) -> ModelSigner:
    """The deployment's signer: the key from the setting, else from the key file (created if it is missing)."""
    key = revealed(settings.model_key)
    if key is not None:
        return ModelSigner(key.encode())
    path = settings.model_key_file or settings.home / "model.key"
    return ModelSigner(_read_or_create(path))


def _read_or_create(path: Path) -> bytes:
    """The key in ``path``; a new random one if there is none (written whole, then linked: a process starting
    beside this one reads either no file or the complete key)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            fd, staged = tempfile.mkstemp(prefix=".model.key.", dir=path.parent)  # mode 0600
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(secrets.token_hex(32).encode() + b"\n")
                os.link(staged, path)
            except FileExistsError:
                pass  # another process made it first: use theirs
            finally:
                os.unlink(staged)
        return path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read or create the model key file {path}: {exc.strerror}; set "
                          "WEIR_MODEL_KEY or WEIR_MODEL_KEY_FILE") from exc


def signature_path(model_file: Path) -> Path:
    return model_file.with_name(model_file.name + ".sig")
