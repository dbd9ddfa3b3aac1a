"""The documents against the code and the measurements they quote: every `python -m engine`
command of the README uses flags its subcommand has, the sampler defaults it states are the
code's, the endpoints docs/app.md lists are the app's, and the README's table of shipped
figures quotes assets/evaluation.json. (A walk through the docs found drift of each kind.)"""
from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from engine.cli import build_parser
from engine.sampler import SamplerSettings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def engine_commands(text: str) -> list[list[str]]:
    """Every `python -m engine ...` command in the fenced code blocks, continuation lines joined."""
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", text, flags=re.S)
    commands = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("#")[0].strip()
            if line.startswith("python -m engine "):
                commands.append(shlex.split(line)[3:])
    return commands


def subcommand_options() -> dict[str, set[str]]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return {name: {o for a in p._actions for o in a.option_strings} for name, p in sub.choices.items()}


@pytest.mark.parametrize("doc", ["README.md", "docs/analysis.md", "docs/method.md", "assets/MODEL_CARD.md"])
def test_every_documented_command_uses_flags_its_subcommand_has(doc):
    commands = engine_commands((ROOT / doc).read_text())
    assert len(commands) >= 2                          # the training recipes and the examples
    options = subcommand_options()
    for args in commands:
        assert args[0] in options, args
        unknown = [a for a in args[1:] if a.startswith("--") and a not in options[args[0]]]
        assert not unknown, (args, unknown)


def test_readme_states_the_samplers_defaults():
    s = SamplerSettings()
    stated = (f"`h0 = {s.h0:g}, beta = {s.beta:g}, sigma_0 = {s.sigma_0:g}, sigma_L = {s.sigma_L:g}, "
              f"max_steps = {s.max_steps}, guidance = {s.guidance:g}, eps_scale = {s.eps_scale:g}"
              + (f" above sigma {s.eps_scale_sigma:g}`" if s.eps_scale != 1 else "`"))
    assert stated in README


def test_docs_list_every_endpoint_of_the_app():
    sources = "".join(f.read_text() for f in sorted((ROOT / "app").rglob("*.py")))
    served = set(re.findall(r'api_name="(\w+)"', sources))
    assert len(served) >= 8, served                    # the app's named endpoints were found at all
    documented = set(re.findall(r"^\| `/(\w+)` \|", (ROOT / "docs" / "app.md").read_text(), flags=re.M))
    assert served == documented
    for name in served:
        assert f"`/{name}`" in README


@pytest.mark.parametrize("key, label", [("mean_class_accuracy", "class accuracy of conditional samples"),
                                        ("diversity_ratio", "diversity ratio"),
                                        ("memorisation_ratio", "memorisation ratio"),
                                        ("contrast_ratio", "contrast ratio"),
                                        ("kid", "kernel distance (KID)"),
                                        ("nfe_per_sample", "network evaluations per sample")])
def test_readme_table_quotes_the_shipped_evaluation(key, label):
    report = json.loads((ROOT / "assets" / "evaluation.json").read_text())
    row = next(line for line in README.splitlines() if line.startswith(f"| {label}"))
    value = row.split("|")[2]                          # the shipped models' column
    digits = 1 if key == "nfe_per_sample" else 3
    assert f"{report[key]:.{digits}f}" in value, (row, report[key])


SCRIPTS = sorted((ROOT / "scripts").glob("*.py")) + sorted((ROOT / "experiments").glob("*.py"))
DOCS = README + "".join((ROOT / p).read_text() for p in ("docs/analysis.md", "docs/app.md", "docs/model.md",
                                                         "docs/method.md", "experiments/README.md",
                                                         "assets/MODEL_CARD.md"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_every_script_has_help_and_the_flags_the_docs_quote(script, monkeypatch, capsys):
    """README: the benchmark and the diagnostics each have --help; the docs quote them with flags they have.
    Each script runs as its own __main__ in this process (`python SCRIPT --help` without starting a
    Python that imports torch again)."""
    import runpy
    import sys
    monkeypatch.setattr(sys, "argv", [str(script), "--help"])
    monkeypatch.setattr(sys, "path", list(sys.path))            # a script may put its folder first
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(script), run_name="__main__")
    out, err = capsys.readouterr()
    assert done.value.code in (0, None) and out.startswith("usage: "), err
    quoted = re.findall(rf"python {script.parent.name}/{script.name}((?: --?[\w-]+(?: [\w.,/]+)?)*)", DOCS)
    for flag in {f for q in quoted for f in re.findall(r"--[\w-]+", q)}:
        assert flag in out, f"the docs quote {script.name} {flag}, which it does not have"
