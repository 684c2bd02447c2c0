"""The docs print what the code prints, and their commands are commands of today's CLI (issue 9).

Conventions in README.md and docs/*.md (this module is their only definition):

* **Doc test**: a fenced ``python`` block, then a paragraph that starts with the word ``prints``, then a fenced
  block: the second block is the snippet's exact standard output. :func:`test_snippet_prints_what_the_docs_show`
  runs the snippet in a fresh Python (own JAX runtime, the shared compilation cache ``app_support.CACHE_DIR``, an
  empty working directory) and compares the text *exactly*, after removing trailing whitespace of each line and
  leading / trailing blank lines. Snippets therefore print rounded values (``.round(1)``, ``:.3f``), never full
  floats. An HTML comment ``<!-- doctest: slow -->`` right before the python block marks a snippet that is too
  expensive for the default suite (``-m slow``).
* Nothing else may look like a printed output: a block introduced by "prints" must follow a python block, and a
  python block may not claim a printed value in a comment (``print(x)  # = 0.978``): show it as a doc test.
* **Commands**: every ``fluxsim`` command line in a fenced block, and every inline ```fluxsim ...``` code span, is
  checked without compute: hydra overrides compose through the compose API (``-m`` sweeps expanded, one compose per
  combination) and validate with ``fluxsim.app.config.load`` (the first and the last combination); ``fluxsim fit``
  lines parse with its argparse parser. Synopsis lines (a token in ``[...]`` or an upper-case placeholder) and
  commands naming a path placeholder (``<hash>``) are checked for their sub-command only. A command in a fenced
  block (an example to paste) must also validate without a logged or Python warning and without overriding what its
  sweep sets; inline spans may illustrate a warning.
* **Refusals**: an inline override, an arrow and a quoted message (```surface.eta=abc` → "..."``) is a documented
  error: ``config.load`` must refuse the override with a message containing the quoted text.
* **Run folder**: the ``outputs/fig4/<hash>/`` that docs/cli.md shows is the default job's config hash.
* **Numerics**: the numbers the docs quote for ``fluxsim.Numerics()`` and the ``numerics=`` options are the ones
  in the code and in ``conf/numerics/*.yaml``.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import re
import shlex
import subprocess
import warnings
from pathlib import Path
from typing import NamedTuple

import pytest
import yaml
from app_support import CACHE_DIR, REPO, compose_cfg, run_python

import fluxsim
from fluxsim.app import config, hydra_glue
from fluxsim.core.solve import Numerics

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SLOW_MARKER = "<!-- doctest: slow -->"
SUBCOMMANDS = ("plot", "fit", "verify")


class Block(NamedTuple):
    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    before: str  # the text between the previous block (or the file start) and this block


def fenced_blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a markdown file, in order."""
    blocks, before, inside = [], [], None
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if inside is None:
            if line.startswith("```"):
                inside = (number, line[3:].strip(), [])
            else:
                before.append(line)
        elif line.startswith("```"):
            start, lang, body = inside
            blocks.append(Block(path, start, lang, "\n".join(body) + "\n", "\n".join(before)))
            before, inside = [], None
        else:
            inside[2].append(line)
    assert inside is None, f"{path.name}: unclosed code fence at line {inside[0]}"
    return blocks


def _introduces_output(text: str) -> bool:
    return text.strip().lower().startswith("prints")


def doc_tests() -> list[tuple[Block, Block]]:
    """(python block, printed block) pairs of every doc, in the convention of the module docstring."""
    pairs = []
    for path in DOCS:
        blocks = fenced_blocks(path)
        for first, second in itertools.pairwise(blocks):
            if first.lang == "python" and _introduces_output(second.before):
                pairs.append((first, second))
    return pairs


def _doc_test_params():
    params = []
    for snippet, printed in doc_tests():
        slow = snippet.before.rstrip().endswith(SLOW_MARKER)
        params.append(pytest.param(snippet, printed, id=f"{snippet.path.name}:{snippet.line}",
                                   marks=[pytest.mark.slow] if slow else []))
    return params


def normalised(text: str) -> str:
    """The comparison rule of doc tests: trailing whitespace per line and surrounding blank lines are ignored."""
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines()).strip("\n")


def test_the_docs_have_doc_tests():
    names = {snippet.path.name for snippet, _ in doc_tests()}
    assert "README.md" in names, "the README's Python snippets lost their 'prints' blocks"


@pytest.mark.parametrize(("snippet", "printed"), _doc_test_params())
def test_snippet_prints_what_the_docs_show(snippet, printed, tmp_path):
    env = {"PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "JAX_COMPILATION_CACHE_DIR": CACHE_DIR}
    proc = run_python(snippet.code, env=env, cwd=tmp_path, check=False)
    assert proc.returncode == 0, f"{snippet.path.name}:{snippet.line} failed:\n{proc.stderr[-4000:]}"
    assert normalised(proc.stdout) == normalised(printed.code), (
        f"{snippet.path.name}:{snippet.line} prints\n{proc.stdout}\nbut {printed.path.name}:{printed.line} shows\n"
        f"{printed.code}")


def test_only_doc_tests_show_printed_output():
    for path in DOCS:
        blocks = fenced_blocks(path)
        for previous, block in zip([None, *blocks], blocks, strict=False):
            if _introduces_output(block.before):
                assert previous is not None and previous.lang == "python", (
                    f"{path.name}:{block.line}: a 'prints' block must follow a python block")
            if block.lang == "python":
                for number, line in enumerate(block.code.splitlines(), start=block.line + 1):
                    claim = re.search(r"print\(.*#.*[=:]\s*[-+]?[0-9]", line)
                    assert not claim, f"{path.name}:{number}: a printed value in a comment; use a doc test:\n{line}"


def test_normalised_is_exact_up_to_trailing_whitespace():
    assert normalised("\na = 1  \n[ 96.7 188.1]\n\n") == normalised("a = 1\n[ 96.7 188.1]")
    assert normalised("d = 96.7") != normalised("d = 96.6")
    assert normalised("[ 96.7 188.1]") != normalised("[96.7 188.1]")


# ----------------------------------------------------------------------------------------------- commands


def _code_spans(text: str) -> list[str]:
    return re.findall(r"(?<!`)`([^`\n]+)`(?!`)", text)


def _is_message(line: str) -> bool:
    """A line the program prints (``fluxsim fit: error ...``, ``fluxsim: ...``), not a command."""
    words = line.split(maxsplit=2)
    return any(word.endswith(":") for word in words[:2])


def command_lines() -> list[tuple[str, str]]:
    """(where, command line, in a fenced block) of every ``fluxsim`` command in the docs' blocks and code spans;
    lines the program prints (:func:`_is_message`) are not commands."""
    found = []
    for path in DOCS:
        blocks = fenced_blocks(path)
        for block in blocks:
            for span in _code_spans(block.before):
                if span.startswith("fluxsim ") and not _is_message(span):
                    found.append((f"{path.name} (inline, before line {block.line})", span, False))
            if block.lang == "python":
                continue
            joined = block.code.replace("\\\n", " ")
            for offset, line in enumerate(joined.splitlines(), start=1):
                line = line.strip()
                for prefix in (".venv/bin/fluxsim ", "fluxsim "):
                    if line.startswith(prefix) and not _is_message(line):
                        found.append((f"{path.name}:{block.line + offset}", "fluxsim " + line[len(prefix):], True))
    return found


def _words(line: str) -> list[str]:
    """The words of a command line as a POSIX shell passes them (quotes, comments, ``$(...)``), program dropped."""
    if "$(" in line:  # the shell expands the substitution: let it (no placeholders on such lines)
        out = subprocess.run(["bash", "-c", f"set -- {line.split(' ', 1)[1]}; printf '%s\\0' \"$@\""],
                             capture_output=True, text=True, check=True).stdout
        return out.split("\0")[:-1]
    return shlex.split(line, comments=True)[1:]


def _is_placeholder(word: str) -> bool:
    return word.startswith("[") or "<" in word or bool(re.fullmatch(r"[A-Z][A-Z_.]*", word))


def _hydra_jobs(words: list[str]) -> list[list[str]]:
    """The override lists of the jobs a hydra command line runs (``-m`` sweeps expanded)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    words = [w for w in words if w not in ("-m", "--multirun")]
    if "--cfg" in words:
        i = words.index("--cfg")
        del words[i:i + 2]
    assert not [w for w in words if w.startswith("-")], f"unknown flags in {words}"
    choices = []
    for override in OverridesParser.create().parse_overrides(words):
        if override.is_sweep_override():
            key = override.get_key_element()
            choices.append([f"{key}={value}" for value in override.sweep_string_iterator()])
        else:
            choices.append([override.input_line])
    return [list(job) for job in itertools.product(*choices)]


COMMANDS = command_lines()


def test_the_docs_have_commands():
    assert len(COMMANDS) >= 20
    assert any("sweep.grid" in line for _, line, _ in COMMANDS)


@pytest.mark.parametrize(("where", "line", "fenced"), COMMANDS, ids=[w for w, *_ in COMMANDS])
def test_documented_command_is_valid(where, line, fenced, caplog):
    words = _words(line)
    if words and words[0] in SUBCOMMANDS:
        from fluxsim.app import cli

        assert f'"{words[0]}"' in Path(cli.__file__).read_text(), f"{where}: no sub-command {line}"
        if words[0] == "fit" and len(words) > 1 and not any(_is_placeholder(w) for w in words):
            from fluxsim.app import fit_cli

            fit_cli.build_parser().parse_args(words[1:])  # argparse exits (SystemExit) on a bad option
        return
    if any(_is_placeholder(w) for w in words):
        pytest.fail(f"{where}: placeholder in a hydra command line: {line}")
    from fluxsim.app import cli

    jobs = _hydra_jobs(words)
    for i, overrides in enumerate(jobs):
        try:
            cfg = compose_cfg(overrides, return_hydra_config=True)
            if i not in (0, len(jobs) - 1):  # validating every shard of a 12,800-point study would take 20 s
                continue
            with caplog.at_level(logging.WARNING), warnings.catch_warnings():
                warnings.simplefilter("error")
                job = config.load(cfg)
        except Exception as err:  # compose and validation errors alike: the doc shows a command that fails
            pytest.fail(f"{where}: `{line}` ({overrides}) fails: {type(err).__name__}: {err}")
        if fenced:  # an example to paste runs without warnings (inline spans may illustrate one)
            assert not caplog.records, f"{where}: `{line}` warns: {[r.getMessage() for r in caplog.records]}"
            assert not cli._overridden_by_sweep(job, overrides), f"{where}: `{line}` overrides what its sweep sets"


# ----------------------------------------------------------------------------------------------- numerics


def numerics_option(name: str) -> dict:
    return yaml.safe_load((REPO / "conf" / "numerics" / f"{name}.yaml").read_text())


#: The numerics group's flat keys: fields of the mesh core's ``Numerics`` and of its ``RKLSettings`` integrator.
INTEGRATOR_KEYS = ("rtol", "atol", "max_steps", "max_stages")


def test_command_line_default_numerics_are_the_core_defaults():
    core = Numerics()
    defaults = {**dataclasses.asdict(core.integrator), **dataclasses.asdict(core)}
    default = numerics_option("default")
    assert {k: defaults[k] for k in default} == default
    assert set(default) == set(config.NUMERICS_KEYS) - {"dtype"} | set(INTEGRATOR_KEYS)
    # the command line's one addition: the integer exponent of the power law every default point has
    assert config.load(compose_cfg([])).numerics == Numerics(integer_exponent=3)


def test_readme_quotes_the_core_numerics_defaults():
    text = (REPO / "README.md").read_text()
    paragraph = text[text.index("Numerics (`numerics=fluxsim.Numerics(...)`"):]
    paragraph = paragraph[:paragraph.index("\n\n")]
    quoted = {name: float(value) for name, value in re.findall(r"`(\w+)` = ([0-9.e-]+)", paragraph)}
    core = dataclasses.asdict(fluxsim.Numerics())
    core |= core.pop("integrator")  # the integrator's settings (rtol, ...) are quoted by their own names
    assert set(quoted) == {k for k, v in core.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    assert quoted == {k: float(core[k]) for k in quoted}


def test_cli_doc_quotes_the_numerics_options():
    text = (REPO / "docs" / "cli.md").read_text()
    row = next(line for line in text.splitlines() if line.startswith("| `numerics` |"))
    quoted = re.findall(r"`(\w+)` \(spacing 1/(\d+), rtol ([0-9.e-]+)", row)
    assert {name for name, *_ in quoted} == {p.stem for p in (REPO / "conf" / "numerics").glob("*.yaml")}
    for name, inverse, rtol in quoted:
        option = numerics_option(name)
        assert option["spacing"] == pytest.approx(1 / int(inverse), rel=1e-12), name
        assert option["rtol"] == float(rtol), name
    section = text[text.index("## The default job and its numerics"):]
    sentence = re.search(r"Numerics `numerics=default`: mesh spacing 1/(\d+) of the equivalent radius.*?rtol "
                         r"([0-9.e-]+), atol ([0-9.e-]+), at most (\d+) steps", section, re.S)
    assert sentence, "docs/cli.md no longer states the default numerics"
    default = numerics_option("default")
    inverse, rtol, atol, max_steps = sentence.groups()
    assert (1 / int(inverse), float(rtol), float(atol), int(max_steps)) == \
        (default["spacing"], default["rtol"], default["atol"], default["max_steps"])


def test_documented_run_folder_is_the_default_jobs_folder():
    """docs/cli.md shows the folder ``fluxsim`` prints for the default job: its hash is today's config hash."""
    text = (REPO / "docs" / "cli.md").read_text()
    shown = set(re.findall(r"outputs/fig4/([0-9a-f]{12})/", text))
    assert shown == {hydra_glue.config_hash(compose_cfg([]))}


#: A documented refusal: an inline override, an arrow and the quoted message (`surface.eta=abc` → "...").
REFUSAL = re.compile(r"`([^`\s]+=[^`]*)` → \"([^\"]+)\"")


def test_documented_refusals_give_the_documented_message():
    refusals = [(path.name, *m.groups()) for path in DOCS for m in REFUSAL.finditer(path.read_text())]
    assert refusals, "no documented refusal found (the pattern is `OVERRIDES` → \"message\")"
    for name, overrides, message in refusals:
        with pytest.raises(config.ConfigError) as err:
            config.load(compose_cfg(shlex.split(overrides)))
        assert message in str(err.value), f"{name}: `{overrides}` says {str(err.value)!r}, not {message!r}"
