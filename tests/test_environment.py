"""What a result was computed with: every report records it, ``nsnet --version`` prints it."""

import os
import subprocess
import sys
from importlib import metadata

import pipeline
from pipeline.environment import LIBRARIES, describe, environment


def test_the_environment_names_the_releases_installed_and_this_machine():
    env = environment("cpu")
    assert env["nsnet"] == pipeline.__version__ and env["python"] == f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
    assert env["libraries"] == {name: metadata.version(name) for name in LIBRARIES}  # all installed here
    assert env["cores"] == len(os.sched_getaffinity(0)) and env["memory_gib"] > 0 and env["cpu"]
    assert env["gpu"] is None  # no GPU named for a CPU run


def test_the_environment_is_described_in_two_lines():
    env = {"nsnet": "0.1.0", "python": "3.11.7", "platform": "Linux-6.1-x86_64", "cpu": "Xeon", "cores": 2, "memory_gib": 23.5, "gpu": "NVIDIA H100", "libraries": {"torch": "2.13.0", "decord": None, "av": "18.1.0"}}
    assert describe(env) == "nsnet 0.1.0 on Python 3.11.7, Linux-6.1-x86_64; Xeon, 2 cores, 24 GiB, NVIDIA H100\ntorch 2.13.0, av 18.1.0"
    assert describe({**env, "gpu": None}).splitlines()[0].endswith("Xeon, 2 cores, 24 GiB")


def test_version_prints_the_environment_without_importing_torch():
    """``nsnet --version`` reads the releases from the packages' metadata: torch is not imported
    (about 2 s), and the command exits 0 without running a stage."""
    code = "import sys\nfrom click.testing import CliRunner\nfrom stages.cli import main\nresult = CliRunner().invoke(main, ['--version'])\nprint(result.exit_code, 'torch' in sys.modules)\nprint(result.output, end='')"
    lines = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert lines[0] == "0 False"
    assert lines[1].startswith(f"nsnet {pipeline.__version__} on Python {sys.version_info.major}.{sys.version_info.minor}.")
    assert lines[2].startswith(f"torch {metadata.version('torch')}, torchvision {metadata.version('torchvision')}, timm {metadata.version('timm')}, ")
