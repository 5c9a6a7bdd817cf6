"""The exact torchrun command of an experiment, as argv, environment and a node script.

The console shows this text before launching, launches exactly this argv, and writes it as
``run_node{N}.sh`` for the other machines of a multi-node run. The rendezvous is always
explicit (``--nnodes/--node_rank/--master_addr/--master_port``, never ``--standalone``), so the
same command works on one node and on many.
"""

from __future__ import annotations

import os
import shlex
import socket
import sys
from pathlib import Path

from engine.config import DEFAULTS


def distributed_conf(config: dict) -> dict:
    """The ``distributed`` section with its defaults filled in."""
    merged = dict(DEFAULTS["distributed"])
    merged.update(config.get("distributed") or {})
    return merged


def devices_string(devices) -> str | None:
    """``devices`` (null, "0,1", [0, 1] or 3) as a CUDA_VISIBLE_DEVICES value, or None for all."""
    if devices is None or devices == "" or devices == []:
        return None
    if isinstance(devices, (list, tuple)):
        return ",".join(str(d).strip() for d in devices)
    return ",".join(part.strip() for part in str(devices).split(",") if part.strip())


def torchrun_argv(config: dict, config_path: str | os.PathLike, node_rank: int | None = None,
                  python: str | None = None) -> list[str]:
    """``python -m torch.distributed.run ... -m engine.train --config PATH`` for one node.

    ``node_rank`` overrides the config's own (to render the command of another node).
    """
    dist = distributed_conf(config)
    rank = dist["node_rank"] if node_rank is None else node_rank
    return [
        python or sys.executable, "-m", "torch.distributed.run",
        "--nnodes", str(dist["nnodes"]),
        "--nproc_per_node", str(dist["nproc_per_node"]),
        "--node_rank", str(rank),
        "--master_addr", str(dist["master_addr"]),
        "--master_port", str(dist["master_port"]),
        "-m", "engine.train",
        "--config", str(config_path),
    ]


def port_is_free(port: int) -> bool:
    """Whether this machine can listen on ``port`` (node 0's rendezvous store needs it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: TIME_WAIT is free
        try:
            probe.bind(("", int(port)))
        except OSError:
            return False
    return True


def torchrun_env(config: dict) -> dict[str, str]:
    """Environment variables the job needs on top of the console's own (CUDA_VISIBLE_DEVICES)."""
    devices = devices_string(distributed_conf(config)["devices"])
    return {} if devices is None else {"CUDA_VISIBLE_DEVICES": devices}


def command_text(config: dict, config_path: str | os.PathLike, node_rank: int | None = None,
                 python: str | None = None) -> str:
    """One shell line a user can paste: environment assignments, then the quoted argv."""
    env = torchrun_env(config)
    prefix = "".join(f"{key}={shlex.quote(value)} " for key, value in env.items())
    return prefix + shlex.join(torchrun_argv(config, config_path, node_rank, python))


def torchrun_script(config: dict, config_path: str | os.PathLike, node_rank: int,
                    workdir: str | os.PathLike | None = None, python: str | None = None) -> str:
    """A bash script that runs node ``node_rank`` of the experiment from ``workdir``.

    ``PYTHON`` in the environment overrides the interpreter, for nodes whose venv lives elsewhere.
    """
    dist = distributed_conf(config)
    workdir = Path(workdir) if workdir is not None else Path.cwd()
    argv = torchrun_argv(config, config_path, node_rank, python)
    lines = [
        "#!/usr/bin/env bash",
        f"# asr-tui: node {node_rank} of {dist['nnodes']} for {config.get('output_dir', '')}",
        f"# master {dist['master_addr']}:{dist['master_port']}, {dist['nproc_per_node']} process(es) per node",
        "# every node needs the same paths (shared filesystem): this directory, the config, the data lists",
        "set -euo pipefail",
        f"cd {shlex.quote(str(workdir))}",
    ]
    for key, value in torchrun_env(config).items():
        lines.append(f"export {key}={shlex.quote(value)}")
    lines.append(f"PYTHON=${{PYTHON:-{shlex.quote(argv[0])}}}")
    lines.append('exec "$PYTHON" ' + shlex.join(argv[1:]))
    return "\n".join(lines) + "\n"


def write_node_scripts(config: dict, config_path: str | os.PathLike, out_dir: str | os.PathLike,
                       workdir: str | os.PathLike | None = None) -> list[Path]:
    """Write ``run_node{N}.sh`` for every node into ``out_dir`` (atomically, executable)."""
    from engine.utils.fileio import atomic_write_text

    out = Path(out_dir)
    paths = []
    for rank in range(int(distributed_conf(config)["nnodes"])):
        path = out / f"run_node{rank}.sh"
        atomic_write_text(path, torchrun_script(config, config_path, rank, workdir))
        path.chmod(0o755)
        paths.append(path)
    return paths
