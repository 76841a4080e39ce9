"""`foundation --version`: the versions of foundation, torch, DeepSpeed and CUDA, printed without importing torch."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

import pytest
import torch

import foundation
from foundation.cli.main import main


def test_version_names_the_package_torch_deepspeed_and_cuda(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    cuda = torch.version.cuda or "none"
    deepspeed = importlib.metadata.version("deepspeed")
    assert capsys.readouterr().out == (
        f"foundation {foundation.__version__} (torch {torch.__version__}, DeepSpeed {deepspeed}, "
        f"CUDA {cuda})\n"
    )


def test_version_imports_neither_torch_nor_deepspeed():
    script = (
        "import sys\n"
        "from foundation.cli.main import main\n"
        "try:\n"
        "    main(['--version'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted({'torch', 'deepspeed'} & set(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert out.splitlines()[-1] == "[]"


def test_version_after_other_options_and_in_the_help(capsys):
    with pytest.raises(SystemExit):
        main(["-q", "--version"])
    assert capsys.readouterr().out.startswith(f"foundation {foundation.__version__} (torch ")
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "--version" in capsys.readouterr().out
