"""Serving many adapters at once (``imts serve``) against today's path, on loopback HTTP.

Registers a base model (SmolLM2-135M-Instruct from the model cache, or ``--base FOLDER``) and 8 LoRA
adapters of it (r=8 on q/k/v/o, random weights) as model versions with ``production`` aliases and
deployments, then sends 32 concurrent clients' chat requests (``--per-client`` each, adapters
round-robin, greedy, ``--tokens`` new tokens) over loopback HTTP to:

1. ``imts serve``: one shared base, requests batched continuously across clients and adapters
   (``StackedLoRA``: every row through its own adapter);
2. the same server and clients, every request to the bare base (the cost of adapters);
3. today's path: one model with the 8 adapters loaded, each request served alone with ``generate``
   under a lock (``set_adapter`` per request), behind the same OpenAI-shaped HTTP route.

Both servers run side by side and the three paths take turns for ``--rounds`` rounds (a shared
machine's load changes several-fold within a minute; taking turns spreads it over all three). Prints
each round's requests/s, completion tokens/s, p50/p99 latency, how many times the scheduler admitted
requests (a new batch, or requests joining a running one) and the load average, then the medians:
the throughput ratio of 1 over 3, and 8 adapters over the bare base (target: >= 0.7).

    PYTHONPATH=src nice -n 5 .venv/bin/python benchmarks/serve.py
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from imts.serve.schemas import ChatRequest

CLIENTS, ADAPTERS = 32, 8
PROMPTS = ["What is 17 + 25?", "Name a colour.", "Say hello in French.", "What is 3 times 4?"]


def make_adapters(base: Path, out: Path) -> list[Path]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    folders = []
    for i in range(ADAPTERS):
        torch.manual_seed(i)
        model = AutoModelForCausalLM.from_pretrained(base)
        cfg = LoraConfig(r=8, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                         init_lora_weights=False)  # fmt: skip
        get_peft_model(model, cfg).save_pretrained(out / f"adapter-{i}")
        folders.append(out / f"adapter-{i}")
    return folders


def register(ctx: Any, base: Path, folders: list[Path], tmp: Path) -> None:
    from imts.data import service as data
    from imts.registry import models
    from imts.registry import service as registry
    from imts.store import runs
    from imts.store.models import BaseModelRecord

    bm = f"bm_{uuid.uuid4().hex[:8]}"
    with ctx.session() as s:
        s.add(BaseModelRecord(id=bm, name="base", path=str(base), architecture="Llama", num_params=1,
                              source="benchmark", checksum="0" * 64))  # fmt: skip
    (tmp / "d.jsonl").write_text('{"prompt": "1 + 1 = ?", "response": "2"}\n', encoding="utf-8")
    dv = data.import_file(ctx, str(tmp / "d.jsonl"), "d")
    for i, folder in enumerate(folders):
        run = runs.create(ctx, "train", {"base_model": bm})
        mv = models.create_version(ctx, f"tuned-{i}", bm, run.id, dv.id, folder, None, run.spec, {})
        registry.set_alias(ctx, mv.id, "production")
        registry.add_deployment(ctx, f"tuned-{i}")
    registry.add_deployment(ctx, "base", alias=None)


def today_app(base: Path, folders: list[Path]) -> Any:
    """Today's path: one model, each request alone through ``generate`` under a lock."""
    import torch
    from fastapi import FastAPI
    from peft import PeftModel

    from imts.inference.generate import load, render_prompt

    tok, model = load(base)
    model = PeftModel.from_pretrained(model, str(folders[0]), adapter_name="tuned-0")
    for i, f in enumerate(folders[1:], start=1):
        model.load_adapter(str(f), adapter_name=f"tuned-{i}")
    model.eval()
    lock = threading.Lock()
    app = FastAPI()

    @app.post("/v1/chat/completions")
    def chat(req: ChatRequest) -> dict[str, Any]:
        ids = torch.tensor([render_prompt(tok, [m.model_dump() for m in req.messages])])
        with lock, torch.inference_mode():
            model.set_adapter(req.model)
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                 max_new_tokens=req.token_limit(), pad_token_id=tok.pad_token_id,
                                 eos_token_id=tok.eos_token_id)  # fmt: skip
        gen = out[0, ids.shape[1] :].tolist()
        gen = gen[: gen.index(tok.eos_token_id)] if tok.eos_token_id in gen else gen
        text = tok.decode(gen, skip_special_tokens=True)
        return {"choices": [{"message": {"content": text}}], "usage": {"completion_tokens": len(gen)}}

    return app


def start(app: Any) -> tuple[str, uvicorn.Server]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=srv.run, daemon=True).start()
    while not srv.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", srv


def load_test(url: str, models: list[str], per_client: int, tokens: int) -> dict[str, float]:
    latencies: list[float] = []
    completion = 0
    lock = threading.Lock()

    def client(c: int) -> None:
        nonlocal completion
        with httpx.Client(timeout=600) as http:
            for r in range(per_client):
                prompt = [{"role": "user", "content": PROMPTS[(c + r) % len(PROMPTS)]}]
                body = {"model": models[(c + r) % len(models)], "max_tokens": tokens, "messages": prompt}
                t0 = time.perf_counter()
                resp = http.post(f"{url}/v1/chat/completions", json=body)
                resp.raise_for_status()
                with lock:
                    latencies.append(time.perf_counter() - t0)
                    completion += resp.json()["usage"]["completion_tokens"]

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(c,)) for c in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    q = statistics.quantiles(latencies, n=100)
    return {"requests": len(latencies), "req_s": len(latencies) / wall, "tok_s": completion / wall,
            "p50": q[49], "p99": q[98], "wall": wall}  # fmt: skip


def batches(url: str) -> tuple[float, float]:
    """(batches run, generations in them) so far, from the server's ``imts_serve_batch_size``."""
    text = httpx.get(f"{url}/metrics").text
    count = re.search(r"^imts_serve_batch_size_count (\S+)$", text, re.M)
    total = re.search(r"^imts_serve_batch_size_sum (\S+)$", text, re.M)
    return (float(count.group(1)) if count else 0.0, float(total.group(1)) if total else 0.0)


def main() -> None:
    cache = Path(os.environ.get("IMTS_MODEL_CACHE", Path.home() / ".cache" / "imts" / "models"))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", type=Path, default=cache / "smollm2-135m-instruct")
    parser.add_argument("--per-client", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=24)
    parser.add_argument("--window-ms", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3, help="turns of the three paths (medians reported)")
    args = parser.parse_args()

    from imts.core.settings import Settings
    from imts.serve.app import create_app
    from imts.serve.router import LocalAccess
    from imts.services.startup import local_context

    tmp = Path(tempfile.mkdtemp(prefix="imts-serve-bench-"))
    folders = make_adapters(args.base, tmp)
    ctx = local_context(Settings(workspace=tmp / "ws"))
    register(ctx, args.base, folders, tmp)
    adapters = [f"tuned-{i}" for i in range(ADAPTERS)]

    print(f"{CLIENTS} clients x {args.per_client} requests, {args.tokens} new tokens, base {args.base.name}, "
          f"torch threads {__import__('torch').get_num_threads()} (OMP_WAIT_POLICY "
          f"{os.environ.get('OMP_WAIT_POLICY', 'unset')}), load average "
          f"{os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
    imts_url, imts_srv = start(create_app(LocalAccess(ctx), window_ms=args.window_ms, max_batch=CLIENTS))
    today_url, today_srv = start(today_app(args.base, folders))
    load_test(imts_url, [*adapters, "base"], 1, 4)  # warm-up: loads the base and the 8 adapters
    load_test(today_url, adapters, 1, 4)
    paths = {
        "imts serve, 8 adapters": (imts_url, adapters),
        "imts serve, bare base": (imts_url, ["base"]),
        "today: each request alone (generate)": (today_url, adapters),
    }
    results: dict[str, list[dict[str, float]]] = {label: [] for label in paths}
    # The paths take turns, round after round: a shared machine's load, which can change several-fold
    # within a minute, then weighs on all three alike instead of on whichever ran last.
    for r in range(args.rounds):
        for label, (url, models) in paths.items():
            before = batches(url) if url == imts_url else None
            res = load_test(url, models, args.per_client, args.tokens)
            if before is not None:
                after = batches(url)
                res["batches"], res["rows"] = after[0] - before[0], after[1] - before[1]
            res["load"] = os.getloadavg()[0]
            results[label].append(res)
            show(f"round {r + 1}: {label}", res)
    imts_srv.should_exit = today_srv.should_exit = True
    med = {label: {k: statistics.median(x[k] for x in rs) for k in rs[0]} for label, rs in results.items()}
    print(f"medians of {args.rounds} rounds:")
    for label, res in med.items():
        show(label, res)
    imts, bare, today = (med[label] for label in paths)
    print(f"throughput ratio imts / today: {imts['tok_s'] / today['tok_s']:.2f}x")
    print(f"8 adapters / bare base: {imts['tok_s'] / bare['tok_s']:.2f}x (target >= 0.7)")


def show(label: str, r: dict[str, float]) -> None:
    line = f"{label:52s} {r['req_s']:6.2f} req/s {r['tok_s']:7.1f} tok/s  p50 {r['p50']:6.2f} s  "
    line += f"p99 {r['p99']:6.2f} s  ({r['requests']:.0f} requests in {r['wall']:.1f} s"
    if "batches" in r:
        line += f", {r['batches']:.0f} admissions"
    print(line + f"; load {r['load']:.1f})", flush=True)


if __name__ == "__main__":
    main()
