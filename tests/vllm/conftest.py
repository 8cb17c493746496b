"""Fixtures for the `vllm` tier: test-kit tokenizers, a tiny SmolLM3, a LoRA adapter, and the
server pool."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from vpool import ADAPTER_NAME, Assets, ServerPool
from vstack import build_tiny_adapter, build_tiny_model


@pytest.fixture(scope="session")
def assets(tmp_path_factory: pytest.TempPathFactory) -> Assets:
    from smolserve.testkit import build_tokenizer

    root = tmp_path_factory.mktemp("vllm")
    models = root / "models"
    plain = build_tiny_model(build_tokenizer(root / "tok-plain"), models / "tiny")
    special = models / "tiny-special"
    shutil.copytree(plain, special)
    tokenizer_special = build_tokenizer(root / "tok-special", tags_special=True)
    for item in tokenizer_special.iterdir():
        shutil.copy2(item, special / item.name)
    adapters = root / "adapters"
    build_tiny_adapter(plain, adapters / ADAPTER_NAME)
    return Assets(root=root, models=models, adapters=adapters)


@pytest.fixture(scope="session")
def servers(assets: Assets) -> Iterator[ServerPool]:
    pool = ServerPool(assets)
    try:
        yield pool
    finally:
        pool.close()
