"""Model bytes on ``models`` load only when signed with the deployment's key, for what they claim to be."""

from __future__ import annotations

import stat
import threading
from pathlib import Path
from typing import cast

import pytest
from pydantic import SecretStr

from weir.contract.records import ModelRecord
from weir.errors import ConfigError
from weir.registry.decisions import sign_model_file, signed_model_file
from weir.registry.records import PICKLE_FACTORY, routing_record, snapshot_record, version_record
from weir.registry.signing import BAD_SIGNATURE, UNSIGNED, ModelSigner, model_signer
from weir.settings import Settings

KEY = b"a key of the deployment, 32 b..."


def test_a_signed_copy_passes_and_any_change_to_it_or_to_what_it_claims_fails() -> None:
    signer = ModelSigner(KEY)
    signed = signer.sign(snapshot_record("m", "v1", b"model bytes", learned=10))
    assert signer.refusal(signed) is None
    assert signer.refusal(snapshot_record("m", "v1", b"model bytes", learned=10)) == UNSIGNED
    for change in ({"snapshot": b"model bytez"}, {"version": "v2"}, {"model_name": "other"},
                   {"counters": {"learned": 11}}, {"signature": b"\x00" * 32}):
        assert signer.refusal(cast(ModelRecord, {**signed, **change})) == BAD_SIGNATURE, change
    assert ModelSigner(b"another key entirely, 32 bytes.").refusal(signed) == BAD_SIGNATURE


def test_an_uploaded_version_is_signed_and_records_without_model_bytes_need_nothing() -> None:
    signer = ModelSigner(KEY)
    upload = version_record("m", "v2", PICKLE_FACTORY, {}, pickled=b"pickled")
    assert signer.refusal(upload) == UNSIGNED
    assert signer.refusal(signer.sign(upload)) is None
    for plain in (version_record("m", "v1", "logistic_regression", {}), routing_record("m", "basic", "v1")):
        assert signer.sign(plain)["signature"] is None and signer.refusal(plain) is None


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ConfigError, match="at least 16"):
        ModelSigner(b"short")


def test_the_key_file_is_made_once_private_and_shared_by_every_process_of_the_machine(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    signers: list[ModelSigner] = []
    threads = [threading.Thread(target=lambda: signers.append(model_signer(settings))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    key_file = tmp_path / "home" / "model.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    record = signers[0].sign(snapshot_record("m", "v1", b"x", learned=1))
    assert all(s.refusal(record) is None for s in signers)  # every racing starter read the same key
    assert [p.name for p in key_file.parent.iterdir()] == ["model.key"]  # no staged file left behind
    from_setting = model_signer(Settings(home=tmp_path / "home", model_key=SecretStr("y" * 32)))
    assert from_setting.refusal(record) == BAD_SIGNATURE  # WEIR_MODEL_KEY wins over the file


def test_an_upload_needs_a_signature_file_that_matches(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    model = tmp_path / "model.pkl"
    model.write_bytes(b"pickled model")
    with pytest.raises(ConfigError, match=r"no signature model.pkl.sig"):
        signed_model_file(settings, model)
    assert sign_model_file(settings, model) == tmp_path / "model.pkl.sig"
    assert signed_model_file(settings, model) == b"pickled model"
    model.write_bytes(b"swapped model")
    with pytest.raises(ConfigError, match="changed since it was signed"):
        signed_model_file(settings, model)
    other = Settings(home=tmp_path / "elsewhere")
    sign_model_file(other, model)
    with pytest.raises(ConfigError, match="another model key"):
        signed_model_file(settings, model)
