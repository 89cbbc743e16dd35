# Assay: `make run` starts the platform with a demo project; `make test` runs every test.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
VENDOR := server/static/vendor
# Front-end assets from the npm registry (package-lock.json pins them), served by the app itself:
# htmx for the pages, Swagger UI for /api/docs. Never from a CDN.
ASSETS := $(VENDOR)/.installed-stamp

.PHONY: setup run test lint bench bench-rewardmodel bench-quality bench-assistance bench-handoff clean

setup: $(STAMP) $(ASSETS)

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Assay needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	# TRL's own dataset helpers check the exports; --no-deps leaves out PyTorch, which they do not need.
	$(BIN)/pip install --quiet 'transformers>=4.45' && $(BIN)/pip install --quiet --no-deps 'trl>=0.12'
	touch $(STAMP)

# --ignore-scripts: no package needs one, and swagger-ui-dist's dependency @scarf/scarf would phone home.
$(ASSETS): package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	mkdir -p $(VENDOR)
	cp node_modules/htmx.org/dist/htmx.min.js $(VENDOR)/
	cp node_modules/swagger-ui-dist/swagger-ui-bundle.js node_modules/swagger-ui-dist/swagger-ui.css $(VENDOR)/
	touch $@

run: setup
	$(BIN)/assay serve --demo

test: setup
	$(BIN)/pytest -q

lint: setup
	$(BIN)/ruff check server tests bench migrations
	$(BIN)/ruff format --check server tests bench migrations
	$(BIN)/mypy

# Throughput against pgbench (and Label Studio), then the assistance report's proof by simulation
# (issue 11: its long simulations belong here, not in `make test`; about a minute).
bench: setup
	$(BIN)/python -m bench
	$(BIN)/python -m bench.assistance

# The trainer worker on the HH-RLHF sample in ../shared/data and the active-learning curves (~10 min).
bench-rewardmodel: setup
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench.rewardmodel

# Quality control on simulated crowds: flags and the suspension rule, weighted against majority labels
# (and the trainer on the HH sample when ../shared/data is there), the leaderboard at a million judgments.
bench-quality: setup
	$(BIN)/python -m bench.quality
	$(BIN)/python -m bench.aggregation
	$(BIN)/python -m bench.leaderboard --judgments 1000000

# The assistance experiment report's statistics by simulation (~2 min; docs/BENCHMARKS.md).
bench-assistance: setup
	$(BIN)/python -m bench.assistance
	$(BIN)/python -m bench.assistance --stretch-check

# The hand-off to model judges by simulation: threshold vs human share vs accuracy (docs/BENCHMARKS.md).
bench-handoff: setup
	$(BIN)/python -m bench.handoff

clean:
	rm -rf $(VENV) node_modules server/static/vendor
