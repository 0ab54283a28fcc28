"""Every command in docs/training.md's code blocks still parses: the module exists and its own argument parser
accepts the flags, presets and choices the docs give (a renamed flag or preset fails here, not for a reader).
Nothing is trained: each entry point's `main` runs only as far as `parse_args`. And no recipe there installs a
model under a shipped model's name with other classes than the shipped model has (the `--preset default`
recipe that would have replaced the 8-class FER+ default with a six-class CK+ model)."""
from __future__ import annotations

import argparse
import importlib
import json
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "training.md"
MODELS = ROOT / "emotion_recognition_ros" / "models"


def command_lines(text: str) -> list[str]:
    """Shell commands of the ```bash blocks: continuation lines joined, comments cut, `$VAR` of an assignment
    earlier in the same block expanded."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        variables: dict[str, str] = {}
        for line in block.replace("\\\n", " ").splitlines():
            if not re.match(r"\s*[A-Z_]+=", line):  # unquoted $VAR expands into words, as in the shell
                line = re.sub(r"\$([A-Z_]+)", lambda m: variables.get(m.group(1), m.group(0)), line)
            try:
                words = shlex.split(line, comments=True)
            except ValueError as exc:  # an unbalanced quote is a broken command too
                raise AssertionError(f"cannot split {line!r}: {exc}") from exc
            if len(words) == 1 and re.fullmatch(r"[A-Z_]+=.*", words[0]):
                name, value = words[0].split("=", 1)
                variables[name] = value
            elif words:
                commands.append(shlex.join(words))
    return commands


def module_calls(text: str) -> list[tuple[str, list[str]]]:
    """(module, argv) of every `python -m training.X` / `torchrun ... -m training.X` (and benchmarks.X) command."""
    calls = []
    for command in command_lines(text):
        words = shlex.split(command)
        if "-m" in words:
            at = words.index("-m")
            module = words[at + 1]
            if module.startswith(("training.", "benchmarks.")):
                calls.append((module, words[at + 2:]))
    return calls


class Parsed(Exception):
    def __init__(self, namespace: argparse.Namespace):
        super().__init__("parsed")
        self.namespace = namespace


def parse_only(module: str, argv: list[str], monkeypatch) -> argparse.Namespace:
    """The entry point's own parser applied to argv; stops right after parse_args (argparse errors are
    SystemExit(2), reported with the command)."""
    real = argparse.ArgumentParser.parse_args

    def stop_after_parsing(self, args=None, namespace=None):
        raise Parsed(real(self, args, namespace))

    main = importlib.import_module(module).main
    with monkeypatch.context() as patch:
        patch.setattr(argparse.ArgumentParser, "parse_args", stop_after_parsing)
        try:
            main(argv)
        except Parsed as done:
            return done.namespace
        except SystemExit as exc:
            raise AssertionError(f"python -m {module} {shlex.join(argv)}: its parser refused it (exit {exc.code})")
    raise AssertionError(f"python -m {module} never parsed its arguments")


CALLS = module_calls(DOC.read_text())


def test_the_doc_has_commands_for_every_entry_point():
    modules = {module for module, _ in CALLS}
    assert {"training.train", "training.cv", "training.evaluate", "training.export", "training.soup"} <= modules


@pytest.mark.parametrize("module, argv", CALLS, ids=[f"{m} {' '.join(a)}"[:80] for m, a in CALLS])
def test_every_documented_command_parses(module, argv, monkeypatch):
    parse_only(module, argv, monkeypatch)


def test_no_recipe_installs_a_shipped_name_with_other_classes(monkeypatch):
    """An export to models/<shipped name> must come from a run (train --out) with that model's classes."""
    from training.cli import resolve_classes

    runs = {}
    for module, argv in CALLS:
        if module == "training.train":
            args = parse_only(module, argv, monkeypatch)
            if args.out is not None:
                runs[str(args.out)] = resolve_classes(args)
    checked = 0
    for module, argv in CALLS:
        if module != "training.export":
            continue
        args = parse_only(module, argv, monkeypatch)
        name = Path(args.out).name
        if not (MODELS / f"{name}.json").exists() or Path(args.out).parent != Path("emotion_recognition_ros/models"):
            continue
        shipped = json.loads((MODELS / f"{name}.json").read_text())["class_names"]
        run = next((classes for out, classes in runs.items() if str(args.model).startswith(out)), None)
        if run is not None:
            checked += 1
            assert run == shipped, (f"docs/training.md exports a run with classes {run} over the shipped "
                                    f"'{name}' ({shipped}): {shlex.join(argv)}")
    assert checked, "no documented recipe that installs a shipped model was checked"


def test_the_extractor_sees_a_renamed_preset():
    """The check itself: a made-up preset in a documented-style block is refused by the real parser."""
    (module, argv), = module_calls("```bash\nscripts/run python -m training.train --preset no_such_preset\n```\n")
    with pytest.raises(AssertionError, match="refused"):
        parse_only(module, argv, pytest.MonkeyPatch())
