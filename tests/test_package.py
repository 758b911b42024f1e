"""What `import coconut` gives a user: the submodules as attributes, imported when first
used, and nothing heavy (no torch) until asked for. A fresh interpreter each time: in
the test process every module is imported already."""
import subprocess
import sys


def fresh(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_submodules_are_attributes_and_imported_when_used():
    code = ("import sys, coconut\n"
            "before = {m for m in ('coconut.evaluate', 'coconut.assembly', 'coconut.stop_classifier') if m in sys.modules}\n"
            "print(sorted(before))\n"
            "print(coconut.evaluate.k_sweep.__name__, coconut.assembly.assemble.__name__, "
            "coconut.stop_classifier.StopClassifier.__name__, coconut.train.Trainer.__name__)\n"
            "print('torch' in sys.modules)\n"
            "try:\n    coconut.no_such_thing\nexcept AttributeError as e:\n    print(e)\n")
    lines = fresh(code).splitlines()
    assert lines[0] == "[]"
    assert lines[1] == "k_sweep assemble StopClassifier Trainer"
    assert lines[2] == "False"
    assert lines[3] == "module 'coconut' has no attribute 'no_such_thing'"
