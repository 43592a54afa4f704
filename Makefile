# make run:  create the venv, install, and execute a lesson headless in place, its figures into Data/ (LESSON,
#            default S10.ipynb; set CIFAR10_DIR, IMAGENET_DIR, EPOCHS, ...)
# make test: create the venv, install, run the unit tests and the notebooks in SMOKE mode under nbval: nbval
#            runs tests/smoke_notebooks/ (the notebooks' code cells with SMOKE outputs to compare; see
#            tests/nbval_settings.py), whose code tests/test_notebooks.py keeps identical to the notebooks'
# Both install requirements-dev.txt: the lessons' libraries (requirements.txt) plus jupyter, nbval, pytest.
VENV ?= .venv
LESSON ?= S10.ipynb
PYTHON ?= python3

.PHONY: install run test clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt
	touch $@

run: install
	PLAIN_PROGRESS=1 FIGURES=Data $(VENV)/bin/jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=-1 $(LESSON)

test: install
	SMOKE=1 $(VENV)/bin/pytest -q tests --nbval-lax --nbval-current-env --durations=25

clean:
	rm -rf $(VENV) .pytest_cache checkpoints out
