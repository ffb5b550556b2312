"""LoRA adapters of the tiny base and what each request answers alone (today's path), for serving tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def lora_adapter(base: Path, folder: Path, seed: int, **config: Any) -> Path:
    """A LoRA adapter of ``base`` with random A and B (not PEFT's B = 0, so it changes the answers),
    saved in ``folder``; ``config`` overrides the LoraConfig (r=8, alpha 64, q/v/o)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base)
    settings: dict[str, Any] = {"r": 8, "lora_alpha": 64, "target_modules": ["q_proj", "v_proj", "o_proj"]}
    cfg = LoraConfig(**{**settings, **config}, init_lora_weights=False)
    get_peft_model(model, cfg).save_pretrained(folder)
    return folder


def answer_alone(base: Path, adapter: Path | None, messages: list[dict[str, str]], max_tokens: int) -> str:
    """What today's path answers: the request alone through ``generate`` over the base with the adapter
    (PEFT, unmerged), greedy."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from imts.inference.generate import load, render_prompt

    tok, model = load(base)
    if adapter is not None:
        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter).eval()
    ids = torch.tensor([render_prompt(tok, messages)])
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_tokens,
                             do_sample=False, pad_token_id=tok.pad_token_id,
                             eos_token_id=tok.eos_token_id)  # fmt: skip
    gen = out[0, ids.shape[1] :].tolist()
    gen = gen[: gen.index(tok.eos_token_id)] if tok.eos_token_id in gen else gen
    return str(tok.decode(gen, skip_special_tokens=True)).strip()


@contextlib.contextmanager
def serving(app: Any) -> Iterator[str]:
    """``app`` served by uvicorn on a free loopback port in a thread: yields ``http://127.0.0.1:PORT``."""
    import socket
    import threading
    import time

    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not srv.started:
        assert time.time() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(timeout=10)
