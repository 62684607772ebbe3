"""The committed config_pb2 module must match proto/ (run build/codegen.sh)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_generated_module_is_fresh(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{ROOT / 'proto'}",
            f"--python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            str(ROOT / "proto/extproc/config/v1/config.proto"),
        ],
        check=True,
    )
    for name in ("config_pb2.py", "config_pb2.pyi"):
        fresh = (tmp_path / "extproc/config/v1" / name).read_text()
        committed = (ROOT / "extproc/config/v1" / name).read_text()
        assert fresh == committed, f"extproc/config/v1/{name} is stale: run build/codegen.sh"
