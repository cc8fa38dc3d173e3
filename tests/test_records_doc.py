"""docs/records.md's field tables are what scripts/gen_records_doc.py writes from the model."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO


def test_records_page_matches_the_model() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_records_doc.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr


def test_every_record_field_has_a_description() -> None:
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import gen_records_doc
    finally:
        sys.path.remove(str(REPO / "scripts"))
    for model in gen_records_doc.MODELS:
        for name, info in model.model_fields.items():
            assert info.description, f"{model.__name__}.{name} has no description"
        assert f"### {model.__name__}" in gen_records_doc.generated()
