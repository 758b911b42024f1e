"""The example notebooks run end to end at small sizes (COCONUT_NOTEBOOK_SMALL=1) and
produce their key outputs: a printed accuracy, a k-sweep, the figures; and the committed
notebooks are what their generator writes."""
import os
import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


def run(name, out_dir, monkeypatch):
    monkeypatch.setenv("COCONUT_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("COCONUT_NOTEBOOK_OUT", str(out_dir))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit notebooks without outputs"
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(out_dir)}}).execute()
    text = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            if o.get("output_type") == "error":
                raise AssertionError(f"{name}: {o.get('ename')}: {o.get('evalue')}")
            text.append(o.get("text", "") or "".join(o.get("data", {}).get("text/plain", "")))
    return "\n".join(text)


def test_quickstart(tmp_path, monkeypatch):
    text = run("01_quickstart.ipynb", tmp_path, monkeypatch)
    m = re.search(r"accuracy: (\d\.\d{3}) on (\d+) validation questions", text)
    assert m and 0.0 <= float(m.group(1)) <= 1.0 and int(m.group(2)) == 12
    assert "stage 0: 0 thoughts" in text and "stage 3: 3 thoughts" in text
    assert (tmp_path / "01_training.png").stat().st_size > 1000
    assert re.search(r"this notebook's model: \d\.\d{3}; the shipped model: \d\.\d{3} on the same 12 questions", text)
    assert len(re.findall(r"k=\d: this notebook's model \d\.\d{3}, the shipped model \d\.\d{3}", text)) == 4


def test_k_sweep_and_path_classes(tmp_path, monkeypatch):
    text = run("02_k_sweep_and_path_classes.ipynb", tmp_path, monkeypatch)
    assert "shipped model: prosqa-cpu-thoughts" in text and "20 questions here" in text
    ks = re.findall(r"k=(\d): accuracy (\d\.\d{3})", text)
    assert [int(k) for k, _ in ks] == [0, 1, 2, 3, 4, 5, 6]
    assert (tmp_path / "02_k_sweep_path_classes.png").stat().st_size > 1000
    assert "correct_path" in text and "hallucination" in text
    m = re.search(r"adaptive  accuracy (\d\.\d{4})  mean k (\d\.\d\d)", text)
    assert m and 0.0 <= float(m.group(2)) <= 6.0
    assert "fixed k=6  accuracy" in text and "fewer thought passes" in text


def test_latent_bfs_probe(tmp_path, monkeypatch):
    text = run("03_latent_bfs_probe.ipynb", tmp_path, monkeypatch)
    assert "values shape: (6," in text
    # a small sample's layers may be empty far from the root: their mean is nan
    assert len(re.findall(r"thought \d: on path (?:\d\.\d{3}|nan), off path (?:\d\.\d{3}|nan), rest \d\.\d{3}", text)) == 6
    assert (tmp_path / "03_probe_graph.png").stat().st_size > 1000
    assert (tmp_path / "03_probe_summary.png").stat().st_size > 1000


def test_committed_notebooks_are_what_the_generator_writes(tmp_path):
    import importlib.util
    spec = importlib.util.spec_from_file_location("build_notebooks", NOTEBOOKS / "build_notebooks.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    build.HERE = str(tmp_path)
    for name, cells in (("01_quickstart.ipynb", build.quickstart()),
                        ("02_k_sweep_and_path_classes.ipynb", build.k_sweep_notebook()),
                        ("03_latent_bfs_probe.ipynb", build.probe_notebook())):
        build.write(name, cells)
        assert (tmp_path / name).read_text() == (NOTEBOOKS / name).read_text(), f"{name}: run notebooks/build_notebooks.py"
