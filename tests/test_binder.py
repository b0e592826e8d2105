"""The Binder set-up (binder/): pins that agree with pyproject.toml, a start script and server configuration
that open the course index, and (slow) a fresh install that runs postBuild offline and every lab within 2 GB.

The slow tests build what Binder would: a copy of the repository (so nothing here changes), a new virtual
environment, ``pip install -r binder/requirements.txt`` without the line that names PyTorch's CPU index (that
index cannot be reached from every machine; pip then takes a local CPU wheel of the pinned version, and the
tests skip when it has none rather than download the CUDA build from PyPI), then ``binder/postBuild`` with
``DSLEARN_OFFLINE=1`` and a home of its own, then ``binder/start dslearn course run --fast``, whose report
must list every available lab as passed, under 2 GB. Pip's own output goes to a log, printed when it fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dslearn.course.index import INDEX_FILE
from dslearn.course.syllabus import load_syllabus

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11's tomllib")

REPO = Path(__file__).resolve().parents[1]
BINDER = REPO / "binder"
CPU_INDEX_LINE = "--extra-index-url https://download.pytorch.org/whl/cpu"
BINDER_MEMORY_MIB = 2048
# What a copy of the repository leaves out: dot folders (.git, .venv, caches) and generated files.
NOT_COPIED = shutil.ignore_patterns(".*", "__pycache__", "*.egg-info", "reports", "build", "dist")


def requirement_lines(path: Path) -> list[str]:
    """The lines of a requirements file without comments and blank lines."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def run_start(*command: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(BINDER / "start"), *command], env=env, capture_output=True, text=True, timeout=120)


def test_binder_torch_is_the_cpu_build_of_the_pin_in_the_test_extra():
    lines = requirement_lines(BINDER / "requirements.txt")
    torch_pins = [line for line in lines if re.match(r"torch\b", line)]
    test_extra = pyproject()["project"]["optional-dependencies"]["test"]
    project_pins = [line for line in test_extra if re.match(r"torch\b", line)]
    assert torch_pins == project_pins and re.fullmatch(r"torch==[\d.]+", torch_pins[0]), (torch_pins, project_pins)
    assert CPU_INDEX_LINE in lines


def test_binder_installs_dslearn_with_the_course_extra():
    lines = requirement_lines(BINDER / "requirements.txt")
    assert "-e .[course]" in lines
    assert "course" in pyproject()["project"]["optional-dependencies"]
    assert set(lines) == {CPU_INDEX_LINE, "-e .[course]", *(line for line in lines if line.startswith("torch=="))}


def test_binder_python_is_one_the_project_supports():
    runtime = (BINDER / "runtime.txt").read_text().strip()
    version = re.fullmatch(r"python-(3)\.(\d+)", runtime)
    minimum = re.fullmatch(r">=3\.(\d+)", pyproject()["project"]["requires-python"])
    assert version and minimum and int(version.group(2)) >= int(minimum.group(1)), runtime


@pytest.mark.parametrize("script", ["start", "postBuild"])
def test_binder_scripts_are_executable_bash_scripts(script):
    path = BINDER / script
    assert os.access(path, os.X_OK), f"binder/{script} is not executable (chmod +x)"
    assert path.read_text().startswith("#!/bin/bash\n")


def test_binder_start_names_the_data_cache_and_runs_the_command(tmp_path):
    env = {**os.environ, "HOME": str(tmp_path)}
    env.pop("DSLEARN_DATA", None)
    shown = run_start(sys.executable, "-c", "import os; print(os.environ['DSLEARN_DATA'])", env=env)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == str(tmp_path / ".cache" / "dslearn")

    kept = run_start(sys.executable, "-c", "import os; print(os.environ['DSLEARN_DATA'])",
                     env={**env, "DSLEARN_DATA": "/srv/data"})
    assert kept.stdout.strip() == "/srv/data"
    assert run_start("sh", "-c", "exit 3", env=env).returncode == 3


def test_binder_server_opens_the_course_index_whichever_jupyter_app_starts():
    config = json.loads((BINDER / "jupyter_server_config.json").read_text())
    page = f"/lab/tree/{INDEX_FILE.as_posix()}"
    assert (REPO / INDEX_FILE).is_file()
    assert {app: settings["default_url"] for app, settings in config.items()} == {
        "ServerApp": page, "LabApp": page, "JupyterNotebookApp": page}
    # The configuration is found through the JUPYTER_CONFIG_PATH that binder/start sets.
    code = ("from jupyter_server.serverapp import ServerApp; "
            "app = ServerApp(); app.load_config_file(); print(app.default_url)")
    loaded = run_start(sys.executable, "-c", code, env=dict(os.environ))
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == page


# The slow part: a fresh environment, built once for the tests below.

def run_logged(command: list[str], log: Path, **kwargs) -> subprocess.CompletedProcess:
    """Run a command, keep its output in ``log`` and fail with the end of it when the command fails."""
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    log.write_text(f"$ {' '.join(command)}\n{result.stdout}\n{result.stderr}")
    if result.returncode != 0:
        pytest.fail(f"{' '.join(command)} exited with {result.returncode}; the end of {log}:\n"
                    f"{(result.stdout + result.stderr)[-4000:]}")
    return result


@pytest.fixture(scope="module")
def binder_env(tmp_path_factory):
    """A copy of the repository with binder/requirements.txt installed in a new venv and postBuild run offline.

    Yields (repository copy, environment variables for commands in the venv, postBuild's output).
    """
    work = tmp_path_factory.mktemp("binder")
    repo, venv, home = work / "repo", work / "venv", work / "home"
    shutil.copytree(REPO, repo, ignore=NOT_COPIED)
    home.mkdir()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")

    torch_pin = next(line for line in requirement_lines(BINDER / "requirements.txt") if line.startswith("torch=="))
    local_torch = subprocess.run([python, "-m", "pip", "install", "--dry-run", "--no-index", "--no-deps", "--quiet",
                                  torch_pin], capture_output=True, text=True, timeout=120)
    if local_torch.returncode != 0:
        pytest.skip(f"pip has no local CPU wheel for {torch_pin} (PyTorch's CPU index, which Binder uses, "
                    "cannot be reached here, and PyPI's wheel is the CUDA build)")
    requirements = work / "requirements-local.txt"
    kept = [line for line in (repo / "binder" / "requirements.txt").read_text().splitlines() if line != CPU_INDEX_LINE]
    requirements.write_text("\n".join(kept) + "\n")
    # From the repository's root, as repo2docker does; --no-compile only skips writing .pyc files, to save time.
    run_logged([python, "-m", "pip", "install", "--no-compile", "-r", str(requirements)], work / "pip.log",
               cwd=repo, timeout=900)

    env = {name: value for name, value in os.environ.items()
           if name not in ("VIRTUAL_ENV", "PYTHONPATH", "NUMBA_CACHE_DIR", "DSLEARN_DATA", "DSLEARN_HEADLESS")}
    env.update(HOME=str(home), VIRTUAL_ENV=str(venv), PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    post_build = run_logged(["bash", "binder/postBuild"], work / "postBuild.log", cwd=repo,
                            env={**env, "DSLEARN_OFFLINE": "1"}, timeout=600)
    yield repo, env, post_build.stdout


@pytest.mark.slow
def test_binder_requirements_install_the_cpu_torch_and_the_course_in_a_fresh_venv(binder_env):
    repo, env, _ = binder_env
    code = ("import importlib.metadata as m, torch, dslearn; "
            "print(m.version('torch'), m.version('nbgrader'), m.version('jupyterlab'), dslearn.__file__)")
    versions = subprocess.run(["python", "-c", code], cwd=repo / "course", env=env, capture_output=True, text=True,
                              timeout=120)
    assert versions.returncode == 0, versions.stderr
    torch_version, nbgrader_version, lab_version, dslearn_file = versions.stdout.split()
    assert torch_version.endswith("+cpu"), f"torch {torch_version} is not the CPU build"
    assert nbgrader_version == "0.9.6" and lab_version.startswith("4.")
    assert Path(dslearn_file).is_relative_to(repo), "dslearn is not the editable install of the repository"


@pytest.mark.slow
def test_binder_post_build_works_offline_and_leaves_numba_cache_warm(binder_env):
    repo, env, post_build_output = binder_env
    assert "MNIST was not downloaded" in post_build_output  # DSLEARN_OFFLINE=1: nothing fetched, no failure
    for extension in ("@jupyter/nbgrader", "@jupyter-widgets/jupyterlab-manager", "jupyterlab-plotly", "anywidget"):
        assert f"{extension}: enabled" in post_build_output
    assert list((repo / "kernels" / "cpu" / "__pycache__").glob("*.nbi")), "no Numba cache was written"
    # A training step in a new process loads every kernel from the cache and compiles none.
    code = ("import dslearn as ds, dslearn.nn.functional as F; from dslearn.models import LeNet; "
            "model = LeNet(); optimizer = ds.optim.Adam(model.parameters()); "
            "F.cross_entropy(model(ds.rand(64, 1, 28, 28)), ds.randint(0, 10, (64,))).backward(); optimizer.step()")
    step = subprocess.run(["python", "-c", code], cwd=repo / "course", env={**env, "NUMBA_DEBUG_CACHE": "1"},
                          capture_output=True, text=True, timeout=300)
    assert step.returncode == 0, step.stderr
    assert "data loaded" in step.stdout
    assert "data saved" not in step.stdout, "kernels were compiled again:\n" + "\n".join(
        line for line in step.stdout.splitlines() if "data saved" in line)


@pytest.mark.slow
def test_every_available_lab_passes_in_the_binder_env_within_2_gb(binder_env, tmp_path):
    repo, env, _ = binder_env
    if os.environ.get("DSLEARN_DATA"):  # the offline MNIST files, when this machine has them
        env = {**env, "DSLEARN_DATA": os.environ["DSLEARN_DATA"]}
    report_dir = tmp_path / "report"
    run = subprocess.run([str(repo / "binder" / "start"), "dslearn", "course", "run", "--fast", "--no-progress",
                          "--course-dir", str(repo), "--report", str(report_dir)],
                         cwd=repo, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout + run.stderr
    rows = {}
    for line in (report_dir / "report.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if line.startswith("| ") and len(cells) >= 5 and cells[0] != "lab":
            rows[cells[0]] = {"status": cells[2], "peak_mib": float(cells[4])}
    available = [lab.id for lab in load_syllabus(REPO).available_labs()]
    assert sorted(rows) == sorted(available)
    for lab_id, row in rows.items():
        assert row["status"] == "passed", f"{lab_id}: {row['status']}"
        assert 0 < row["peak_mib"] < BINDER_MEMORY_MIB, f"{lab_id}: peak {row['peak_mib']:.0f} MiB"
    print("peak memory (MiB) per lab in the Binder environment:", {lab: row["peak_mib"] for lab, row in rows.items()})
