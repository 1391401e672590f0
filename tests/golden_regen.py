"""`make golden`: regenerate the golden facts and the reviewed text snapshots (issue 23).

    tests/fixtures/golden/explain/<name>.json   the facts of every answer (numbers, codes,
                                                judgements with their scopes), no sentence
    tests/fixtures/golden/explain/<name>.txt    `netobs explain <dir>` as reviewed (SNAPSHOTS only)

Run it only deliberately, read its diff, and commit it with the reason (the brief's rule).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

GOLDEN = Path(__file__).resolve().parent / "fixtures" / "golden"
OUT = GOLDEN / "explain"
SNAPSHOTS = ("sweep-netns", "synth-base")      # the reviewed text snapshots
ROOT = Path(__file__).resolve().parent.parent


def dirs() -> list[str]:
    return sorted(p.name for p in GOLDEN.iterdir() if p.is_dir() and p.name != "explain")


def facts(path: Path, answers=None) -> dict:
    """What the golden test holds: per answer its facts (numbers and codes) and judgements
    (`answers`: answer_all of `path`, when the caller has them already)."""
    sys.path.insert(0, str(ROOT))
    from netobs.analysis.load import load_results
    from netobs.analysis.questions import answer_all
    from netobs.jsonsafe import jsonable

    out = {}
    for a in answers if answers is not None else answer_all(load_results(path)):
        f = a.facts.to_dict()
        out[a.key] = jsonable({
            "verdict": f.get("verdict"),
            "caveats": sorted(c["code"] for c in f.get("caveats", [])),
            "hypotheses": [[j["name"], j["status"], j.get("scope", "")] for j in f.get("hypotheses", [])],
            "facts": {k: v for k, v in f.items() if k not in ("caveats", "hypotheses")},
        })
    return out


def text(path: Path) -> str:
    return subprocess.run([sys.executable, "-m", "netobs", "explain", str(path.relative_to(ROOT))], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for name in dirs():
        (OUT / f"{name}.json").write_text(json.dumps(facts(GOLDEN / name), indent=1, sort_keys=True) + "\n")
        if name in SNAPSHOTS:
            (OUT / f"{name}.txt").write_text(text(GOLDEN / name))
        print(f"golden: {name}")


if __name__ == "__main__":
    main()
