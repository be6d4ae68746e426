# Build targets for `sam build` (BuildMethod: makefile). Each ships precompiled bytecode
# (unchecked-hash, so zip extraction times do not invalidate it): `sam build` ships no .pyc and
# Lambda's /var/task is read-only, so without this every cold start compiles every import.
PYTHON ?= python3.13
PIP_TARGET = --only-binary=:all: --platform manylinux2014_aarch64 --implementation cp --python-version 3.13

define precompile
	$(PYTHON) -m compileall -q -j 0 --invalidation-mode unchecked-hash "$(1)"
endef

define copy_function
	mkdir -p "$(ARTIFACTS_DIR)/functions"
	cp functions/__init__.py "$(ARTIFACTS_DIR)/functions/"
	cp -r functions/$(1) "$(ARTIFACTS_DIR)/functions/"
	find "$(ARTIFACTS_DIR)" -name '__pycache__' -prune -exec rm -rf {} +
endef

build-SharedLayer:
	$(PYTHON) -m pip install --quiet $(PIP_TARGET) --target "$(ARTIFACTS_DIR)/python" -r shared/requirements.txt
	cp -r shared/runplane "$(ARTIFACTS_DIR)/python/runplane"
	$(call precompile,$(ARTIFACTS_DIR)/python)

build-CreateRunFunction:
	$(call copy_function,create_run)
	$(call precompile,$(ARTIFACTS_DIR))

build-UpdateActionFunction:
	$(call copy_function,update_action)
	$(call precompile,$(ARTIFACTS_DIR))

build-ReadRunsFunction:
	$(call copy_function,read_runs)
	$(call precompile,$(ARTIFACTS_DIR))

build-TaskRegistryFunction:
	$(call copy_function,task_registry)
	$(call precompile,$(ARTIFACTS_DIR))

build-DataProxyFunction:
	$(call copy_function,data_proxy)
	$(call precompile,$(ARTIFACTS_DIR))

build-ReconcileFunction:
	$(call copy_function,reconcile)
	$(PYTHON) -m pip install --quiet $(PIP_TARGET) --target "$(ARTIFACTS_DIR)" -r functions/reconcile/requirements.txt
	$(call precompile,$(ARTIFACTS_DIR))

build-MirrorStatusFunction:
	$(call copy_function,mirror_status)
	$(PYTHON) -m pip install --quiet $(PIP_TARGET) --target "$(ARTIFACTS_DIR)" -r functions/mirror_status/requirements.txt
	$(call precompile,$(ARTIFACTS_DIR))

.PHONY: build-MirrorStatusFunction build-SharedLayer build-CreateRunFunction build-UpdateActionFunction build-ReadRunsFunction build-TaskRegistryFunction build-DataProxyFunction build-ReconcileFunction
