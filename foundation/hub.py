"""Publishing a release directory on the Hugging Face hub. A release is already a valid model repository (model
card with the hub's YAML front matter, safetensors weights, model.json, SHA256SUMS; foundation/release.py), so
pushing is one upload of the verified directory. huggingface_hub is optional: imported only here, when pushing.

Getting a model back: `huggingface-cli download REPO_ID --local-dir $FOUNDATION_MODELS/NAME`, then
`foundation.load_calculator("NAME")` (foundation/models/loading.py).
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path

from foundation.errors import UserError
from foundation.release import verify_checksums

log = logging.getLogger(__name__)
HIDDEN = [".*", ".*/**", "**/.*"]  # a local .cache/ or .git/ is never uploaded


def require_hub() -> None:
    """A clear UserError when huggingface_hub is not installed (checked before any work is done)."""
    if importlib.util.find_spec("huggingface_hub") is None:
        raise UserError(
            "pushing to the Hugging Face hub needs huggingface_hub: pip install huggingface_hub "
            "(or pip install 'foundation-mlip[hub]')"
        )


def push_release(
    directory: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    commit_message: str | None = None,
) -> str:
    """Verify the release, create the model repository REPO_ID if needed and upload the directory; returns the
    repository's URL. Needs huggingface_hub and a token (HF_TOKEN or `huggingface-cli login`)."""
    directory = Path(directory)
    verify_checksums(directory)
    require_hub()
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    url = api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    api.upload_folder(
        folder_path=str(directory),
        repo_id=repo_id,
        repo_type="model",
        ignore_patterns=HIDDEN,
        commit_message=commit_message or f"foundation release {directory.name}",
    )
    log.info("pushed %s to %s", directory, url)
    return str(url)
