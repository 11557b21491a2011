"""The content-addressed artifact store, and stored weights reloading to the same outputs."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import pytest
import torch

from hwsearch.artifacts import ArtifactError, ArtifactStore, default_root
from hwsearch.errors import NotFoundError
from hwsearch.models.compression import calibrate_activations
from hwsearch.models.custom.compress import compress
from hwsearch.models.custom.rules import resolve_rules
from hwsearch.models.custom.weights import dump_weights, load_weights

from .nets import DepthwiseNet, ResNet, randomise_norms


def test_round_trip_and_dedup(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "a")
    assert store.usage().artifacts == 0  # nothing created before the first write
    digest = store.put(b"weights")
    assert digest == hashlib.sha256(b"weights").hexdigest()
    assert store.exists(digest) and store.get(digest) == b"weights"
    assert store.size(digest) == 7
    assert store.put(b"weights") == digest
    store.put(b"other")
    assert store.usage().artifacts == 2 and store.usage().bytes == 12
    assert sorted(store.digests()) == sorted([digest, hashlib.sha256(b"other").hexdigest()])
    assert not list((tmp_path / "a").glob("*/.*.tmp"))  # atomic writes leave no temporaries
    assert store.delete(digest) and not store.exists(digest) and not store.delete(digest)


def test_errors(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    missing = "0" * 64
    with pytest.raises(NotFoundError):
        store.get(missing)
    with pytest.raises(NotFoundError):
        store.size(missing)
    with pytest.raises(ValueError, match="sha256"):
        store.get("../../etc/passwd")
    with pytest.raises(TypeError):
        store.put("text")  # type: ignore[arg-type]
    digest = store.put(b"abc")
    store.path(digest).write_bytes(b"abd")
    with pytest.raises(ArtifactError, match="corrupted"):
        store.get(digest)


def test_default_root_is_beside_the_sqlite_file() -> None:
    assert default_root("sqlite:///runs/my.db") == Path("runs/my.db.artifacts")
    assert default_root("sqlite:////abs/x.db?timeout=5") == Path("/abs/x.db.artifacts")
    assert default_root("sqlite:///:memory:") is None
    assert default_root("postgresql://localhost/test") is None


def test_clean_temporary(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    store.put(b"x")
    stray = tmp_path / "ab" / ".abandoned.tmp"
    stray.parent.mkdir(exist_ok=True)
    stray.write_bytes(b"half")
    assert store.clean_temporary(older_than_s=3600) == 0
    assert store.clean_temporary(older_than_s=-1) == 1 and not stray.exists()


@pytest.mark.parametrize("net", [ResNet, DepthwiseNet])
def test_stored_weights_reload_to_the_same_outputs(net: type, tmp_path: Path) -> None:
    torch.manual_seed(1)
    model = randomise_norms(net())
    x = torch.randn(4, 3, 16, 16)
    layers = {
        "features.*": {"sparsity": 0.5, "sparsity_pattern": "channel", "act_bits": 8},
        "classifier": {"weight_bits": 4, "sparsity": 0.5, "sparsity_pattern": "2:4"},
    }
    compress(model, resolve_rules(model, layers), x[:1])
    calibrate_activations(model, [x])
    model.eval()
    expected = model(x)
    store = ArtifactStore(tmp_path)
    digest = store.put(dump_weights(model))
    fresh = load_weights(net(), store.get(digest)).eval()
    assert torch.equal(fresh(x), expected)
    # a model built fresh and never compressed is a different model
    assert not torch.allclose(copy.deepcopy(net()).eval()(x), expected)


def test_load_refuses_foreign_bytes() -> None:
    import io

    buf = io.BytesIO()
    torch.save({"format": "other"}, buf)
    with pytest.raises(ValueError, match="not a hwsearch-custom-weights"):
        load_weights(ResNet(), buf.getvalue())
