"""The chat-template engine: tokenizer loading, token map, generate, verify, render.

Imports nothing heavy at package import; transformers is loaded by the functions that need it,
and torch never is.
"""

from smolserve.template.generate import VARIANTS, GeneratedTemplate, Variant, generate_template
from smolserve.template.loading import load_tokenizer
from smolserve.template.render import FROZEN_DATE, render_prompt
from smolserve.template.tokens import TokenMap, read_token_map
from smolserve.template.verify import VerifyReport, verify_template

__all__ = [
    "FROZEN_DATE",
    "VARIANTS",
    "GeneratedTemplate",
    "TokenMap",
    "Variant",
    "VerifyReport",
    "generate_template",
    "load_tokenizer",
    "read_token_map",
    "render_prompt",
    "verify_template",
]
