"""The template engine never imports torch (it runs in a small Job image, and at CLI start-up)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path


def test_engine_and_cli_never_import_torch(testkit_tokenizer_dir: Path, tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        import smolserve.template as engine
        from smolserve.template.verify import verify_template
        tokenizer = engine.load_tokenizer({str(testkit_tokenizer_dir)!r})
        for variant in engine.VARIANTS:
            generated = engine.generate_template(tokenizer, variant)
            verify_template(generated.text, tokenizer)
        engine.render_prompt(generated.text, tokenizer, [{{"role": "user", "content": "x"}}])
        from smolserve.cli import main
        assert main(["template", "generate", "--tokenizer", {str(testkit_tokenizer_dir)!r},
                     "--out", {str(tmp_path / "t.jinja")!r}, "--verify"]) == 0
        loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
        print("TORCH:", loaded)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "TORCH: []" in result.stdout
