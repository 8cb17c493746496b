"""Offline SmolLM3-compatible test kit: a tokenizer and its stock-equivalent chat template."""

from smolserve.testkit.tokenizer import VOCAB_SIZE, build_tokenizer, stock_template_text

__all__ = ["VOCAB_SIZE", "build_tokenizer", "stock_template_text"]
