# make test: works on a fresh clone with nothing prepared (venv, packages, sshd all installed here).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test lint demo bench venv sshd clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,progress]'
	touch $(STAMP)

# The integration tier starts real OpenSSH servers on 127.0.0.2-4.
sshd:
	@if [ ! -x /usr/sbin/sshd ]; then \
		echo "installing openssh-server (sshd is missing)"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq openssh-server >/dev/null; \
	fi

test: venv sshd
	$(BIN)/python -m pytest -q

lint: venv
	$(BIN)/ruff check opsguard tests bench
	$(BIN)/mypy

demo: venv sshd
	$(BIN)/python -m opsguard.sandbox.demo

bench: venv sshd
	$(BIN)/python -m pip install --quiet -e '.[dev,progress,bench]'
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
