"""`paramio.core.jsontext.loads` is `json.loads` (issue 22: reading a file's JSON records without
importing `json` and `re`): the same values, the same errors at the same positions, for text and
for bytes, in a fresh interpreter that never imports `json` while the input is good."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

import paramio
from paramio.core.jsontext import loads

SRC = str(Path(paramio.__file__).resolve().parents[1])


def _outcome(parse: object, text: str | bytes) -> tuple[object, ...]:
    assert callable(parse)
    try:
        return ("ok", repr(parse(text)))
    except RecursionError:
        return ("recursion",)
    except UnicodeDecodeError as exc:
        return ("unicode", str(exc))
    except json.JSONDecodeError as exc:
        return ("json", exc.msg, exc.pos, exc.lineno, exc.colno)
    except ValueError as exc:  # int() past its digit limit
        return ("value", str(exc))


CASES = [
    "",
    " ",
    "{",
    "[1,]",
    '{"a" 1}',
    "1 2",
    "\ufeff{}",
    '"abc',
    '{"a":1}\n\t ',
    '  \n{"a":[{}]}x',
    "-",
    "nul",
    "[" * 100_000,
    '"\x01"',
    '{"a":1,"a":2}',
    "1" * 5000,
    "[1e5, 0.1, -0, 1e400, 12345678901234567890]",
    '{"a": [NaN, Infinity, -Infinity]}',
    '"\\ud800\\u00e9"',
    "\u00a0{}",
    "{}\u00a0",
]


@pytest.mark.parametrize("text", CASES, ids=range(len(CASES)))
def test_text_parses_and_fails_as_json_loads(text: str) -> None:
    assert _outcome(loads, text) == _outcome(json.loads, text)
    raw = text.encode("utf-8", "surrogatepass")
    assert _outcome(loads, raw) == _outcome(json.loads, raw)


def _document(rnd: random.Random, depth: int = 0) -> object:
    kind = rnd.randrange(7 if depth < 4 else 4)
    if kind == 0:
        return rnd.randrange(-(10**20), 10**20)
    if kind == 1:
        return rnd.random() * 10 ** rnd.randrange(-300, 300)
    if kind == 2:
        return "".join(chr(rnd.randrange(0, 0x3000)) for _ in range(rnd.randrange(8)))
    if kind == 3:
        return rnd.choice([True, False, None])
    if kind in (4, 5):
        return [_document(rnd, depth + 1) for _ in range(rnd.randrange(4))]
    return {str(_document(rnd, depth + 1)): _document(rnd, depth + 1) for _ in range(rnd.randrange(4))}


def test_documents_and_their_prefixes_as_json_loads() -> None:
    rnd = random.Random(22)
    for _ in range(500):
        doc = _document(rnd)
        for text in (json.dumps(doc), json.dumps(doc, indent=2), json.dumps(doc, ensure_ascii=False)):
            assert repr(loads(text)) == repr(json.loads(text))
            cut = text[: rnd.randrange(len(text) + 1)]
            assert _outcome(loads, cut) == _outcome(json.loads, cut)


def test_bytes_in_every_encoding_json_detects() -> None:
    text = '{"a": ["\u00e9", 1]}'
    samples: list[bytes] = [text.encode(e) for e in ("utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be")]
    samples += [text.encode(e) for e in ("utf-32", "utf-32-le", "utf-32-be")]
    samples += [b"", b"1", b"12", b'{"a":"\xff"}', b'"\xed\xa0\x80"', b"[1,2] x", b"\x00\x00"]
    rnd = random.Random(7)
    samples += [
        bytes(rnd.choice(b'{}[]"a1 \x00\xff\xef\xbb\xbf\xfe,:\\u') for _ in range(rnd.randrange(8)))
        for _ in range(3000)
    ]
    for raw in samples:
        assert _outcome(loads, raw) == _outcome(json.loads, raw), raw


def _refuse_big(text: str) -> int:
    if len(text) > 3:
        raise ValueError(f"too long: {text}")
    return int(text)


HOOKS: list[dict[str, object]] = [
    {"object_pairs_hook": list},
    {"parse_int": lambda t: ("int", t), "parse_float": lambda t: ("float", t), "parse_constant": lambda t: ("c", t)},
    {"object_pairs_hook": tuple, "parse_int": _refuse_big},
    {"parse_float": float, "parse_int": int},
]


@pytest.mark.parametrize("hooks", HOOKS, ids=range(len(HOOKS)))
def test_the_hooks_as_json_loads_takes_them(hooks: dict[str, object]) -> None:
    rnd = random.Random(5)
    texts = [*CASES, '{"a": 1, "a": [2.5, NaN, {"b": -0}]}', '[12345, "x"]', b'{"k": 1}']
    texts += [json.dumps(_document(rnd)) for _ in range(300)]
    for text in texts:
        assert _outcome(lambda t: loads(t, **hooks), text) == _outcome(lambda t: json.loads(t, **hooks), text)


def test_its_decode_error_is_jsons() -> None:
    from paramio.core import jsontext

    with pytest.raises(jsontext.JSONDecodeError) as info:
        loads('{"a": }')
    assert jsontext.JSONDecodeError is json.JSONDecodeError and info.value.pos == 6


def test_good_input_imports_no_json_or_re(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from paramio.core.jsontext import loads\n"
        "assert loads(' {\"a\": [1, 2.5, \"x\", null, true]} ') == {'a': [1, 2.5, 'x', None, True]}\n"
        "assert loads(b'[1]') == [1]\n"
        "assert loads('{\"a\": 1}', object_pairs_hook=list, parse_int=str) == [('a', '1')]\n"
        "assert not {'json', 're'} & set(sys.modules), sorted(sys.modules)\n"
        "try:\n"
        "    loads('[1,')\n"
        "except ValueError as exc:\n"
        "    assert type(exc).__name__ == 'JSONDecodeError' and 'json' in sys.modules\n"
        "else:\n"
        "    raise AssertionError('no error')\n"
    )
    env = {**os.environ, "PYTHONPATH": SRC}
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, check=True)


def test_without_the_c_scanner_it_is_json_loads(tmp_path: Path) -> None:
    """An interpreter without CPython's `_json` (PyPy, a build without it) still reads JSON: the
    module falls back to `json.loads` rather than failing to import."""
    code = (
        "import sys\n"
        "sys.modules['_json'] = None  # as if the accelerator did not exist\n"
        "import json\n"
        "from paramio.core import jsontext\n"
        "assert not jsontext._HAS_SCANNER\n"
        "for text in (' {\"a\": [1, 2.5, \"x\", null, true]} ', b'[1]', '{\"a\": 1}'):\n"
        "    assert jsontext.loads(text) == json.loads(text)\n"
        "assert jsontext.loads('{\"a\": 1}', object_pairs_hook=list, parse_int=str) == [('a', '1')]\n"
        "try:\n"
        "    jsontext.loads('[1,')\n"
        "except json.JSONDecodeError as exc:\n"
        "    assert exc.pos == 3\n"
        "else:\n"
        "    raise AssertionError('no error')\n"
    )
    env = {**os.environ, "PYTHONPATH": SRC}
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, check=True)
