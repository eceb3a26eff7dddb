# Two commands for a newcomer: `make study` and `make test`. Each creates or refreshes .venv as needed.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
ARGS   ?=
TEST_JOBS ?= 2
DATA   ?=
# pip byte-compiles every installed module (a third of the install's time); without it Python compiles a module on its
# first import and keeps the result, so only what is imported is compiled. Where Python keeps nothing
# (PYTHONDONTWRITEBYTECODE set), every process would compile again: pip compiles there.
PIP_COMPILE := $(if $(PYTHONDONTWRITEBYTECODE),,--no-compile)

.PHONY: study test lab student validate teaching bench env clean gpu-check

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "skinlib needs Python 3.10 or newer, this is " + sys.version.split()[0]'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(PIP_COMPILE) -e ".[dev]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

env: $(STAMP)                                    ## create or refresh the virtual environment

study: $(STAMP)                                  ## run every notebook (DATA=path for real data, ARGS=... for run_all.py)
	$(BIN)/python run_all.py $(if $(DATA),--data "$(DATA)") $(ARGS)

# the tests start a few dozen kernels: forked from a preloaded process (skinlib/run/forked_kernels.py), ~2 s instead of ~10
FORK_KERNELS ?= 1

test: $(STAMP)                                   ## unit tests and notebook checks (nbval), on TEST_JOBS workers
	SKINLIB_FORK_KERNELS=$(FORK_KERNELS) $(BIN)/python -m pytest -n $(TEST_JOBS) --dist loadgroup $(ARGS)

# JupyterLab for the research notebooks (notebooks/) or the students' copies (teaching/student/): the jupyter/<setup>/
# config opens and saves notebooks in the stored form (skinlib.run.lab), so `git status` stays clean; nbgrader's
# menus only in the teaching setup
LAB = $(BIN)/python -m pip install --quiet -e ".[dev,lab]" && \
	if git rev-parse --git-dir >/dev/null 2>&1; then \
	  $(BIN)/python -m nbstripout --install && \
	  git config filter.nbstripout.extrakeys "$$($(BIN)/python -c 'from skinlib.run.notebook_format import STRIP_KEYS; print(" ".join(STRIP_KEYS))')" && \
	  echo "git filter nbstripout installed: notebook outputs (except nbval's reference outputs) stay out of commits"; \
	fi && \
	JUPYTER_CONFIG_PATH="$(CURDIR)/jupyter/$(1)" $(BIN)/python -m jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root) $(2)

lab: $(STAMP)                                    ## open the notebooks in JupyterLab (outputs stay out of git)
	$(call LAB,research,notebooks/)

student: $(STAMP)                                ## open the students' copies (teaching/student/) in JupyterLab
	$(call LAB,teaching,teaching/student/)

validate: $(STAMP)                               ## check a student's answers: make validate NB=teaching/student/02_splits.ipynb
	@test -n "$(NB)" || { echo "name the notebook: make validate NB=teaching/student/02_splits.ipynb"; exit 2; }
	cd teaching && PATH="$(CURDIR)/$(BIN):$$PATH" $(CURDIR)/$(BIN)/python -m nbgrader validate "$(abspath $(NB))"

teaching: $(STAMP)                               ## students' copies and the nbgrader course in teaching/ (from notebooks/)
	$(BIN)/python tools/make_teaching.py

bench: $(STAMP)                                  ## speed of the data pipeline (full-size synthetic data)
	$(BIN)/python benchmarks/data_pipeline.py $(ARGS)

gpu-check: $(STAMP)                              ## on a GPU machine: the full profile's smoke run on CUDA, then training throughput
	@$(BIN)/python -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else "make gpu-check: no CUDA GPU on this machine")'
	$(BIN)/python run_all.py --profile full --smoke --set pretrained=false --no-progress
	$(BIN)/python benchmarks/train_throughput.py

clean:                                           ## remove the environment and the workspace (data, caches, results)
	rm -rf $(VENV) workspace
