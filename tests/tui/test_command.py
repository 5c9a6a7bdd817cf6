"""The torchrun command the console launches and writes for the other nodes."""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
import sys

from asr_tui.command import command_text, torchrun_argv, torchrun_env, torchrun_script, write_node_scripts
from engine.config import DEFAULTS, deep_merge


def _config(**distributed):
    return deep_merge(DEFAULTS, {"output_dir": "exp/x", "distributed": distributed})


def test_single_node_argv_uses_explicit_rendezvous():
    argv = torchrun_argv(_config(nproc_per_node=2, master_port=29611), "/runs/x/config.yaml")
    assert argv == [
        sys.executable, "-m", "torch.distributed.run",
        "--nnodes", "1", "--nproc_per_node", "2", "--node_rank", "0",
        "--master_addr", "127.0.0.1", "--master_port", "29611",
        "-m", "engine.train", "--config", "/runs/x/config.yaml",
    ]
    assert "--standalone" not in argv


def test_two_nodes_render_each_rank():
    config = _config(nnodes=2, nproc_per_node=8, node_rank=0, master_addr="10.0.0.1", master_port=12345)
    rank0 = torchrun_argv(config, "c.yaml")
    rank1 = torchrun_argv(config, "c.yaml", node_rank=1)
    assert rank0[rank0.index("--node_rank") + 1] == "0"
    assert rank1[rank1.index("--node_rank") + 1] == "1"
    for argv in (rank0, rank1):
        assert argv[argv.index("--nnodes") + 1] == "2"
        assert argv[argv.index("--master_addr") + 1] == "10.0.0.1"
        assert argv[argv.index("--master_port") + 1] == "12345"


def test_devices_go_to_the_environment_not_the_argv():
    assert torchrun_env(_config()) == {}
    assert torchrun_env(_config(devices="0, 2")) == {"CUDA_VISIBLE_DEVICES": "0,2"}
    assert torchrun_env(_config(devices=[1, 3])) == {"CUDA_VISIBLE_DEVICES": "1,3"}
    text = command_text(_config(devices=[1, 3]), "my dir/config.yaml", python="python")
    assert text.startswith("CUDA_VISIBLE_DEVICES=1,3 python -m torch.distributed.run ")
    assert shlex.split(text)[-1] == "my dir/config.yaml"


def test_script_quotes_paths_and_parses_as_bash(tmp_path):
    config = _config(nnodes=2, master_addr="10.0.0.1", devices="0,1")
    script = torchrun_script(config, "/data/my exp/config.yaml", 1, workdir="/home/u/it's here", python="/v/bin/python")
    assert script.startswith("#!/usr/bin/env bash\n")
    assert "export CUDA_VISIBLE_DEVICES=0,1" in script
    assert "cd '/home/u/it'\"'\"'s here'" in script
    assert "--node_rank 1" in script and "'/data/my exp/config.yaml'" in script
    path = tmp_path / "s.sh"
    path.write_text(script)
    assert subprocess.run(["bash", "-n", str(path)]).returncode == 0


def test_script_runs_the_rendered_argv(tmp_path):
    """With PYTHON pointing at a stub, the script execs exactly the argv (quoting survives bash)."""
    stub = tmp_path / "stub"
    stub.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$@" > "$OUT"\n')
    stub.chmod(0o755)
    config = _config(nnodes=2)
    script = tmp_path / "run.sh"
    script.write_text(torchrun_script(config, tmp_path / "a b" / "config.yaml", 1, workdir=tmp_path))
    out = tmp_path / "args.txt"
    env = dict(os.environ, PYTHON=str(stub), OUT=str(out))
    subprocess.run(["bash", str(script)], env=env, check=True)
    assert out.read_text().splitlines() == torchrun_argv(config, tmp_path / "a b" / "config.yaml", 1)[1:]


def test_write_node_scripts_one_per_node_executable(tmp_path):
    config = _config(nnodes=3, master_addr="10.0.0.1")
    paths = write_node_scripts(config, tmp_path / "config.yaml", tmp_path, workdir=tmp_path)
    assert [p.name for p in paths] == ["run_node0.sh", "run_node1.sh", "run_node2.sh"]
    for rank, path in enumerate(paths):
        assert path.stat().st_mode & stat.S_IXUSR
        assert f"--node_rank {rank} " in path.read_text()
    assert not list(tmp_path.glob(".*.tmp"))


def test_port_in_use_is_detected():
    import socket

    from asr_tui.command import port_is_free

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert not port_is_free(port)
    assert port_is_free(port)
