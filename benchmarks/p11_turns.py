"""P11 contenders of your choice, in turns, each run its own process (P11's child): for A/B
runs of two paramio checkouts against the peers, warm or cold.

    python benchmarks/p11_turns.py MODE ROUNDS [SRC=]CONTENDER ... [--model PATH]

MODE is ``warm`` or ``cold``; a CONTENDER is what P11's child takes (``paramio``,
``paramio:io=mmap``, ``paramio:concurrency=8``, ``paramio:hugepages=1``, ``load_file``,
``runai``, ``fastsafetensors:16``, ``tensorizer``, ``dd``), optionally prefixed with a source
folder and ``=`` (``/tmp/main/src=paramio``: that checkout's paramio; default: this one's).
The model is P11's (``--model``, default ``$TMPDIR/p11/p11.safetensors``, its CRCs in
``p11.crc.json`` beside it; written by ``python benchmarks/run.py --only P11 --keep``, or by
this script when missing). Round 0 is untimed and checks every byte. Prints each run, then
medians of wall and CPU seconds and the load average per round.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE))
sys.path.insert(0, str(_HERE / "cases"))
import p11_load as p  # noqa: E402
from cases.common import settle  # noqa: E402


def main(argv: list[str]) -> int:
    model = Path(tempfile.gettempdir()) / "p11" / "p11.safetensors"
    if "--model" in argv:
        i = argv.index("--model")
        model = Path(argv[i + 1])
        del argv[i : i + 2]
    mode, rounds, specs = argv[0], int(argv[1]), argv[2:]
    crc = model.with_name("p11.crc.json")
    if not model.exists():
        model.parent.mkdir(parents=True, exist_ok=True)
        crc.write_text(json.dumps(p.write_model(model, p.llama_layout(2048))))
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["RUNAI_STREAMER_LOG_LEVEL"] = "ERROR"
    own = str(_HERE.parent / "src")
    times: dict[str, list[tuple[float, float]]] = {s: [] for s in specs}
    loads = []
    for r in range(rounds + 1):
        for spec in specs:
            src, _, contender = spec.partition("=") if "=" in spec.split(":")[0] else ("", "", spec)
            run_env = {**env, "PYTHONPATH": src or own}
            settle(model.stat().st_size)
            if mode == "warm":
                p._warm(model)
            try:
                s, cpu = p._run_one(contender, str(model), mode, run_env, crc if r == 0 and contender != "dd" else None)
            except Exception as exc:  # noqa: BLE001 -- reported, the others go on
                print(f"  r{r} {spec}: failed: {str(exc)[-300:]}", flush=True)
                continue
            print(f"  r{r} {spec}: {s:.3f} s, cpu {cpu:.2f} s", flush=True)
            if r:
                times[spec].append((s, cpu))
        loads.append(os.getloadavg()[0])
    size = model.stat().st_size
    for spec, v in times.items():
        if v:
            wall, cpu = statistics.median(x[0] for x in v), statistics.median(x[1] for x in v)
            runs = ", ".join(f"{x[0]:.2f}" for x in v)
            print(f"{spec}: wall {wall:.3f} s, cpu {cpu:.2f} s, {size / wall / 1e9:.2f} GB/s (runs {runs})")
    print("load average per round:", ", ".join(f"{x:.1f}" for x in loads))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
