"""Property-based: whatever a config file holds, ``ctxfusion run CONFIG --check`` exits 0 (it
would run) or 2 (one ``error:`` line), never 1 (an internal error) and never a traceback.

Hypothesis mutates the real ``configs/demo.yaml``: a value replaced by one of another type or
out of range (NaN, infinities, negatives, huge numbers, strings, lists, mappings, null), a key
removed, an unknown key added, or the YAML text itself damaged (a character inserted, removed
or replaced). The command runs in this process (``tests/cli_in_process.py``: the same entry
point as the console script), so an exception that escapes it fails the test with its
traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli_in_process import run_ctxfusion

DEMO = Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"
VALID = yaml.safe_load(DEMO.read_text(encoding="utf-8"))


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path of the config (mapping keys and list indices)."""
    paths = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            paths += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            paths += _paths(value, (*prefix, index))
    return paths


PATHS = _paths(VALID)

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**12, 10**12),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from([0, -1, 1e309, "", "auto", "fg", ".nan", "1e400", [], {}]),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=6)


def _copy(node: Any) -> Any:
    return yaml.safe_load(yaml.safe_dump(node))


def _parent(config: dict, path: tuple) -> tuple[Any, Any]:
    node = config
    for key in path[:-1]:
        node = node[key]
    return node, path[-1]


@st.composite
def mutated_texts(draw: st.DrawFn) -> str:
    """The demo config's text after one mutation."""
    kind = draw(st.sampled_from(["replace", "remove", "add", "text"]))
    config = _copy(VALID)
    if kind == "text":
        text = DEMO.read_text(encoding="utf-8")
        at = draw(st.integers(0, len(text) - 1))
        char = draw(st.sampled_from([":", "-", "[", "]", "{", "}", "'", '"', "\t", " ", "\n",
                                     "#", "&", "*", "!", "%", "@", "`", "|", ">", "?", "x", "\0"]))
        how = draw(st.sampled_from(["insert", "delete", "replace"]))
        if how == "insert":
            return text[:at] + char + text[at:]
        return text[:at] + ("" if how == "delete" else char) + text[at + 1:]
    if kind == "add":
        path = draw(st.sampled_from([(), *[p for p in PATHS if isinstance(
            _parent(config, p)[0][p[-1]], dict)]]))
        node = config
        for key in path:
            node = node[key]
        node[draw(st.text(min_size=1, max_size=8))] = draw(values)
    else:
        parent, key = _parent(config, draw(st.sampled_from(PATHS)))
        if kind == "remove":
            del parent[key]
        else:
            parent[key] = draw(values)
    return yaml.safe_dump(config, sort_keys=False, allow_unicode=True)


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(text=mutated_texts())
def test_any_config_is_valid_or_refused_in_one_line(tmp_path: Path, text: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    result = run_ctxfusion("run", str(path), "--check", "--out", str(tmp_path / "run"),
                           home=tmp_path / "home")
    output = result.stdout + result.stderr
    assert result.returncode in (0, 2), output
    assert "Traceback" not in output and "internal error" not in output, output
    if result.returncode == 2:
        assert [line for line in result.stderr.splitlines() if line.startswith("error: ")], \
            output
    assert not (tmp_path / "run").exists()


def test_the_check_says_what_the_run_would_do(tmp_path: Path) -> None:
    result = run_ctxfusion("run", str(DEMO), "--check", "--out", str(tmp_path / "run"),
                           home=tmp_path / "home")
    assert result.returncode == 0, result.stderr
    assert f"ctxfusion run would start a fresh run in {tmp_path / 'run'}" in result.stdout
    assert not (tmp_path / "run").exists() and not (tmp_path / "home").exists()


def test_an_unknown_adaptive_target_names_the_config_file(tmp_path: Path) -> None:
    result = run_ctxfusion("run", str(DEMO), "--check", "--set", "whitebox.adaptive=[nope]",
                           home=tmp_path / "home")
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"error: {DEMO}: whitebox.adaptive[0] = 'nope': not a "
                                    "classifier of this run; valid: fg, bg, joint"), result.stderr
